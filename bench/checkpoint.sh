#!/bin/bash
# Checkpoint and restore of a process VM holding 100 MiB and 1 GiB of
# written memory (tests/progs/ckpt_prog hold), beside CRIU dumping and
# restoring the same program natively where CRIU works on this machine.
# Checkpoint: from the request to the answer (the program has exited).
# Restore: from `corral restore-exec` to the program's exit, which it does
# at its first look after resuming (it polls for a file every 1 ms).
# Prints the best of REPEAT runs and the ratios.
set -u
CORRAL=${CORRAL:-build/corral}
BUILD=${BUILD:-$(dirname "$CORRAL")}
REPEAT=${REPEAT:-3}
SIZES=${SIZES:-"100 1024"}
P=$BUILD/tests/progs/ckpt_prog
for f in "$CORRAL" "$P"; do
	[ -e "$f" ] || { echo "bench: $f not built (run make tests)" >&2; exit 1; }
done
CORRAL=$(realpath "$CORRAL")
P=$(realpath "$P")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
now() { date +%s.%N; }
ms() { echo "($2 - $1) * 1000" | bc -l | xargs printf '%.0f'; }
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
# descriptors this shell inherited are not the program's (a pipe is refused)
nofds_bg() {
	exec bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done; exec "$@"' nofds "$@"
}
wait_ready() { # OUT PID
	while ! grep -q ready "$1" 2>/dev/null; do
		kill -0 "$2" 2>/dev/null || { echo "bench: the program did not start: $(cat "$1")" >&2; exit 1; }
		sleep 0.05
	done
}

criu_ok=""
criu_why="criu is not installed (Debian package criu)"
if command -v criu >/dev/null 2>&1; then
	if out=$(criu check 2>&1); then
		criu_ok=1
	else
		criu_why="'criu check' fails here: $(echo "$out" | grep -m1 Error | sed 's/^Error ([^)]*): //')"
	fi
fi

echo "process VM checkpoint/restore, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
for mib in $SIZES; do
	cks=() rss=() sizes=""
	for ((r = 0; r < REPEAT; r++)); do
		rm -rf cp go out sock
		nofds_bg "$CORRAL" exec --control "$W/sock" "$P" hold "$mib" "$W/go" >out 2>&1 &
		pid=$!
		wait_ready out $pid
		t0=$(now)
		"$CORRAL" checkpoint "$W/sock" cp || { echo "bench: checkpoint failed" >&2; exit 1; }
		t1=$(now)
		wait $pid
		sizes="state $(du -k cp/state | cut -f1) KiB, memory $(du -k cp/memory | cut -f1) KiB on disk"
		touch go
		t2=$(now)
		nofds_bg "$CORRAL" restore-exec cp >/dev/null 2>&1 &
		wait $!
		rc=$?
		t3=$(now)
		[ $rc = 0 ] || { echo "bench: restore-exec failed ($rc)" >&2; exit 1; }
		cks+=("$(ms "$t0" "$t1")")
		rss+=("$(ms "$t2" "$t3")")
	done
	ck=$(best "${cks[@]}")
	rs=$(best "${rss[@]}")
	echo "$mib MiB: corral checkpoint ${ck} ms, restore ${rs} ms ($sizes)"
	if [ -n "$criu_ok" ]; then
		cds=() crs=()
		for ((r = 0; r < REPEAT; r++)); do
			rm -rf img go out
			mkdir img
			setsid "$P" hold "$mib" "$W/go" >out 2>&1 </dev/null &
			pid=$!
			wait_ready out $pid
			t0=$(now)
			criu dump -t $pid -D img --shell-job >/dev/null 2>&1 || { echo "bench: criu dump failed" >&2; break; }
			t1=$(now)
			touch go
			t2=$(now)
			criu restore -D img --shell-job >/dev/null 2>&1
			t3=$(now)
			cds+=("$(ms "$t0" "$t1")")
			crs+=("$(ms "$t2" "$t3")")
		done
		if [ ${#cds[@]} -gt 0 ]; then
			cd_=$(best "${cds[@]}")
			cr=$(best "${crs[@]}")
			echo "$mib MiB: CRIU dump ${cd_} ms, restore ${cr} ms; corral/CRIU: checkpoint $(echo "$ck / $cd_" | bc -l | xargs printf '%.2f'), restore $(echo "$rs / $cr" | bc -l | xargs printf '%.2f')"
		fi
	else
		echo "$mib MiB: CRIU skipped: $criu_why"
	fi
done
