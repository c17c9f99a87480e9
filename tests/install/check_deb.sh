#!/bin/sh
# make check-deb: installs the package `make deb` built (DIR/corral_*.deb)
# with apt-get in a clean Debian 12 root (a debootstrap of bookworm from
# this machine's apt mirror, cached as a tarball in ~/.cache/corral), runs
# corral there, then purges it and checks that nothing is left. Needs root
# and debootstrap; lintian, when installed, must find no errors.
# Last line: "N passed, N failed".
set -u
dir=${1:?usage: check_deb.sh DIR-WITH-DEB}
passed=0
failed=0

ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

die() {
	echo "check-deb: $*" >&2
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}

deb=$(ls "$dir"/corral_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "no corral_*.deb in $dir (make deb builds it)"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (tools/setup.sh --deb installs it)"

# lintian: no errors (its warnings are printed, and accepted).
if command -v lintian >/dev/null 2>&1; then
	# The .changes names the package, its debug symbols and the buildinfo.
	changes=$(ls "$dir"/corral_*.changes 2>/dev/null | head -n 1)
	if lintian --fail-on error "${changes:-$deb}" >"$dir/lintian.log" 2>&1; then
		ok "lintian: no errors ($(grep -c '^W:' "$dir/lintian.log") warnings)"
	else
		fail "lintian found errors:"
		grep '^E:' "$dir/lintian.log" | sed 's/^/    /'
	fi
	grep '^[WE]:' "$dir/lintian.log" | sed 's/^/    lintian: /'
else
	echo "skip lintian: not installed (tools/setup.sh --deb installs it)"
fi

# The Debian mirror apt uses here (deb822 or one-line sources).
mirror=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
	sed -n 's/^URIs: *//p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' | grep -v security | grep '/debian/\{0,1\}$' | head -n 1)}
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

cache=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral
tarball=$cache/bookworm-minbase.tar
if [ ! -s "$tarball" ]; then
	echo "check-deb: building a clean bookworm root from $mirror (once, cached in $tarball)"
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/bookworm.XXXXXX")
	if ! debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
		rm -rf "$tmp"
		die "debootstrap failed: see $cache/debootstrap.log"
	fi
	tar --numeric-owner -C "$tmp" -cf "$tarball.new" . && mv "$tarball.new" "$tarball"
	rm -rf "$tmp"
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/check_deb.XXXXXX")
cleanup() {
	umount "$root/proc" 2>/dev/null
	umount "$root/dev/pts" 2>/dev/null
	umount "$root/dev" 2>/dev/null
	rm -rf "$root"
}
trap cleanup EXIT INT TERM
tar --numeric-owner -C "$root" -xf "$tarball" || die "cannot unpack $tarball"
# The root's own folder comes from mktemp: others (apt's _apt) must enter it.
chmod 755 "$root"
mount -t proc proc "$root/proc" || die "cannot mount /proc in the root"
mount --bind /dev "$root/dev" && mount --bind /dev/pts "$root/dev/pts" || die "cannot bind /dev in the root"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
cp "$deb" "$root/tmp/"
name=$(basename "$deb")

in_root() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# Every file of the root but the package manager's own records and caches.
snapshot() {
	(cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./tmp -o -path ./var/lib/dpkg \
		-o -path ./var/lib/apt -o -path ./var/cache -o -path ./var/log \) -prune -o -print | sort)
}

in_root apt-get update -qq >"$root/tmp/update.log" 2>&1 || die "apt-get update in the root failed: $(tail -n 3 "$root/tmp/update.log")"
snapshot >"$root/tmp/before"

if in_root sh -c "cd /tmp && apt-get install -y -q ./$name" >"$root/tmp/install.log" 2>&1; then
	ok "apt-get install ./$name in a clean bookworm root"
else
	fail "apt-get install ./$name:"
	tail -n 15 "$root/tmp/install.log" | sed 's/^/    /'
fi
if grep -qiE '^(W|E):|warning' "$root/tmp/install.log"; then
	fail "apt-get install printed warnings:"
	grep -iE '^(W|E):|warning' "$root/tmp/install.log" | sed 's/^/    /'
else
	ok "apt-get install printed no warnings or errors"
fi

v=$(in_root corral --version 2>&1)
case $v in
"corral "[0-9]*) ok "corral --version: $v" ;;
*) fail "corral --version: $v" ;;
esac
if in_root corral exec /bin/true; then
	ok "corral exec /bin/true"
else
	fail "corral exec /bin/true (status $?)"
fi
out=$(in_root corral exec /bin/sh -c 'echo hi from $(uname -m)' 2>&1)
if [ "$out" = "hi from x86_64" ]; then
	ok "corral exec /bin/sh: $out"
else
	fail "corral exec /bin/sh: $out"
fi
if in_root sh -c 'test -x /usr/bin/corral-mkguest && test -s /usr/share/man/man1/corral-run.1.gz &&
	test -s /usr/share/bash-completion/completions/corral'; then
	ok "the package holds corral-mkguest, the man pages and the completion"
else
	fail "corral-mkguest, a man page or the completion missing"
fi

if in_root apt-get purge -y -q corral >"$root/tmp/purge.log" 2>&1 &&
	in_root apt-get autoremove --purge -y -q >>"$root/tmp/purge.log" 2>&1; then
	ok "apt-get purge corral (and the dependencies it pulled in)"
else
	fail "apt-get purge corral:"
	tail -n 15 "$root/tmp/purge.log" | sed 's/^/    /'
fi
if in_root dpkg-query -W corral >/dev/null 2>&1; then
	fail "dpkg still knows corral: $(in_root dpkg-query -W -f='${Status}' corral)"
else
	ok "dpkg no longer knows corral"
fi
snapshot >"$root/tmp/after"
if cmp -s "$root/tmp/before" "$root/tmp/after"; then
	ok "after the purge the root holds the same files as before the install"
else
	fail "files differ after the purge (< before only, > after only):"
	diff "$root/tmp/before" "$root/tmp/after" | grep '^[<>]' | head -n 20 | sed 's/^/    /'
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
