#!/bin/bash
# Process VM benchmarks: each case runs natively, under qemu-x86_64
# (Debian's qemu-user) and under `corral exec`, alternating, REPEAT times;
# prints the best time of each and the ratios corral/qemu-user and
# corral/native. Outputs are checked against the native run.
set -u
CORRAL=${CORRAL:-build/corral}
REPEAT=${REPEAT:-3}
QEMU=$(command -v qemu-x86_64 || command -v qemu-x86_64-static || true)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$CORRAL" ]; then
	echo "bench: $CORRAL not built (run make)" >&2
	exit 1
fi
[ -n "$QEMU" ] || echo "bench: qemu-x86_64 not found (apt-get install qemu-user); skipping its column" >&2

# Inputs: incompressible data for hashing, base64 text (compressible) for gzip.
head -c 64M /dev/urandom >"$work/data64"
head -c 24M /dev/urandom | base64 >"$work/text32"
PY_N=${PY_N:-6000000}
cat >"$work/loop.py" <<PY
s = 0
for i in range($PY_N):
    s += (i * i) % 7
print(s)
PY

now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# run_case NAME CMD...: sets global results
run_case() {
	local name=$1
	shift
	local best_n=999999999 best_q=999999999 best_c=999999999 t0 t1 ok=1
	"$@" >"$work/native.out" 2>&1
	for r in $(seq "$REPEAT"); do
		t0=$(now_ms); "$@" >/dev/null 2>&1; t1=$(now_ms)
		[ $((t1 - t0)) -lt $best_n ] && best_n=$((t1 - t0))
		if [ -n "$QEMU" ]; then
			t0=$(now_ms); "$QEMU" "$@" >/dev/null 2>&1; t1=$(now_ms)
			[ $((t1 - t0)) -lt $best_q ] && best_q=$((t1 - t0))
		fi
		t0=$(now_ms); "$CORRAL" exec "$@" >"$work/corral.out" 2>&1; t1=$(now_ms)
		[ $((t1 - t0)) -lt $best_c ] && best_c=$((t1 - t0))
		cmp -s "$work/native.out" "$work/corral.out" || ok=0
	done
	[ -n "$QEMU" ] || best_q=0
	awk -v n="$name" -v a="$best_n" -v q="$best_q" -v c="$best_c" -v ok="$ok" 'BEGIN {
		if (a < 1) a = 1
		printf "%-28s native %8.2fs  qemu-user %8.2fs  corral %8.2fs  corral/qemu-user %6.2fx  corral/native %7.2fx%s\n",
			n, a / 1000, q / 1000, c / 1000, (q > 0 ? c / q : 0), c / a, (ok ? "" : "  OUTPUT DIFFERS")
	}'
}

echo "corral process-VM benchmarks ($(date -u +%Y-%m-%d), $(nproc) cores, best of $REPEAT)"
run_case "busybox sha256sum 64MiB" /bin/busybox sha256sum "$work/data64"
run_case "gzip -6 32MiB" /bin/gzip -6 -c "$work/text32"
run_case "python3 loop" /usr/bin/python3 "$work/loop.py"
