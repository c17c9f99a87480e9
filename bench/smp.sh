#!/bin/bash
# Multi-core throughput: N copies of a CPU-bound awk job on N vCPUs inside
# the Debian guest (N = 1, 2), timed from the host between two console
# markers the guest's /init prints around the jobs; corral emu with the
# vCPUs taking turns (--accel-threads single) and with a thread per vCPU
# (multi), beside QEMU TCG with the same -smp (thread=multi), in one run.
#
# Usage: bench/smp.sh [ROUNDS] [NS]   (default 3 rounds, NS "1 2";
#        CORRAL=path/to/corral; CORRAL_BASE=another corral to compare
#        with, e.g. a build of main: single at N = 1, multi at N > 1)
# Prints each time, the medians, and the ratios: multi/single, corral
# multi/QEMU, and scaling (N jobs on N vCPUs against one on one).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-3}
NS=${2:-1 2}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
LIMIT=${SMP_BENCH_TIMEOUT:-600}
ITER=${SMP_BENCH_ITER:-300000}

command -v qemu-system-x86_64 >/dev/null || {
	echo "bench/smp.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
[ -x "$CORRAL" ] || {
	echo "bench/smp.sh: $CORRAL not built (make)" >&2
	exit 1
}
sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1
K=$GUEST_DIR/vmlinuz

work=$(mktemp -d "${TMPDIR:-/tmp}/smpbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

ov=$work/overlay
mkdir -p "$ov"
cat >"$ov/init" <<EOF
#!/bin/busybox sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
n=\$(nproc)
sleep 1
echo "SMPBENCH start \$n"
for c in \$(seq 1 \$n); do
	awk 'BEGIN { s = 0; for (i = 1; i <= $ITER; i++) s += i * i % 97; print s }' >/dev/null &
done
wait
echo "SMPBENCH end"
poweroff -f
EOF
chmod 755 "$ov/init"
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"
I=$work/initrd.img

# ms between the start and end markers ("" if the guest never gets there).
job_ms() {
	local fifo=$work/fifo t0="" t="" line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	setsid timeout "$LIMIT" "$@" </dev/null >"$fifo" 2>&1 &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*"SMPBENCH start"*) t0=$(date +%s%N) ;;
		*"SMPBENCH end"*)
			[ -n "$t0" ] && t=$((($(date +%s%N) - t0) / 1000000))
			break
			;;
		esac
	done <"$fifo"
	kill -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "$t"
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}
ratio() { # a b -> a/b with two decimals, or "-"
	if [ -n "$1" ] && [ -n "$2" ] && [ "$2" -gt 0 ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}

corral_run() { # corral-binary ncpus threads
	job_ms "$1" run --engine emu --kernel "$K" --initrd "$I" --append "console=ttyS0 quiet" --mem 512M \
		--cpus "$2" --accel-threads "$3"
}
qemu_run() { # ncpus
	job_ms qemu-system-x86_64 -accel tcg,thread=multi -M pc -smp "$1" -m 512M -nographic -no-reboot \
		-kernel "$K" -initrd "$I" -append "console=ttyS0 quiet"
}

echo "N copies of awk ($ITER iterations) on N vCPUs, $ROUNDS rounds, kernel $(cat "$GUEST_DIR/version")," \
	"host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A med
for n in $NS; do
	declare -a s_t=() m_t=() q_t=() b_t=()
	for r in $(seq 1 "$ROUNDS"); do
		s=$(corral_run "$CORRAL" "$n" single)
		m=""
		[ "$n" -gt 1 ] && m=$(corral_run "$CORRAL" "$n" multi)
		q=$(qemu_run "$n")
		b=""
		if [ -n "${CORRAL_BASE:-}" ]; then
			if [ "$n" -eq 1 ]; then b=$(corral_run "$CORRAL_BASE" 1 single); else b=$(corral_run "$CORRAL_BASE" "$n" multi); fi
		fi
		printf 'N=%d round %d: corral single %s ms, corral multi %s ms, qemu-tcg %s ms%s\n' "$n" "$r" \
			"${s:-FAILED}" "${m:-n/a}" "${q:-FAILED}" "${b:+, base corral $b ms}"
		[ -n "$s" ] && s_t+=("$s")
		[ -n "$m" ] && m_t+=("$m")
		[ -n "$q" ] && q_t+=("$q")
		[ -n "$b" ] && b_t+=("$b")
	done
	med[s$n]=$(median "${s_t[@]}")
	med[m$n]=$(median "${m_t[@]}")
	[ "$n" -eq 1 ] && med[m$n]=${med[s$n]} # one vCPU: the modes are the same
	med[q$n]=$(median "${q_t[@]}")
	med[b$n]=$(median "${b_t[@]}")
	printf 'N=%d medians: corral single %s ms, corral multi %s ms, qemu-tcg %s ms\n' "$n" \
		"${med[s$n]:-?}" "${med[m$n]:-?}" "${med[q$n]:-?}"
	printf 'N=%d ratios: multi/single %s, corral multi/qemu-tcg %s\n' "$n" \
		"$(ratio "${med[m$n]}" "${med[s$n]}")" "$(ratio "${med[m$n]}" "${med[q$n]}")"
	if [ -n "${med[b$n]}" ]; then
		printf 'N=%d this corral / base corral (%s): %s\n' "$n" "$([ "$n" -eq 1 ] && echo single || echo multi)" \
			"$(ratio "${med[m$n]}" "${med[b$n]}")"
	fi
done
for n in $NS; do
	[ "$n" -gt 1 ] || continue
	# throughput scaling: n jobs in time t_n against one job in t_1
	sc() { [ -n "$1" ] && [ -n "$2" ] && awk -v n="$n" -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", n * a / b }' || echo -; }
	printf 'scaling 1 -> %d vCPUs (N x t1 / tN): corral single %s, corral multi %s, qemu-tcg %s\n' "$n" \
		"$(sc "${med[s1]:-}" "${med[s$n]:-}")" "$(sc "${med[m1]:-}" "${med[m$n]:-}")" "$(sc "${med[q1]:-}" "${med[q$n]:-}")"
	[ -n "${med[b1]:-}" ] && [ -n "${med[b$n]:-}" ] && printf 'scaling 1 -> %d vCPUs, base corral multi: %s\n' "$n" \
		"$(sc "${med[b1]}" "${med[b$n]}")"
done
