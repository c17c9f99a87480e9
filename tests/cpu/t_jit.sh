#!/bin/sh
# The block translator (src/cpu/jit_x86.c): the CPU, process VM and
# system-mode suites again with every block translated the first time it
# runs (CORRAL_JIT_HOT=0), and with the translator off (CORRAL_JIT=0, the
# portable interpreter alone, as on hosts without the translator). t_diff
# runs its own translated pass. Each translated run must show that blocks
# were translated (CORRAL_JIT_STATS' count), and each interpreted one that
# none were, so the suites cannot pass with the translator silently off.
# CORRAL and BUILD come from tests/run.sh.
: "${CORRAL:?CORRAL must name the corral binary}" "${BUILD:?BUILD must name the build directory}"
DIR=$(cd "$(dirname "$0")/.." && pwd)
pass=0
fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# suite LABEL CMD...: run a suite, add up its "N passed, N failed" line
suite() {
	label=$1
	shift
	"$@" >"$log" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	if [ -z "$line" ]; then
		p=0
		f=1
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$f" -ne 0 ]; then
		echo "FAIL $label ($p passed, $f failed, exit $rc)"
		tail -n 20 "$log" | sed 's/^/    /'
	else
		echo "ok   $label ($p passed)"
	fi
}

# translated LABEL WANT CMD...: run CMD with CORRAL_JIT_STATS and compare
# the blocks it translated with WANT: "some" (more than 0) or "none".
translated() {
	label=$1
	want=$2
	shift 2
	env CORRAL_JIT_STATS=1 "$@" >"$log" 2>&1
	rc=$?
	n=$(awk '/corral: jit: [0-9]+ blocks translated/ { s += $3; seen = 1 } END { print seen ? s : 0 }' "$log")
	if [ "$rc" -ne 0 ] || { [ "$want" = some ] && [ "$n" -eq 0 ]; } || { [ "$want" = none ] && [ "$n" -ne 0 ]; }; then
		fail=$((fail + 1))
		echo "FAIL $label: $n blocks translated, expected $want (exit $rc)"
		tail -n 5 "$log" | sed 's/^/    /'
	else
		pass=$((pass + 1))
		echo "ok   $label: $n blocks translated"
	fi
}

translated "user mode (t_cpu_run), all translated" some env CORRAL_JIT_HOT=0 "$BUILD/tests/unit/t_cpu_run"
translated "system mode (t_cpu_sys), all translated" some env CORRAL_JIT_HOT=0 "$BUILD/tests/unit/t_cpu_sys"
translated "system VM (tiny guest paging), by default" some "$CORRAL" run --flat "$BUILD/tests/guests/paging.bin"
translated "system VM (tiny guest hello), all translated" some env CORRAL_JIT_HOT=0 "$CORRAL" run --flat "$BUILD/tests/guests/hello.bin"
translated "user mode (t_cpu_run), interpreter only" none env CORRAL_JIT=0 "$BUILD/tests/unit/t_cpu_run"
translated "system VM (tiny guest paging), interpreter only" none env CORRAL_JIT=0 "$CORRAL" run --flat "$BUILD/tests/guests/paging.bin"

for t in cpu/t_sse cpu/t_x87 unit/t_cpu_run fuzz/t_regress process/t_mm; do
	suite "$t, all translated" env CORRAL_JIT_HOT=0 "$BUILD/tests/$t"
done
for t in t_progs t_busybox t_dynamic t_badinput; do
	suite "$t, all translated" env CORRAL_JIT_HOT=0 sh "$DIR/process/$t.sh"
done
for t in t_progs t_busybox; do
	suite "$t, interpreter only" env CORRAL_JIT=0 sh "$DIR/process/$t.sh"
done
# system mode: translated by default; here all translated, and interpreted
for mode in "all translated:CORRAL_JIT_HOT=0" "interpreter only:CORRAL_JIT=0"; do
	suite "unit/t_cpu_sys, ${mode%%:*}" env "${mode#*:}" "$BUILD/tests/unit/t_cpu_sys"
	suite "guests/t_guests, ${mode%%:*}" env "${mode#*:}" sh "$DIR/guests/t_guests.sh"
done
suite "boot/t_boot, interpreter only" env CORRAL_JIT=0 sh "$DIR/boot/t_boot.sh"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
