#!/bin/sh
# Checkpoints of process trees (docs/checkpoint.md): tests/progs/ckpt_tree
# (a parent that talks to a worker child through two pipes, with a zombie
# child it reaps at the end) checkpointed mid-run and restored prints what
# a native run prints: the pipes' data, the children's real exit statuses,
# reaped by the pids the parent kept; getpid() and gettid() before and
# after are the same, and the worker sees its parent's pid in getppid()
# and in a signal's siginfo. Restored and checkpointed again, the same. A
# busybox shell pipeline (a forked shell and an exec'd awk) checkpointed
# mid-run and restored gives the bytes of an uninterrupted run. A process
# of the tree that cannot be reached is refused with one line, and the
# tree goes on; so is a process that left the tree. A restored program
# that execs keeps its pid. A parent and child talking over a socket pair
# (stream, datagram, seqpacket) checkpointed mid-conversation, restored,
# checkpointed and restored again, end as an uninterrupted run does.
# Process groups and sessions the program made are those of before after
# a restore, and kill(-pgid) reaches the restored group, also in a pid
# namespace whose group and session are led from outside it. A tree
# checkpointed every second ends as an uninterrupted run does; two
# checkpoints of a waiting tree are the same bytes. A program that used
# a PI futex is refused; a restored one that takes one gets ENOSYS. No
# process of a restored tree runs before all have checked their files;
# /proc/<self>/stat and status show the ids the program knew, and so do
# tcgetpgrp and tcgetsid of its terminal.
. "$(dirname "$0")/lib.sh"
T=$BUILD/tests/progs/ckpt_tree
BB=/bin/busybox
W=$TMP/w
mkdir -p "$W"
cd "$W" || exit 1
N=120

check() {
	if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', wanted '$3'"; fi
}

# the reference, natively
"$T" work $N prog.n >out.n 2>err.n
check "native run" "$?" 0
grep -q "getpid same 1, gettid same 1" out.n && grep -q "status 7" out.n || bad "native run: $(cat out.n)"

# 1. checkpoint mid-run (every process exits), restore: the native output
rm -f c.sock
nofds_bg "$CORRAL" exec --control c.sock "$T" work $N prog.1 >out.1 2>err.1 &
pid=$!
wait_sock c.sock
wait_lines prog.1 10 60
"$CORRAL" checkpoint c.sock cp1 2>ck1.err
check "tree checkpoint: status" "$?" 0
wait $pid
check "the checkpointed parent exits with 0" "$?" 0
lines=$(wc -l <prog.1)
if [ "$lines" -lt $N ] && [ -s cp1/state ]; then ok; else bad "not taken mid-run ($lines lines; $(cat ck1.err))"; fi
# the worker's image beside the parent's; the zombie has none
check "one image per living child" "$(ls -d cp1/p* 2>/dev/null | wc -l)" 1
sleep 0.5
check "every process of the tree has exited" "$(pgrep -f "ckpt_tree work $N prog.1" | wc -l)" 0
nofds "$CORRAL" restore-exec cp1 >>out.1 2>>err.1
check "restored tree: status" "$?" 0
cmp -s out.1 out.n && ok || bad "restored tree: output differs: $(cat out.1 err.1)"
cmp -s prog.1 prog.n && ok || bad "restored tree: progress differs"
check "restored tree: no errors" "$(cat err.1)" ""

# 2. restored with a control socket, checkpointed again, restored again
rm -f c.sock prog.2 out.2
nofds_bg "$CORRAL" exec --control c.sock "$T" work $N prog.2 >out.2 2>err.2 &
pid=$!
wait_sock c.sock
wait_lines prog.2 10 60
"$CORRAL" checkpoint c.sock cp2 2>ck2.err
check "first checkpoint: status" "$?" 0
wait $pid
rm -f c.sock
nofds_bg "$CORRAL" restore-exec --control c.sock cp2 >>out.2 2>>err.2 &
pid=$!
wait_sock c.sock
wait_lines prog.2 40 60
"$CORRAL" checkpoint c.sock cp3 2>ck3.err
check "checkpoint of a restored tree: status" "$?" 0
wait $pid
lines=$(wc -l <prog.2)
if [ "$lines" -lt $N ] && [ "$lines" -ge 40 ]; then ok; else bad "second checkpoint not mid-run ($lines lines; $(cat ck3.err))"; fi
nofds "$CORRAL" restore-exec cp3 >>out.2 2>>err.2
check "twice restored tree: status" "$?" 0
cmp -s out.2 out.n && ok || bad "twice restored tree: output differs: $(cat out.2 err.2)"
cmp -s prog.2 prog.n && ok || bad "twice restored tree: progress differs"

