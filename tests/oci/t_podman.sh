#!/bin/sh
# Podman with corral-runc as its OCI runtime, beside runc: the same podman
# commands on a locally imported busybox image must give the same output
# and exit status with both (run, -e, -w, -u, --rm, --read-only, -v,
# --pids-limit, --memory, --cpus, -p, -it, exec, stop of a process that
# ignores SIGTERM, ps, inspect, top, pause), and Debian's own programs on a
# debootstrap image (built once and kept in the cache; skipped when the
# Debian archive cannot be reached). Skipped without podman and runc. Podman's state lives in this
# test's temporary directory (vfs storage, no network), so nothing of the
# host's containers is touched.
. "$(dirname "$0")/lib.sh"
N=43
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
for a in tr timeout httpd; do ln -sf busybox "$TMP/image/bin/$a"; done
mkdir -p "$TMP/image/www" && echo "hello from the container" >"$TMP/image/www/index.html"
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
both "device" run --rm $R --device /dev/zero:/dev/myzero $IMG sh -c 'stat -c "%F %t:%T" /dev/myzero; head -c 4 /dev/myzero | wc -c'
grep -qx "character special file 1:5" "$TMP/out.corral-runc" && ok || bad "--device: $(cat "$TMP/out.corral-runc")"
both "terminal" run --rm -t $R $IMG sh -c 'tty; echo $TERM'
both "no such program" run --rm $R $IMG nosuchprogram
both "seccomp default profile" run --rm $R $IMG sh -c 'mkdir /tmp/d && echo ok; unshare -m true 2>/dev/null || echo denied'
both "memory limit" run --rm $R --memory 64m $IMG cat /sys/fs/cgroup/memory/memory.limit_in_bytes
# a shell variable of 64 MiB in a 32 MiB container: the OOM killer, 137
both "memory limit enforced" run --rm $R --memory 32m --memory-swap 32m $IMG sh -c 'x=$(head -c 67108864 /dev/zero | tr "\0" a); echo ${#x}'
# a busy loop for 3 s under --cpus 0.5 gets about half of that in CPU time
both "cpu quota" run --rm $R --cpus 0.5 $IMG sh -c 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us
	a=$(cat /sys/fs/cgroup/cpuacct/cpuacct.usage)
	timeout 3 sh -c "while :; do :; done"
	b=$(cat /sys/fs/cgroup/cpuacct/cpuacct.usage)
	ms=$(((b - a) / 1000000))
	if [ $ms -le 1800 ]; then echo capped; else echo "not capped: $ms ms"; fi' 2>/dev/null
# -it: a pseudo-terminal driven through script(1), input typed in
for rt in runc "$CORRAL_RUNTIME"; do
	(sleep 3; printf 'hello\n'; sleep 1; printf 'exit 5\n') |
		timeout 120 script -qec "$PM run --rm -it --runtime $rt --network none $IMG sh -c 'tty; echo size:\$(stty size); read x; echo got:\$x; sh'" /dev/null |
		tr -d '\r' | grep -E '^(/dev/pts|got:|size:)' >"$TMP/it.$(basename "$rt")"
	echo "status $?" >>"$TMP/it.$(basename "$rt")"
done
if cmp -s "$TMP/it.runc" "$TMP/it.corral-runc" && grep -q '^got:hello$' "$TMP/it.runc"; then ok; else
	bad "-it: runc and corral-runc differ"
	diff "$TMP/it.runc" "$TMP/it.corral-runc" | head -n 10
fi
# -p: a web server in the container, reached from the host (needs podman's
# default network; skipped where the host cannot give it one)
port=$((20000 + $$ % 20000))
for rt in runc "$CORRAL_RUNTIME"; do
	n=$(basename "$rt")
	port=$((port + 1))
	rm -f "$TMP/web.$n"
	if $PM run -d --name "web-$n" --runtime "$rt" -p "127.0.0.1:$port:80" $IMG httpd -f -p 80 -h /www \
		>/dev/null 2>"$TMP/web.err"; then
		for i in 1 2 3 4 5 6 7 8 9 10; do
			curl -s -m 5 "http://127.0.0.1:$port/index.html" >"$TMP/web.$n" 2>/dev/null && break
			sleep 1
		done
		$PM rm -f -t 0 "web-$n" >/dev/null 2>&1
	fi
