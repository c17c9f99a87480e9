#!/bin/sh
# Live migration without shared storage (corral migrate --copy-disks): the
# disks travel with the VM into new images at the destination.
# Tiny guest (tests/guests/tick.S) with a raw and a qcow2 disk of random
# data: the destination's images hold what the source's did, the qcow2
# one is a valid qcow2 image, the source's are unchanged. Refusals: a
# destination path that exists (the file is left alone, the images made
# for the other disks are removed, the VM runs on at the source with its
# disks locked), a destination that dies mid-copy.
# The Debian guest kit (emu) writes a numbered 4 KiB block per count to
# its raw disk and its qcow2 disk while it moves; at the end the guest's
# checksum of each disk equals the one of the destination's image, every
# block is whole there, and the source's images hold exactly the blocks
# written before the stop.
NAME=t_disks
. "$(dirname "$0")/../boot/lib.sh"
: "${BUILD:=$ROOT/build}"
G=$BUILD/tests/guests
work=$(mktemp -d "${TMPDIR:-/tmp}/t_disks.XXXXXX")
keep=
cleanup() {
	exec 8>&- 9>&- 2>/dev/null
	for p in $keep; do kill "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
. "$(dirname "$0")/lib.sh"
one_line() { [ "$(wc -l <"$1")" -eq 1 ] && grep -q "$2" "$1"; }
check() { # WHAT COMMAND...
	what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
[ -x "$CORRAL" ] && [ -s "$G/tick.bin" ] || { fail "corral or the tiny guests not built ($CORRAL, $G)"; report; exit 1; }

start_source() { # NAME [ARGS...]
	n=$1
	shift
	"$CORRAL" run --flat "$G/tick.bin" --mem 16M --engine emu --serial "file:$work/$n.out" \
		--api-sock "$work/$n.sock" "$@" </dev/null 2>"$work/$n.err" &
	src=$!
	keep="$keep $src"
	wait_sock "$work/$n.sock"
}
start_dest() { # NAME URL [ARGS...]
	n=$1 u=$2
	shift 2
	"$CORRAL" run --incoming "$u" --serial "file:$work/$n.out" "$@" </dev/null 2>"$work/$n.err" &
	dst=$!
	keep="$keep $dst"
	wait_sock "${u#unix:}"
}

# ---- 1. a raw and a qcow2 disk of random data move with the tiny guest ----
head -c 3M /dev/urandom >"$work/a.img"
truncate -s 8M "$work/a.img"
head -c 1M /dev/urandom >"$work/b.raw"
truncate -s 5M "$work/b.raw"
"$CORRAL" image convert -O qcow2 "$work/b.raw" "$work/b.qcow2" >/dev/null
sum_a=$(md5sum <"$work/a.img")
sum_b=$(md5sum <"$work/b.qcow2")
start_source s1 --disk "$work/a.img" --disk "$work/b.qcow2"
wait_lines "$work/s1.out" 5
start_dest d1 "unix:$work/in1.sock" --disk "$work/a2.img" --disk "$work/b2.qcow2"
"$CORRAL" migrate "$work/s1.sock" "unix:$work/in1.sock" --copy-disks >"$work/m1.out" 2>"$work/m1.err"
check "corral migrate --copy-disks: $(tail -n 1 "$work/m1.err")" test $? -eq 0
wait_pid "$src" 10
check "the source ends with status 0 (got $rc)" test "$rc" -eq 0
n=$(lines "$work/d1.out")
check "the guest runs on at the destination" wait_lines "$work/d1.out" $((n + 5))
kill "$dst"
wait "$dst" 2>/dev/null
check "the raw disk's copy is the source's, byte for byte" cmp -s "$work/a.img" "$work/a2.img"
"$CORRAL" image convert "$work/b2.qcow2" "$work/b2.raw" >/dev/null 2>"$work/conv.err"
check "the qcow2 disk's copy holds what the guest sees: $(cat "$work/conv.err")" cmp -s "$work/b.raw" "$work/b2.raw"
check "the copy is a qcow2 image" sh -c "'$CORRAL' image info '$work/b2.qcow2' | grep -q 'format: *qcow2'"
"$CORRAL" image check "$work/b2.qcow2" >"$work/chk.out" 2>&1
check "the copy passes corral image check: $(tail -n 1 "$work/chk.out")" test $? -eq 0
check "the source's raw image is unchanged" test "$(md5sum <"$work/a.img")" = "$sum_a"
check "the source's qcow2 image is unchanged" test "$(md5sum <"$work/b.qcow2")" = "$sum_b"

# ---- 2. a destination path that exists: refused; nothing there changed or left ----
start_source s2 --disk "$work/a.img" --disk "$work/b.qcow2"
wait_lines "$work/s2.out" 5
echo "not to be replaced" >"$work/taken.qcow2"
start_dest d2 "unix:$work/in2.sock" --disk "$work/new.img" --disk "$work/taken.qcow2"
"$CORRAL" migrate "$work/s2.sock" "unix:$work/in2.sock" --copy-disks >"$work/m2.out" 2>"$work/m2.err"
check "an existing destination image: status 1" test $? -eq 1
check "an existing destination image: one line: $(cat "$work/m2.err")" one_line "$work/m2.err" "taken.qcow2.*File exists"
check "an existing destination image: the VM runs on at the source" still_runs "$work/s2.out"
check "the existing file is left as it was" test "$(cat "$work/taken.qcow2")" = "not to be replaced"
wait_pid "$dst" 10
check "the destination fails (got $rc)" test "$rc" -eq 1
check "the image it made for the other disk is removed" test ! -e "$work/new.img"
"$CORRAL" run --flat "$G/hello.bin" --mem 16M --engine emu --disk "$work/a.img" --serial none </dev/null \
	2>"$work/lock.err"
check "the source still holds its disk's lock: $(cat "$work/lock.err")" grep -q "in use" "$work/lock.err"

# ---- 3. a destination that dies in the bulk copy: the VM runs on ----
if command -v python3 >/dev/null 2>&1; then
	python3 -c '
import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); n = 0
while n < 2000000:
    d = c.recv(65536)
    if not d: break
    n += len(d)
os._exit(0)' "$work/die.sock" &
	keep="$keep $!"
	wait_sock "$work/die.sock"
	"$CORRAL" migrate "$work/s2.sock" "unix:$work/die.sock" --copy-disks >"$work/m3.out" 2>"$work/m3.err"
	check "a dying destination: status 1" test $? -eq 1
	check "a dying destination: one line: $(cat "$work/m3.err")" one_line "$work/m3.err" "destination"
	check "a dying destination: the VM runs on" still_runs "$work/s2.out"
	# and it can still move afterwards (tracking was stopped and starts again)
	start_dest d3 "unix:$work/in3.sock" --disk "$work/a3.img" --disk "$work/b3.qcow2"
	"$CORRAL" migrate "$work/s2.sock" "unix:$work/in3.sock" --copy-disks >"$work/m3.out" 2>"$work/m3.err"
	check "after a failure the VM moves: $(tail -n 1 "$work/m3.err")" test $? -eq 0
	wait_pid "$src" 10
	kill "$dst"
	wait "$dst" 2>/dev/null
	check "and its raw disk with it" cmp -s "$work/a.img" "$work/a3.img"
else
	echo "t_disks: the dying destination skipped: no python3"
fi

# ---- 3b. --compress: a compressible disk and RAM as zstd frames ----
seq 1 600000 >"$work/c.img"
truncate -s 8M "$work/c.img"
start_source s4 --disk "$work/c.img"
wait_lines "$work/s4.out" 5
start_dest d4 "unix:$work/in4.sock" --disk "$work/c2.img"
"$CORRAL" migrate "$work/s4.sock" "unix:$work/in4.sock" --copy-disks --compress >"$work/m4.out" 2>"$work/m4.err"
check "corral migrate --copy-disks --compress: $(tail -n 1 "$work/m4.err")" test $? -eq 0
bytes=$(sed -n 's/.*stood [0-9]* ms, \([0-9]*\) bytes.*/\1/p' "$work/m4.err")
check "compressed, 4 MiB of numbers on the disk take less than 1 MiB (${bytes:-?} bytes)" test "${bytes:-99999999}" -lt 1048576
wait_pid "$src" 10
check "the source ends with status 0 (got $rc)" test "$rc" -eq 0
n=$(lines "$work/d4.out")
check "the guest runs on at the destination" wait_lines "$work/d4.out" $((n + 5))
kill "$dst"
wait "$dst" 2>/dev/null
check "the disk arrives whole" cmp -s "$work/c.img" "$work/c2.img"
check "the count goes on without a gap or a repeat" sh -c "cat '$work/s4.out' '$work/d4.out' | head -n -1 | awk '{ v = 0; for (i = 1; i <= length(\$0); i++) v = v * 16 + index(\"0123456789ABCDEF\", substr(\$0, i, 1)) - 1; if (NR > 1 && v != p + 1) exit 1; p = v }'"

# a sanitized build's reports (ASan, UBSan) in any corral's stderr
san=$(grep -l "Sanitizer\|runtime error" "$work"/*.err 2>/dev/null | tr '\n' ' ')
check "no sanitizer report from the tiny guests' corrals: $san" test -z "$san"

# ---- 4. the Debian guest writes to both disks while it moves ----
if [ -n "${CORRAL_DISKS_NO_KIT:-}" ]; then
	echo "t_disks: the Debian guest part skipped (CORRAL_DISKS_NO_KIT)"
	echo "$passed passed, $failed failed, 1 skipped"
	[ "$failed" -eq 0 ]
	exit
fi
need_kit
until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! { tr -d '\r' <"$1"; } 2>/dev/null | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}
truncate -s 16M "$work/v.img"
"$CORRAL" image create -f qcow2 -q "$work/w.qcow2" 16M >/dev/null
mkfifo "$work/in1" "$work/in2"
timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$work/k.sock" \
	--disk "$work/v.img" --disk "$work/w.qcow2" <"$work/in1" >"$work/out1" 2>"$work/err1" &
src=$!
keep="$keep $src"
exec 9>"$work/in1"
timeout "$TIMEOUT" "$CORRAL" run --incoming "unix:$work/kin.sock" --serial stdio \
	--disk "$work/v2.img" --disk "$work/w2.qcow2" <"$work/in2" >"$work/out2" 2>"$work/err2" &
dst=$!
keep="$keep $dst"
exec 8>"$work/in2"
if until_seen "$work/out1" '^/ # ' 600; then ok "the source booted to the initramfs shell"; else
	fail "no shell prompt"
	tail -n 20 "$work/out1" "$work/err1" | sed 's/^/    /'
	report
	exit 1
fi
# block N of each disk: its number; then each disk's checksum as the guest reads it
echo 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); for d in vda vdb; do printf "block %08d %s\n" $i $d | dd of=/dev/$d bs=4096 seek=$i conv=sync,notrunc,fsync 2>/dev/null; done; echo "count $i"; sleep 0.05; done; sync; echo 3 >/proc/sys/vm/drop_caches; for d in vda vdb; do echo "sum $d $(dd if=/dev/$d bs=1M count=16 2>/dev/null | md5sum)"; done; echo all-done' >&9
if until_seen "$work/out1" '^count 40$' 300; then ok "the guest counts and writes"; else fail "the guest does not count"; fi
"$CORRAL" migrate "$work/k.sock" "unix:$work/kin.sock" --copy-disks >"$work/mig.out" 2>"$work/mig.err"
check "corral migrate --copy-disks of the writing guest: $(tail -n 1 "$work/mig.err")" test $? -eq 0
wait_pid "$src" 20
check "the source ends with status 0 (got $rc)" test "$rc" -eq 0
last=$(tr -d '\r' <"$work/out1" | sed -n 's/^count \([0-9]*\)$/\1/p' | tail -n 1)
if until_seen "$work/out2" '^all-done' 300; then ok "the guest counted to the end at the destination (from $last)"; else
	fail "the count did not end at the destination"
	tail -n 5 "$work/out2" "$work/err2" | sed 's/^/    /'
fi
kill "$dst" 2>/dev/null
wait "$dst" 2>/dev/null
"$CORRAL" image convert "$work/w2.qcow2" "$work/w2.raw" >/dev/null 2>"$work/conv2.err" ||
	fail "corral image convert of the destination's qcow2 image: $(cat "$work/conv2.err")"
for d in vda:v2.img vdb:w2.raw; do
	g=$(tr -d '\r' <"$work/out2" | sed -n "s/^sum ${d%%:*} \([0-9a-f]*\).*/\1/p")
	h=$(md5sum <"$work/${d#*:}" | cut -d' ' -f1)
	check "${d%%:*}: the guest's checksum ($g) is the destination image's ($h)" test -n "$g" -a "$g" = "$h"
done
python3 - "$work" "${last:-0}" >"$work/blocks" 2>&1 <<'PY'
import sys
w, last = sys.argv[1], int(sys.argv[2])
def read(p):
    return open(w + "/" + p, "rb").read()
def whole(d, n, name):
    b = d[n * 4096:(n + 1) * 4096]
    return b.startswith(b"block %08d %s\n" % (n, name)) and not b[24:].strip(b"\0")
out = []
for name, img in (("vda", "v2.img"), ("vdb", "w2.raw")):
    d = read(img)
    bad = [n for n in range(1, 301) if not whole(d, n, name.encode())]
    if bad: out.append("destination %s: blocks %s" % (name, bad[:5]))
# the source's raw image: every block counted before the stop, none after the next
d = read("v.img")
bad = [n for n in range(1, last + 1) if not whole(d, n, b"vda")]
late = [n for n in range(last + 2, 301) if d[n * 4096:(n + 1) * 4096].strip(b"\0")]
if bad: out.append("source: blocks before the stop %s" % bad[:5])
if late: out.append("source: blocks written after the stop %s" % late[:5])
print("; ".join(out))
PY
[ $? -eq 0 ] || echo "(the check itself failed)" >>"$work/blocks"
check "every block whole at the destination; the source's image stops at the switch: $(cat "$work/blocks")" \
	test -z "$(cat "$work/blocks")"
san=$(grep -l "Sanitizer\|runtime error" "$work/err1" "$work/err2" 2>/dev/null | tr '\n' ' ')
check "no sanitizer report from the Debian guest's corrals: $san" test -z "$san"
report
