#!/bin/bash
# Containers with corral-runc beside runc: the wall time of
# `podman run --rm IMAGE true` (create, start, the process VM, its exit,
# delete) and of a CPU-bound command (a shell loop of 200000 rounds) on a
# locally imported busybox image, median of REPEAT runs each, corral's
# time as a ratio of runc's and its start-up overhead over runc's. The two
# runtimes' runs alternate, so that a shared machine's load falls on both
# alike. Podman's state lives in a temporary directory (vfs storage, no
# network). Needs root, podman, runc.
set -u
BUILD=${BUILD:-build}
RUNC_CORRAL=$(cd "$BUILD" && pwd)/corral-runc
REPEAT=${REPEAT:-10}
for c in podman runc python3; do
	command -v "$c" >/dev/null 2>&1 || { echo "bench-oci: $c is not installed" >&2; exit 1; }
done
[ -x "$RUNC_CORRAL" ] || { echo "bench-oci: $RUNC_CORRAL not built (run make)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench-oci: needs root" >&2; exit 1; }
TMP=$(mktemp -d)
PM="podman --root $TMP/storage --runroot $TMP/run --tmpdir $TMP/ptmp --storage-driver vfs --events-backend file"
trap '$PM rm -af -t 0 >/dev/null 2>&1; $PM rmi -af >/dev/null 2>&1; rm -rf "$TMP"' EXIT
cat >"$TMP/containers.conf" <<EOC
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
EOC
export CONTAINERS_CONF=$TMP/containers.conf
mkdir -p "$TMP/image/bin"
cp /bin/busybox "$TMP/image/bin/" && ln -s busybox "$TMP/image/bin/true" && ln -s busybox "$TMP/image/bin/sh"
tar -C "$TMP/image" -cf "$TMP/image.tar" .
$PM import -q "$TMP/image.tar" localhost/bench-busybox >/dev/null

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
once() { # RUNTIME COMMAND...: one podman run, its wall time in milliseconds
	python3 -c 'import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(round((time.monotonic() - t) * 1000))' $PM run --rm --network none --runtime "$1" localhost/bench-busybox "${@:2}"
}
# pair NAME COMMAND...: REPEAT runs with each runtime, taken in turns so
# that both see the same load on a shared machine; prints the medians
pair() {
	name=$1
	shift
	once runc "$@" >/dev/null # warm-up
	once "$RUNC_CORRAL" "$@" >/dev/null
	: >"$TMP/t.runc"
	: >"$TMP/t.corral"
	for _ in $(seq "$REPEAT"); do
		once runc "$@" >>"$TMP/t.runc"
		once "$RUNC_CORRAL" "$@" >>"$TMP/t.corral"
	done
	r=$(median <"$TMP/t.runc")
	c=$(median <"$TMP/t.corral")
	echo "$name, median of $REPEAT (runs taken in turns):"
	printf "  %-12s %6s ms   (all: %s)\n" runc "$r" "$(tr '\n' ' ' <"$TMP/t.runc")" \
		corral-runc "$c" "$(tr '\n' ' ' <"$TMP/t.corral")"
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
pair "podman run --rm busybox true" true
awk -v c="$c" -v r="$r" 'BEGIN {printf "  corral-runc / runc = %.2f, start-up overhead %d ms (target < 50 ms)\n", c / r, c - r}'
LOOP='i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done'
pair "podman run --rm busybox sh -c '<200000-round loop>'" sh -c "$LOOP"
awk -v c="$c" -v r="$r" 'BEGIN {printf "  corral-runc / runc = %.2f\n", c / r}'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
