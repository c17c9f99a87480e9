#!/bin/sh
# Boots the Multiboot test kernels of tests/guests/mb (ELF32, ELF64, a.out
# kludge; and a Multiboot 2 one) with `corral run --kernel`: each prints parts of its Multiboot
# information on COM1 and leaves through isa-debug-exit. Checks the values
# printed (flags, memory, command line, boot loader name, memory map,
# modules), the exit status, the --device parser's and the loader's
# one-line errors, and, where qemu-system-x86_64 is installed, that QEMU
# gives the same exit status and module lines for the 32-bit kernels.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests/mb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
skipped=0
EXIT_DEV=isa-debug-exit,iobase=0xf4,iosize=4

ok() { passed=$((passed + 1)); }
skip() {
	skipped=$((skipped + 1))
	echo "SKIP $1"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL $1: $2"
	echo "  serial:"; sed 's/^/    /' "$tmp/out" | tr -c '[:print:]\n' '.' | tail -n 20
	echo "  stderr:"; sed 's/^/    /' "$tmp/err" | tail -n 5
}

# run KERNEL [corral options]: sets rc; serial in $tmp/out, stderr in $tmp/err
run() {
	k=$1
	shift
	rm -f "$tmp/out" "$tmp/err"
	timeout -k 5 60 "$CORRAL" run --kernel "$G/$k" --engine emu --no-reboot \
		--serial "file:$tmp/out" "$@" </dev/null 2>"$tmp/err"
	rc=$?
	touch "$tmp/out"
}

# has LINE: the serial output holds exactly this line
has() {
	grep -qxF "$1" "$tmp/out"
}

echo hello-module-one >"$tmp/m1"
printf 'SECOND\001rest' >"$tmp/m2"

for k in elf32.elf elf64.elf aout.bin; do
	# modules, a command line, 128 MiB
	run "$k" --mem 128M --device "$EXIT_DEV" --append "hello world" --initrd "$tmp/m1,$tmp/m2"
	why=
	[ "$rc" -eq 33 ] || why="exit status $rc, not 33"
	for line in "multiboot: hello" "flags 0000024d" "mem_lower 0000027f" "mem_upper 0001fc00" \
		"cmdline hello world" "loader corral" \
		"mmap 0000000000000000 000000000009fc00 00000001" \
		"mmap 000000000009fc00 0000000000060400 00000002" \
		"mmap 0000000000100000 0000000007f00000 00000001" \
		"mmap 00000000e0000000 0000000010000000 00000002" \
		"mods 00000002" "mod 00000011 $tmp/m1: hello-module-one" "mod 0000000b $tmp/m2: SECOND"; do
		has "$line" || why="${why:+$why; }no line '$line'"
	done
	[ "$(grep -c '^mmap' "$tmp/out")" -eq 4 ] || why="${why:+$why; }not 4 memory map entries"
	if [ -z "$why" ] && [ ! -s "$tmp/err" ]; then ok; else bad "$k with modules" "$why"; fi

	# no modules, no command line; RAM above 4 GiB in the memory map
	run "$k" --mem 3200M --device "$EXIT_DEV"
	why=
	[ "$rc" -eq 33 ] || why="exit status $rc, not 33"
	for line in "flags 00000245" "mem_upper 002ffc00" "cmdline " \
		"mmap 0000000100000000 0000000008000000 00000001"; do
		has "$line" || why="${why:+$why; }no line '$line'"
	done
	grep -q '^mods' "$tmp/out" && why="${why:+$why; }a module list without modules"
	if [ -z "$why" ]; then ok; else bad "$k without modules" "$why"; fi
done

# The Multiboot 2 kernel: the tagged information
run mb2.bin --mem 128M --device "$EXIT_DEV" --append "hello world" --initrd "$tmp/m1,$tmp/m2"
why=
[ "$rc" -eq 33 ] || why="exit status $rc, not 33"
for line in "multiboot2: hello" "cmdline hello world" "loader corral" "mem_lower 0000027f" "mem_upper 0001fc00" \
	"mmap 0000000000100000 0000000007f00000 00000001" "mmap 00000000e0000000 0000000010000000 00000002" \
	"acpi RSD PTR " "mod 00000011 $tmp/m1: hello-module-one" "mod 0000000b $tmp/m2: SECOND"; do
	has "$line" || why="${why:+$why; }no line '$line'"
