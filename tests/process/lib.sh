# Helpers shared by the process VM tests (sourced, not run): run a command
# natively and under `corral exec`, and compare stdout, stderr and exit
# status byte for byte. CORRAL and BUILD come from tests/run.sh.
: "${CORRAL:?CORRAL must name the corral binary}" "${BUILD:?BUILD must name the build directory}"
ulimit -c 0 2>/dev/null
pass=0
fail=0
skips=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL $1"
}

# same NAME [--in FILE] PROGRAM ARGS...: identical results natively and in corral.
same() {
	name=$1
	shift
	in=/dev/null
	if [ "$1" = "--in" ]; then
		in=$2
		shift 2
	fi
	(cd "$TMP/work" 2>/dev/null || cd "$TMP"; "$@") <"$in" >"$TMP/n.out" 2>"$TMP/n.err"
	nrc=$?
	(cd "$TMP/work" 2>/dev/null || cd "$TMP"; timeout 120 "$CORRAL" exec "$@") <"$in" >"$TMP/c.out" 2>"$TMP/c.err"
	crc=$?
	if [ "$nrc" = "$crc" ] && cmp -s "$TMP/n.out" "$TMP/c.out" && cmp -s "$TMP/n.err" "$TMP/c.err"; then
		ok
	else
		bad "$name (native status $nrc, corral status $crc)"
		diff "$TMP/n.out" "$TMP/c.out" | head -n 10
		diff "$TMP/n.err" "$TMP/c.err" | head -n 10
	fi
}

# status NAME WANT CMD...: exit status of CMD is WANT
status() {
	name=$1
	want=$2
	shift 2
	"$@" >"$TMP/s.out" 2>"$TMP/s.err" </dev/null
	got=$?
	if [ "$got" = "$want" ]; then
		ok
	else
		bad "$name (status $got, wanted $want)"
		head -n 5 "$TMP/s.err"
	fi
}

# skip N REASON: N checks not run here, and why
skip() {
	skips=$((skips + $1))
	echo "skipped $1: $2"
}

report() {
	echo "$pass passed, $fail failed, $skips skipped"
	[ "$fail" -eq 0 ]
}

# ---- for checkpoint tests ----
# nofds CMD...: CMD with descriptors 0-2 only (a checkpoint refuses a pipe
# it inherited); nofds_bg: the same, becoming CMD, for `... &` so that $! is
# the program's pid.
nofds() {
	bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done; exec "$@"' nofds "$@"
}
nofds_bg() {
	exec bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done; exec "$@"' nofds "$@"
}
# wait_lines FILE N SECONDS: until FILE has N lines (or the time is up)
wait_lines() {
	_i=0
	while [ "$(cat "$1" 2>/dev/null | wc -l)" -lt "$2" ] && [ $_i -lt $(($3 * 5)) ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
}
# wait_sock PATH: until the control socket is there (at most 30 s)
wait_sock() {
	_i=0
	while [ ! -S "$1" ] && [ $_i -lt 150 ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
}
