#!/bin/sh
# containerd (ctr, its runc shim) with corral-runc as the runc binary, beside
# runc: a task's output and exit status, a detached task's exec, pause,
# resume and stop, and Debian's programs on the debootstrap image. The test
# starts a containerd of its own (state, socket and images in its temporary
# directory); the images are a busybox root and the Debian root made into
# OCI archives by podman. Skipped without containerd, podman, runc.
. "$(dirname "$0")/lib.sh"
N=15
need_root $N
need_static $N || { report; exit $?; }
for c in containerd ctr podman runc; do
	if ! command -v $c >/dev/null 2>&1; then
		skip $N "$c is not installed (tools/setup.sh installs it)"
		report
		exit $?
	fi
done
D=$TMP/ctrd
mkdir -p "$D"
cat >"$D/config.toml" <<EOC
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/sock"
[ttrpc]
  address = "$D/sock.ttrpc"
EOC
containerd --config "$D/config.toml" >"$D/log" 2>&1 &
CPID=$!
NS=corral-test-$$
C="ctr --address $D/sock -n $NS"
ctrd_cleanup() {
	for t in $($C task ls -q 2>/dev/null); do $C task kill -s KILL "$t" >/dev/null 2>&1; done
	sleep 0.5
	for t in $($C task ls -q 2>/dev/null); do $C task rm -f "$t" >/dev/null 2>&1; done
	for t in $($C container ls -q 2>/dev/null); do $C container rm "$t" >/dev/null 2>&1; done
	kill "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
	# the namespace's cgroup parents and runc state root, when empty
	for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/*/*/"$NS" /sys/fs/cgroup/*/*/*/"$NS" /sys/fs/cgroup/*/*/*/*/"$NS" /run/containerd/runc/"$NS"; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	cleanup_containers
}
trap 'ctrd_cleanup; rm -rf "$TMP"' EXIT
for i in $(seq 50); do $C version >/dev/null 2>&1 && break; sleep 0.1; done
# the image: a busybox root, imported by podman (its state in TMP) and saved as an OCI archive
cat >"$TMP/containers.conf" <<EOC
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
EOC
PM="podman --root $TMP/storage --runroot $TMP/run --tmpdir $TMP/ptmp --storage-driver vfs --events-backend file"
rootfs "$TMP/image"
tar -C "$TMP/image" -cf "$TMP/image.tar" .
if ! CONTAINERS_CONF=$TMP/containers.conf $PM import -q "$TMP/image.tar" localhost/corral-bb:test >/dev/null 2>&1 ||
	! CONTAINERS_CONF=$TMP/containers.conf $PM save -q --format oci-archive -o "$TMP/oci.tar" localhost/corral-bb:test 2>"$TMP/e" ||
	! $C image import --base-name localhost/corral-bb "$TMP/oci.tar" >/dev/null 2>"$TMP/e"; then
	skip $N "no image for containerd: $(head -c 200 "$TMP/e")"
	CONTAINERS_CONF=$TMP/containers.conf $PM rmi -af >/dev/null 2>&1
	report
	exit $?
fi
# the Debian image (lib.sh's debian_image) the same way, when it can be had
DIMG=""
if deb=$(debian_image) && CONTAINERS_CONF=$TMP/containers.conf $PM import -q "$deb" localhost/corral-deb:test >/dev/null 2>"$TMP/e" &&
	CONTAINERS_CONF=$TMP/containers.conf $PM save -q --format oci-archive -o "$TMP/deb-oci.tar" localhost/corral-deb:test 2>"$TMP/e" &&
	$C image import --base-name localhost/corral-deb "$TMP/deb-oci.tar" >/dev/null 2>"$TMP/e"; then
	DIMG=localhost/corral-deb:test
else
	[ -s "$TMP/e" ] || tail -n 1 "$TMP/deb.log" >"$TMP/e" 2>/dev/null
	DEBWHY="no Debian image: $(head -c 200 "$TMP/e")"
fi
rm -f "$TMP/deb-oci.tar"
CONTAINERS_CONF=$TMP/containers.conf $PM rmi -af >/dev/null 2>&1
IMG=localhost/corral-bb:test

# both NAME CMD...: the same output and status with runc and corral-runc
# (RB in the command is the runc binary, t-RB a task name of its own)
both() {
	name=$1
	shift
	for rb in runc "$RUNC"; do
		n=$(basename "$rb")
		cmd=$(printf '%s\n' "$*" | sed "s|t-RB|t-$n|g; s|RB|$rb|g")
		eval "timeout 60 $cmd" >"$TMP/out.$n" 2>"$TMP/err.$n"
		echo "status $?" >>"$TMP/out.$n"
		sed -i "s/t-$n/t-RB/g" "$TMP/out.$n"
	done
	if cmp -s "$TMP/out.runc" "$TMP/out.corral-runc"; then
		ok
	else
		bad "$name: runc and corral-runc differ"
		diff "$TMP/out.runc" "$TMP/out.corral-runc" | head -n 10
		head -n 3 "$TMP/err.corral-runc"
	fi
}

# has LINE: the last both's output (the same for both) holds that line;
# two runs that failed alike would compare equal
has() {
	grep -qxF -- "$1" "$TMP/out.corral-runc" && ok || bad "wanted '$1' in: $(head -c 300 "$TMP/out.corral-runc")"
}

both "run" "$C run --rm --runc-binary RB $IMG r-\$\$-\$(basename RB) sh -c 'echo \$((6*7)); id -u; exit 3'"
has 42
has "status 3"
both "run -d" "$C run -d --runc-binary RB $IMG t-RB sh -c 'trap \"exit 9\" TERM; while :; do sleep 1; done' >/dev/null"
sleep 1
both "exec" "$C task exec --exec-id e1 t-RB sh -c 'echo exec; exit 4'"
has "status 4"
both "pause" "$C task pause t-RB && $C task ls | grep -o 't-RB .*PAUSED' | sed 's/ .* / /'"
both "resume" "$C task resume t-RB && $C task ls | grep -o 't-RB .*RUNNING' | sed 's/ .* / /'"
both "kill TERM" "$C task kill -s TERM t-RB && sleep 1.5 && $C task ls | grep -o 't-RB .*STOPPED' | sed 's/ .* / /'"
both "task rm" "$C task rm t-RB"
both "container rm" "$C container rm t-RB"
# Debian's programs: dpkg, perl, python3, bash
if [ -n "$DIMG" ]; then
	both "debian: dpkg, perl, python3" "$C run --rm --runc-binary RB $DIMG d-\$\$-\$(basename RB) bash -c 'dpkg -l | tail -n +6 | wc -l; perl -le \"print 6 * 7\"; python3 -c \"print(sum(range(10)))\"; echo \$BASH_VERSION'"
	has 42
	has 45
	has "status 0"
else
	skip 4 "$DEBWHY"
fi
report