# 3. a process of the tree out of reach: refused, one line; all go on
rm -f c.sock prog.4
nofds_bg "$CORRAL" exec --control c.sock "$T" work 60 prog.4 >out.4 2>err.4 &
pid=$!
wait_sock c.sock
wait_lines prog.4 5 60
worker=$(pgrep -P $pid -f "ckpt_tree work 60" | while read -r c; do
	[ "$(cut -d' ' -f3 /proc/$c/stat)" != Z ] && echo $c
done | head -n 1)
rm -f /tmp/corral-tree.*/"$worker"
"$CORRAL" checkpoint c.sock cp4 2>ck4.err
check "unreachable process: refused" "$?" 1
case "$(cat ck4.err)" in
*"is outside the tree's reach"*) [ "$(wc -l <ck4.err)" = 1 ] && ok || bad "more than one line: $(cat ck4.err)" ;;
*) bad "unreachable process: $(cat ck4.err)" ;;
esac
check "nothing written for it" "$(ls cp4 2>/dev/null)" ""
wait $pid
check "the refused tree goes on: status" "$?" 0
"$T" work 60 prog.4n >out.4n 2>/dev/null
cmp -s out.4 out.4n && ok || bad "the refused tree goes on: output differs: $(cat out.4 err.4)"

# 4. a shell pipeline: a forked shell running seq, an exec'd awk
if [ ! -x "$BB" ]; then
	skip 4 "busybox-static not installed ($BB)"
else
	script='seq 1 300000 | busybox awk "{s=(s*31+\$1)%1000003; if (NR%50000==0) print NR, s}"'
	"$BB" sh -c "$script" >bb.n
	rm -f c.sock
	nofds_bg "$CORRAL" exec --control c.sock "$BB" sh -c "$script" >bb.1 2>bb.err &
	pid=$!
	wait_sock c.sock
	wait_lines bb.1 1 120
	"$CORRAL" checkpoint c.sock bbcp 2>bbck.err
	check "pipeline checkpoint: status" "$?" 0
	wait $pid
	lines=$(wc -l <bb.1)
	if [ "$lines" -lt 6 ] && [ "$(ls -d bbcp/p* | wc -l)" = 2 ]; then ok; else
		bad "pipeline: not taken mid-run with its 3 processes ($lines lines; $(ls bbcp); $(cat bbck.err))"
	fi
	nofds "$CORRAL" restore-exec bbcp >>bb.1 2>>bb.err
	check "restored pipeline: status" "$?" 0
	cmp -s bb.1 bb.n && ok || bad "restored pipeline: output differs: $(cat bb.1 bb.err)"

	# --leave-running: the tree goes on to the end; the copy, restored,
	# prints from where it was taken
	rm -f c.sock
	nofds_bg "$CORRAL" exec --control c.sock "$BB" sh -c "$script" >lr.1 2>lr.err &
	pid=$!
	wait_sock c.sock
	wait_lines lr.1 1 120
	"$CORRAL" checkpoint c.sock lrcp --leave-running 2>lrck.err
	check "pipeline checkpoint, leave running: status" "$?" 0
	taken=$(wc -l <lr.1)
	wait $pid
	check "the pipeline left running ends well" "$?" 0
	cmp -s lr.1 bb.n && ok || bad "the pipeline left running: output differs: $(cat lr.1 lr.err)"
	head -n "$taken" bb.n >lr.2
	nofds "$CORRAL" restore-exec lrcp >>lr.2 2>lr2.err
	check "restored copy of a running pipeline: status" "$?" 0
	cmp -s lr.2 bb.n && ok || bad "restored copy of a running pipeline: output differs: $(cat lr.2 lr2.err)"
fi

