#!/bin/sh
# Checkpoints of process VMs (docs/checkpoint.md): tests/progs/ckpt_prog
# (a large heap, threads at a barrier, open files, signals, limits) stopped
# mid-computation and continued by `corral restore-exec` gives the result of
# an uninterrupted run; so does one checkpointed every second; checkpoints
# of a stopped program are the same bytes twice; a checkpoint whose files
# changed, a corrupt or foreign one, and a program with what cannot be
# carried are refused with one line. tests/progs/ckpt_chan: pipes and
# socket pairs with data waiting in them, checkpointed and restored (or
# checkpointed and left running), print what a native run prints; so do
# threads talking through a pipe and a socket pair, checkpointed mid-run.
. "$(dirname "$0")/lib.sh"
P0=$BUILD/tests/progs/ckpt_prog
CH=$BUILD/tests/progs/ckpt_chan
W=$TMP/w
mkdir -p "$W"
# the program runs from a copy of its own, so that changing it is possible
cp "$P0" "$W/prog"
P=$W/prog
MIB=16
ROUNDS=40
head -c 65536 /dev/urandom >"$W/in.dat"
cd "$W" || exit 1

# check NAME GOT WANT
check() {
	if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', wanted '$3'"; fi
}

# the reference: natively, and uninterrupted in corral
"$P" compute in.dat out.native $MIB $ROUNDS >ref.native
nofds "$CORRAL" exec "$P" compute in.dat out.ref $MIB $ROUNDS >ref.out 2>ref.err
check "uninterrupted run in corral" "$(cat ref.out)" "$(cat ref.native)"
cmp -s out.ref out.native && ok || bad "uninterrupted run in corral: output file differs"
grep -q '^result ' ref.out || bad "the program printed no result"

# 1. checkpoint mid-computation (the program exits), restore, same result
rm -f c.sock
nofds_bg "$CORRAL" exec --control c.sock "$P" compute in.dat out.1 $MIB $ROUNDS >run1.out 2>run1.err &
pid=$!
wait_sock c.sock
wait_lines out.1 2 60
"$CORRAL" checkpoint c.sock cp1 2>ck1.err
check "checkpoint status" "$?" 0
wait $pid
check "the checkpointed program exits with 0" "$?" 0
lines=$(wc -l <out.1)
if [ "$lines" -lt "$ROUNDS" ] && [ -s cp1/state ] && [ -f cp1/memory ]; then ok; else
	bad "checkpoint 1 was not taken mid-computation ($lines rounds done; $(cat ck1.err))"
fi
check "the socket is gone after the checkpoint" "$(test -e c.sock && echo there)" ""
nofds "$CORRAL" restore-exec cp1 >>run1.out 2>>run1.err
check "restore-exec status" "$?" 0
check "restored run's output" "$(cat run1.out)" "$(cat ref.out)"
cmp -s out.1 out.ref && ok || bad "restored run's output file differs"
check "restored run's stderr" "$(cat run1.err)" ""

# 1b. checkpoint after the program's half-way signals: the SIGUSR2 it sent
# itself while blocking it waits in the host kernel's queue, not corral's,
# and must still be pending after the restore
rm -f c.sock
nofds_bg "$CORRAL" exec --control c.sock "$P" compute in.dat out.1b $MIB $ROUNDS >run1b.out 2>run1b.err &
pid=$!
wait_sock c.sock
i=0
while [ "$(cat out.1b 2>/dev/null | wc -l)" -lt $((ROUNDS / 2 + 2)) ] && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
"$CORRAL" checkpoint c.sock cp1b 2>ck1b.err
check "checkpoint after the signals: status" "$?" 0
wait $pid
lines=$(wc -l <out.1b)
if [ "$lines" -gt $((ROUNDS / 2)) ] && [ "$lines" -lt "$ROUNDS" ]; then ok; else
	bad "checkpoint 1b was not taken after the signals and before the end ($lines rounds done; $(cat ck1b.err))"
fi
nofds "$CORRAL" restore-exec cp1b >>run1b.out 2>>run1b.err
check "restored after the signals: output (the pending SIGUSR2 included)" "$(cat run1b.out)" "$(cat ref.out)"

