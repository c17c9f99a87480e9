#!/bin/bash
# Container start-up with corral-runc beside runc: the wall time of
# `podman run --rm IMAGE true` (create, start, the process VM, its exit,
# delete) on a locally imported busybox image, median of REPEAT runs each,
# and corral's time as a ratio of runc's. Podman's state lives in a
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
run() { # RUNTIME: REPEAT times, milliseconds each
	$PM run --rm --network none --runtime "$1" localhost/bench-busybox true >/dev/null 2>&1 # warm-up
	for _ in $(seq "$REPEAT"); do
		python3 -c 'import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(round((time.monotonic() - t) * 1000))' $PM run --rm --network none --runtime "$1" localhost/bench-busybox true
	done | median
}
r=$(run runc)
c=$(run "$RUNC_CORRAL")
echo "podman run --rm busybox true, median of $REPEAT:"
printf "  %-12s %6s ms\n" runc "$r" corral-runc "$c"
awk -v c="$c" -v r="$r" 'BEGIN {printf "  corral-runc / runc = %.2f\n", c / r}'
