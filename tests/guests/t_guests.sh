#!/bin/sh
# Runs the tiny guests of tests/guests with `corral run --flat` and checks
# each one's serial output, exit status and messages, under each engine:
# emu, then kvm, whose serial output must be identical to emu's. The hostile
# ones (garbage, portfuzz, storm, triple) only have to end cleanly or keep
# running until the timeout: never a crash or a sanitizer report. Then
# engine hand-over in both directions (--handover, a test hook), and stop
# signals to a waiting and a busy guest.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
tmp=$(mktemp -d)
# Time limits are multiplied by CORRAL_TEST_SLOW (default 1; the nested test
# machine, where even emu runs under QEMU TCG, sets 10).
# T_GUESTS_EMU=ref (the nested test machine): emu runs only the guests whose
# output kvm's must equal; its hostile, reboot, console and signal cases
# (emu's alone) are left to the host's run of this script, one counted skip.
SLOW=${CORRAL_TEST_SLOW:-1}
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
skipped=0

ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $1: $2"
	echo "  serial:"; sed 's/^/    /' "$tmp/out" | tr -c '[:print:]\n' '.' | tail -n 5
	echo "  stderr:"; sed 's/^/    /' "$tmp/err" | tail -n 5
}

# run NAME TIMEOUT [corral options]: sets rc; serial in $tmp/out, stderr in $tmp/err
run() {
	name=$1
	t=$2
	shift 2
	rm -f "$tmp/out" "$tmp/err"
	timeout -k 5 "$t" "$CORRAL" run --flat "$G/$name.bin" --mem 64M --no-reboot \
		--serial "file:$tmp/out" --engine "$E" "$@" </dev/null 2>"$tmp/err"
	rc=$?
	touch "$tmp/out"
}

clean_stderr() {
	! grep -q -e Sanitizer -e 'runtime error' "$tmp/err"
}

# The same serial output under kvm as under emu (first run of each guest).
same_as_emu() {
	key=$(echo "$*" | tr -c '[:alnum:]\n' _)
	if [ "$E" = emu ]; then
		[ -e "$tmp/emu.$key" ] || cp "$tmp/out" "$tmp/emu.$key"
		return 0
	fi
	[ -e "$tmp/emu.$key" ] && cmp -s "$tmp/emu.$key" "$tmp/out"
}

# A software layer behind /dev/kvm (corral info's "provider") may fail to
# emulate instructions a tiny guest runs in kernel mode (PVM: INT3, SSE
# arithmetic): that is the layer's limit, reported clearly by corral, and
# only accepted where such a layer is present.
layer_limit() {
	[ "$E" = kvm ] && [ -n "$SW_LAYER" ] && grep -q "could not emulate an instruction" "$tmp/err"
}

# expect NAME STATUS TEXT [options]: exit status and a line of serial output
expect() {
	name=$1
	want=$2
	text=$3
	shift 3
	run "$name" $((60 * SLOW)) "$@"
	if [ "$rc" -ne "$want" ] && layer_limit; then
		echo "known limit ($E): $name: $(grep '^corral:' "$tmp/err" | head -n 1)"
		limits=$((limits + 1))
	elif [ "$rc" -ne "$want" ]; then
		bad "$name" "exit status $rc, expected $want"
	elif ! grep -q -F "$text" "$tmp/out"; then
		bad "$name" "no '$text' in the serial output"
	elif grep -q FAIL "$tmp/out"; then
		bad "$name" "the guest reported a failure"
	elif ! clean_stderr; then
		bad "$name" "sanitizer report"
	elif ! same_as_emu "$name" "$@"; then
		bad "$name" "serial output differs from emu's"
	else
		ok
	fi
}

# hostile NAME TEXT [options]: the guest's line, a clear corral message, or
# still running at the timeout
hostile() {
	[ -n "$full" ] || return 0
	name=$1
	text=$2
	shift 2
	# kept running till then is a pass: not scaled; CORRAL_VERBOSE says
	# how a clean end came (random code may power the machine off through
	# ACPI: with 2 vCPUs on two threads the path it takes varies)
	export CORRAL_VERBOSE=1
	run "$name" 60 "$@"
	unset CORRAL_VERBOSE
	if ! clean_stderr; then
		bad "$name" "sanitizer report"
	elif [ "$rc" -eq 124 ]; then
		ok # kept running
	elif [ "$rc" -eq 0 ] && grep -q -F "$text" "$tmp/out"; then
		ok
	elif [ "$rc" -eq 0 ] && grep -q '^corral: the guest powered off$' "$tmp/err"; then
		ok
	elif [ "$rc" -le 1 ] && grep -q '^corral: ' "$tmp/err"; then
		ok
	else
		bad "$name" "exit status $rc without a clear message"
	fi
}

limits=0
ENGINES=emu
SW_LAYER=
if [ -e /dev/kvm ]; then
	ENGINES="emu kvm"
	SW_LAYER=$("$CORRAL" info 2>/dev/null | sed -n 's/^ *provider: \(.*software.*\)/\1/p')
else
	echo "skipped: no usable /dev/kvm (there is none: the kvm half of the tiny guests)"
	skipped=$((skipped + 1))
