#!/bin/bash
# Record and replay benchmark (docs/replay.md): time from start to the guest
# kit's init marker with and without --record, and with --replay of that
# recording, alternating, same kernel, initramfs and command line; then the
# size of the log per second of guest time, for a plain boot and for a boot
# that takes an address by DHCP over --net user and draws from --rng.
#
# Usage: bench/replay.sh [ROUNDS]   (default 3; CORRAL=path/to/corral)
# Prints each time, the medians, the ratios record/plain and replay/plain,
# and bytes per second of guest time (the guest's clock at the end, idle
# time included).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-3}
MARKER="corral-guest: init started"
APPEND="console=ttyS0 quiet -- true"
LIMIT=${BOOT_BENCH_TIMEOUT:-300}

[ -x "$CORRAL" ] || {
	echo "bench/replay.sh: $CORRAL not built (make)" >&2
	exit 1
}
sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/replaybench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ms from start until the marker appears on the console ("" if it never does);
# the run then goes on to its end (a recording needs its end).
time_to_marker() {
	local fifo=$work/fifo t0 t="" line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	t0=$(date +%s%N)
	timeout "$LIMIT" "$@" </dev/null >"$fifo" 2>"$work/err" &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*"$MARKER"*)
			[ -z "$t" ] && t=$((($(date +%s%N) - t0) / 1000000))
			;;
		esac
	done <"$fifo"
	wait "$pid" 2>/dev/null
	echo "$t"
}

median() {
	printf '%s\n' "$@" | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

plain=() rec=() rep=()
for r in $(seq 1 "$ROUNDS"); do
	p=$(time_to_marker "$CORRAL" run --engine emu --append "$APPEND")
	c=$(time_to_marker "$CORRAL" run --engine emu --record "$work/boot.rr" --append "$APPEND")
	y=$(time_to_marker "$CORRAL" run --engine emu --replay "$work/boot.rr" --append "$APPEND")
	grep -q "identical to the recording" "$work/err" || echo "round $r: the replay did not match: $(cat "$work/err")"
	echo "round $r: plain ${p:-?} ms, --record ${c:-?} ms, --replay ${y:-?} ms"
	plain+=("$p") rec+=("$c") rep+=("$y")
done
mp=$(median "${plain[@]}")
mc=$(median "${rec[@]}")
my=$(median "${rep[@]}")
echo "median boot to init: plain $mp ms, --record $mc ms, --replay $my ms"
awk -v p="$mp" -v c="$mc" -v y="$my" 'BEGIN { if (p > 0) printf "ratio --record/plain %.2f, --replay/plain %.2f\n", c / p, y / p }'

# bytes of log per second of guest time
rate() { # NAME FILE ERRFILE
	local secs bytes
	secs=$(grep -o '[0-9.]* s of guest time' "$3" | cut -d' ' -f1)
	bytes=$(stat -c %s "$2")
	awk -v n="$1" -v b="$bytes" -v s="$secs" \
		'BEGIN { if (s > 0) printf "%s: %d bytes for %.2f s of guest time: %.0f bytes/s\n", n, b, s, b / s }'
}
"$CORRAL" run --engine emu --record "$work/boot.rr" --append "$APPEND" </dev/null >/dev/null 2>"$work/err1"
rate "boot, power off" "$work/boot.rr" "$work/err1"
NETCMD='ip link set eth0 up; udhcpc -i eth0 -n -q -t 10 >/dev/null 2>&1; head -c 4096 /dev/hwrng >/dev/null; sleep 2'
"$CORRAL" run --engine emu --rng --net user --record "$work/net.rr" --append "console=ttyS0 quiet -- $NETCMD" \
	</dev/null >/dev/null 2>"$work/err2"
rate "boot, DHCP, 4 KiB of hwrng, sleep 2" "$work/net.rr" "$work/err2"
