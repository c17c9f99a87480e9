#!/bin/sh
# Live migration across engines, with tiny guests over unix sockets: the
# source runs on one engine, the destination (`corral run --incoming
# --engine E`) on the other. The page-writing guest (tests/guests/dirty.S)
# checks every page it wrote in the pass before, so a page that the source's
# dirty log missed (kvm: KVM's dirty log) ends it with FAIL; its passes must
# go on without a gap. The counting guest (tests/guests/tick.S) must go on
# with no gap and no repeat. Pairs: kvm to emu, emu to kvm, kvm to kvm.
# Needs a usable /dev/kvm: the nested test machine (tests/kvm/t_nested.sh,
# suite "migrate") runs it where the host has none; elsewhere it is skipped.
# CORRAL_TEST_SLOW multiplies the time limits (the nested machine sets 10).
# Last line: "N passed, N failed[, N skipped]".
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
SLOW=${CORRAL_TEST_SLOW:-1}
PAIRS=${T_ENGINES_PAIRS:-kvm:emu emu:kvm kvm:kvm}
passed=0
failed=0

if ! "$CORRAL" info 2>/dev/null | grep -q '^kvm: .*API version'; then
	echo "t_engines: skipped: no usable /dev/kvm (the nested test machine runs this test: make check-kvm-nested)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_engines.XXXXXX")
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT INT TERM
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
check() { # WHAT COMMAND...
	what=$1
	shift
	if "$@"; then ok; else bad "$what"; fi
}
lines() { cat "$1" 2>/dev/null | wc -l; }
# The waits go by the clock: in the nested machine a fork costs so much
# that counted sleeps would stretch several times over.
# wait_lines FILE N PID: until FILE has N lines, PID ends, or 30 s (times SLOW)
wait_lines() {
	end=$(($(date +%s) + 30 * SLOW))
	while [ "$(lines "$1")" -lt "$2" ] && [ "$(date +%s)" -lt "$end" ] && kill -0 "$3" 2>/dev/null; do
		sleep 0.2
	done
	[ "$(lines "$1")" -ge "$2" ]
}
# wait_sock PATH PID: until the socket is there, PID ends, or 10 s (times SLOW)
wait_sock() {
	end=$(($(date +%s) + 10 * SLOW))
	while [ ! -S "$1" ] && [ "$(date +%s)" -lt "$end" ] && kill -0 "$2" 2>/dev/null; do
		sleep 0.2
	done
	[ -S "$1" ]
}
# waits for pid $1 up to $2 seconds; sets rc (124: still running)
wait_pid() {
	end=$(($(date +%s) + $2))
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
		sleep 0.2
	done
	if kill -0 "$1" 2>/dev/null; then rc=124; else wait "$1"; rc=$?; fi
}
show() { # NAME: the tail of a side's console and messages
	for f in "$tmp/$1.out" "$tmp/$1.err"; do
		echo "  $(basename "$f"):"
		tail -n 5 "$f" 2>/dev/null | cut -c 1-200 | sed 's/^/    /'
	done
}

# move NAME GUEST FROM TO: runs GUEST on FROM, migrates it to a destination
# on TO once it has printed 20 lines; leaves the two consoles in
# $tmp/NAME.s.out and $tmp/NAME.d.out, the destination's pid in $dst
move() {
	n=$1 g=$2 from=$3 to=$4
	"$CORRAL" run --flat "$G/$g.bin" --mem 64M --engine "$from" --serial "file:$tmp/$n.s.out" \
		--api-sock "$tmp/$n.sock" </dev/null >/dev/null 2>"$tmp/$n.s.err" &
	src=$!
	pids="$pids $src"
	"$CORRAL" run --incoming "unix:$tmp/$n.in" --engine "$to" --serial "file:$tmp/$n.d.out" \
		</dev/null >/dev/null 2>"$tmp/$n.d.err" &
	dst=$!
	pids="$pids $dst"
	if ! wait_sock "$tmp/$n.sock" "$src" || ! wait_sock "$tmp/$n.in" "$dst" || ! wait_lines "$tmp/$n.s.out" 20 "$src"; then
		bad "$n: the guest does not run on $from, or the destination ($to) does not wait for it"
		show "$n.s"
		show "$n.d"
		kill "$src" "$dst" 2>/dev/null
		return 1
	fi
	echo "$n: the guest runs on $from ($(lines "$tmp/$n.s.out") lines): moving it to $to"
	timeout -k 5 $((30 * SLOW)) "$CORRAL" migrate "$tmp/$n.sock" "unix:$tmp/$n.in" --downtime-limit 50 \
		>"$tmp/$n.m.out" 2>"$tmp/$n.m.err"
	mrc=$?
	tr '\r' '\n' <"$tmp/$n.m.err" | grep -v '^ *$' | tail -n 1 | sed "s/^/$n: /"
	if [ "$mrc" -ne 0 ]; then
		bad "$n: corral migrate failed (status $mrc): $(tr '\r' '\n' <"$tmp/$n.m.err" | grep corral)"
		show "$n.s"
		show "$n.d"
		return 1
	fi
	ok
	wait_pid "$src" $((10 * SLOW))
	check "$n: the source ends with status 0 (got $rc)" test "$rc" -eq 0
	check "$n: the source says where the VM went" grep -q "migrated to unix:" "$tmp/$n.s.err"
	before=$(lines "$tmp/$n.d.out")
	if wait_lines "$tmp/$n.d.out" $((before + 20)) "$dst"; then ok; else
		bad "$n: the VM does not run on at the destination ($to)"
		show "$n.d"
	fi
	return 0
}

for pair in $PAIRS; do
	from=${pair%%:*}
	to=${pair#*:}

	# the page-writing guest: no page lost, the passes go on
	n=dirty-$from-$to
	if move "$n" dirty "$from" "$to"; then
		kill "$dst" 2>/dev/null
		wait "$dst" 2>/dev/null
		lost=$(grep -h FAIL "$tmp/$n.s.out" "$tmp/$n.d.out")
		check "$n: no page was lost: $lost" test -z "$lost"
		cat "$tmp/$n.s.out" "$tmp/$n.d.out" | grep -a '^pass [0-9a-f]*$' | head -n -1 | awk '
			{ v = 0; for (i = 1; i <= length($2); i++) v = v * 16 + index("0123456789abcdef", substr($2, i, 1)) - 1
			  if (NR > 1 && v != prev + 1) { print "gap after " prev; exit 1 } prev = v }' >"$tmp/$n.gap"
		check "$n: the passes go on without a gap: $(cat "$tmp/$n.gap")" test ! -s "$tmp/$n.gap"
	fi

	# the counting guest: no gap, no repeat
	n=tick-$from-$to
	if move "$n" tick "$from" "$to"; then
		kill "$dst" 2>/dev/null
		wait "$dst" 2>/dev/null
		cat "$tmp/$n.s.out" "$tmp/$n.d.out" | head -n -1 >"$tmp/$n.seq"
		bad_at=$(awk '{ v = 0; for (i = 1; i <= length($1); i++) v = v * 16 + index("0123456789ABCDEF", substr($1, i, 1)) - 1
			if (v != NR) { print NR ": " $1; exit } }' "$tmp/$n.seq")
		check "$n: the count goes on without a gap or a repeat (line $bad_at)" test -z "$bad_at"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
