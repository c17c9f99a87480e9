#!/bin/bash
# Process VM benchmarks: each case runs natively, under qemu-x86_64
# (Debian's qemu-user) and under `corral exec`, alternating, REPEAT times;
# prints the best time of each and the ratios corral/qemu-user and
# corral/native, then the geometric mean of corral/qemu-user over the
# cases. Outputs are checked against the native run.
# Hot loops (sha256sum, gzip, a Python loop) and large cold programs that
# run much code a few times: gcc's cc1 compiling one of corral's own
# sources, perl and python3 loading many modules once, a shell script that
# starts 300 processes, and the start-up of /bin/true (20 in a row).
# CASES=name,name... runs some only (sha256,gzip,pyloop,cc1,perl,pymods,
# shell,true).
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

# A C source as cc1 sees it: one of corral's own, preprocessed natively.
CC1=$(gcc -print-prog-name=cc1 2>/dev/null || true)
if [ -x "$CC1" ]; then
	gcc -E -D_GNU_SOURCE -Isrc src/cpu/decode.c -o "$work/decode.i" 2>/dev/null || CC1=
fi
cat >"$work/mods.py" <<'PY'
import argparse, asyncio, csv, decimal, difflib, email.parser, fractions, http.client, json, logging
import sqlite3, statistics, unittest, urllib.request, xml.dom.minidom, zipfile, tarfile, textwrap, typing
print(len(dir(asyncio)) > 0, statistics.mean([1, 2, 3]), json.dumps({"a": [1, 2]}))
PY
cat >"$work/spawn.sh" <<'SH'
i=0
while [ $i -lt 300 ]; do
	/bin/true
	i=$((i + 1))
done
echo $i
SH
cat >"$work/true20.sh" <<'SH'
#!/bin/sh
# the same command 20 times in a row, started by this script's own shell
# (native), so only the command's start-up is timed under each runner
r=$1
shift
i=0
while [ $i -lt 20 ]; do
	$r "$@" || exit 1
	i=$((i + 1))
done
SH

now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
declare -a RATIOS=()
want() { [ -z "${CASES:-}" ] || [[ ",$CASES," == *",$1,"* ]]; }

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
	[ "$best_q" -gt 0 ] && RATIOS+=("$(awk -v q="$best_q" -v c="$best_c" 'BEGIN { print c / q }')")
	awk -v n="$name" -v a="$best_n" -v q="$best_q" -v c="$best_c" -v ok="$ok" 'BEGIN {
		if (a < 1) a = 1
		printf "%-28s native %8.2fs  qemu-user %8.2fs  corral %8.2fs  corral/qemu-user %6.2fx  corral/native %7.2fx%s\n",
			n, a / 1000, q / 1000, c / 1000, (q > 0 ? c / q : 0), c / a, (ok ? "" : "  OUTPUT DIFFERS")
	}'
}

echo "corral process-VM benchmarks ($(date -u +%Y-%m-%d), $(nproc) cores, best of $REPEAT)"
want sha256 && run_case "busybox sha256sum 64MiB" /bin/busybox sha256sum "$work/data64"
want gzip && run_case "gzip -6 32MiB" /bin/gzip -6 -c "$work/text32"
want pyloop && run_case "python3 loop" /usr/bin/python3 "$work/loop.py"
if want cc1; then
	if [ -n "$CC1" ]; then
		run_case "cc1 -O2 decode.c" "$CC1" -quiet -O2 "$work/decode.i" -o /dev/stdout
	else
		echo "bench: gcc's cc1 not found (apt-get install gcc); skipping its case" >&2
	fi
fi
want perl && run_case "perl, 14 modules once" /usr/bin/perl -MPOSIX -MData::Dumper -MStorable -MList::Util=sum \
	-MFile::Find -MFile::Temp -MGetopt::Long -MText::Wrap -MTime::Local -MEncode -MJSON::PP -MIO::Socket \
	-MMath::BigInt -MDigest::MD5 -e 'print sum(1..1000), " ", Math::BigInt->new(2)**100, "\n"'
want pymods && run_case "python3, 20 modules once" /usr/bin/python3 "$work/mods.py"
want shell && run_case "sh: 300 processes" /bin/sh "$work/spawn.sh"
# start-up: the runner is the script's argument, so the case runs it
if want true; then
	run_case_wrapped() {
		local name=$1
		shift
		local best_n=999999999 best_q=999999999 best_c=999999999 t0 t1
		for r in $(seq "$REPEAT"); do
			t0=$(now_ms); /bin/sh "$work/true20.sh" "" "$@" >/dev/null 2>&1; t1=$(now_ms)
			[ $((t1 - t0)) -lt $best_n ] && best_n=$((t1 - t0))
			if [ -n "$QEMU" ]; then
				t0=$(now_ms); /bin/sh "$work/true20.sh" "$QEMU" "$@" >/dev/null 2>&1; t1=$(now_ms)
				[ $((t1 - t0)) -lt $best_q ] && best_q=$((t1 - t0))
			fi
			t0=$(now_ms); /bin/sh "$work/true20.sh" "$CORRAL exec" "$@" >/dev/null 2>&1; t1=$(now_ms)
			[ $((t1 - t0)) -lt $best_c ] && best_c=$((t1 - t0))
		done
		[ -n "$QEMU" ] || best_q=0
		[ "$best_q" -gt 0 ] && RATIOS+=("$(awk -v q="$best_q" -v c="$best_c" 'BEGIN { print c / q }')")
		awk -v n="$name" -v a="$best_n" -v q="$best_q" -v c="$best_c" 'BEGIN {
			if (a < 1) a = 1
			printf "%-28s native %8.2fs  qemu-user %8.2fs  corral %8.2fs  corral/qemu-user %6.2fx  corral/native %7.2fx\n",
				n, a / 1000, q / 1000, c / 1000, (q > 0 ? c / q : 0), c / a
		}'
	}
	run_case_wrapped "start-up: /bin/true x20" /bin/true
fi
if [ ${#RATIOS[@]} -gt 0 ]; then
	printf '%s\n' "${RATIOS[@]}" | awk '{ s += log($1); n++ } END {
		printf "geometric mean of corral/qemu-user over %d cases: %.2fx (target 0.7x, and every case at most 1.0x)\n", n, exp(s / n) }'
fi
