#!/bin/sh
# virtio over PCI with Debian's stock kernel (the guest kit of
# tools/mkguest.sh), in one boot: a read-write raw disk (vda, cache=none:
# O_DIRECT on the host) whose first MiB the guest hashes and into which it
# writes a pattern and discards a range, a read-only disk (vdb,
# cache=writeback) that refuses writes, both serials in sysfs,
# /dev/hwrng from --rng, hvc0 from --virtio-console (a line out, a line of
# piped host input in), and a clean PCI enumeration. The host then checks
# the image files. T_BOOT_ENGINE (default: corral's) the engine; the
# nested test machine (tests/kvm/t_nested.sh) runs this script on --engine
# kvm. Last line: "N passed, N failed".
NAME=t_blk
. "$(dirname "$0")/../boot/lib.sh"

check() { # description, got, want
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1: got '$2', want '$3'"
	fi
}

need_kit

work=$(mktemp -d "${TMPDIR:-/tmp}/t_blk.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# vda is cache=none (O_DIRECT) where the file system takes O_DIRECT; the
# nested test machine's rootfs (ramfs, tmpfs before 6.6) does not
cache_a=none
if ! dd if=/dev/zero of="$work/direct.probe" bs=4096 count=1 oflag=direct 2>/dev/null; then
	cache_a=writeback
	echo "  (vda with cache=writeback: the file system of $work refuses O_DIRECT)"
fi
rm -f "$work/direct.probe"

# ---- host side: usage errors need no boot ----
"$CORRAL" run --disk "$work/missing.img" >"$work/err" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && grep -q "missing.img" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]; then
	ok "a missing disk file: one error line naming it"
else
	fail "a missing disk file: exit $rc, '$(cat "$work/err")'"
fi
head -c 4096 /dev/zero >"$work/x.img"
# refused WHAT DISK-ARG PATTERN: corral run --disk DISK-ARG exits 2 with
# PATTERN in its message
refused() {
	"$CORRAL" run --disk "$2" >"$work/err" 2>&1
	rc=$?
	if [ "$rc" -eq 2 ] && grep -q "$3" "$work/err"; then
		ok "--disk with $1 is refused"
	else
		fail "--disk with $1: exit $rc, '$(cat "$work/err")'"
	fi
}
refused "a bad format" "$work/x.img,format=vmdk" "format 'vmdk'"
refused "an unknown option" "$work/x.img,bogus" "unknown option 'bogus'"
refused "a bad cache mode" "$work/x.img,cache=bogus" "cache 'bogus': must be none or writeback"
for c in none writeback; do
	"$CORRAL" run --disk "$work/x.img,cache=$c" --kernel "$work/missing-kernel" >"$work/err" 2>&1
	if [ "$c" = none ] && [ "$cache_a" != none ]; then
		if grep -q "x.img': cache=none needs a file system that supports O_DIRECT" "$work/err"; then
			ok "--disk cache=none where O_DIRECT is refused: a clear error"
		else
			fail "--disk cache=none where O_DIRECT is refused: '$(cat "$work/err")'"
		fi
	elif grep -q "missing-kernel" "$work/err" && ! grep -q "x.img" "$work/err"; then
		ok "--disk cache=$c is accepted (the run fails later, at the kernel)"
	else
		fail "--disk cache=$c: '$(cat "$work/err")'"
	fi
done
# cache=none where the file system refuses O_DIRECT: ramfs does (mounted in
# a user namespace of our own), so does tmpfs before Linux 6.6.
nodirect=
if unshare -rm true 2>/dev/null; then
	mkdir "$work/ramfs"
	unshare -rm sh -c 'mount -t ramfs none "$1" && head -c 4096 /dev/zero >"$1/x.img" &&
		"$2" run --disk "$1/x.img,cache=none"' - "$work/ramfs" "$CORRAL" >"$work/err" 2>&1
	nodirect=ramfs
elif [ -d /dev/shm ] && ! dd if=/dev/zero of=/dev/shm/t_blk.$$ bs=4096 count=1 oflag=direct 2>/dev/null; then
	rm -f /dev/shm/t_blk.$$
	head -c 4096 /dev/zero >/dev/shm/t_blk.$$.img
	"$CORRAL" run --disk "/dev/shm/t_blk.$$.img,cache=none" >"$work/err" 2>&1
	rm -f /dev/shm/t_blk.$$.img
	nodirect=tmpfs
fi
rm -f /dev/shm/t_blk.$$
if [ -z "$nodirect" ]; then
	echo "  (skipped: no file system here refuses O_DIRECT: no user namespaces for ramfs, and tmpfs takes it)"
elif grep -q "x.img': cache=none needs a file system that supports O_DIRECT" "$work/err" &&
	[ "$(wc -l <"$work/err")" -eq 1 ]; then
	ok "cache=none on $nodirect (no O_DIRECT): one clear error line"
else
	fail "cache=none on $nodirect: '$(cat "$work/err")'"
fi

# ---- the disks ----
head -c $((4 << 20)) /dev/urandom >"$work/a.img"
head -c $((1 << 20)) /dev/urandom >"$work/b.img"
want_a=$(head -c $((1 << 20)) "$work/a.img" | sha256sum | cut -d' ' -f1)
want_b=$(sha256sum <"$work/b.img" | cut -d' ' -f1)

