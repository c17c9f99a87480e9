#!/bin/sh
# Multi-core guests on emu: tests/guests/smp_stress.S (atomics, a spinlock,
# message passing, cross-modifying code, CMPXCHG16B against plain stores
# across vCPUs) and tests/guests/smp_tlb.S (LOCK'd operations split across
# a cache line and a page boundary, against aligned ones on an
# overlapping half and against other vCPUs' plain stores into it (a bus
# lock), a TLB shoot-down by IPI and INVLPG) on
# 2 and 4 vCPUs, each vCPU on a host thread of its own (--accel-threads
# multi, the default), many runs, never a wrong result; the same results
# as with the vCPUs taking turns (single); the AP start-up guest; pauses,
# a snapshot and its restore while every vCPU thread runs.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
tmp=$(mktemp -d)
SLOW=${CORRAL_TEST_SLOW:-1}
ROUNDS=${CORRAL_SMP_ROUNDS:-3}
vm=
trap '[ -n "$vm" ] && kill "$vm" 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $1"
	[ -f "$tmp/out" ] && sed 's/^/    serial: /' "$tmp/out" | tail -n 8
	[ -f "$tmp/err" ] && sed 's/^/    stderr: /' "$tmp/err" | tail -n 5
}
clean_stderr() { ! grep -q -e Sanitizer -e 'runtime error' "$tmp/err"; }

# stress MODE N: one run of the stress guest; its output in $tmp/out
stress() {
	rm -f "$tmp/out" "$tmp/err"
	timeout -k 5 $((120 * SLOW)) "$CORRAL" run --flat "$G/smp_stress.bin" --mem 64M --no-reboot --engine emu \
		--cpus "$2" --accel-threads "$1" --serial "file:$tmp/out" </dev/null 2>"$tmp/err"
	rc=$?
	touch "$tmp/out"
	want=$(printf 'cpus %016x' "$2")
	if [ $rc -ne 0 ]; then
		bad "stress $1 $2: exit status $rc"
	elif grep -q FAIL "$tmp/out" || ! grep -q -x "$want" "$tmp/out" || ! grep -q -x "smp stress ok" "$tmp/out"; then
		bad "stress $1 $2: wrong result"
	elif ! clean_stderr; then
		bad "stress $1 $2: sanitizer report"
	else
		ok
	fi
}

for n in 2 4; do
	stress single "$n"
	cp "$tmp/out" "$tmp/single.$n"
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		stress multi "$n"
		r=$((r + 1))
	done
	# the same lines whichever way the vCPUs are run
	if cmp -s "$tmp/single.$n" "$tmp/out"; then ok; else bad "multi $n: output differs from single's"; fi
done

# tlb MODE N: one run of the TLB shoot-down and split-lock guest
tlb() {
	rm -f "$tmp/out" "$tmp/err"
	timeout -k 5 $((120 * SLOW)) "$CORRAL" run --flat "$G/smp_tlb.bin" --mem 64M --no-reboot --engine emu \
		--cpus "$2" --accel-threads "$1" --serial "file:$tmp/out" </dev/null 2>"$tmp/err"
	rc=$?
	touch "$tmp/out"
	want=$(printf 'cpus %016x' "$2")
	if [ $rc -ne 0 ]; then
		bad "tlb $1 $2: exit status $rc"
	elif grep -q FAIL "$tmp/out" || ! grep -q -x "$want" "$tmp/out" ||
		! grep -q -x "misaligned atomics ok" "$tmp/out" || ! grep -q -x "tlb shoot-down ok" "$tmp/out" ||
		! grep -q -x "split and aligned atomics ok" "$tmp/out" || ! grep -q -x "bus lock ok" "$tmp/out" ||
		! grep -q -x "smp tlb ok" "$tmp/out"; then
		bad "tlb $1 $2: wrong result"
	elif ! clean_stderr; then
		bad "tlb $1 $2: sanitizer report"
	else
		ok
	fi
}
tlb single 2
r=0
while [ $r -lt "$ROUNDS" ]; do
	tlb multi 2
	r=$((r + 1))
done
tlb multi 4

# AP start-up (INIT, SIPI, real mode) with the AP on its own thread
rm -f "$tmp/out" "$tmp/err"
timeout -k 5 $((60 * SLOW)) "$CORRAL" run --flat "$G/smp.bin" --mem 64M --engine emu --cpus 2 \
	--accel-threads multi --serial "file:$tmp/out" </dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "ap started" "$tmp/out" && ! grep -q FAIL "$tmp/out"; then ok; else bad "smp multi: rc $rc"; fi

# a bad mode is one clear line
"$CORRAL" run --flat "$G/smp.bin" --accel-threads many </dev/null >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^corral: --accel-threads 'many': must be single or multi" "$tmp/err"; then
	ok
