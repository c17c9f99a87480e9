# Helpers shared by the tests that boot the guest kit (sourced, not run):
# counting, the kit (built if needed; only a missing apt or network skips),
# and the report. The caller sets NAME first.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
TIMEOUT=${CORRAL_BOOT_TIMEOUT:-900}
passed=0
failed=0

ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

# The last line, and the exit status.
report() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

skip() {
	echo "$NAME: skipped: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

# Builds the guest kit if needed (and checks corral is built); exits on failure.
# CORRAL_KIT_READY=1: the kit in $GUEST_DIR is given (the nested test machine,
# which has no apt), only checked.
need_kit() {
	if [ -n "${CORRAL_KIT_READY:-}" ]; then
		[ -s "$GUEST_DIR/vmlinuz" ] && [ -s "$GUEST_DIR/initrd.img" ] ||
			{ fail "no guest kit in $GUEST_DIR"; report; exit 1; }
	elif ! out=$(sh "$ROOT/tools/mkguest.sh" 2>&1); then
		echo "$out" | sed 's/^/  /'
		echo "$out" | grep -qE "cannot download|not found: this kit needs" &&
			skip "the guest kit cannot be built here (no apt or no network)"
		fail "tools/mkguest.sh"
		report
		exit 1
	fi
	if [ ! -x "$CORRAL" ]; then
		fail "corral binary $CORRAL not built"
		report
		exit 1
	fi
}