done
if [ ! -e "$TMP/web.runc" ]; then
	skip 1 "podman cannot publish a port here: $(head -c 200 "$TMP/web.err")"
elif cmp -s "$TMP/web.runc" "$TMP/web.corral-runc" && grep -q '^hello from the container$' "$TMP/web.runc"; then ok; else
	bad "-p: the container's web server answered differently (runc: $(cat "$TMP/web.runc"), corral-runc: $(cat "$TMP/web.corral-runc" 2>/dev/null))"
fi
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
# podman's 127 and message for a program that is not there come from the
# runtime's own error (runc's "exec failed: ... executable file not found")
both "exec of a missing program" exec c-NAME nosuchprogram
both "exec -t" exec -t c-NAME sh -c 'tty; test -t 0 && echo stdin-tty'
for rt in runc "$CORRAL_RUNTIME"; do
	$PM exec -d "c-$(basename "$rt")" sh -c 'echo detached >/tmp/d' >/dev/null 2>"$TMP/e" ||
		bad "$rt: exec -d: $(cat "$TMP/e")"
done
sleep 1
both "exec after exec -d" exec c-NAME cat /tmp/d
grep -qx detached "$TMP/out.corral-runc" && ok || bad "exec -d did not run: $(cat "$TMP/out.corral-runc")"
both "top" top c-NAME user args comm
both "inspect running" inspect -f '{{.State.Status}} {{.State.Running}}' c-NAME
both "ps" ps --format '{{.Names}}' --filter name=c-NAME --filter status=running
both "pause" pause c-NAME
both "inspect paused" inspect -f '{{.State.Status}}' c-NAME
both "unpause" unpause c-NAME
both "stop ignoring TERM" stop -t 2 c-NAME
both "inspect stopped" inspect -f '{{.State.Status}} {{.State.ExitCode}}' c-NAME
both "logs" logs c-NAME
both "rm" rm c-NAME

# Debian's programs on the debootstrap image (lib.sh's debian_image)
if DEB=$(debian_image) && $PM import -q "$DEB" localhost/corral-debian:test >/dev/null 2>"$TMP/e"; then
	DIMG=localhost/corral-debian:test
	both "debian: dpkg -l" run --rm $R $DIMG sh -c 'dpkg -l | tail -n +6 | wc -l; dpkg -s coreutils | grep ^Status'
	both "debian: perl" run --rm $R $DIMG perl -e 'my %h = map { $_ => $_ * $_ } 1..100; my $s = 0; $s += $_ for values %h; print "$s\n"'
	both "debian: bash, coreutils, apt" run --rm $R $DIMG bash -c 'echo $BASH_VERSION; seq 1 1000 | sort -rn | head -3; apt-get --version | head -1; cat /etc/debian_version'
	both "debian: users" run --rm $R -u nobody $DIMG sh -c 'id; getent passwd root'
	# Debian's python3: threads, a C module, a child process of its own
	both "debian: python3" run --rm $R $DIMG python3 -c 'import hashlib, subprocess, threading
r = []
ts = [threading.Thread(target=lambda i=i: r.append(sum(range(i * 100000)))) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(sorted(r))
print(hashlib.sha256(b"corral" * 1000).hexdigest())
print(subprocess.run(["sh", "-c", "echo child $((3*4))"], capture_output=True, text=True).stdout, end="")'
	for rt in runc "$CORRAL_RUNTIME"; do
		$PM run -d --name "deb-c-$(basename "$rt")" --runtime "$rt" --network none $DIMG sleep 60 \
			>/dev/null 2>"$TMP/e" || bad "$rt: run -d of the Debian image: $(cat "$TMP/e")"
	done
	both "debian: exec of dpkg-query, perl" exec deb-c-NAME sh -c 'dpkg-query -W -f "\${Package}\n" perl-base; perl -e "print 6 * 7, qq(\n)"'
	both "debian: rm -f" rm -f -t 0 deb-c-NAME
else
	skip 7 "no Debian image: $(tail -n 1 "$TMP/deb.log" 2>/dev/null) $(head -c 200 "$TMP/e" 2>/dev/null)"
fi
report
