#!/bin/sh
# Builds corral's default guest from Debian packages: the stock kernel that
# linux-image-amd64 depends on, and a busybox-static initramfs.
#
# Usage: tools/mkguest.sh [--update]
#   The guest goes to $CORRAL_GUEST_DIR, else $XDG_CACHE_HOME/corral/guest,
#   else ~/.cache/corral/guest (outside the source tree):
#     vmlinuz      the kernel (a bzImage), as Debian ships it
#     vmlinux      its decompressed ELF image (for QEMU's PVH entry in bench/)
#     initrd.img   gzip-compressed newc cpio: busybox, /init, a few modules
#     modules/     the kernel package's /lib/modules tree
#     version      the kernel release (uname -r)
#   Idempotent: an existing kernel is kept unless --update is given; the
#   initramfs is rebuilt when this script changed.
#
# The guest's /init mounts /proc, /sys, /dev (devtmpfs), loads the modules in
# GUEST_MODULES (and their dependencies) if the kernel has them as modules,
# prints what it is (uname -a, CPUs online, memory), then runs a command and
# powers off. The command is, in this order of preference:
#   - the words after `--` on the kernel command line (the kernel hands them
#     to /init as arguments), e.g. --append "console=ttyS0 -- uname -a";
#   - corral.cmd=WORD on the kernel command line (one word, no spaces);
#   - otherwise an interactive shell on the console.
# corral.modules=none on the command line skips module loading.
# root=DEVICE (e.g. root=/dev/vda, with rootfstype=, ro/rw and init= as the
# kernel knows them) makes /init load the file-system modules too, mount
# DEVICE and hand over to its init (systemd on the image tools/mkrootfs.sh
# builds) instead of running a command.
set -eu

GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
# Modules the guest loads at boot when present (virtio devices over PCI).
GUEST_MODULES="virtio_pci virtio_blk virtio_net virtio_console virtio_rng"
# Loaded only when the command line names a root= device.
ROOT_MODULES="crc32c_generic ext4"
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() {
	echo "mkguest: $*" >&2
	exit 1
}

update=0
case "${1:-}" in
--update) update=1 ;;
"") ;;
*) die "usage: tools/mkguest.sh [--update]" ;;
esac

for tool in apt-get dpkg-deb cpio gzip; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' not found: this kit needs a Debian system with apt (packages apt, dpkg, cpio, gzip)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install the busybox-static package"
if LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$BUSYBOX is dynamically linked: install the busybox-static package"
fi