# 2. a checkpoint every second, the program going on each time
rm -f c.sock
nofds_bg "$CORRAL" exec --control c.sock "$P" compute in.dat out.2 $MIB $ROUNDS >run2.out 2>run2.err &
pid=$!
wait_sock c.sock
n=0
while kill -0 $pid 2>/dev/null; do
	if "$CORRAL" checkpoint c.sock every --leave-running 2>>ck2.err; then n=$((n + 1)); fi
	sleep 1
done
wait $pid
check "checkpointed every second: status" "$?" 0
check "checkpointed every second: output" "$(cat run2.out)" "$(cat ref.out)"
cmp -s out.2 out.ref && ok || bad "checkpointed every second: output file differs"
if [ $n -ge 2 ]; then ok; else bad "only $n checkpoints were taken ($(head -n 3 ck2.err))"; fi
# the last one's output file has changed since (the program may have
# written its last round before that checkpoint: change it for sure):
# refused, with one line
echo more >>out.2
nofds "$CORRAL" restore-exec every >r.out 2>r.err
check "restore after its output file changed: status" "$?" 1
case "$(cat r.err)" in
*"out.2' changed since the checkpoint"*) ok ;;
*) bad "restore after a file changed: $(cat r.err)" ;;
esac
check "one line" "$(wc -l <r.err)" 1

# 3. --checkpoint-signal: the batch system's way
nofds_bg "$CORRAL" exec --checkpoint-signal USR2 --checkpoint-dir sig "$P" compute in.dat out.3 $MIB $ROUNDS >run3.out 2>run3.err &
pid=$!
wait_lines out.3 2 60
kill -USR2 $pid
wait $pid
check "checkpoint by signal: status" "$?" 0
if [ -s sig/state ] && [ "$(wc -l <out.3)" -lt "$ROUNDS" ]; then ok; else bad "no checkpoint by signal ($(cat run3.err))"; fi
nofds "$CORRAL" restore-exec sig >>run3.out 2>>run3.err
check "restored from a signal's checkpoint" "$(cat run3.out)" "$(cat ref.out)"
cmp -s out.3 out.ref && ok || bad "signal checkpoint: output file differs"

# 4. a stopped program's checkpoints are the same bytes twice
rm -f w.sock
nofds_bg "$CORRAL" exec --control w.sock "$P" wait >wait.out 2>&1 &
pid=$!
wait_sock w.sock
i=0
while ! grep -q ready wait.out && [ $i -lt 300 ]; do
	sleep 0.2
	i=$((i + 1))
done
sleep 0.5
"$CORRAL" checkpoint w.sock a --leave-running && "$CORRAL" checkpoint w.sock b --leave-running || bad "checkpoints of a waiting program"
if cmp -s a/state b/state && cmp -s a/memory b/memory; then ok; else bad "two checkpoints of a waiting program differ"; fi
"$CORRAL" checkpoint w.sock c
wait $pid
check "waiting program checkpointed: status" "$?" 0
cmp -s a/state c/state && ok || bad "the final checkpoint differs from the others"

# checkpoints of version 1 (before pipes were carried), 2 (before
# process trees) and 3 (before groups and socket pairs between processes)
# are still read
for v in 1 2 3; do
	rm -rf v$v
	cp -r a v$v
	python3 - a/state v$v/state $v <<'PY'
# rewrite sections "process" (drop pgid and sid; for 1 and 2 also pid
# and ntree; for 1 also nchan) and "fd" (for 1, drop its channel fields)
# at the older version
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
v = int(sys.argv[3])
out = bytearray(d[:8 + 4 + 1 + d[12] + 4])
pos = len(out)
while d[pos:pos + 4] == b"SECT":
	nl = d[pos + 4]
	name = d[pos + 5:pos + 5 + nl]
	inst, ver, ln = struct.unpack_from("<IIQ", d, pos + 5 + nl)
	body = d[pos + 5 + nl + 16:pos + 5 + nl + 16 + ln]
	if name == b"process":
		ver, body = v, body[:{1: -20, 2: -16, 3: -8}[v]]
	elif name == b"fd":
		ver, body = v, body[:-8] if v == 1 else body
	assert name != b"chan" and name != b"tree"
	hdr = bytes([nl]) + name + struct.pack("<IIQ", inst, ver, len(body))
	out += b"SECT" + hdr + body + struct.pack("<I", zlib.crc32(hdr + body))
	pos += 4 + 1 + nl + 16 + ln + 4