fi

for E in $ENGINES; do
echo "engine $E"
full=1
if [ "$E" = emu ] && [ "${T_GUESTS_EMU:-}" = ref ]; then
	full=
	echo "skipped: emu's hostile, reboot, console and signal cases (T_GUESTS_EMU=ref: the host runs them)"
	skipped=$((skipped + 1))
fi
expect hello 0 "hello"
expect portio 0 "portio ok"
expect exceptions 0 "exceptions ok"
expect paging 0 "paging ok"
expect nmi 0 "nmi ok"
expect rshadow 0 "shadow ok"
expect ioapic_pit 0 "ioapic pit ok"
expect smp 0 "ap started" --cpus 2

# virtual time: the guest waits 100 s for a one-shot timer; that must not
# take 100 s of wall time
start=$(date +%s)
expect lapic_timer 0 "lapic one-shot ok"
end=$(date +%s)
if [ $((end - start)) -lt $((20 * SLOW)) ]; then ok; else bad lapic_timer "took $((end - start)) s: idle time was not skipped"; fi

expect triple 1 "about to triple fault"
if grep -q "corral: guest triple fault at rip" "$tmp/err"; then ok; else bad triple "no triple fault message"; fi

expect storm 0 "storm ok"
expect reset 0 "resetting"
if grep -q "corral: guest requested a reset" "$tmp/err"; then ok; else bad reset "no reset message"; fi
# without --no-reboot the machine starts over, again and again
if [ -n "$full" ]; then
timeout -k 5 $((5 * SLOW)) "$CORRAL" run --flat "$G/reset.bin" --mem 32M --serial "file:$tmp/out" --engine "$E" </dev/null 2>"$tmp/err"
if [ "$(grep -c resetting "$tmp/out")" -ge 3 ] && clean_stderr; then ok; else bad reboot "did not reboot"; fi
fi
expect portfuzz 0 "portfuzz done"
# REP string instructions with ECX = 2^32 - 1 are interrupted between
# iterations (a thread per vCPU: the timer runs on host time)
expect rep_irq 0 "rep irq ok" --cpus 2
hostile garbage "garbage done"
hostile garbage "garbage done" --cpus 2
expect handover 0 "handover ok"
[ -n "$full" ] || continue

# serial input from stdin, with the escapes: C-a C-a sends a C-a, C-a h
# prints help, C-a x quits
printf 'ab\001\001c\001hq' | timeout -k 5 $((60 * SLOW)) "$CORRAL" run --flat "$G/echo.bin" --mem 32M --engine "$E" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "$(printf '<a><b><\001><c><q>')" "$tmp/out" && grep -q "C-a x" "$tmp/err" &&
	clean_stderr; then ok; else bad echo "exit $rc"; fi
(printf 'z\001x'; sleep 3) | timeout -k 5 $((20 * SLOW)) "$CORRAL" run --flat "$G/echo.bin" --mem 32M --engine "$E" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "terminated by C-a x" "$tmp/err" && clean_stderr; then ok; else bad "C-a x" "exit $rc"; fi
# end of input while the guest waits for it: a clear message, not a hang
timeout -k 5 $((20 * SLOW)) "$CORRAL" run --flat "$G/echo.bin" --mem 32M --engine "$E" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "every vCPU is halted" "$tmp/err"; then ok; else bad "echo eof" "exit $rc"; fi
# a stop signal while the guest waits for input (the engine asleep): the VM
# stops at once and corral exits with 128 + the signal (SIGINT, which a
# background job starts with ignored: only corral's own handler ends it)
rm -f "$tmp/in"
mkfifo "$tmp/in"
sleep $((30 * SLOW)) >"$tmp/in" &
holder=$!
"$CORRAL" run --flat "$G/echo.bin" --mem 32M --engine "$E" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
pid=$!
sleep 1
t0=$(date +%s)
kill -INT "$pid"
wait "$pid"
rc=$?
t1=$(date +%s)
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
if [ "$rc" -eq 130 ] && [ $((t1 - t0)) -le $((5 * SLOW)) ] && clean_stderr; then ok; else bad "SIGINT" "exit $rc in $((t1 - t0)) s"; fi
# the same for a busy guest with no console input: the signal reaches the
# running engine only through the VM's stop request
rm -f "$tmp/out"
timeout -k 5 $((30 * SLOW)) "$CORRAL" run --flat "$G/spin.bin" --mem 32M --engine "$E" --serial "file:$tmp/out" \
	</dev/null 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q spinning "$tmp/out" 2>/dev/null && [ $i -lt $((100 * SLOW)) ]; do
	sleep 0.1
	i=$((i + 1))
