#!/bin/bash
# Checkpoint and restore of a process VM holding 100 MiB and 1 GiB of
# written memory (tests/progs/ckpt_prog hold), beside CRIU dumping and
# restoring the same program natively where CRIU works on this machine.
# Checkpoint: from the request to the answer (the program has exited).
# Restore: from `corral restore-exec` to the program's exit, which it does
# at its first look after resuming (it polls for a file every 1 ms).
# Prints the best of REPEAT runs and the ratios.
#
# bench/checkpoint.sh --vm: the same inside a QEMU TCG machine running
# Debian's stock kernel (tools/mkcriuvm.sh), where CRIU works when it does
# not on this host: both run in the same emulated machine, so the ratios
# mean something, the absolute times do not. VM_MEM (MiB, default 4096),
# VM_CPUS (default 2) and TIMEOUT (s, default 3600) size it; SIZES and
# REPEAT are passed in.
set -u
CORRAL=${CORRAL:-build/corral}
BUILD=${BUILD:-$(dirname "$CORRAL")}
REPEAT=${REPEAT:-3}
SIZES=${SIZES:-"100 1024"}
P=$BUILD/tests/progs/ckpt_prog
case "${1:-}" in
"") ;;
--vm) vm=1 ;;
*)
	echo "usage: bench/checkpoint.sh [--vm]" >&2
	exit 2
	;;
esac
for f in "$CORRAL" "$P"; do
	[ -e "$f" ] || { echo "bench: $f not built (run make tests)" >&2; exit 1; }
done
if [ -n "${vm:-}" ]; then
	ROOT=$(cd "$(dirname "$0")/.." && pwd)
	GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
	QEMU=${QEMU:-qemu-system-x86_64}
	command -v "$QEMU" >/dev/null 2>&1 || { echo "bench: no $QEMU (qemu-system-x86 package)" >&2; exit 1; }
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	sh "$ROOT/tools/mkcriuvm.sh" "$BUILD" "$W/vm.cpio" >&2 || exit 1
	echo "host: $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); QEMU TCG machine, ${VM_CPUS:-2} CPUs, ${VM_MEM:-4096} MiB"
	t0=$(date +%s)
	# shellcheck disable=SC2086 # SIZES split into words, joined by commas
	vm_sizes=$(printf '%s,' $SIZES)
	timeout -k 10 "${TIMEOUT:-3600}" "$QEMU" -accel tcg -cpu max -smp "${VM_CPUS:-2}" -m "${VM_MEM:-4096}" \
		-nodefaults -display none -monitor none -no-reboot -serial "file:$W/console" \
		-kernel "$GUEST_DIR/vmlinuz" -initrd "$W/vm.cpio" \
		-append "console=ttyS0 panic=-1 quiet tsc=reliable corral.sizes=${vm_sizes%,} corral.repeat=$REPEAT" \
		</dev/null >"$W/qemu.log" 2>&1
	rc=$?
	tr -d '\r' <"$W/console" 2>/dev/null | sed -n 's/^@criuvm: //p'
	if ! tr -d '\r' <"$W/console" 2>/dev/null | grep -q '^@criuvm end'; then
		echo "bench: the machine stopped early (QEMU exit $rc after $(($(date +%s) - t0)) s):" >&2
		tail -n 20 "$W/qemu.log" "$W/console" >&2
		exit 1
	fi
	echo "the machine ran for $(($(date +%s) - t0)) s"
	exit 0
fi
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
	rm -rf cp # the memory CRIU's run needs
	if [ -n "$criu_ok" ]; then
		cds=() crs=()
		for ((r = 0; r < REPEAT; r++)); do
			rm -rf img go out
			mkdir img
			setsid "$P" hold "$mib" "$W/go" >out 2>&1 </dev/null &
			pid=$!
			disown $pid # the dump ends it: no "Killed"
			wait_ready out $pid
			t0=$(now)
			criu dump -t $pid -D img --shell-job -o dump.log >/dev/null 2>&1 || {
				echo "bench: criu dump failed: $(grep -m1 Error img/dump.log)" >&2
				break
			}
			t1=$(now)
			touch go
			t2=$(now)
			# in the foreground: criu waits for the restored program's exit
			criu restore -D img --shell-job -o restore.log >/dev/null 2>&1 || {
				echo "bench: criu restore failed: $(grep -m1 Error img/restore.log)" >&2
				break
			}
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
