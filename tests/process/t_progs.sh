#!/bin/sh
# tests/progs/pvm_test (built static in the tree) natively and in corral:
# threads, signals, fork/exec/pipes, run-time code, /proc/self, and guests
# that die of a signal (the exit status must be the native one, 128+N).
. "$(dirname "$0")/lib.sh"
P=$BUILD/tests/progs/pvm_test
mkdir -p "$TMP/work"
for mode in threads signals fork code proc; do
	same "pvm_test $mode" "$P" "$mode"
done
same "exit status" "$P" exit 77
for mode in segv ill jump garbage abort divzero; do
	same "dies: $mode" /bin/sh -c "$P $mode; echo status \$?"
	status "dies: $mode (status)" "$(sh -c "$P $mode" >/dev/null 2>&1; echo $?)" "$CORRAL" exec "$P" "$mode"
done
# a guest killed from outside dies of that signal
same "killed by SIGTERM" /bin/sh -c "$P child & sleep 0; kill -TERM \$! ; wait \$!; echo \$?"
report
