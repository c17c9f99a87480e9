#!/bin/sh
# Programs corral cannot run: one clear line, the shell's exit statuses
# (127 not found, 126 not runnable), never a crash of corral itself.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

# one_line NAME WANT_STATUS PATTERN FILE: corral exec FILE says one line
# matching PATTERN and exits WANT_STATUS.
one_line() {
	"$CORRAL" exec "$4" >out.txt 2>err.txt </dev/null
	st=$?
	if [ "$st" = "$2" ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q -- "$3" err.txt && [ ! -s out.txt ]; then
		ok
	else
		bad "$1 (status $st, wanted $2)"
		head -n 3 err.txt
	fi
}

head -c 4096 /dev/urandom >garbage
printf '\177ELF' >tiny
head -c 100 /bin/busybox >trunc_hdr
head -c 20000 /bin/busybox >trunc_seg
cp /bin/busybox arm64
printf '\267\000' | dd of=arm64 bs=1 seek=18 conv=notrunc 2>/dev/null
cp /bin/busybox elf32
printf '\001' | dd of=elf32 bs=1 seek=4 conv=notrunc 2>/dev/null
printf 'just text\n' >text
cp /bin/busybox noexec
chmod 755 garbage tiny trunc_hdr trunc_seg arm64 elf32 text
chmod 644 noexec
mkdir adir

one_line "garbage" 126 "not an x86-64 program" ./garbage
one_line "tiny" 126 "truncated" ./tiny
one_line "truncated header" 126 "truncated" ./trunc_hdr
one_line "truncated segments" 126 "truncated ELF file" ./trunc_seg
one_line "aarch64 ELF" 126 "not an x86-64 program (ELF machine 183: aarch64)" ./arm64
one_line "32-bit ELF" 126 "not an x86-64 program (32-bit ELF" ./elf32
one_line "text file" 126 "not an x86-64 program" ./text
one_line "not executable" 126 "Permission denied" ./noexec
one_line "directory" 126 "Permission denied" ./adir
one_line "missing" 127 "No such file or directory" ./missing
printf '#!/nonexistent/interp\necho hi\n' >script_missing_interp
chmod 755 script_missing_interp
one_line "script with missing interpreter" 127 "No such file or directory" ./script_missing_interp

# Hostile headers: each field that sizes or places something is checked.
python3 - /bin/busybox <<'EOP'
import struct, sys
src = open(sys.argv[1], "rb").read()
eh = bytearray(src)
phoff, = struct.unpack_from("<Q", eh, 32)
phnum, = struct.unpack_from("<H", eh, 56)
def load_idx(d):
    for i in range(phnum):
        if struct.unpack_from("<I", d, phoff + 56 * i)[0] == 1:
            return phoff + 56 * i
def out(name, d):
    open(name, "wb").write(d)
d = bytearray(src); struct.pack_into("<Q", d, 32, 1 << 62); out("h_phoff", d)
d = bytearray(src); struct.pack_into("<H", d, 56, 0xffff); out("h_phnum", d)
d = bytearray(src); struct.pack_into("<H", d, 54, 32); out("h_phentsize", d)
d = bytearray(src); struct.pack_into("<Q", d, load_idx(d) + 8, 1 << 63); out("h_offset", d)
d = bytearray(src); struct.pack_into("<Q", d, load_idx(d) + 32, 1 << 40); out("h_filesz", d)
d = bytearray(src); struct.pack_into("<Q", d, load_idx(d) + 40, 1 << 62); out("h_memsz", d)
d = bytearray(src); struct.pack_into("<Q", d, load_idx(d) + 16, (1 << 64) - 4096); out("h_vaddr", d)
d = bytearray(src); struct.pack_into("<Q", d, load_idx(d) + 16, 0x7ffffffff000); out("h_stack", d)
d = bytearray(src); struct.pack_into("<H", d, 16, 1); out("h_type", d)
EOP
for f in h_phoff h_phnum h_phentsize h_offset h_filesz h_memsz h_vaddr h_stack h_type; do
	chmod 755 $f
	one_line "hostile $f" 126 "corral: ./$f: " ./$f
done
# a FIFO named as the program, or as its interpreter: refused at once
mkfifo fifo
printf '#!%s/fifo\n' "$PWD" >via-fifo
chmod 755 fifo via-fifo
for f in fifo via-fifo; do
	timeout 10 "$CORRAL" exec ./$f >out.txt 2>err.txt </dev/null
	st=$?
	if [ "$st" = 126 ] && grep -q "Permission denied" err.txt; then
		ok
	else
		bad "FIFO $f (status $st, wanted 126 at once)"
		head -n 3 err.txt
	fi
done
report
