#!/bin/sh
# Builds a Debian 12 root file system image for corral's guest kit: a
# minimal debootstrap with systemd, the kit kernel's modules, a serial
# console with root logged in, and a service that runs a command given on
# the kernel command line once multi-user is reached, then powers off.
#
# Usage: tools/mkrootfs.sh [--update] [--size SIZE]
#   Writes $GUEST_DIR/debian.img (raw ext4, default size 2G, sparse), next to
#   the kit of tools/mkguest.sh (run first: the image takes its modules).
#   Needs root (debootstrap), network access to the Debian archive, and
#   the packages debootstrap and e2fsprogs.
#
# Boot it with the kit's kernel and initramfs:
#   corral run --disk "$GUEST_DIR/debian.img" --append "console=ttyS0 root=/dev/vda rw"
# A command for the guest, run after multi-user.target, then power-off:
#   ... --append "console=ttyS0 root=/dev/vda rw corral.cmd=WORD"
#   ... --append "console=ttyS0 root=/dev/vda rw corral.cmdb64=$(printf %s "$cmd" | base64 -w0)"
set -eu

GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# What the image holds beyond debootstrap's minbase: an init system and
# device manager, module tools, and the few tools the tests use.
INCLUDE=systemd-sysv,udev,kmod,procps,iproute2,e2fsprogs,wget,netbase

die() {
	echo "mkrootfs: $*" >&2
	exit 1
}

update=0
size=2G
while [ $# -gt 0 ]; do
	case "$1" in
	--update) update=1 ;;
	--size)
		[ $# -ge 2 ] || die "--size needs a value"
		size=$2
		shift
		;;
	*) die "usage: tools/mkrootfs.sh [--update] [--size SIZE]" ;;
	esac
	shift
done

img=$GUEST_DIR/debian.img
stamp=$(sha256sum <"$0" | cut -c1-16)
if [ "$update" -eq 0 ] && [ -s "$img" ] && [ "$(cat "$img.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "mkrootfs: up to date: $img"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
for tool in debootstrap mkfs.ext4 chroot; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: install the packages debootstrap and e2fsprogs"
done
[ -s "$GUEST_DIR/version" ] || die "no guest kit in $GUEST_DIR: run tools/mkguest.sh first"
release=$(cat "$GUEST_DIR/version")

work=$(mktemp -d "${TMPDIR:-/var/tmp}/mkrootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/root

echo "mkrootfs: debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >"$work/log" 2>&1; then
	tail -n 20 "$work/log" >&2
	die "debootstrap failed (network? see above)"
fi

echo "mkrootfs: configuring"
echo corral >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcorral\n' >"$root/etc/hosts"
printf '/dev/vda\t/\text4\tdefaults\t0\t1\n' >"$root/etc/fstab"
chroot "$root" passwd -d root >/dev/null
# The kit kernel's modules, so udev can load drivers after the switch.
mkdir -p "$root/lib/modules"
cp -a "$GUEST_DIR/modules/$release" "$root/lib/modules/"
chroot "$root" depmod -a "$release"

# Root logged in on the serial console, as a disposable test VM expects.
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
# Periodic maintenance has no place in a short-lived VM.
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$t"
done

cat >"$root/usr/local/sbin/corral-cmd" <<'EOF'
#!/bin/sh
# Runs the command named by corral.cmd= or corral.cmdb64= (base64) on the
# kernel command line, on the console, then powers the VM off.
cmd=
for w in $(cat /proc/cmdline); do
	case "$w" in
	corral.cmd=*) cmd=${w#corral.cmd=} ;;
	corral.cmdb64=*) cmd=$(echo "${w#corral.cmdb64=}" | base64 -d) ;;
	esac
done
echo "corral-guest: $(systemctl is-system-running 2>&1); running the command" >/dev/console
sh -c "$cmd" </dev/null >/dev/console 2>&1
echo "corral-guest: command exited with status $?" >/dev/console
sync
systemctl poweroff
EOF
chmod 755 "$root/usr/local/sbin/corral-cmd"
cat >"$root/etc/systemd/system/corral-cmd.service" <<'EOF'
[Unit]
Description=Run the command from the kernel command line, then power off
After=multi-user.target
ConditionKernelCommandLine=|corral.cmd
ConditionKernelCommandLine=|corral.cmdb64

[Service]
Type=idle
ExecStart=/usr/local/sbin/corral-cmd

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/corral-cmd.service "$root/etc/systemd/system/multi-user.target.wants/corral-cmd.service"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

echo "mkrootfs: making a $size ext4 image"
rm -f "$img.new"
truncate -s "$size" "$img.new"
mkfs.ext4 -q -F -L corral-root -d "$root" "$img.new" || die "mkfs.ext4 -d failed"
mv "$img.new" "$img"
echo "$stamp" >"$img.stamp"
echo "mkrootfs: $img ($(du -h "$img" | cut -f1) used of $size)"