mkdir -p "$GUEST_DIR"
GUEST_DIR=$(cd "$GUEST_DIR" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mkguest.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# apt-get download as root warns when _apt cannot write to the directory:
# give it one it can write to.
chmod 755 "$work"

fetch() { # package -> downloads its .deb into $work/deb
	mkdir -p "$work/deb"
	chmod 777 "$work/deb"
	if ! (cd "$work/deb" && apt-get download "$1" >"$work/apt.log" 2>&1); then
		if [ "$(id -u)" -eq 0 ]; then
			# An empty or stale package list: refresh it once and retry.
			apt-get update -qq >>"$work/apt.log" 2>&1 || true
			(cd "$work/deb" && apt-get download "$1" >>"$work/apt.log" 2>&1) && return 0
		fi
		sed 's/^/  /' "$work/apt.log" >&2
		die "cannot download '$1' with apt-get (no network or no Debian sources?)"
	fi
}

if [ "$update" -eq 1 ] || [ ! -s "$GUEST_DIR/vmlinuz" ] || [ ! -s "$GUEST_DIR/version" ] ||
	[ ! -d "$GUEST_DIR/modules" ]; then
	echo "mkguest: finding the kernel that linux-image-amd64 depends on"
	fetch linux-image-amd64
	meta=$(ls "$work"/deb/linux-image-amd64_*.deb)
	pkg=$(dpkg-deb -f "$meta" Depends | tr ',|' '\n\n' | sed 's/^ *//; s/ .*//' |
		grep -E '^linux-image-[0-9].*-amd64$' | head -n 1)
	[ -n "$pkg" ] || die "linux-image-amd64 depends on no linux-image-*-amd64 package"
	echo "mkguest: downloading $pkg"
	fetch "$pkg"
	deb=$(ls "$work"/deb/"$pkg"_*.deb)
	mkdir -p "$work/root"
	dpkg-deb -x "$deb" "$work/root"
	release=${pkg#linux-image-}
	[ -s "$work/root/boot/vmlinuz-$release" ] || die "$pkg has no /boot/vmlinuz-$release"
	rm -rf "$GUEST_DIR/modules.new"
	mkdir -p "$GUEST_DIR/modules.new"
	cp -a "$work/root/lib/modules/$release" "$GUEST_DIR/modules.new/"
	rm -rf "$GUEST_DIR/modules"
	mv "$GUEST_DIR/modules.new" "$GUEST_DIR/modules"
	cp "$work/root/boot/vmlinuz-$release" "$GUEST_DIR/vmlinuz.new"
	mv "$GUEST_DIR/vmlinuz.new" "$GUEST_DIR/vmlinuz"
	[ -s "$work/root/boot/config-$release" ] && cp "$work/root/boot/config-$release" "$GUEST_DIR/config"
	rm -f "$GUEST_DIR/vmlinux" "$GUEST_DIR/initrd.img" "$GUEST_DIR/stamp"
	echo "$release" >"$GUEST_DIR/version"
fi
release=$(cat "$GUEST_DIR/version")

# The decompressed kernel (ELF) for QEMU's PVH entry in bench/boot.sh: the
# payload is the first compressed stream in the bzImage; we find it by magic.
if [ ! -s "$GUEST_DIR/vmlinux" ]; then
	if command -v python3 >/dev/null 2>&1; then
		python3 - "$GUEST_DIR/vmlinuz" "$GUEST_DIR/vmlinux.new" <<'PY' || true
import sys, struct, lzma, zlib
data = open(sys.argv[1], "rb").read()
setup_sects = data[0x1f1] or 4
off = (setup_sects + 1) * 512 + struct.unpack_from("<I", data, 0x248)[0]
n = struct.unpack_from("<I", data, 0x24c)[0]
p = data[off:off + n]
if p[:6] == b"\xfd7zXZ\x00":
    out = lzma.LZMADecompressor().decompress(p)
elif p[:2] == b"\x1f\x8b":
    out = zlib.decompressobj(31).decompress(p)
else:
    sys.exit("mkguest: vmlinux: payload format not handled here (%r)" % p[:4])
open(sys.argv[2], "wb").write(out)
PY
		[ -s "$GUEST_DIR/vmlinux.new" ] && mv "$GUEST_DIR/vmlinux.new" "$GUEST_DIR/vmlinux"
	fi
fi

# The initramfs is rebuilt when this script (which holds /init) changed.
stamp=$(cat "$0" "$BUSYBOX" | sha256sum | cut -c1-16)
if [ -s "$GUEST_DIR/initrd.img" ] && [ "$(cat "$GUEST_DIR/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "mkguest: up to date"
else
	echo "mkguest: building the initramfs"
	ir=$work/initramfs
	mkdir -p "$ir/bin" "$ir/sbin" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/tmp" "$ir/etc" \
		"$ir/root" "$ir/lib/modules/$release"
	cp "$BUSYBOX" "$ir/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[ "$a" = busybox ] || ln -s busybox "$ir/bin/$a"
	done
	# Modules and what they depend on, dependencies first. The package has
	# no modules.dep (depmod makes it at install time), so read each
	# module's "depends=" from its .modinfo strings.
	mdir=$GUEST_DIR/modules/$release
	: >"$ir/etc/modules"
	list=$ir/etc/modules
	add_module() { # name (- or _) -> copies it after its dependencies
		f=$(find "$mdir/kernel" -name "$(echo "$1" | tr '_' '-').ko*" -o \
			-name "$(echo "$1" | tr '-' '_').ko*" | head -n 1)
		[ -n "$f" ] || return 0 # built in, or not in this kernel
		rel=${f#"$mdir"/}
		grep -qxF "$rel" "$ir/etc/modules" "$ir/etc/modules.root" 2>/dev/null && return 0
		case "$f" in
		*.xz) deps=$(xz -dc "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1) ;;
		*.zst) deps=$(zstd -dc "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1) ;;
		*) deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n 1) ;;
		esac
		for d in $(echo "$deps" | tr ',' ' '); do
			add_module "$d"
		done
		# the recursion reuses f and rel: recompute them
		f=$(find "$mdir/kernel" -name "$(echo "$1" | tr '_' '-').ko*" -o \
			-name "$(echo "$1" | tr '-' '_').ko*" | head -n 1)
		rel=${f#"$mdir"/}
		grep -qxF "$rel" "$ir/etc/modules" "$ir/etc/modules.root" 2>/dev/null && return 0
		mkdir -p "$ir/lib/modules/$release/$(dirname "$rel")"
		cp "$f" "$ir/lib/modules/$release/$rel"
		echo "$rel" >>"$list"
	}
	for m in $GUEST_MODULES; do
		add_module "$m"
	done
	list=$ir/etc/modules.root
	: >"$list"
	for m in $ROOT_MODULES; do
		add_module "$m"
	done
	cat >"$ir/init" <<'EOF'
#!/bin/busybox sh
# corral guest kit /init (built by tools/mkguest.sh)
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
echo "corral-guest: init started"
cmdline=$(cat /proc/cmdline)
root= rootfstype=ext4 rootflags= rootmode=ro rootinit=/sbin/init
for w in $cmdline; do
	case "$w" in
	root=*) root=${w#root=} ;;
	rootfstype=*) rootfstype=${w#rootfstype=} ;;
	rootflags=*) rootflags=${w#rootflags=} ;;
	init=*) rootinit=${w#init=} ;;
	ro) rootmode=ro ;;
	rw) rootmode=rw ;;
	--) break ;;
	esac