done
t0=$(date +%s)
kill -INT "$pid"
wait "$pid"
rc=$?
t1=$(date +%s)
if [ "$rc" -eq 130 ] && [ $((t1 - t0)) -le $((5 * SLOW)) ] && clean_stderr; then ok; else bad "SIGINT, busy" "exit $rc in $((t1 - t0)) s"; fi
# and inside one REP LODSB of 2^32 - 1 elements (minutes long under emu):
# one vCPU, whose clock counts instructions, so no timer ends it first
# (emu's alone: under kvm the timer runs on host time)
[ "$E" = emu ] || continue
rm -f "$tmp/out"
timeout -k 5 $((60 * SLOW)) "$CORRAL" run --flat "$G/rep_irq.bin" --mem 64M --engine "$E" --serial "file:$tmp/out" \
	</dev/null 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q "rep copy ok" "$tmp/out" 2>/dev/null && [ $i -lt $((100 * SLOW)) ]; do
	sleep 0.1
	i=$((i + 1))
done
sleep 1
t0=$(date +%s)
kill -INT "$pid"
wait "$pid"
rc=$?
t1=$(date +%s)
if [ "$rc" -eq 130 ] && [ $((t1 - t0)) -le $((5 * SLOW)) ] && clean_stderr; then ok; else bad "SIGINT, in a REP" "exit $rc in $((t1 - t0)) s"; fi
done

# Engine hand-over: the guest starts on one engine, is paused, its vCPU
# state moves into the other engine, and it finishes there with the serial
# output of an uninterrupted run (several points: mid-output, in a timer
# wait, near the end).
if [ -e /dev/kvm ]; then
	E=emu
	run handover 60
	cp "$tmp/out" "$tmp/handover.ref"
	for spec in "kvm 300" "kvm 1000" "kvm 1700" "emu 2000" "emu 6000" "emu 12000"; do
		set -- $spec
		E=$1
		run handover $((60 * SLOW)) --handover "$2"
		if [ "$rc" -ne 0 ]; then
			bad "handover $spec" "exit status $rc"
		elif ! grep -q "corral: handover: $1 -> " "$tmp/err"; then
			bad "handover $spec" "no hand-over happened"
		elif ! cmp -s "$tmp/handover.ref" "$tmp/out"; then
			bad "handover $spec" "serial output differs from an uninterrupted run"
		elif ! clean_stderr; then
			bad "handover $spec" "sanitizer report"
		else
			ok
		fi
	done
fi
E=emu

# options: clear errors, no crash
for args in "--mem 1X" "--mem 0" "--mem 4K" "--cpus 0" "--cpus 65" "--cpus x" "--cpu-model host" \
	"--engine qemu" "--cpu-model x" "--handover 5" "--handover 0 --engine kvm" "--serial tcp:1" "--bogus"; do
	# shellcheck disable=SC2086
	"$CORRAL" run --flat "$G/hello.bin" $args </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -eq 2 ] && grep -q '^corral: ' "$tmp/err"; then ok; else bad "run $args" "exit $rc"; fi
done
"$CORRAL" run --flat "$tmp/nonexistent" --serial none </dev/null >/dev/null 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "nonexistent" "$tmp/err"; then ok; else bad "missing flat file" "exit $rc"; fi
"$CORRAL" run --flat "$G/hello.bin" --engine auto --mem 32M --serial stdio </dev/null >"$tmp/out" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q hello "$tmp/out"; then ok; else bad "serial stdio" "no output"; fi

# corral info: a report and auto's choice; here it names the layer and
# picks emu
"$CORRAL" info >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "^auto picks: \(kvm\|emu\): " "$tmp/out"; then ok; else bad info "exit $rc"; fi
if [ -n "$SW_LAYER" ]; then
	if grep -q "^auto picks: emu: .*software" "$tmp/out"; then ok; else bad info "auto does not pick emu"; fi
fi
# --engine kvm without a usable /dev/kvm: one clear line
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 &&
	unshare -m sh -c "mount -t tmpfs none /dev && \"$CORRAL\" run --flat \"$G/hello.bin\" --engine kvm" \
		</dev/null >"$tmp/out" 2>"$tmp/err"; then
	bad "kvm missing" "ran without /dev/kvm"
elif [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1; then
	if [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^corral: --engine kvm: /dev/kvm: No such device' "$tmp/err"; then
		ok
	else
		bad "kvm missing" "$(cat "$tmp/err")"
	fi
fi

# ... and one the user may not open (util-linux's setpriv: busybox's has
# no --reuid)
if [ -e /dev/kvm ] && [ "$(id -u)" -eq 0 ] && [ "$(stat -c %a /dev/kvm)" = 600 ] &&
	! { command -v setpriv >/dev/null 2>&1 && setpriv --help 2>&1 | grep -q -e '--reuid'; }; then
	echo "skipped: kvm denied: no setpriv with --reuid (util-linux) to open /dev/kvm as another user"
	skipped=$((skipped + 1))
elif [ -e /dev/kvm ] && [ "$(id -u)" -eq 0 ] && [ "$(stat -c %a /dev/kvm)" = 600 ]; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$CORRAL" run --flat "$G/hello.bin" --engine kvm \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
		grep -q '^corral: --engine kvm: /dev/kvm: Permission denied' "$tmp/err"; then
		ok
	else
		bad "kvm denied" "exit $rc: $(cat "$tmp/err")"
	fi
fi

[ "$limits" -gt 0 ] && echo "$limits runs stopped at the known limits of $SW_LAYER"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
