#!/bin/sh
# A guest reboot under corral run: Debian's kernel with two CPUs, a virtio
# disk and virtio-rng reboots itself (reboot -f) once; the VM resets the
# machine in place (RAM, devices, PCI functions) and boots again, and the
# second boot finds on the disk what the first wrote. Last line:
# "N passed, N failed".
NAME=t_reboot
. "$(dirname "$0")/../boot/lib.sh"

need_kit

work=$(mktemp -d "${TMPDIR:-/tmp}/t_reboot.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

ov=$work/overlay
mkdir -p "$ov"
# The guest's script rides in an overlay initramfs; the kit's /init loads
# the virtio modules and runs it (the words after --).
cat >"$ov/t_reboot.sh" <<'EOF'
n=$(dd if=/dev/vda bs=1 count=1 2>/dev/null)
echo "T_REBOOT boot $n cpus $(nproc) hwrng $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
if [ "$n" = "0" ]; then
	printf 1 | dd of=/dev/vda bs=1 count=1 conv=notrunc,fsync 2>/dev/null
	echo "T_REBOOT rebooting"
	reboot -f
fi
echo "T_REBOOT second boot"
EOF
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"
printf 0 >"$work/disk.img"
truncate -s 1M "$work/disk.img"

t0=$(date +%s)
timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
	--append "console=ttyS0 quiet -- sh /t_reboot.sh" --mem 256M --cpus 2 --disk "$work/disk.img,format=raw" --rng \
	</dev/null >"$work/out" 2>&1
rc=$?
echo "  corral run: exit $rc in $(($(date +%s) - t0)) s"
tr -d '\r' <"$work/out" >"$work/log"

[ "$rc" -eq 0 ] && ok "corral exits 0 after the second boot powers off" || fail "corral exit $rc"
first=$(grep -a "T_REBOOT boot 0" "$work/log" | head -n 1)
second=$(grep -a "T_REBOOT boot 1" "$work/log" | head -n 1)
[ -n "$first" ] && ok "first boot: $first" || fail "no first boot"
grep -aq "T_REBOOT rebooting" "$work/log" && ok "the guest rebooted" || fail "no reboot"
[ -n "$second" ] && ok "second boot found the first boot's write: $second" || fail "no second boot that read the disk"
[ "$(echo "$second" | sed 's/.*cpus \([0-9]*\).*/\1/')" = 2 ] && ok "second boot: both CPUs up" ||
	fail "second boot: not both CPUs up"
echo "$second" | grep -q "virtio_rng" && ok "second boot: virtio-rng probed again" ||
	fail "second boot: no virtio-rng"
grep -aq "T_REBOOT second boot" "$work/log" && ok "second boot ran to the end" || fail "second boot did not finish"
[ "$(head -c 1 "$work/disk.img")" = 1 ] && ok "the disk holds the write" || fail "the disk lost the write"
if [ "$failed" -ne 0 ]; then
	echo "  --- guest console (last 30 lines) ---"
	tail -n 30 "$work/log" | sed 's/^/  | /'
fi
report