done
load_modules() { # list file
	rel=$(uname -r)
	while read -r m; do
		[ -n "$m" ] || continue
		case "$m" in
		*.xz) xz -dc "/lib/modules/$rel/$m" >/tmp/m.ko && insmod /tmp/m.ko ;;
		*.zst) zstd -dc "/lib/modules/$rel/$m" >/tmp/m.ko 2>/dev/null && insmod /tmp/m.ko ;;
		*) insmod "/lib/modules/$rel/$m" ;;
		esac 2>/dev/null || echo "corral-guest: could not load $m"
	done <"$1"
	rm -f /tmp/m.ko
}
case " $cmdline " in
*" corral.modules=none "*) ;;
*)
	load_modules /etc/modules
	[ -z "$root" ] || load_modules /etc/modules.root
	;;
esac
if [ -n "$root" ]; then
	# Hand over to the init of the root file system on a disk.
	n=0
	while [ ! -b "$root" ] && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	mkdir -p /newroot
	if mount -t "$rootfstype" -o "$rootmode${rootflags:+,$rootflags}" "$root" /newroot; then
		echo "corral-guest: switching to $root ($rootfstype, $rootmode), init $rootinit"
		umount /dev/pts 2>/dev/null
		mount --move /dev /newroot/dev 2>/dev/null || umount /dev
		umount /sys /proc
		exec switch_root /newroot "$rootinit"
	fi
	echo "corral-guest: cannot mount root=$root ($rootfstype); a shell instead"
	setsid cttyhack sh -l
	poweroff -f
fi
echo "corral-guest: $(uname -a)"
echo "corral-guest: $(nproc) CPUs online ($(cat /sys/devices/system/cpu/online 2>/dev/null))"
echo "corral-guest: $(awk '/MemTotal/ { printf "%d MiB memory", $2 / 1024 }' /proc/meminfo)"
cmd="$*"
if [ -z "$cmd" ]; then
	for w in $cmdline; do
		case "$w" in corral.cmd=*) cmd=${w#corral.cmd=} ;; esac
	done
fi
if [ -n "$cmd" ]; then
	sh -c "$cmd"
	echo "corral-guest: command exited with status $?"
else
	echo "corral-guest: interactive shell; 'exit' powers off"
	setsid cttyhack sh -l
fi
sync
poweroff -f
EOF
	chmod 755 "$ir/init"
	(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >"$GUEST_DIR/initrd.img.new"
	mv "$GUEST_DIR/initrd.img.new" "$GUEST_DIR/initrd.img"
	echo "$stamp" >"$GUEST_DIR/stamp"
fi

echo "mkguest: kernel  $GUEST_DIR/vmlinuz ($release)"
echo "mkguest: initrd  $GUEST_DIR/initrd.img"
[ -s "$GUEST_DIR/vmlinux" ] && echo "mkguest: vmlinux $GUEST_DIR/vmlinux"
echo "mkguest: modules $GUEST_DIR/modules/$release"
exit 0