out += d[pos:]
open(sys.argv[2], "wb").write(out)
PY
	nofds_bg "$CORRAL" restore-exec v$v >v$v.out 2>v$v.err &
	pid=$!
	sleep 1
	kill $pid 2>/dev/null
	wait $pid
	check "a version $v checkpoint is restored (runs until killed)" "$?" 143
	check "a version $v checkpoint: no errors" "$(cat v$v.err)" ""
done

# 5. what cannot be carried is refused at checkpoint time; the program goes on
rm -f p.sock
sleep 60 | nofds_bg sh -c "exec '$CORRAL' exec --control p.sock '$P' wait 3<&0" >p.out 2>&1 &
ppid=$!
wait_sock p.sock
"$CORRAL" checkpoint p.sock pipe 2>p.err
check "a program with a pipe: refused" "$?" 1
case "$(cat p.err)" in
*"descriptor 3: a pipe whose other end is outside the program"*) ok ;;
*) bad "a pipe: $(cat p.err)" ;;
esac
"$CORRAL" checkpoint p.sock pipe --leave-running 2>/dev/null
"$CORRAL" checkpoint p.sock wait2 2>/dev/null # still refused, still running
check "no checkpoint written for it" "$(ls -d pipe wait2 2>/dev/null)" ""
kill $ppid

# 6. refused restores: each one line, status 1, nothing run
refused() { # NAME DIR EXPECTED-TEXT
	nofds "$CORRAL" restore-exec "$2" >x.out 2>x.err
	rc=$?
	case "$(cat x.err)" in
	*"$3"*) [ $rc = 1 ] && [ "$(wc -l <x.err)" = 1 ] && [ ! -s x.out ] && ok || bad "$1: status $rc, $(cat x.err)" ;;
	*) bad "$1: $(cat x.err)" ;;
	esac
}
cp -r a bad1
printf 'X' | dd of=bad1/state bs=1 seek=100 conv=notrunc 2>/dev/null
cp -r a bad2
truncate -s 4096 bad2/memory
refused "a memory file of the wrong size" bad2 "not the memory file of this checkpoint"
cp -r a bad3
rm bad3/memory
refused "no memory file" bad3 "memory': No such file"
cp -r a bad4
python3 - bad4/state <<'PY'
# rewrite the writer's version (the first field of section "process") and fix the CRC
import struct, sys, zlib
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
k = d[12]
pos = 8 + 4 + 1 + k + 4
assert d[pos:pos + 4] == b"SECT"
nl = d[pos + 4]
body = pos + 4 + 1 + nl + 4 + 4 + 8
ln = struct.unpack_from("<Q", d, body - 8)[0]
vl = struct.unpack_from("<I", d, body)[0]
d[body + 4:body + 4 + vl] = b"9" * vl
crc = zlib.crc32(bytes(d[pos + 4:body + ln]))
struct.pack_into("<I", d, body + ln, crc)
open(p, "wb").write(d)
PY
refused "another corral's checkpoint" bad4 "this is corral"
refused "no checkpoint" nothere "nothere/state': No such file"
refused "a corrupt state file" bad1 "checksum mismatch (the file is corrupt)"
# the program's binary changed since: its mapping is refused
cp -r cp1 bad6
mv in.dat in.moved
refused "an open file gone" bad6 "open file '$W/in.dat': No such file"
mv in.moved in.dat
cp -r cp1 bad5
touch -d '2001-01-01' prog
refused "a mapped file changed" bad5 "mapped file '$W/prog' changed since the checkpoint"

