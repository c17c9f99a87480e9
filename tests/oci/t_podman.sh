#!/bin/sh
# Podman with corral-runc as its OCI runtime, beside runc: the same podman
# commands on a locally imported busybox image must give the same output
# and exit status with both (run, -e, -w, -u, --rm, --read-only, -v,
# --pids-limit, exec, stop of a process that ignores SIGTERM, ps, inspect,
# pause). Skipped without podman and runc. Podman's state lives in this
# test's temporary directory (vfs storage, no network), so nothing of the
# host's containers is touched.
. "$(dirname "$0")/lib.sh"
N=24
need_root $N
need_static $N || { report; exit $?; }
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
	skip $N "podman or runc is not installed (tools/setup.sh installs them)"
	report
	exit $?
fi
# Podman's default ulimits cannot be set here, and crun refuses this host's
# cgroup layout: a configuration of the test's own.
cat >"$TMP/containers.conf" <<EOC
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOC
export CONTAINERS_CONF=$TMP/containers.conf
PM="podman --root $TMP/storage --runroot $TMP/run --tmpdir $TMP/ptmp --storage-driver vfs --events-backend file"
rootfs "$TMP/image"
tar -C "$TMP/image" -cf "$TMP/image.tar" .
if ! $PM import -q "$TMP/image.tar" localhost/corral-busybox:test >/dev/null 2>"$TMP/e"; then
	skip $N "podman cannot import an image here: $(head -c 200 "$TMP/e")"
	report
	exit $?
fi
IMG=localhost/corral-busybox:test
CORRAL_RUNTIME=$RUNC
podman_cleanup() {
	$PM rm -af -t 0 >/dev/null 2>&1
	$PM rmi -af >/dev/null 2>&1
	cleanup_containers
}
trap 'podman_cleanup; rm -rf "$TMP"' EXIT

# both NAME PODMAN-ARGS...: the same stdout and status with runc and corral
# ("RUNTIME" in the arguments is replaced by the runtime's path, and c-NAME
# by the name of that runtime's container)
both() {
	name=$1
	shift
	for rt in runc "$CORRAL_RUNTIME"; do
		args=""
		for a in "$@"; do
			[ "$a" = RUNTIME ] && a=$rt
			a=$(printf %s "$a" | sed "s|c-NAME|c-$(basename "$rt")|")
			args="$args '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"
		done
		eval "timeout 120 $PM $args" >"$TMP/out.$(basename "$rt")" 2>"$TMP/err.$(basename "$rt")"
		echo "status $?" >>"$TMP/out.$(basename "$rt")"
		sed -i "s/c-$(basename "$rt")/c-NAME/g" "$TMP/out.$(basename "$rt")"
	done
	if cmp -s "$TMP/out.runc" "$TMP/out.corral-runc"; then
		ok
	else
		bad "$name: runc and corral-runc differ"
		diff "$TMP/out.runc" "$TMP/out.corral-runc" | head -n 10
		head -n 3 "$TMP/err.corral-runc"
	fi
}

R="--runtime RUNTIME --network none"
both "exit status" run --rm $R $IMG sh -c 'exit 3'
both "env" run --rm $R -e FOO=bar $IMG sh -c 'echo $FOO'
both "workdir" run --rm $R -w /tmp $IMG pwd
both "user" run --rm $R -u 1000:1001 $IMG id
both "hostname" run --rm $R --hostname box $IMG hostname
both "read-only root" run --rm $R --read-only $IMG sh -c 'touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp'
mkdir -p "$TMP/vol" && echo from-host >"$TMP/vol/f"
both "volume" run --rm $R -v "$TMP/vol:/mnt/v" $IMG sh -c 'cat /mnt/v/f; echo in >/mnt/v/$(id -u)'
[ -f "$TMP/vol/0" ] && ok || bad "the container did not write to the volume"
both "pids limit" run --rm $R --pids-limit 50 $IMG cat /sys/fs/cgroup/pids/pids.max
both "terminal" run --rm -t $R $IMG sh -c 'tty; echo $TERM'
both "no such program" run --rm $R $IMG nosuchprogram
both "seccomp default profile" run --rm $R $IMG sh -c 'mkdir /tmp/d && echo ok; unshare -m true 2>/dev/null || echo denied'
both "--rm leaves nothing" ps -aq

# a detached container: exec, inspect, pause, stop of one that ignores TERM
for rt in runc "$CORRAL_RUNTIME"; do
	n=$(basename "$rt")
	$PM run -d --name "c-$n" --runtime "$rt" --network none $IMG sh -c 'trap "" TERM; echo up; while :; do sleep 1; done' \
		>/dev/null 2>"$TMP/e" || bad "$n: run -d: $(cat "$TMP/e")"
done
sleep 1
both "exec" exec c-NAME sh -c 'echo $((6*7)); exit 4'
both "exec -e -w -u" exec -e A=1 -w /tmp -u 5:6 c-NAME sh -c 'echo $A $(pwd) $(id -u):$(id -g)'
both "inspect running" inspect -f '{{.State.Status}} {{.State.Running}}' c-NAME
both "ps" ps --format '{{.Names}}' --filter name=c-NAME --filter status=running
both "pause" pause c-NAME
both "inspect paused" inspect -f '{{.State.Status}}' c-NAME
both "unpause" unpause c-NAME
both "stop ignoring TERM" stop -t 2 c-NAME
both "inspect stopped" inspect -f '{{.State.Status}} {{.State.ExitCode}}' c-NAME
both "logs" logs c-NAME
both "rm" rm c-NAME
report
