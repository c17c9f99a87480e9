#!/bin/sh
# The window of src/process/sigwin.S, hit on purpose: gdb stops corral at the
# host syscall instruction of the guest's read (after sigready was tested)
# and delivers SIGUSR1 there. host_handler must move the thread to
# sigwin_bail, so that the read is made again after the guest's handler has
# filled the pipe; a corral that entered the host's read would sleep until
# the timeout. Without a working gdb, or on hosts without sigwin.S, it is skipped
# (counted as passed, with a note).
. "$(dirname "$0")/lib.sh"
P=$BUILD/tests/progs/pvm_test
want="read returned 1, handler ran 1 time(s)"
case "$(uname -m)" in
x86_64) at='(char *)sigwin_end - 2 if $rax == 0' ;; # syscall; read is 0
aarch64) at='(char *)sigwin_end - 4 if $x8 == 63' ;; # svc #0; read is 63
*) at= ;;
esac
if [ -z "$at" ] || ! gdb -q -batch -ex run --args /bin/true >/dev/null 2>&1; then
	echo "note: no working gdb or no sigwin.S here, window test skipped"
	ok
	report
	exit
fi
got=$("$P" readsig & pid=$!; sleep 0.5; kill -USR1 $pid; wait $pid)
if [ "$got" = "$want" ]; then ok; else bad "native readsig: $got"; fi
cat >"$TMP/gdb.cmd" <<EOG
set pagination off
set confirm off
handle SIGUSR1 nostop noprint pass
break *$at
run
delete
printf "stopped at the syscall instruction\n"
signal SIGUSR1
EOG
timeout 20 gdb -q -batch -x "$TMP/gdb.cmd" --args "$CORRAL" exec "$P" readsig >"$TMP/gdb.out" 2>&1
if grep -q "stopped at the syscall instruction" "$TMP/gdb.out" && grep -qx "$want" "$TMP/gdb.out"; then
	ok
else
	bad "signal at the syscall instruction of a read (gdb's output follows)"
	tail -n 15 "$TMP/gdb.out"
fi
report