# 7. pipes and socket pairs with data waiting: checkpoints taken with
# --leave-running take nothing from them (the program goes on to print
# what a native run prints), are the same bytes twice, and a restore
# gives them back with their data, boundaries, types and flags
rm -f go
"$CH" hold go >chan.native &
pid=$!
i=0
while ! grep -q ready chan.native && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
touch go
wait $pid
grep -q 'dgram 17 (dgram, rw nonblock): 3 0 7 EAGAIN' chan.native || bad "native ckpt_chan: $(cat chan.native)"
ready() { # OUT: until the program said ready (at most 30 s)
	i=0
	while ! grep -q ready "$1" 2>/dev/null && [ $i -lt 150 ]; do
		sleep 0.2
		i=$((i + 1))
	done
}
rm -f go h.sock
nofds_bg "$CORRAL" exec --control h.sock "$CH" hold go >chan.left 2>chan.err &
pid=$!
wait_sock h.sock
ready chan.left
"$CORRAL" checkpoint h.sock h1 --leave-running 2>>chan.err && "$CORRAL" checkpoint h.sock h2 --leave-running 2>>chan.err
check "checkpoints of pipes and socket pairs: status" "$?" 0
if cmp -s h1/state h2/state && [ "$(wc -c <h1/state)" -gt 75000 ]; then ok; else bad "two checkpoints of waiting pipes and sockets differ or hold no data"; fi
touch go
wait $pid
check "pipes and socket pairs after two checkpoints" "$(cat chan.left)" "$(cat chan.native)"
check "no errors" "$(cat chan.err)" ""
rm -f go h.sock
nofds_bg "$CORRAL" exec --control h.sock "$CH" hold go >chan.1 2>chan.err &
pid=$!
wait_sock h.sock
ready chan.1
"$CORRAL" checkpoint h.sock h3 2>>chan.err
wait $pid
check "pipes and socket pairs checkpointed: status" "$?" 0
touch go
nofds "$CORRAL" restore-exec h3 >>chan.1 2>>chan.err
check "pipes and socket pairs restored: status" "$?" 0
check "pipes and socket pairs restored" "$(cat chan.1)" "$(cat chan.native)"
check "no errors" "$(cat chan.err)" ""
# a descriptor in flight in a socket pair: refused, and the messages
# around it are left as they were, in order
rm -f go
"$CH" rights go >rights.native &
pid=$!
ready rights.native
touch go
wait $pid
grep -q "message 1: 4 'with' with /dev/null" rights.native || bad "native rights: $(cat rights.native)"
rm -f go r.sock
nofds_bg "$CORRAL" exec --control r.sock "$CH" rights go >rights.1 2>rights.err &
pid=$!
wait_sock r.sock
ready rights.1
"$CORRAL" checkpoint r.sock rcp 2>rck.err
check "descriptors in flight: refused" "$?" 1
case "$(cat rck.err)" in
*"descriptors in flight (SCM_RIGHTS)"*) ok ;;
*) bad "descriptors in flight: $(cat rck.err)" ;;
esac
check "descriptors in flight: nothing written" "$(ls -d rcp 2>/dev/null)" ""
touch go
wait $pid
check "descriptors in flight: the messages as they were" "$(cat rights.1)" "$(cat rights.native)"

# 8. threads talking through a pipe and a datagram socket pair: the same
# result after a checkpoint mid-run, and with checkpoints taken while it runs
"$CH" flow 400000 fprog.n >flow.native
grep -q '^consumer: 400000 numbers' flow.native || bad "native flow: $(cat flow.native)"
rm -f f.sock
nofds_bg "$CORRAL" exec --control f.sock "$CH" flow 400000 fprog.1 >flow.1 2>flow.err &
pid=$!
wait_sock f.sock
wait_lines fprog.1 2 60
"$CORRAL" checkpoint f.sock fl1 2>>flow.err
wait $pid
check "flow checkpointed: status" "$?" 0
if [ "$(wc -l <fprog.1)" -lt 20 ] && [ ! -s flow.1 ]; then ok; else bad "flow was not checkpointed mid-run ($(wc -l <fprog.1) of 20)"; fi
nofds "$CORRAL" restore-exec fl1 >>flow.1 2>>flow.err
check "flow restored: status" "$?" 0
check "flow restored: output" "$(cat flow.1)" "$(cat flow.native)"
check "flow restored: no errors" "$(cat flow.err)" ""
rm -f f.sock
nofds_bg "$CORRAL" exec --control f.sock "$CH" flow 400000 fprog.2 >flow.2 2>flow.err &
pid=$!
wait_sock f.sock
n=0
while kill -0 $pid 2>/dev/null; do
	if "$CORRAL" checkpoint f.sock fl2 --leave-running 2>>flow.err; then n=$((n + 1)); fi
	sleep 0.2
done
wait $pid
check "flow checkpointed while running: output" "$(cat flow.2)" "$(cat flow.native)"
if [ $n -ge 3 ]; then ok; else bad "only $n checkpoints of flow were taken ($(head -n 3 flow.err))"; fi
cd /
report
