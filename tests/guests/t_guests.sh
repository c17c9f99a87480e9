#!/bin/sh
# Runs the tiny guests of tests/guests with `corral run --flat` and checks
# each one's serial output, exit status and messages. The hostile ones
# (garbage, portfuzz, storm, triple) only have to end cleanly or keep
# running until the timeout: never a crash or a sanitizer report.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

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
		--serial "file:$tmp/out" "$@" </dev/null 2>"$tmp/err"
	rc=$?
	touch "$tmp/out"
}

clean_stderr() {
	! grep -q -e Sanitizer -e 'runtime error' "$tmp/err"
}

# expect NAME STATUS TEXT [options]: exit status and a line of serial output
expect() {
	name=$1
	want=$2
	text=$3
	shift 3
	run "$name" 60 "$@"
	if [ "$rc" -ne "$want" ]; then
		bad "$name" "exit status $rc, expected $want"
	elif ! grep -q -F "$text" "$tmp/out"; then
		bad "$name" "no '$text' in the serial output"
	elif grep -q FAIL "$tmp/out"; then
		bad "$name" "the guest reported a failure"
	elif ! clean_stderr; then
		bad "$name" "sanitizer report"
	else
		ok
	fi
}

# hostile NAME TEXT [options]: the guest's line, a clear corral message, or
# still running at the timeout
hostile() {
	name=$1
	text=$2
	shift 2
	run "$name" 60 "$@"
	if ! clean_stderr; then
		bad "$name" "sanitizer report"
	elif [ "$rc" -eq 124 ]; then
		ok # kept running
	elif [ "$rc" -eq 0 ] && grep -q -F "$text" "$tmp/out"; then
		ok
	elif [ "$rc" -le 1 ] && grep -q '^corral: ' "$tmp/err"; then
		ok
	else
		bad "$name" "exit status $rc without a clear message"
	fi
}

expect hello 0 "hello"
expect portio 0 "portio ok"
expect exceptions 0 "exceptions ok"
expect ioapic_pit 0 "ioapic pit ok"
expect smp 0 "ap started" --cpus 2

# virtual time: the guest waits 100 s for a one-shot timer; that must not
# take 100 s of wall time
start=$(date +%s)
expect lapic_timer 0 "lapic one-shot ok"
end=$(date +%s)
if [ $((end - start)) -lt 20 ]; then ok; else bad lapic_timer "took $((end - start)) s: idle time was not skipped"; fi

expect triple 1 "about to triple fault"
if grep -q "corral: guest triple fault at rip" "$tmp/err"; then ok; else bad triple "no triple fault message"; fi

expect storm 0 "storm ok"
expect reset 0 "resetting"
if grep -q "corral: guest requested a reset" "$tmp/err"; then ok; else bad reset "no reset message"; fi
# without --no-reboot the machine starts over, again and again
timeout -k 5 5 "$CORRAL" run --flat "$G/reset.bin" --mem 32M --serial "file:$tmp/out" </dev/null 2>"$tmp/err"
if [ "$(grep -c resetting "$tmp/out")" -ge 3 ] && clean_stderr; then ok; else bad reboot "did not reboot"; fi
expect portfuzz 0 "portfuzz done"
hostile garbage "garbage done"
hostile garbage "garbage done" --cpus 2

# serial input from stdin, with the escapes: C-a C-a sends a C-a, C-a h
# prints help, C-a x quits
printf 'ab\001\001c\001hq' | timeout -k 5 60 "$CORRAL" run --flat "$G/echo.bin" --mem 32M >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "$(printf '<a><b><\001><c><q>')" "$tmp/out" && grep -q "C-a x" "$tmp/err" &&
	clean_stderr; then ok; else bad echo "exit $rc"; fi
(printf 'z\001x'; sleep 3) | timeout -k 5 20 "$CORRAL" run --flat "$G/echo.bin" --mem 32M >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q "terminated by C-a x" "$tmp/err" && clean_stderr; then ok; else bad "C-a x" "exit $rc"; fi
# end of input while the guest waits for it: a clear message, not a hang
timeout -k 5 20 "$CORRAL" run --flat "$G/echo.bin" --mem 32M </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "every vCPU is halted" "$tmp/err"; then ok; else bad "echo eof" "exit $rc"; fi

# options: clear errors, no crash
for args in "--mem 1X" "--mem 0" "--mem 4K" "--cpus 0" "--cpus 65" "--cpus x" "--engine kvm" \
	"--engine qemu" "--serial tcp:1" "--bogus"; do
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
