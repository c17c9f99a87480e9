# The GDB tests' common set-up (sourced by t_gdb.sh and t_rdebug.sh with
# NAME set to the test's name): counters, a scratch directory, skipping
# without gdb, and the helpers below.
: "${CORRAL:?}" "${BUILD:?}" "${NAME:?}"
G=$BUILD/tests/guests
passed=0
failed=0
skipped=0
if ! command -v gdb >/dev/null 2>&1; then
	echo "$NAME: skipped: gdb is not installed (apt-get install gdb)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $1"
	echo "  gdb:"; sed 's/^/    /' "$tmp/gdb.out" | tail -n 30
	echo "  corral stderr:"; sed 's/^/    /' "$tmp/err" | tail -n 5
}
# check NAME PATTERN [FILE]: an extended regex found in gdb's output
check() {
	if grep -Eq -- "$2" "${3:-$tmp/gdb.out}"; then ok; else bad "$1 (no '$2')"; fi
}

# addr GUEST SYMBOL: a label's address in a guest linked at 1 MiB
addr() {
	printf '0x%x' $((0x100000 + 0x$(nm "$G/$1.o" | awk -v s="$2" '$3 == s { print $1 }')))
}
