# Helpers shared by the OCI runtime tests (sourced): a busybox root, bundles
# (bundle.py), a state directory, and running a container to its end
# (reap.py). The counters and report come from tests/process/lib.sh.
. "$(dirname "$0")/../process/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
RUNC=$BUILD/corral-runc
STATE=$TMP/state
mkdir -p "$STATE"

# Every container still in STATE is removed at the end, whatever failed.
cleanup_containers() {
	for d in "$STATE"/*/; do
		[ -d "$d" ] && "$RUNC" --root "$STATE" delete --force "$(basename "$d")" >/dev/null 2>&1
	done
	# the default cgroup parent, when no container is left in it
	for d in /sys/fs/cgroup/*/corral-runc /sys/fs/cgroup/*/*/corral-runc /sys/fs/cgroup/*/*/*/corral-runc \
		/sys/fs/cgroup/*/*/*/*/corral-runc; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
}
trap 'cleanup_containers; rm -rf "$TMP"' EXIT

# need_root N: skip N checks unless root (namespaces, mounts, cgroups)
need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		skip "$1" "not root: containers need namespaces, mounts and cgroups"
		report
		exit $?
	fi
}

# A guest's execve starts corral-runc again inside the container's root, so
# only a static one can run containers to the end; the sanitizer build's is
# dynamic. need_static N: skip N checks with it.
need_static() {
	if readelf -l "$RUNC" 2>/dev/null | grep -q INTERP; then
		skip "$1" "corral-runc is dynamically linked (the sanitizer build): containers need the static one"
		return 1
	fi
	return 0
}

# rootfs DIR: a busybox root (static, so nothing else is needed)
rootfs() {
	mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/etc" "$1/home/user"
	cp /bin/busybox "$1/bin/busybox"
	for a in sh echo cat ls id pwd hostname env sleep true false mount touch ps kill mkdir grep head readlink stat test wc tty unshare stty; do
		ln -sf busybox "$1/bin/$a"
	done
	echo "root:x:0:0:root:/root:/bin/sh" >"$1/etc/passwd"
	chmod 1777 "$1/tmp"
}

# bundle NAME [PYTHON...]: $TMP/NAME with a busybox root and config.json
bundle() {
	b=$TMP/$1
	shift
	mkdir -p "$b"
	[ -d "$b/rootfs" ] || rootfs "$b/rootfs"
	python3 "$HERE/bundle.py" "$b" "$@"
	echo "$b"
}

# run BUNDLE ID [--console]: create, start and wait; stdout: how it ended
run() {
	timeout 60 python3 "$HERE/reap.py" "$RUNC" "$STATE" "$@"
}

# expect NAME WANT GOT: the strings are equal
expect() {
	if [ "$2" = "$3" ]; then ok; else bad "$1: wanted '$2', got '$3'"; fi
}

# state_of ID: the status field of `state`
state_of() {
	"$RUNC" --root "$STATE" state "$1" 2>/dev/null | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p'
}

# nothing_left ID: no state directory and no cgroup directory stay behind
nothing_left() {
	if [ -e "$STATE/$1" ]; then
		bad "$1: state directory left behind"
	elif ls -d /sys/fs/cgroup/*/corral-runc/"$1" /sys/fs/cgroup/*/*/corral-runc/"$1" \
		/sys/fs/cgroup/*/*/*/corral-runc/"$1" >/dev/null 2>&1; then
		bad "$1: cgroup directory left behind"
	else
		ok
	fi
}

# debian_image: prints the path of a Debian root (debootstrap minbase with
# python3-minimal) as a tar, built once and kept in the cache; nothing and
# status 1 when it cannot be made here (no debootstrap, or the Debian
# archive is out of reach; the reason is in $TMP/deb.log)
debian_image() {
	deb=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/debian-minbase-python3.tar
	if [ ! -s "$deb" ]; then
		if ! command -v debootstrap >/dev/null 2>&1; then
			echo "debootstrap is not installed" >"$TMP/deb.log"
			return 1
		fi
		mkdir -p "$(dirname "$deb")" "$TMP/deb"
		if timeout 900 debootstrap --variant=minbase --include=python3-minimal bookworm "$TMP/deb" \
			http://deb.debian.org/debian >"$TMP/deb.log" 2>&1; then
			tar -C "$TMP/deb" -cf "$deb.tmp.$$" . && mv "$deb.tmp.$$" "$deb"
		fi
		rm -rf "$TMP/deb" "$deb.tmp.$$"
	fi
	[ -s "$deb" ] && echo "$deb"
}
