#!/bin/bash
# Reverse debugging benchmark (docs/replay.md, "Going backwards"): the
# latency of one reverse-stepi near the recording's start and at its end,
# after hundreds of millions of instructions, with the replay's snapshots
# in memory every 2e7 instructions (--replay-snapshots 20000000), with the
# default (that spacing stretched so that the replay runs at least twice
# as long between two snapshots as one takes) and without them (off: every step back replays from the
# start), in the same invocation. The guest is
# tests/guests/smp_stress.S on two vCPUs (about 5.5e8 instructions);
# Debian's gdb drives the replay and times each command itself. Then,
# from the end, one reverse-continue to a breakpoint on puts (the guest's
# last line printed, near the end): its first pass looks for the last hit
# from the newest snapshot back, not from the start.
#
# Usage: bench/rdebug.sh [STEPS]   (default 3 reverse-stepi at each place;
# CORRAL, BUILD as for the tests)
# Prints each mean latency in ms and the ratios end/start and off/on.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/corral}
STEPS=${1:-3}
G=$BUILD/tests/guests
command -v gdb >/dev/null || {
	echo "bench/rdebug.sh: needs gdb (apt-get install gdb)" >&2
	exit 1
}
[ -x "$CORRAL" ] && [ -f "$G/smp_stress.bin" ] || {
	echo "bench/rdebug.sh: build corral and the guests first (make && make tests)" >&2
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/rdebugbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
opts=(--flat "$G/smp_stress.bin" --mem 16M --cpus 2 --no-reboot --engine emu --serial none)
"$CORRAL" run "${opts[@]}" --record "$work/rec.rr" </dev/null 2>"$work/rec.err" || {
	echo "bench/rdebug.sh: recording failed: $(tail -n 1 "$work/rec.err")" >&2
	exit 1
}
puts=$(printf '0x%x' $((0x100000 + 0x$(nm "$G/smp_stress.o" | awk '$3 == "puts" { print $1 }'))))
insns=$(sed -n 's/.* \([0-9]*\) instructions.*/\1/p' "$work/rec.err")
echo "recording: $insns instructions (smp_stress.S, 2 vCPUs)"

# run SNAPSHOTS: prints "start MS" and "end MS" (mean reverse-stepi latency)
run() {
	rm -f "$work/sock"
	local snap=(--replay-snapshots "$1")
	[ "$1" = default ] && snap=()
	"$CORRAL" run "${opts[@]}" --replay "$work/rec.rr" "${snap[@]}" --gdb "unix:$work/sock" \
		--gdb-wait </dev/null 2>"$work/err" &
	local pid=$! n=0
	while [ ! -S "$work/sock" ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	cat >"$work/t.py" <<PY
import time
def mean_back(n):
    t = time.monotonic()
    for _ in range(n):
        gdb.execute("reverse-stepi", to_string=True)
    return (time.monotonic() - t) * 1000 / n
for _ in range($STEPS + 1):
    gdb.execute("stepi", to_string=True)
print("start %.1f" % mean_back($STEPS))
t = time.monotonic()
gdb.execute("continue", to_string=True)
print("forward %.1f" % ((time.monotonic() - t) * 1000))
print("end %.1f" % mean_back($STEPS))
gdb.execute("break *$puts", to_string=True)
t = time.monotonic()
gdb.execute("reverse-continue", to_string=True)
print("rc %.1f" % ((time.monotonic() - t) * 1000))
print("rcpc %x" % int(gdb.parse_and_eval("\$pc")))
PY
	gdb -batch -nx -ex "target remote $work/sock" -x "$work/t.py" 2>&1 | grep -E '^(start|end|forward|rc|rcpc) '
	wait $pid
}
run off >"$work/off"
run 20000000 >"$work/on"
run default >"$work/def"
v() { sed -n "s/^$1 //p" "$work/$2"; }
printf '%-34s %10s %10s %10s\n' "reverse-stepi, ms" "off" "every 2e7" "default"
printf '%-34s %10s %10s %10s\n' "near the start" "$(v start off)" "$(v start on)" "$(v start def)"
printf '%-34s %10s %10s %10s\n' "at the end ($insns insns)" "$(v end off)" "$(v end on)" "$(v end def)"
printf '%-34s %10s %10s %10s\n' "reverse-continue to puts from the end" "$(v rc off)" "$(v rc on)" "$(v rc def)"
[ "$(v rcpc off)" = "$(v rcpc on)" ] && [ "$(v rcpc off)" = "$(v rcpc def)" ] ||
	echo "reverse-continue stopped at different places: $(v rcpc off) $(v rcpc on) $(v rcpc def)"
printf '%-34s %10s %10s %10s\n' "forward to the end (ms, once)" "$(v forward off)" "$(v forward on)" "$(v forward def)"
awk -v a="$(v end off)" -v b="$(v end on)" -v c="$(v end def)" -v f="$(v forward off)" -v g="$(v forward on)" \
	-v h="$(v forward def)" -v r="$(v rc off)" -v q="$(v rc on)" 'BEGIN {
	if (r > 0 && q > 0)
		printf "reverse-continue from the end, off/every 2e7: %.1f\n", r / q
	if (a > 0 && b > 0 && c > 0 && f > 0)
		printf "reverse-stepi at the end, off/every 2e7: %.1f, off/default: %.1f; forward, every 2e7/off: %.2f, default/off: %.2f\n", a / b, a / c, g / f, h / f
}'
