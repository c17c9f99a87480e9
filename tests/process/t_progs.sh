#!/bin/sh
# tests/progs/pvm_test (built static in the tree) natively and in corral:
# threads, signals (also racing blocking syscalls), fork/exec/pipes,
# run-time code, /proc/self, and guests
# that die of a signal (the exit status must be the native one, 128+N).
. "$(dirname "$0")/lib.sh"
P=$BUILD/tests/progs/pvm_test
mkdir -p "$TMP/work"
for mode in threads cancel signals fork code proc; do
	same "pvm_test $mode" "$P" "$mode"
done
same "pvm_test io" "$P" io "$TMP"
# signals racing the entry into blocking syscalls (a lost one shows as STUCK)
same "pvm_test sigrace" "$P" sigrace
# #! scripts: the interpreter runs in the VM too
printf '#!/bin/busybox sh\necho "script args: $0 $*"; exit 5\n' >"$TMP/script.sh"
printf '#!%s\n' "$TMP/script.sh" >"$TMP/nested.sh"
chmod 755 "$TMP/script.sh" "$TMP/nested.sh"
same "#! script" "$TMP/script.sh" a "b c"
same "nested #!" "$TMP/nested.sh" z
same "#! script without a path" /bin/sh -c "cd $TMP && PATH=$TMP:\$PATH script.sh x"
same "exit status" "$P" exit 77
for mode in segv ill jump garbage abort divzero; do
	same "dies: $mode" /bin/sh -c "$P $mode; echo status \$?"
	status "dies: $mode (status)" "$(sh -c "$P $mode" >/dev/null 2>&1; echo $?)" "$CORRAL" exec "$P" "$mode"
done
# a guest killed from outside dies of that signal. Whether dash prints
# "Terminated" depends on whether the child is reaped inside `wait`, a race
# natively too, so the shell's stderr is left out of the comparison.
same "killed by SIGTERM" /bin/sh -c "exec 2>/dev/null; $P pause & kill -TERM \$! ; wait \$!; echo \$?"
# and corral itself ends killed by the signal, not by exit(128+N)
got=$(python3 -c '
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], ["corral", "exec", sys.argv[2], "pause"])
time.sleep(0.3)
os.kill(pid, signal.SIGTERM)
_, st = os.waitpid(pid, 0)
print("signal", os.WTERMSIG(st) if os.WIFSIGNALED(st) else "none", "exit", os.WEXITSTATUS(st) if os.WIFEXITED(st) else "none")
' "$CORRAL" "$P")
if [ "$got" = "signal 15 exit none" ]; then ok; else bad "corral killed by SIGTERM: $got"; fi
report