# 5. the checkpoint signal, sent to the whole process group as a batch
# system does: the first process saves the tree, the others are not ended
rm -f prog.5
nofds_bg setsid "$CORRAL" exec --checkpoint-signal USR2 --checkpoint-dir sig "$T" work $N prog.5 >out.5 2>err.5 &
pid=$!
wait_lines prog.5 10 60
kill -s USR2 -- -"$pid"
wait $pid
check "checkpoint by signal: status" "$?" 0
if [ -s sig/state ] && [ "$(wc -l <prog.5)" -lt $N ]; then ok; else bad "no checkpoint by signal: $(cat err.5)"; fi
nofds "$CORRAL" restore-exec sig >>out.5 2>>err.5
check "restored after a signal: status" "$?" 0
cmp -s out.5 out.n && ok || bad "restored after a signal: output differs: $(cat out.5 err.5)"
cmp -s prog.5 prog.n && ok || bad "restored after a signal: progress differs"
# 6. a process that left the tree (its parent exited): refused, one line
rm -f c.sock go
nofds_bg "$CORRAL" exec --control c.sock "$T" orphan go >out.6 2>err.6 &
pid=$!
wait_sock c.sock
wait_lines out.6 1 60
"$CORRAL" checkpoint c.sock cp6 2>ck6.err
check "a process that left the tree: refused" "$?" 1
case "$(cat ck6.err)" in
*"left the tree (its parent exited"*) [ "$(wc -l <ck6.err)" = 1 ] && ok || bad "more than one line: $(cat ck6.err)" ;;
*) bad "a process that left the tree: $(cat ck6.err)" ;;
esac
touch go
wait $pid
check "the program goes on after the refusal" "$(cat out.6)" "ready
done"
# 7. a restored program that execs keeps its pid
rm -f c.sock go
nofds_bg "$CORRAL" exec --control c.sock "$T" exec go >out.7 2>err.7 &
pid=$!
wait_sock c.sock
wait_lines out.7 1 60
"$CORRAL" checkpoint c.sock cp7 2>ck7.err
check "exec: checkpoint status" "$?" 0
wait $pid
nofds_bg "$CORRAL" restore-exec cp7 >>out.7 2>>err.7 &
pid=$!
sleep 0.5
touch go
wait $pid
check "a restored program that execs: its pid" "$(cat out.7 err.7)" "ready
after exec, the same pid 1"
# 8. socket pairs between processes of the tree (stream, datagram,
# seqpacket): a parent and its forked child talk both ways, messages
# waiting in both directions; checkpointed mid-conversation and restored,
# the conversation ends as an uninterrupted run's does; restored with a
# control socket and checkpointed again, the same
SN=80
for st in stream dgram seqpacket; do
	rm -f c.sock sp.$st.*
	"$T" sock $st $SN sp.$st.pn >sp.$st.n 2>&1
	nofds_bg "$CORRAL" exec --control c.sock "$T" sock $st $SN sp.$st.p1 >sp.$st.1 2>sp.$st.err &
	pid=$!
	wait_sock c.sock
	wait_lines sp.$st.p1 10 60
	"$CORRAL" checkpoint c.sock spcp.$st 2>sp.$st.ck
	check "$st pair between processes: checkpoint status" "$?" 0
	wait $pid
	lines=$(wc -l <sp.$st.p1)
	if [ "$lines" -lt $SN ] && [ -d spcp.$st/p* ]; then ok; else
		bad "$st pair: not taken mid-run ($lines lines; $(cat sp.$st.ck))"
	fi
	rm -f c.sock
	nofds_bg "$CORRAL" restore-exec --control c.sock spcp.$st >>sp.$st.1 2>>sp.$st.err &
	pid=$!
	wait_sock c.sock
	wait_lines sp.$st.p1 $((lines + 10)) 60
	"$CORRAL" checkpoint c.sock spcp2.$st 2>sp.$st.ck2
	check "$st pair, restored tree checkpointed again: status" "$?" 0
	wait $pid
	nofds timeout 120 "$CORRAL" restore-exec spcp2.$st >>sp.$st.1 2>>sp.$st.err
	check "$st pair: restored status" "$?" 0
	cmp -s sp.$st.1 sp.$st.n && ok || bad "$st pair: output differs: $(cat sp.$st.1 sp.$st.err)"
	cmp -s sp.$st.p1 sp.$st.pn && ok || bad "$st pair: the conversation differs"
