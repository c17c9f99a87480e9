#!/bin/sh
# What an idle guest costs the host (emu engine): tests/guests/idle_tick.S,
# a guest whose LAPIC timer interrupts every 10 ms while it waits in HLT,
# with nobody watching (input from /dev/null: idle time is skipped). Once
# its clock is the most it may run ahead of the wall clock (300 s), the VM
# process must sleep through its timers in batches, not wake the host for
# each of them (100 times a second) nor poll (the old 100 ms cap), and the
# guest's clock must still keep the wall clock's pace: no faster (the lead
# stays bounded), no slower (its timers still fire).
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
SLOW=${CORRAL_TEST_SLOW:-1}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $1: $2"
	echo "  stderr:"; sed 's/^/    /' "$tmp/err" | tail -n 5
}

. "$(dirname "$0")/idle_lib.sh"

"$CORRAL" run --flat "$G/idle_tick.bin" --mem 64M --no-reboot --engine emu \
	--serial "file:$tmp/out" </dev/null 2>"$tmp/err" &
pid=$!
idle_lead lead

if [ $lead = 1 ]; then
	idle_window
	echo "idle: $((s1 - s0)) wake-ups and $((l1 - l0)) lines of guest time in $ms ms"
	# a wake-up per second of batched timers (4-5 here) and the odd
	# extra one; waking for each 10 ms tick or every 100 ms is 40-400
	if [ $((s1 - s0)) -le 16 ]; then
		ok
	else
		bad "wake-ups" "the idle VM process woke $((s1 - s0)) times in 4 s (at most 16 wanted)"
	fi
	idle_pace pace
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
	bad "stop" "SIGTERM took $((t1 - t0)) s (status $rc)"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
