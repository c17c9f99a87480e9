#!/bin/bash
# Live migration over loopback, corral beside QEMU with TCG migrating the
# same guest (Debian's kernel and the guest kit's initramfs, 256 MiB, idle
# at its shell): the guest's stop (downtime), the total time and the bytes
# sent, as each reports them (corral: GET /migrate; QEMU: info migrate).
# Then corral alone with tests/guests/dirty.S, which rewrites 8 MiB of
# pages as fast as it runs (several GiB/s), so that the rounds and
# auto-converge are in play. Prints ratios corral/QEMU, and for the idle
# guest corral --compress (zstd) against corral's plain stream. Needs the guest kit
# (tools/mkguest.sh), python3 for QEMU's monitor, qemu-system-x86_64.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
BUILD=${BUILD:-$ROOT/build}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
QEMU=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
pids=
trap 'exec 8>&- 9>&-; for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

sh "$ROOT/tools/mkguest.sh" >/dev/null 2>&1 || { echo "migrate: no guest kit (tools/mkguest.sh)"; exit 1; }
until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- corral, the Debian guest idle (ARGS: more corral migrate options) ----
# sets c_rounds c_down c_bytes c_total c_ok
corral_idle() {
	rm -f "$tmp/in1" "$tmp/in2" "$tmp/api"
	mkfifo "$tmp/in1" "$tmp/in2"
	"$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$tmp/api" <"$tmp/in1" >"$tmp/c1.out" \
		2>"$tmp/c1.err" &
	src=$!
	pids="$pids $src"
	exec 9>"$tmp/in1"
	P=$(port)
	"$CORRAL" run --incoming "tcp:127.0.0.1:$P" --serial stdio <"$tmp/in2" >"$tmp/c2.out" 2>"$tmp/c2.err" &
	dst=$!
	pids="$pids $dst"
	exec 8>"$tmp/in2"
	until_seen "$tmp/c1.out" '^/ # ' 600 || { echo "corral: no shell prompt"; exit 1; }
	sleep 2
	"$CORRAL" migrate "$tmp/api" "tcp:127.0.0.1:$P" "$@" 2>"$tmp/m1.err" ||
		{ echo "corral migrate $* failed"; cat "$tmp/m1.err"; exit 1; }
	# "completed  round R ...", "corral: migrate: done: the guest stood D ms, B bytes in T ms"
	c_rounds=$(sed -n 's/^completed *round \([0-9]*\).*/\1/p' "$tmp/m1.err")
	c_down=$(sed -n 's/.*the guest stood \([0-9]*\) ms.*/\1/p' "$tmp/m1.err")
	c_bytes=$(sed -n 's/.*stood [0-9]* ms, \([0-9]*\) bytes.*/\1/p' "$tmp/m1.err")
	c_total=$(sed -n 's/.* bytes in \([0-9]*\) ms.*/\1/p' "$tmp/m1.err")
	echo 'echo moved-$((6*7))' >&8
	until_seen "$tmp/c2.out" 'moved-42' 60 && c_ok=yes || c_ok=no
	kill $dst $src 2>/dev/null
	exec 8>&- 9>&-
}
# zstd (--compress) against the plain stream, same guest, same run
corral_idle --compress
z_rounds=$c_rounds z_down=$c_down z_bytes=$c_bytes z_total=$c_total z_ok=$c_ok
corral_idle

# ---- QEMU TCG, the same guest ----
"$QEMU" -accel tcg -m 256 -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initrd.img" -append console=ttyS0 \
	-display none -serial "file:$tmp/q1.out" -monitor "unix:$tmp/q1.mon,server,nowait" -nic none &
pids="$pids $!"
Q=$(port)
"$QEMU" -accel tcg -m 256 -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initrd.img" -append console=ttyS0 \
	-display none -serial "file:$tmp/q2.out" -monitor "unix:$tmp/q2.mon,server,nowait" -nic none \
	-incoming "tcp:127.0.0.1:$Q" &
pids="$pids $!"
until_seen "$tmp/q1.out" '/ # ' 600 || { echo "qemu: no shell prompt"; exit 1; }
sleep 2
python3 - "$tmp/q1.mon" "$Q" >"$tmp/q.info" <<'PY'
import socket, sys, time, re
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(2)
def cmd(c):
    s.sendall((c + "\n").encode()); time.sleep(0.05); out = b""
    try:
        while True:
            d = s.recv(65536)
            out += d
            if out.rstrip().endswith(b"(qemu)"): break
    except socket.timeout: pass
    return out.decode(errors="replace")
cmd("")
cmd("migrate -d tcp:127.0.0.1:" + sys.argv[2])
while True:
    o = cmd("info migrate")
    if "Migration status: completed" in o or "failed" in o:
        print(o); break
    time.sleep(0.05)
PY
q_down=$(sed -n 's/^downtime: \([0-9]*\) ms.*/\1/p' "$tmp/q.info" | tr -d '\r')
q_total=$(sed -n 's/^total time: \([0-9]*\) ms.*/\1/p' "$tmp/q.info" | tr -d '\r')
q_kib=$(sed -n 's/^transferred ram: \([0-9]*\) kbytes.*/\1/p' "$tmp/q.info" | tr -d '\r')
q_bytes=$((${q_kib:-0} * 1024))

# ---- corral, a guest rewriting 8 MiB as fast as it runs ----
"$CORRAL" run --flat "$BUILD/tests/guests/dirty.bin" --mem 256M --engine emu --serial "file:$tmp/d1.out" \
	--api-sock "$tmp/dapi" </dev/null 2>"$tmp/d1.err" &
pids="$pids $!"
P=$(port)
"$CORRAL" run --incoming "tcp:127.0.0.1:$P" --serial "file:$tmp/d2.out" </dev/null 2>"$tmp/d2.err" &
pids="$pids $!"
sleep 1
"$CORRAL" migrate "$tmp/dapi" "tcp:127.0.0.1:$P" 2>"$tmp/m2.err" || echo "corral migrate (dirty guest) failed"
sleep 1
d_fail=$(grep -c FAIL "$tmp/d2.out")

ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print("%.2fx" % (a/b) if b else "-")' "$1" "$2"; }
echo "idle Debian guest, 256 MiB, loopback TCP    corral         QEMU TCG      corral/QEMU"
printf "  downtime (ms)                          %8s         %8s      %s\n" "$c_down" "$q_down" "$(ratio "$c_down" "$q_down")"
printf "  total (ms)                             %8s         %8s      %s\n" "$c_total" "$q_total" "$(ratio "$c_total" "$q_total")"
printf "  bytes sent                           %10s       %10s      %s\n" "$c_bytes" "$q_bytes" "$(ratio "$c_bytes" "$q_bytes")"
echo "  corral: $c_rounds pre-copy rounds; the guest answers at the destination: $c_ok"
echo "the same, corral --compress (zstd) against corral's plain stream:   zstd      plain    zstd/plain"
printf "  downtime (ms)                          %8s         %8s      %s\n" "$z_down" "$c_down" "$(ratio "$z_down" "$c_down")"
printf "  total (ms)                             %8s         %8s      %s\n" "$z_total" "$c_total" "$(ratio "$z_total" "$c_total")"
printf "  bytes sent                           %10s       %10s      %s\n" "$z_bytes" "$c_bytes" "$(ratio "$z_bytes" "$c_bytes")"
echo "  zstd: $z_rounds pre-copy rounds; the guest answers at the destination: $z_ok"
echo "dirty.bin (8 MiB rewritten per pass), 256 MiB, corral:"
sed 's/^/  /' "$tmp/m2.err"
echo "  pages lost (FAIL at the destination): $d_fail"