done
# 9. process groups and sessions: A leads a group with its child B in
# it, C leads a session; checkpointed mid-run and restored, getpgid and
# getsid give the ids of before, kill(-A) reaches A and B. The first
# process in the shell's group, then leading a session of its own (setsid)
GN=60
"$T" groups $GN gp.pn >gp.n 2>&1
check "groups: native run" "$(sed -n 1,2p gp.n)" "A leads its group 1, B is in it 1, C leads its session 1 and group 1
A's session is ours 1; our group 1 and session 1 as before"
for how in plain setsid; do
	rm -f c.sock gp.p.$how
	if [ $how = setsid ]; then
		nofds_bg setsid "$CORRAL" exec --control c.sock "$T" groups $GN gp.p.$how >gp.$how 2>gp.$how.err &
	else
		nofds_bg "$CORRAL" exec --control c.sock "$T" groups $GN gp.p.$how >gp.$how 2>gp.$how.err &
	fi
	pid=$!
	wait_sock c.sock
	wait_lines gp.p.$how 10 60
	"$CORRAL" checkpoint c.sock gpcp.$how 2>gp.$how.ck
	check "groups ($how): checkpoint status" "$?" 0
	wait $pid
	lines=$(wc -l <gp.p.$how)
	if [ "$lines" -lt $GN ] && [ "$(ls -d gpcp.$how/p* | wc -l)" = 3 ]; then ok; else
		bad "groups ($how): not taken mid-run with its 4 processes ($lines lines; $(cat gp.$how.ck))"
	fi
	if [ $how = setsid ]; then
		nofds timeout 120 setsid "$CORRAL" restore-exec gpcp.$how >>gp.$how 2>>gp.$how.err
	else
		nofds timeout 120 "$CORRAL" restore-exec gpcp.$how >>gp.$how 2>>gp.$how.err
	fi
	check "groups ($how): restored status" "$?" 0
	cmp -s gp.$how gp.n && ok || bad "groups ($how): output differs: $(cat gp.$how gp.$how.err)"
done
# 9b. the same tree in a pid namespace whose group and session are led
# from outside it (a container's first process: getpgrp() and getsid()
# are 0 there): checkpointed mid-run and restored inside the namespace
if [ "$(id -u)" = 0 ] && unshare --pid --fork --mount-proc true 2>/dev/null; then
	rm -f c.sock gp.p.ns
	cat >ns.sh <<'EOS'