else
	bad "--accel-threads many: rc $rc"
fi

# Pauses, a snapshot and a restore while 4 vCPU threads run the stress.
if ! command -v curl >/dev/null 2>&1; then
	echo "skipped: no curl (pause and snapshot of a multi-thread VM)"
	echo "$passed passed, $failed failed, 1 skipped"
	[ $failed -eq 0 ]
	exit
fi
S=$tmp/api.sock
api() {
	if [ -n "$3" ]; then
		code=$(curl -s -m 20 -o "$tmp/body" -w '%{http_code}' -X "$1" --unix-socket "$S" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2")
	else
		code=$(curl -s -m 20 -o "$tmp/body" -w '%{http_code}' -X "$1" --unix-socket "$S" "http://localhost$2")
	fi
}
# the snapshot stops the stress mid-run (taken as soon as the API answers);
# its restore finishes it
rm -f "$tmp/out" "$tmp/err"
"$CORRAL" run --flat "$G/smp_stress.bin" --mem 64M --no-reboot --engine emu --cpus 4 --accel-threads multi \
	--serial "file:$tmp/out" --api-sock "$S" </dev/null 2>"$tmp/err" &
vm=$!
k=0
while [ ! -S "$S" ] && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
if "$CORRAL" snapshot "$S" "$tmp/snap" --stop 2>"$tmp/snaperr"; then ok; else bad "snapshot: $(cat "$tmp/snaperr")"; fi
wait "$vm"
vm=
if grep -q "smp stress ok" "$tmp/out"; then
	echo "note: the stress ended before the snapshot; the restore only checks a clean end"
fi
cp "$tmp/out" "$tmp/out1"
rm -f "$tmp/out" "$tmp/err"
timeout -k 5 $((120 * SLOW)) "$CORRAL" restore "$tmp/snap" --serial "file:$tmp/out" </dev/null 2>"$tmp/err"
rc=$?
touch "$tmp/out"
cat "$tmp/out1" "$tmp/out" >"$tmp/both"
if [ $rc -eq 0 ] && ! grep -q FAIL "$tmp/both" && grep -q -x "smp stress ok" "$tmp/both" && clean_stderr; then
	ok
else
	bad "restore of a multi-thread snapshot: rc $rc"
fi
# pauses and resumes while 4 vCPU threads run (the stress, then spinning)
rm -f "$S" "$tmp/out" "$tmp/err"
"$CORRAL" run --flat "$G/smp_busy.bin" --mem 64M --no-reboot --engine emu --cpus 4 --accel-threads multi \
	--serial "file:$tmp/out" --api-sock "$S" </dev/null 2>"$tmp/err" &
vm=$!
k=0
while [ ! -S "$S" ] && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
paused=0
k=0
while [ $k -lt 10 ]; do
	api PATCH /vm '{"state":"Paused"}'
	[ "$code" = 204 ] || break
	api GET /
	grep -q '"state":"Paused"' "$tmp/body" && paused=$((paused + 1))
	api PATCH /vm '{"state":"Resumed"}'
	[ "$code" = 204 ] || break
	sleep 0.05
	k=$((k + 1))
done
if [ $paused -eq 10 ]; then ok; else bad "pause/resume of a multi-thread VM: $paused of 10 paused (last code $code)"; fi
kill "$vm" 2>/dev/null
wait "$vm"
vm=
if ! grep -q FAIL "$tmp/out"; then ok; else bad "the stress failed around pauses: $(grep FAIL "$tmp/out" | head -n 3)"; fi
grep -q '"accel_threads": *"multi"' "$tmp/snap/config.json" 2>/dev/null || grep -rq 'accel_threads' "$tmp/snap" &&
	ok || bad "the snapshot does not keep --accel-threads"

# without --accel-threads a VM of two vCPUs runs a thread per vCPU: its
# configuration (kept by a snapshot) says multi
rm -f "$S" "$tmp/out" "$tmp/err"
rm -rf "$tmp/snap2"
"$CORRAL" run --flat "$G/smp_busy.bin" --mem 64M --no-reboot --engine emu --cpus 2 \
	--serial "file:$tmp/out" --api-sock "$S" </dev/null 2>"$tmp/err" &
vm=$!
k=0
while [ ! -S "$S" ] && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
"$CORRAL" snapshot "$S" "$tmp/snap2" --stop 2>"$tmp/snaperr"
wait "$vm"
vm=
if grep -rq '"accel_threads": *"multi"' "$tmp/snap2" 2>/dev/null; then
	ok
else
	bad "the default for 2 vCPUs is not multi: $(grep -rho '"accel_threads": *"[a-z]*"' "$tmp/snap2" 2>/dev/null)"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
