#!/bin/sh
# Hostile programs against process VMs (tests/progs/hostile.c): each tries
# one way into corral's memory or out of the sandbox; each check here failed
# on corral before the sandbox work (docs/threat-model.md says which
# promise it tests).
. "$(dirname "$0")/lib.sh"
H=$BUILD/tests/progs/hostile

# out CASE ARGS...: corral's stdout of the case (status in $TMP/rc)
out() {
	timeout 60 "$CORRAL" exec "$@" >"$TMP/o" 2>"$TMP/e" </dev/null
	echo $? >"$TMP/rc"
	cat "$TMP/o"
}

# expect NAME PATTERN: the last `out` printed a line matching PATTERN
expect() {
	if grep -qx -- "$2" "$TMP/o"; then
		ok
	else
		bad "$1: no line '$2' in:"
		sed 's/^/    /' "$TMP/o" "$TMP/e" | head -n 20
	fi
}

# rss KB... : peak RSS of corral running the rest, in KiB
peak_rss() {
	python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}

# --- guest memory never aliases corral's ---
# A read() blocked into a buffer another thread unmaps, then threads are
# created: their host stacks must not be where the data lands.
out "$H" alias-read >/dev/null
expect "alias-read" "alias-read: 8 of 8 threads intact"
# A write() blocked from such a buffer must not leak corral's memory.
out "$H" alias-write >/dev/null
expect "alias-write" "alias-write: 0 foreign bytes, 8 of 8 threads intact"

# --- memory: reservations are cheap, --mem caps, absurd ELF segments ---
kb=$(peak_rss "$CORRAL" exec "$H" reserve)
if [ "$kb" -lt 40000 ]; then ok; else bad "64 GiB PROT_NONE reservation cost corral $kb KiB"; fi
out --mem 100M "$H" memcap >/dev/null
expect "--mem 100M" "memcap: [0-9]* MiB"
got=$(sed -n 's/memcap: \([0-9]*\) MiB/\1/p' "$TMP/o")
if [ -n "$got" ] && [ "$got" -ge 48 ] && [ "$got" -le 96 ]; then ok; else bad "--mem 100M let $got MiB through"; fi
out "$H" memcap >/dev/null
expect "no --mem" "memcap: 256 MiB"
# and through execve into a new corral
out --mem 100M /bin/busybox sh -c "exec $H memcap" >/dev/null
expect "--mem across execve" "memcap: [4-9][0-9] MiB"
status "--mem 0 refused" 2 "$CORRAL" exec --mem 0 /bin/true
# an ELF whose bss is 1 TiB: a clear error at once, not a growing corral
python3 - "$H" "$TMP/bigbss" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
phoff = struct.unpack_from('<Q', d, 32)[0]
phentsize, phnum = struct.unpack_from('<HH', d, 54)
last = [phoff + k * phentsize for k in range(phnum) if struct.unpack_from('<I', d, phoff + k * phentsize)[0] == 1][-1]
struct.pack_into('<Q', d, last + 40, 1 << 40)
open(sys.argv[2], 'wb').write(d)
EOF
chmod +x "$TMP/bigbss"
kb=$(peak_rss "$CORRAL" exec "$TMP/bigbss" memcap)
status "1 TiB bss refused" 126 "$CORRAL" exec "$TMP/bigbss" memcap
if grep -q "cannot map bss.*Cannot allocate memory" "$TMP/s.err"; then ok; else bad "1 TiB bss message: $(cat "$TMP/s.err")"; fi
if [ "$kb" -lt 40000 ]; then ok; else bad "1 TiB bss cost corral $kb KiB"; fi

# --- SIGBUS past the end of a file, EFAULT for system calls: as Linux ---
same "sigbus" "$H" sigbus
export CORRAL_JIT=0
same "sigbus, interpreter" "$H" sigbus
unset CORRAL_JIT

# --- code changed through a second mapping of the same file page ---
same "alias-code" "$H" alias-code
export CORRAL_JIT=0
same "alias-code, interpreter" "$H" alias-code
unset CORRAL_JIT

# --- the top page of the address space ---
same "top page" "$H" top-page

report