nofds() {
	bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done; exec "$@"' nofds "$@"
}
nofds "$CORRAL" exec --control c.sock "$T" groups $GN gp.p.ns >gp.ns 2>gp.ns.err &
pid=$!
i=0; while [ ! -S c.sock ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
i=0; while [ "$(cat gp.p.ns 2>/dev/null | wc -l)" -lt 10 ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
set -- $(cut -d" " -f5,6 /proc/$$/stat); echo "group $1 session $2" >gp.ns.ids
"$CORRAL" checkpoint c.sock gpcp.ns 2>gp.ns.ck
echo "checkpoint $?" >gp.ns.st
wait $pid
wc -l <gp.p.ns >gp.ns.lines
nofds timeout 120 "$CORRAL" restore-exec gpcp.ns >>gp.ns 2>>gp.ns.err
echo "restore $?" >>gp.ns.st
EOS
	GN=$GN T=$T CORRAL=$CORRAL unshare --pid --fork --mount-proc sh ns.sh </dev/null
	check "groups (in a pid namespace): led from outside" "$(cat gp.ns.ids)" "group 0 session 0"
	check "groups (in a pid namespace): statuses" "$(cat gp.ns.st)" "checkpoint 0
restore 0"
	lines=$(cat gp.ns.lines)
	if [ "$lines" -lt $GN ] && [ "$(ls -d gpcp.ns/p* 2>/dev/null | wc -l)" = 3 ]; then ok; else
		bad "groups (in a pid namespace): not taken mid-run with its 4 processes ($lines lines; $(cat gp.ns.ck))"
	fi
	cmp -s gp.ns gp.n && ok || bad "groups (in a pid namespace): output differs: $(cat gp.ns gp.ns.err)"
else
	skip "groups in a pid namespace: needs root and unshare --pid"
fi
# 10. a tree checkpointed every second, going on each time (datagrams
# taken and sent again each time): the conversation ends as an
# uninterrupted run's; two checkpoints of a waiting tree (a shell
# pipeline) are the same bytes, every process's
rm -f c.sock sp.ev.p
nofds_bg "$CORRAL" exec --control c.sock "$T" sock dgram 200 sp.ev.p >sp.ev 2>sp.ev.err &
pid=$!
wait_sock c.sock
n=0
while kill -0 $pid 2>/dev/null; do
	if "$CORRAL" checkpoint c.sock spev --leave-running 2>>sp.ev.ck; then n=$((n + 1)); fi
	sleep 1
done
wait $pid
check "a tree checkpointed every second: status" "$?" 0
"$T" sock dgram 200 sp.ev.pn >sp.ev.n 2>&1
cmp -s sp.ev sp.ev.n && ok || bad "a tree checkpointed every second: output differs: $(cat sp.ev sp.ev.err)"
cmp -s sp.ev.p sp.ev.pn && ok || bad "a tree checkpointed every second: the conversation differs"
if [ $n -ge 2 ] && [ -d spev/p* ]; then ok; else bad "only $n checkpoints of the tree were taken ($(head -n 3 sp.ev.ck))"; fi
if [ ! -x "$BB" ]; then
	skip 2 "busybox-static not installed ($BB)"
else
	# both cats wait in read: the first on standard input (a FIFO this
	# script holds, not carried), the second on the pipe between them
	rm -f c.sock ff
	mkfifo ff
	nofds_bg "$CORRAL" exec --control c.sock "$BB" sh -c "$BB cat | $BB cat" <ff >/dev/null 2>&1 &
	pid=$!
	exec 8>ff
	wait_sock c.sock
	sleep 2
	"$CORRAL" checkpoint c.sock wa --leave-running && "$CORRAL" checkpoint c.sock wb --leave-running ||
		bad "checkpoints of a waiting tree"
	same=1
	for f in $(cd wa && find . -type f | sort); do cmp -s "wa/$f" "wb/$f" || same=0; done
	if [ $same = 1 ] && [ "$(ls -d wa/p* | wc -l)" = 2 ]; then ok; else
		bad "two checkpoints of a waiting tree differ: $(cd wa && find . -type f | sort | tr '\n' ' ')"
	fi
	# the last one ends every process of the tree
	"$CORRAL" checkpoint c.sock wc 2>wc.err
	exec 8>&-
	wait $pid
	check "a waiting tree checkpointed: status" "$?" 0
fi
# 12. no program of the tree runs before every process has checked its
# files: a child's own file, replaced by a FIFO after the checkpoint
# (whose open would wait for a writer), is refused, and the first process
# (which does not hold it) has not written a line meanwhile (else a file
# the tree appends to itself looks changed to a process restored later)
rm -f c.sock of.p of.f
echo data >of.f
nofds_bg "$CORRAL" exec --control c.sock "$T" ownfile 200 of.p of.f >of.out 2>of.err &
pid=$!
wait_sock c.sock
wait_lines of.p 5 60
"$CORRAL" checkpoint c.sock ofcp 2>of.ck
check "own file: checkpoint status" "$?" 0
wait $pid
lines=$(wc -l <of.p)
rm -f of.f
mkfifo of.f
nofds_bg "$CORRAL" restore-exec ofcp >>of.out 2>of.err2 &
pid=$!
sleep 2
after=$(wc -l <of.p)
# a writer, in case the child's open waits for one
timeout 5 sh -c ': >of.f' 2>/dev/null
timeout 60 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
wait $pid
rc=$?
check "own file replaced by a FIFO: the tree did not run meanwhile" "$after" "$lines"
check "own file replaced by a FIFO: nor after" "$(wc -l <of.p)" "$lines"
if [ $rc != 0 ] && grep -q "of.f' changed since the checkpoint" of.err2; then ok; else
	bad "own file replaced by a FIFO: restore status $rc: $(cat of.err2)"
fi
# 13. what a restored tree reads about itself in /proc: stat and status
# give the pids, parents, groups and sessions it knew, as getpid() etc. do
rm -f go
(sleep 0.5; touch go) &
"$T" procself go >ps.n 2>&1
wait
rm -f c.sock go
nofds_bg "$CORRAL" exec --control c.sock "$T" procself go >ps.1 2>ps.1.err &
pid=$!
wait_sock c.sock
wait_lines ps.1 1 60
"$CORRAL" checkpoint c.sock pscp 2>ps.ck
check "/proc of a restored tree: checkpoint status" "$?" 0
wait $pid
touch go
nofds timeout 60 "$CORRAL" restore-exec pscp >>ps.1 2>>ps.1.err
check "/proc of a restored tree: restore status" "$?" 0
cmp -s ps.1 ps.n && ok || bad "/proc of a restored tree: $(diff ps.n ps.1) $(cat ps.1.err)"
# 14. a terminal's foreground group after a restore: a program that is
# its terminal's foreground job (under script(1), a pseudo-terminal of
# its own) reads its group in tcgetpgrp and its session in tcgetsid, and
# tcsetpgrp takes its group, by the ids of before
if command -v script >/dev/null 2>&1; then
	rm -f c.sock go
	(sleep 0.5; touch go) &
	script -qec "$T ttyfg go" /dev/null </dev/null 2>&1 | tr -d '\r' >tf.n
	wait
	rm -f go
	# descriptors this shell inherited are not the program's
	cat >nofds.sh <<'EOS'
for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done
exec "$@"
EOS
	script -qec "bash nofds.sh $CORRAL exec --control c.sock $T ttyfg go" /dev/null </dev/null >tf.1 2>&1 &
	pid=$!
	wait_sock c.sock
	wait_lines tf.1 1 60
	"$CORRAL" checkpoint c.sock tfcp 2>tf.ck
	check "terminal: checkpoint status" "$?" 0
	wait $pid
	touch go
	timeout 60 script -qec "bash nofds.sh $CORRAL restore-exec tfcp" /dev/null </dev/null 2>&1 | tr -d '\r' >tf.2
	tr -d '\r' <tf.1 | cat - tf.2 >tf.all
	cmp -s tf.all tf.n && ok || bad "terminal after a restore: $(diff tf.n tf.all) $(cat tf.ck)"
else
	skip "terminal after a restore: no script(1) (bsdutils)"
fi
# 11. priority-inheritance futexes: a program that has used one is
# refused (the host kernel reads owner ids in the word), one line, and goes
# on; a restored program that takes one is told ENOSYS (glibc: ENOTSUP)
rm -f c.sock go
nofds_bg "$CORRAL" exec --control c.sock "$T" pi 1 go >pi.1 2>pi.1.err &
pid=$!
wait_sock c.sock
wait_lines pi.1 1 60
"$CORRAL" checkpoint c.sock picp 2>pi.ck
check "PI futex used: refused" "$?" 1
case "$(cat pi.ck)" in
*"priority-inheritance futexes (FUTEX_LOCK_PI)"*) [ "$(wc -l <pi.ck)" = 1 ] && ok || bad "more than one line: $(cat pi.ck)" ;;
*) bad "PI futex used: $(cat pi.ck)" ;;
esac
touch go
wait $pid
check "PI futex used: the program goes on" "$(cat pi.1)" "ready
lock_pi: taken"
rm -f c.sock go
nofds_bg "$CORRAL" exec --control c.sock "$T" pi 0 go >pi.2 2>pi.2.err &
pid=$!
wait_sock c.sock
wait_lines pi.2 1 60
"$CORRAL" checkpoint c.sock picp2 2>pi.ck2
check "PI futex not used: checkpoint status" "$?" 0
wait $pid
touch go
nofds timeout 60 "$CORRAL" restore-exec picp2 >>pi.2 2>>pi.2.err
check "PI futex after a restore: status" "$?" 0
check "PI futex after a restore: refused clearly" "$(cat pi.2)" "ready
lock_pi: Function not implemented"
report
