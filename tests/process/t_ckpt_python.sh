#!/bin/sh
# A Python process (the host's python3, dynamically linked, run by `corral
# exec`) with a heap of several MiB, threads and an open input file,
# checkpointed mid-computation and continued by `corral restore-exec`: the
# result and the output file are those of an uninterrupted native run
# (docs/checkpoint.md).
. "$(dirname "$0")/lib.sh"
# Debian's own python3: not a wrapper script that execs another program
# (the control socket does not follow an execve)
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
	skip 4 "$PY is not installed"
	report
	exit
fi
JOB=$(cd "$(dirname "$0")" && pwd)/py/ckpt_job.py
W=$TMP/w
mkdir -p "$W"
cd "$W" || exit 1
cp "$JOB" job.py
head -c 65536 /dev/urandom >in.dat
N=8000
ROUNDS=10
"$PY" job.py $N $ROUNDS out.native in.dat >ref.out

rm -f c.sock
nofds_bg "$CORRAL" exec --control c.sock "$PY" job.py $N $ROUNDS out.c in.dat >run.out 2>run.err &
pid=$!
wait_lines out.c 2 300
"$CORRAL" checkpoint c.sock cp 2>ck.err
st=$?
wait $pid
pst=$?
done_rounds=$(wc -l <out.c)
if [ $st -eq 0 ] && [ $pst -eq 0 ] && [ "$done_rounds" -lt $ROUNDS ] && [ -s cp/state ]; then ok; else
	bad "checkpoint: status $st, the program's $pst, $done_rounds of $ROUNDS rounds done ($(cat ck.err))"
fi
nofds "$CORRAL" restore-exec cp >>run.out 2>>run.err
st=$?
if [ $st -eq 0 ]; then ok; else bad "restore-exec: status $st: $(head -n 3 run.err)"; fi
if [ "$(cat run.out)" = "$(cat ref.out)" ]; then ok; else bad "result: got '$(cat run.out)', wanted '$(cat ref.out)'"; fi
if cmp -s out.c out.native; then ok; else bad "the output file differs from the native run's"; fi
cd /
report
