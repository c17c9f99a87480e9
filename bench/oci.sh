#!/bin/bash
# Containers with corral-runc beside runc: the wall time of
# `podman run --rm IMAGE true` (create, start, the process VM, its exit,
# delete) and of a CPU-bound command (a shell loop of 200000 rounds) on a
# locally imported busybox image, median of REPEAT runs each, corral's
# time as a ratio of runc's and its start-up overhead over runc's. Podman's state lives in a
# temporary directory (vfs storage, no network). Needs root, podman, runc.
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
run() { # RUNTIME COMMAND...: REPEAT times, milliseconds each
	rt=$1
	shift
	$PM run --rm --network none --runtime "$rt" localhost/bench-busybox "$@" >/dev/null 2>&1 # warm-up
	for _ in $(seq "$REPEAT"); do
		python3 -c 'import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(round((time.monotonic() - t) * 1000))' $PM run --rm --network none --runtime "$rt" localhost/bench-busybox "$@"
	done | median
}
r=$(run runc true)
c=$(run "$RUNC_CORRAL" true)
echo "podman run --rm busybox true, median of $REPEAT:"
printf "  %-12s %6s ms\n" runc "$r" corral-runc "$c"
awk -v c="$c" -v r="$r" 'BEGIN {printf "  corral-runc / runc = %.2f, start-up overhead %d ms (target < 50 ms)\n", c / r, c - r}'
LOOP='i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done'
r=$(run runc sh -c "$LOOP")
c=$(run "$RUNC_CORRAL" sh -c "$LOOP")
echo "podman run --rm busybox sh -c '<200000-round loop>', median of $REPEAT:"
printf "  %-12s %6s ms\n" runc "$r" corral-runc "$c"
awk -v c="$c" -v r="$r" 'BEGIN {printf "  corral-runc / runc = %.2f\n", c / r}'
