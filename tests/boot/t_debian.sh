#!/bin/sh
# A full Debian 12 boots from a virtio disk under systemd on the emu
# engine: tools/mkrootfs.sh's image, the guest kit's kernel and initramfs.
# The guest writes a file once multi-user is reached, syncs and powers off;
# the file must then be in the image: a raw copy, and a qcow2 overlay on
# the raw base (base unchanged, overlay passing `qemu-img check`).
# Last line: "N passed, N failed".
NAME=t_debian
. "$(dirname "$0")/lib.sh"

# The kit and the image: only a missing apt/debootstrap/network or root may skip.
need_kit
if ! out=$(sh "$ROOT/tools/mkrootfs.sh" 2>&1); then
	echo "$out" | sed 's/^/  /'
	echo "$out" | grep -qE "needs root|not found: install|debootstrap failed" && skip "the Debian image cannot be built here"
	fail "tools/mkrootfs.sh"
	report
	exit 1
fi
command -v debugfs >/dev/null 2>&1 || skip "debugfs (e2fsprogs) not installed"
command -v qemu-img >/dev/null 2>&1 || skip "qemu-img (qemu-utils) not installed"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/t_debian.XXXXXX")
trap '[ -n "${T_DEBIAN_KEEP:-}" ] || rm -rf "$work"' EXIT INT TERM

# boot NAME DISK TOKEN: boots DISK, has the guest write TOKEN to /root/marker.
boot() {
	cmd="echo $3 >/root/marker && sync && echo marker-written"
	b64=$(printf %s "$cmd" | base64 -w0)
	timeout "$TIMEOUT" "$CORRAL" run --mem 1G --serial "file:$work/$1.log" --no-reboot --disk "$2" \
		--append "console=ttyS0 root=/dev/vda rw corral.cmdb64=$b64" </dev/null >"$work/$1.out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$1: corral exited 0 after the guest powered off"
	else
		fail "$1: corral exited $rc"
		tail -n 30 "$work/$1.log" "$work/$1.out" | sed 's/^/    /'
	fi
	if grep -q "Reached target.*Multi-User System" "$work/$1.log"; then
		ok "$1: systemd reached multi-user.target"
	else
		fail "$1: systemd did not reach multi-user.target"
	fi
	# not anchored: the autologin shell on the same console may print its
	# prompt on the line first
	if grep -q "marker-written" "$work/$1.log"; then
		ok "$1: the command ran in the guest"
	else
		fail "$1: the command did not run"
	fi
}

# marker IMAGE: the contents of /root/marker in a raw ext4 image
marker() {
	debugfs -R "cat /root/marker" "$1" 2>/dev/null
}

# 1. a raw copy of the image
cp --sparse=always "$GUEST_DIR/debian.img" "$work/raw.img"
token=raw-$$-$(date +%s)
boot raw "$work/raw.img" "$token"
if [ "$(marker "$work/raw.img")" = "$token" ]; then
	ok "raw: the file written in the guest is in the image"
else
	fail "raw: /root/marker is '$(marker "$work/raw.img")', wanted '$token'"
fi

# 2. a qcow2 overlay on the raw base
base=$work/base.img
cp --sparse=always "$GUEST_DIR/debian.img" "$base"
sum_before=$(sha256sum <"$base")
qemu-img create -q -f qcow2 -b "$base" -F raw "$work/overlay.qcow2"
token=qcow2-$$-$(date +%s)
boot qcow2 "$work/overlay.qcow2" "$token"
if [ "$(sha256sum <"$base")" = "$sum_before" ]; then
	ok "qcow2: the raw base is unchanged"
else
	fail "qcow2: the raw base changed"
fi
if qemu-img check -q "$work/overlay.qcow2" >"$work/check.out" 2>&1; then
	ok "qcow2: the overlay passes qemu-img check"
else
	fail "qcow2: qemu-img check: $(head -n 5 "$work/check.out")"
fi
qemu-img convert -O raw "$work/overlay.qcow2" "$work/flat.img"
if [ "$(marker "$work/flat.img")" = "$token" ]; then
	ok "qcow2: the file written in the guest is in the overlay"
else
	fail "qcow2: /root/marker is '$(marker "$work/flat.img")', wanted '$token'"
fi

report