done
[ "$(grep -c '^mmap' "$tmp/out")" -eq 4 ] || why="${why:+$why; }not 4 memory map entries"
if [ -z "$why" ] && [ ! -s "$tmp/err" ]; then ok; else bad "mb2.bin with modules" "$why"; fi
run mb2.bin --mem 64M --device "$EXIT_DEV"
if [ "$rc" -eq 33 ] && has "cmdline " && ! grep -q '^mod' "$tmp/out"; then ok; else bad "mb2.bin alone" "exit $rc"; fi

# The device's other ports and sizes. corral's port bus gives a device only
# accesses that fit inside its ports, so the kernel's 4-byte OUT to a
# one-port device is unclaimed and the kernel halts for good (QEMU passes
# such an access on and exits: a known difference). Without the device
# the kernel halts too.
run elf32.elf --mem 64M --device isa-debug-exit,iobase=244,iosize=1
if [ "$rc" -eq 1 ] && grep -q 'every vCPU is halted' "$tmp/err"; then ok; else bad "iosize=1" "exit $rc"; fi
run elf32.elf --mem 64M --device isa-debug-exit,iobase=0xf0,iosize=8
if [ "$rc" -eq 33 ]; then ok; else bad "iobase=0xf0,iosize=8" "exit $rc"; fi
run elf32.elf --mem 64M
if [ "$rc" -eq 1 ] && has "loader corral"; then ok; else bad "no device" "exit $rc"; fi

# --device and loader errors: one line each, before the guest runs
err_case() {
	name=$1
	want=$2
	shift 2
	run "$@"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 33 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$want" "$tmp/err" &&
		[ ! -s "$tmp/out" ]; then
		ok
	else
		bad "$name" "exit $rc, want one line with '$want'"
	fi
}
err_case "unknown device" "unknown device 'e1000'" elf32.elf --device e1000
err_case "unknown option" "unknown option 'port=1'" elf32.elf --device isa-debug-exit,port=1
err_case "bad iobase" "'iobase=0x10000' must be a number" elf32.elf --device isa-debug-exit,iobase=0x10000
err_case "zero iosize" "'iosize=0' must be a number" elf32.elf --device isa-debug-exit,iosize=0
err_case "past 0xffff" "run past 0xffff" elf32.elf --device isa-debug-exit,iobase=0xfffe,iosize=4
err_case "twice" "given twice" elf32.elf --device isa-debug-exit --device isa-debug-exit
err_case "missing module" "module '$tmp/nope': No such file" elf32.elf --initrd "$tmp/m1,$tmp/nope"
err_case "empty module name" "an empty module name" elf32.elf --initrd "$tmp/m1,,$tmp/m2"
head -c 8M /dev/zero >"$tmp/big"
err_case "module too big" "do not fit in guest RAM" elf32.elf --mem 16M --initrd "$tmp/big,$tmp/big"

# The same exit status and module lines under QEMU (which refuses ELF64).
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
	for k in elf32.elf aout.bin; do
		run "$k" --mem 128M --device "$EXIT_DEV" --initrd "$tmp/m1,$tmp/m2"
		mine=$rc
		grep '^mod' "$tmp/out" >"$tmp/mine.mods"
		timeout -k 5 60 qemu-system-x86_64 -display none -nodefaults -no-user-config -serial "file:$tmp/out" \
			-m 128M -kernel "$G/$k" -initrd "$tmp/m1,$tmp/m2" -device "$EXIT_DEV" \
			</dev/null >"$tmp/err" 2>&1
		qrc=$?
		grep '^mod' "$tmp/out" >"$tmp/qemu.mods"
		if [ "$mine" -eq 33 ] && [ "$qrc" -eq "$mine" ] && cmp -s "$tmp/mine.mods" "$tmp/qemu.mods"; then
			ok
		else
			bad "$k as QEMU" "corral exit $mine, QEMU exit $qrc"
		fi
	done
else
	skip "QEMU comparison: qemu-system-x86_64 is not installed"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
