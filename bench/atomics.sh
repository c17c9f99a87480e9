#!/bin/sh
# The cost of an aligned LOCK'd operation: a static x86-64 program does N
# LOCK ADDs on one aligned word (no other thread), run as a process VM
# (`corral exec`) by this corral and, if CORRAL_BASE is set, by another
# build (e.g. main before a change to cpu/alu.c), alternating, ROUNDS times.
# Prints ns per operation, the best of each, and the ratio.
#
# Usage: bench/atomics.sh [ROUNDS] [N]   (default 5 rounds of 20000000)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-5}
N=${2:-20000000}
[ -x "$CORRAL" ] || {
	echo "bench/atomics.sh: $CORRAL not built (make)" >&2
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/atomics.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/lockadd.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static unsigned long counter __attribute__((aligned(64)));
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		__atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST); /* LOCK ADD */
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (counter != (unsigned long)n)
		return 1;
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
C
gcc -O2 -static -o "$work/lockadd" "$work/lockadd.c" || exit 1

echo "$N aligned LOCK ADDs in a process VM, $ROUNDS rounds, host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
best=""
bbest=""
r=1
while [ "$r" -le "$ROUNDS" ]; do
	t=$("$CORRAL" exec "$work/lockadd" "$N") || t=""
	line="round $r: corral ${t:-FAILED} ns"
	best=$(printf '%s\n%s\n' "$best" "$t" | awk 'NF { if (m == "" || $1 < m) m = $1 } END { print m }')
	if [ -n "${CORRAL_BASE:-}" ]; then
		b=$("$CORRAL_BASE" exec "$work/lockadd" "$N") || b=""
		line="$line, base corral ${b:-FAILED} ns"
		bbest=$(printf '%s\n%s\n' "$bbest" "$b" | awk 'NF { if (m == "" || $1 < m) m = $1 } END { print m }')
	fi
	echo "$line"
	r=$((r + 1))
done
echo "best: corral ${best:-?} ns${bbest:+, base corral $bbest ns}"
if [ -n "$best" ] && [ -n "$bbest" ]; then
	awk -v a="$best" -v b="$bbest" 'BEGIN { printf "this corral / base corral: %.2f\n", a / b }'
fi
