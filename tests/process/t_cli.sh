#!/bin/sh
# The corral command line: help, version, option errors (status 2) and the
# syscall trace (--trace or CORRAL_TRACE=1); after a guest's execve the host
# process shows the program's own argv and name (ps, /proc/PID/cmdline, comm).
. "$(dirname "$0")/lib.sh"
status "corral --version" 0 "$CORRAL" --version
if grep -q '^corral [0-9]' "$TMP/s.out"; then ok; else bad "version text"; fi
status "corral help" 0 "$CORRAL" help
if grep -q 'exec' "$TMP/s.out"; then ok; else bad "help lists exec"; fi
status "corral exec --help" 0 "$CORRAL" exec --help
if grep -q -- '--root' "$TMP/s.out"; then ok; else bad "exec help lists --root"; fi
status "unknown command" 2 "$CORRAL" frobnicate
status "unknown option" 2 "$CORRAL" exec --frobnicate /bin/true
if [ "$(wc -l <"$TMP/s.err")" -eq 1 ] && grep -q "unknown option '--frobnicate'" "$TMP/s.err"; then ok; else bad "unknown option message"; fi
status "missing option argument" 2 "$CORRAL" exec --root
status "no program" 2 "$CORRAL" exec
status "program from PATH" 0 "$CORRAL" exec busybox true
status "--argv0" 0 "$CORRAL" exec --argv0 true /bin/busybox
status "bad --root" 2 "$CORRAL" exec --root /nonexistent/corral-root /bin/true

"$CORRAL" exec --trace /bin/busybox echo traced >"$TMP/t.out" 2>"$TMP/t.err"
if grep -q '^traced$' "$TMP/t.out" && grep -q 'write(0x1, ' "$TMP/t.err" && grep -q 'exit_group(0x0' "$TMP/t.err"; then ok; else bad "--trace lines"; head -n 5 "$TMP/t.err"; fi
CORRAL_TRACE=1 "$CORRAL" exec /bin/busybox true 2>"$TMP/t.err"
if grep -q 'exit_group(' "$TMP/t.err"; then ok; else bad "CORRAL_TRACE=1"; fi
"$CORRAL" exec /bin/busybox true 2>"$TMP/t.err"
if [ ! -s "$TMP/t.err" ]; then ok; else bad "no trace by default"; fi
# After an execve, what the host shows of the process is the program's, not
# corral's options: a parent reads its child's cmdline and comm (by PID, so
# not through corral's own /proc/self) while the child runs.
cat >"$TMP/show.sh" <<'EOS'
busybox sleep 3 & c=$!
exec 2>/dev/null
busybox sleep 0.5
busybox tr '\0' ' ' </proc/$c/cmdline; echo
busybox cat /proc/$c/comm
EOS
same "argv and comm after execve" /bin/busybox sh "$TMP/show.sh"
same "a program's own comm" /bin/busybox sh -c 'busybox cat /proc/self/comm; exec busybox cat /proc/self/comm'
# A vfork child that forks and exits at once releases its parent, whatever
# its own child goes on to do (busybox timeout works that way).
same "vfork child with a child of its own" /bin/busybox timeout 20 busybox sh -c 'echo ran'
report
