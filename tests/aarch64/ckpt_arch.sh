#!/bin/sh
# A process VM moved across host architectures (docs/checkpoint.md): the
# checkpoint program (tests/progs/ckpt_prog) is stopped mid-computation by
# the x86-64 corral and continued by the aarch64 one, then the other way
# round; both give the result of an uninterrupted native run, byte for byte.
# Run by `make check-aarch64`: CORRAL is the aarch64 corral (under
# qemu-aarch64), NATIVE_CORRAL the host's, NATIVE_BUILD its build
# directory (for the test program).
: "${NATIVE_CORRAL:?NATIVE_CORRAL must name the host's corral}" "${NATIVE_BUILD:?NATIVE_BUILD must name its build directory}"
. "$(dirname "$0")/../process/lib.sh"
W=$TMP/w
mkdir -p "$W"
cp "$NATIVE_BUILD/tests/progs/ckpt_prog" "$W/prog"
head -c 65536 /dev/urandom >"$W/in.dat"
cd "$W" || exit 1

check() {
	if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', wanted '$3'"; fi
}

# move NAME FROM TO MIB ROUNDS: run under FROM, checkpoint after two rounds,
# restore under TO; the output and the output file are the native run's.
move() {
	name=$1 from=$2 to=$3 mib=$4 rounds=$5
	./prog compute in.dat "out.$name.native" "$mib" "$rounds" >"ref.$name"
	rm -f c.sock
	nofds_bg "$from" exec --control c.sock ./prog compute in.dat "out.$name" "$mib" "$rounds" >"run.$name" 2>"err.$name" &
	pid=$!
	wait_lines "out.$name" 2 300
	"$from" checkpoint c.sock "cp.$name" 2>"ck.$name"
	check "$name: checkpoint status ($(cat "ck.$name"))" "$?" 0
	wait $pid
	check "$name: the checkpointed program's status" "$?" 0
	done_rounds=$(wc -l <"out.$name")
	if [ "$done_rounds" -lt "$rounds" ] && [ -s "cp.$name/state" ]; then ok; else
		bad "$name: the checkpoint was not taken mid-computation ($done_rounds of $rounds rounds)"
	fi
	nofds "$to" restore-exec "cp.$name" >>"run.$name" 2>>"err.$name"
	check "$name: restore status ($(cat "err.$name"))" "$?" 0
	check "$name: the restored run's output" "$(cat "run.$name")" "$(cat "ref.$name")"
	if cmp -s "out.$name" "out.$name.native"; then ok; else bad "$name: the output file differs from the native run's"; fi
}

arch_of() { file -L "$1" | sed -n 's/.*\(x86-64\|ARM aarch64\).*/\1/p'; }
corral_bin=$(sed -n 's/.*exec qemu-aarch64 \([^ ]*\) .*/\1/p' "$CORRAL" 2>/dev/null)
check "the corral under test is an aarch64 build" "$(arch_of "${corral_bin:-$CORRAL}")" "ARM aarch64"
check "the host's corral is an x86-64 build" "$(arch_of "$NATIVE_CORRAL")" "x86-64"

# x86-64 to aarch64: the host's corral is fast, so the run is long enough to
# be caught after two rounds; the aarch64 side (interpreted, under
# qemu-aarch64) does the rest.
move x86-to-arm "$NATIVE_CORRAL" "$CORRAL" 8 12
# aarch64 to x86-64
move arm-to-x86 "$CORRAL" "$NATIVE_CORRAL" 4 12

cd /
report
