#!/bin/sh
# What an idle guest costs the host on the multi-thread loop
# (src/engine/vcpu_loop.c: emu with two vCPUs, a host thread each; kvm's
# loop too). The VM process must sleep until something happens, not poll:
#  echo: tests/guests/echo.S waits in HLT for serial input from a pipe that
#    stays open and has no timer: no wake-up at all while nothing is typed
#    (the old loop looked at its input every 10 ms: 100 a second), and a
#    byte typed still reaches the guest at once, and its answer the host.
#  tick: tests/guests/idle_tick.S, a LAPIC timer every 10 ms, nobody
#    watching: with no poll to wake it, its timers still wake it: once its
#    clock leads the wall clock by the most allowed (300 s), the clock
#    keeps the wall clock's pace; and a stop ends its sleep at once.
# The wake-ups are the voluntary context switches of the process's threads.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
SLOW=${CORRAL_TEST_SLOW:-1}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	exec 3>&-
	rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $1: $2"
	echo "  stderr:"
	sed 's/^/    /' "$tmp/err" | tail -n 5
}
. "$(dirname "$0")/idle_lib.sh"

# until_out TEXT SECONDS: the guest's output shows TEXT in time
until_out() {
	i=0
	while ! grep -qF -- "$1" "$tmp/out" 2>/dev/null; do
		[ $i -ge $(($2 * 20 * SLOW)) ] && return 1
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
		i=$((i + 1))
	done
}

# --- echo: no timer, input from a pipe kept open ---
mkfifo "$tmp/in"
exec 3<>"$tmp/in"
"$CORRAL" run --flat "$G/echo.bin" --mem 64M --cpus 2 --no-reboot --engine emu \
	--serial stdio <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
pid=$!
if until_out ready 30; then
	ok
else
	bad "echo ready" "the guest did not start: '$(cat "$tmp/out" 2>/dev/null)'"
fi
sleep 1
s0=$(sleeps)
t0=$(date +%s%N)
sleep 3
s1=$(sleeps)
ms=$((($(date +%s%N) - t0) / 1000000))
echo "echo, 2 vCPUs, idle: $((s1 - s0)) wake-ups in $ms ms"
# nothing wakes it; a few for a loaded host's odd signal or page fault
if [ $((s1 - s0)) -le 10 ]; then
	ok
else
	bad "echo idle" "the idle VM process woke $((s1 - s0)) times in 3 s (at most 10 wanted)"
fi
# input ends the sleep: typed, echoed (a partial line: flushed all the same)
t0=$(date +%s%N)
printf 'ab' >&3
if until_out '<a><b>' 5; then
	echo "echo: answered in $((($(date +%s%N) - t0) / 1000000)) ms"
	ok
else
	bad "echo input" "no answer to 'ab' in 5 s: '$(cat "$tmp/out")'"
fi
printf 'q' >&3
if until_out bye 5; then
	ok
else
	bad "echo quit" "no answer to 'q' in 5 s: '$(cat "$tmp/out")'"
fi
wait "$pid"
rc=$?
pid=
if [ $rc = 0 ]; then
	ok
else
	bad "echo exit" "status $rc after the guest powered off"
fi
exec 3>&-

# --- tick: timers only, nobody watching ---
rm -f "$tmp/out"
"$CORRAL" run --flat "$G/idle_tick.bin" --mem 64M --cpus 2 --no-reboot --engine emu \
	--serial "file:$tmp/out" </dev/null 2>"$tmp/err" &
pid=$!
idle_lead "tick lead"
if [ $lead = 1 ]; then
	idle_window
	echo "tick, 2 vCPUs, idle: $((s1 - s0)) wake-ups and $((l1 - l0)) lines of guest time in $ms ms"
	idle_pace "tick pace"
fi
# a stop ends the long sleep at once
t0=$(date +%s)
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
pid=
t1=$(date +%s)
if [ $((t1 - t0)) -le $((3 * SLOW)) ] && ! grep -q -e Sanitizer -e 'runtime error' "$tmp/err"; then
	ok
else
	bad "tick stop" "SIGTERM took $((t1 - t0)) s (status $rc)"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