# The guest's script rides in an overlay initramfs; the kit's /init loads
# the virtio modules and runs it (the words after --).
ov=$work/overlay
mkdir -p "$ov"
cat >"$ov/t_blk.sh" <<'EOF'
echo "T_BLK devs $(echo $(ls /sys/block | grep '^vd'))"
echo "T_BLK serial_a $(cat /sys/block/vda/serial)"
echo "T_BLK serial_b $(cat /sys/block/vdb/serial)"
echo "T_BLK ro $(cat /sys/block/vda/ro) $(cat /sys/block/vdb/ro)"
echo "T_BLK size_a $(cat /sys/block/vda/size)"
echo "T_BLK sha_a $(head -c 1048576 /dev/vda | sha256sum | cut -d' ' -f1)"
echo "T_BLK sha_b $(sha256sum </dev/vdb | cut -d' ' -f1)"
printf 'CORRAL-PATTERN-%s' 4242 | dd of=/dev/vda bs=512 seek=2048 conv=notrunc,fsync 2>/dev/null
echo "T_BLK write_a $?"
dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=notrunc,fsync 2>/dev/null
echo "T_BLK write_b $?"
blkdiscard -o 3145728 -l 65536 /dev/vda
echo "T_BLK discard $?"
# read back through the device, not the page cache
echo 3 >/proc/sys/vm/drop_caches
echo "T_BLK readback $(dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | head -c 19)"
echo "T_BLK rng $(head -c 4096 /dev/hwrng | wc -c) $(cat /sys/class/misc/hw_random/rng_current)"
echo "T_BLK rng_distinct $(head -c 4096 /dev/hwrng | od -An -tx1 | tr ' ' '\n' | grep . | sort -u | wc -l)"
echo "T_BLK msix $(grep -c 'PCI-MSI.*virtio' /proc/interrupts)"
exec 3<>/dev/hvc0
echo "T_HVC out" >&3
echo "T_BLK hvc_in $(timeout 20 sh -c 'read -r l; echo "$l"' <&3)"
echo "T_BLK pcierr $(dmesg | grep -ciE 'pci.*(error|fail|conflict|no compatible)|acpi (error|exception)|Fatal')"
sync
echo "T_BLK done"
EOF
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"

echo "hello-from-the-host" >"$work/hvc_in"
t0=$(date +%s)
timeout "$TIMEOUT" "$CORRAL" run ${T_BOOT_ENGINE:+--engine "$T_BOOT_ENGINE"} \
	--kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
	--disk "$work/a.img,format=raw,serial=CORRAL-A,cache=$cache_a" \
	--disk "$work/b.img,readonly,serial=CORRAL-B,cache=writeback" --rng \
	--virtio-console --append "console=ttyS0 quiet -- sh /t_blk.sh" --mem 256M \
	<"$work/hvc_in" >"$work/out" 2>&1
rc=$?
t1=$(date +%s)
tr -d '\r' <"$work/out" >"$work/log"
echo "  corral run: exit $rc in $((t1 - t0)) s"

field() { # name -> the rest of the T_BLK line
	grep -a "T_BLK $1\( \|$\)" "$work/log" | head -n 1 | sed "s/.*T_BLK $1 *//"
}

check "corral exits 0" "$rc" 0
check "two disks: vda vdb" "$(field devs)" "vda vdb"
check "vda serial" "$(field serial_a)" "CORRAL-A"
check "vdb serial" "$(field serial_b)" "CORRAL-B"
check "vda read-write, vdb read-only" "$(field ro)" "0 1"
check "vda size in sectors" "$(field size_a)" 8192
check "guest reads vda's first MiB as the host wrote it" "$(field sha_a)" "$want_a"
check "guest reads all of vdb" "$(field sha_b)" "$want_b"
check "write to vda succeeds" "$(field write_a)" 0
w=$(field write_b)
if [ -n "$w" ] && [ "$w" != 0 ]; then ok "write to the read-only vdb fails ($w)"; else fail "write to vdb: '$w'"; fi
check "discard on vda succeeds" "$(field discard)" 0
check "vda reads back the pattern" "$(field readback)" "CORRAL-PATTERN-4242"
check "hwrng gives 4096 bytes from virtio_rng" "$(field rng | cut -d' ' -f1)" 4096
case "$(field rng)" in *virtio_rng*) ok "rng_current is virtio_rng" ;; *) fail "rng_current: '$(field rng)'" ;; esac
d=$(field rng_distinct)
if [ -n "$d" ] && [ "$d" -gt 200 ] 2>/dev/null; then ok "hwrng bytes look random ($d distinct)"; else fail "hwrng distinct bytes: '$d'"; fi
m=$(field msix)
if [ -n "$m" ] && [ "$m" -ge 9 ] 2>/dev/null; then ok "virtio interrupts are MSI-X ($m vectors)"; else fail "MSI-X vectors: '$m'"; fi
check "no PCI/ACPI errors in dmesg" "$(field pcierr)" 0
grep -aq "^T_HVC out" "$work/log" && ok "hvc0 output reaches the host" || fail "hvc0 output missing"
check "hvc0 reads the host's piped input" "$(field hvc_in)" "hello-from-the-host"
grep -aq "T_BLK done" "$work/log" && ok "guest script finished" || fail "guest script did not finish"

# ---- host side: what the guest left in the files ----
got=$(dd if="$work/a.img" bs=512 skip=2048 count=1 2>/dev/null | head -c 19)
check "the host sees the pattern in a.img" "$got" "CORRAL-PATTERN-4242"
check "the rest of a.img's first MiB is untouched" \
	"$(head -c $((1 << 20)) "$work/a.img" | sha256sum | cut -d' ' -f1)" "$want_a"
z=$(dd if="$work/a.img" bs=65536 skip=48 count=1 2>/dev/null | tr -d '\0' | wc -c)
check "the discarded range of a.img reads as zeroes" "$z" 0
check "b.img is unchanged" "$(sha256sum <"$work/b.img" | cut -d' ' -f1)" "$want_b"

if [ "$failed" -ne 0 ]; then
	echo "  --- guest console (last 40 lines) ---"
	tail -n 40 "$work/log" | sed 's/^/  | /'
fi
report
