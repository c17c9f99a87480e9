#!/bin/sh
# LOCK'd operations across guest threads (tests/progs/buslock.c): a split
# LOCK'd operation holds off the other threads' plain stores (a bus lock),
# and one left by a fault (SIGSEGV inside it, the program leaving by
# siglongjmp) keeps no other thread, split operation or fork waiting: a
# hang is a failure (timeout).
. "$(dirname "$0")/lib.sh"
P=$BUILD/tests/progs/buslock
SLOW=${CORRAL_TEST_SLOW:-1}
modes="buslock abandon"
if [ "${CORRAL_SANITIZED:-}" = thread ]; then
	# The guest's faults land inside ThreadSanitizer's atomic interceptors
	# (the LOCK'd operation's host atomic on a page just unmapped), and the
	# longjmp out of the fault handler leaves the runtime's own lock taken:
	# the next atomic deadlocks inside libtsan (seen: __tsan_atomic32_load
	# waiting in Mutex::ReadLock).
	modes=buslock
	skip 1 "abandon under ThreadSanitizer: a longjmp out of its atomic interceptors leaves its lock held"
fi
for mode in $modes; do
	timeout -k 5 $((90 * SLOW)) "$CORRAL" exec "$P" "$mode" </dev/null >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ $rc -eq 0 ] && [ "$(cat "$TMP/out")" = "$mode ok" ]; then
		ok
	else
		[ $rc -eq 124 ] && rc="$rc (hung: killed after $((90 * SLOW)) s)"
		bad "buslock $mode: status $rc"
		head -n 5 "$TMP/out" "$TMP/err"
	fi
done
report
