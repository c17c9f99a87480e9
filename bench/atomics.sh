#!/bin/sh
# The cost of LOCK'd operations in a process VM (`corral exec`): a static
# x86-64 program does N LOCK ADDs on one word, run by this corral and, if
# CORRAL_BASE is set, by another build (e.g. main before a change to
# cpu/alu.c), alternating, ROUNDS times, in three cases: an aligned word
# with no other thread; a word across a cache line (a split lock: an
# exclusive section) with no other thread; the split word with a second
# thread spinning in guest code (each split operation stops it first).
# Prints ns per operation, the best of each, and the ratios.
#
# Usage: bench/atomics.sh [ROUNDS] [N]   (default 5 rounds of 20000000;
#        the split cases do N/100)
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static unsigned char area[256] __attribute__((aligned(64)));
static volatile int stop, started;
static void *spin(void *arg)
{
	(void)arg;
	volatile unsigned long n = 0;
	started = 1;
	while (!stop)
		n++;
	return NULL;
}
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int split = argc > 2 && !strcmp(argv[2], "split");
	int spinning = argc > 3 && !strcmp(argv[3], "spin");
	unsigned long *w = (unsigned long *)(area + (split ? 60 : 64)); /* 60: across the line at 64 */
	pthread_t t;
	if (spinning) {
		pthread_create(&t, NULL, spin, NULL);
		while (!started)
			;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		__asm__ volatile("lock addq $1, %0" : "+m"(*w)); /* LOCK ADD */
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (spinning) {
		stop = 1;
		pthread_join(t, NULL);
	}
	if (*w != (unsigned long)n)
		return 1;
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
C
gcc -O2 -static -o "$work/lockadd" "$work/lockadd.c" || exit 1

gcc -O2 -static -pthread -o "$work/lockadd" "$work/lockadd.c" || exit 1

best_of() { printf '%s\n%s\n' "$1" "$2" | awk 'NF { if (m == "" || $1 < m) m = $1 } END { print m }'; }

# bench NAME COUNT ARGS...: ROUNDS alternating rounds, then the best of each
bench() {
	name=$1
	count=$2
	shift 2
	echo "$name: $count LOCK ADDs, $ROUNDS rounds, host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	best=""
	bbest=""
	r=1
	while [ "$r" -le "$ROUNDS" ]; do
		t=$("$CORRAL" exec "$work/lockadd" "$count" "$@") || t=""
		line="  round $r: corral ${t:-FAILED} ns"
		best=$(best_of "$best" "$t")
		if [ -n "${CORRAL_BASE:-}" ]; then
			b=$("$CORRAL_BASE" exec "$work/lockadd" "$count" "$@") || b=""
			line="$line, base corral ${b:-FAILED} ns"
			bbest=$(best_of "$bbest" "$b")
		fi
		echo "$line"
		r=$((r + 1))
	done
	echo "  best: corral ${best:-?} ns${bbest:+, base corral $bbest ns}"
	if [ -n "$best" ] && [ -n "$bbest" ]; then
		awk -v a="$best" -v b="$bbest" 'BEGIN { printf "  this corral / base corral: %.2f\n", a / b }'
	fi
}
bench "aligned" "$N" aligned
bench "split, one thread" $((N / 100)) split
bench "split, a second thread spinning" $((N / 100)) split spin
