#!/bin/sh
# Boots Debian's stock kernel (the guest kit of tools/mkguest.sh) in corral
# with a test initramfs whose /init checks the guest against the host, once
# with one CPU and once with --cpus 2. Last line: "N passed, N failed".
# T_BOOT_CPUS (default "1 2") lists the vCPU counts to boot with, and
# T_BOOT_ENGINE (default: corral's) the engine; the nested test machine
# (tests/kvm/t_nested.sh) runs this script on --engine kvm.
NAME=t_boot
. "$(dirname "$0")/../boot/lib.sh"

need_kit
release=$(cat "$GUEST_DIR/version")

work=$(mktemp -d "${TMPDIR:-/tmp}/t_boot.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# The test overlay: a second (gzip'd newc) archive after the kit's; the
# kernel unpacks both, and the later /init replaces the kit's.
ov=$work/overlay
mkdir -p "$ov/testdata"
head -c 65536 /dev/urandom >"$ov/testdata/known.bin"
want_sha=$(sha256sum "$ov/testdata/known.bin" | cut -d' ' -f1)
AWK_PROG='BEGIN { s = 0; for (i = 1; i <= 2000; i++) s += i * i % 97; printf "%d %.6f\n", s, s / 7 * 1.5 }'
want_awk=$(awk "$AWK_PROG")
SH_LOOP='i=0; s=0; while [ $i -lt 500 ]; do s=$((s + i * 3 % 7)); i=$((i + 1)); done; echo $s'
want_sh=$(sh -c "$SH_LOOP")
cat >"$ov/init" <<EOF
#!/bin/busybox sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "T_BOOT init"
echo "T_BOOT uname \$(uname -s -r -m)"
echo "T_BOOT cpuinfo \$(grep -c '^processor' /proc/cpuinfo) \$(grep -m1 '^flags' /proc/cpuinfo | grep -qw lm && echo lm) \$(grep -m1 '^vendor_id' /proc/cpuinfo | sed 's/.*: //')"
echo "T_BOOT online \$(nproc) \$(cat /sys/devices/system/cpu/online)"
echo "T_BOOT date \$(date +%s)"
echo "T_BOOT awk \$(awk '$AWK_PROG')"
echo "T_BOOT sha256 \$(sha256sum /testdata/known.bin | cut -d' ' -f1)"
echo "T_BOOT shloop \$($SH_LOOP)"
# Work pinned to each CPU at once; each reports the CPU it ran on
# (field 39 of /proc/self/stat).
for c in \$(seq 0 \$((\$(nproc) - 1))); do
	taskset -c \$c sh -c 'i=0; while [ \$i -lt 3000 ]; do i=\$((i + 1)); done; echo "T_BOOT cpuwork '\$c' \$(cut -d" " -f39 /proc/self/stat)"' &
done
wait
echo "T_BOOT done"
poweroff -f
EOF
chmod 755 "$ov/init"
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"

if [ ! -x "$CORRAL" ]; then
	fail "corral binary $CORRAL not built"
	echo "$passed passed, $failed failed"
	exit 1
fi

# boot NCPUS: runs the guest, leaves its console output in $work/out.NCPUS
boot() {
	t0=$(date +%s)
	timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
		--append "console=ttyS0 quiet" --mem 512M --cpus "$1" \
		${T_BOOT_ENGINE:+--engine "$T_BOOT_ENGINE"} </dev/null >"$work/out.$1" 2>&1
	rc=$?
	t1=$(date +%s)
	tr -d '\r' <"$work/out.$1" >"$work/log.$1"
	echo "  corral run --cpus $1: exit $rc in $((t1 - t0)) s"
}

field() { # ncpus name -> the rest of the T_BOOT line
	grep -a "T_BOOT $2\( \|$\)" "$work/log.$1" | head -n 1 | sed "s/.*T_BOOT $2 *//"
}

check() { # description, got, want
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1: got '$2', want '$3'"
	fi
}

show_log() {
	echo "  --- guest console (last 30 lines) ---"
	tail -n 30 "$work/log.$1" | sed 's/^/  | /'
}

for n in ${T_BOOT_CPUS:-1 2}; do
if [ "$n" -eq 1 ]; then
# ---- one CPU ----
boot 1
check "cpus=1: corral exits 0" "$rc" 0
grep -aq "T_BOOT init" "$work/log.1" && ok "cpus=1: /init runs" || fail "cpus=1: /init never ran"
check "cpus=1: uname" "$(field 1 uname)" "Linux $release x86_64"
cpuinfo=$(field 1 cpuinfo)
check "cpus=1: /proc/cpuinfo has 1 processor with long mode" "$(echo "$cpuinfo" | cut -d' ' -f1-2)" "1 lm"
gdate=$(field 1 date)
if [ -n "$gdate" ] && [ "$gdate" -ge $((t0 - 60)) ] 2>/dev/null && [ "$gdate" -le $((t1 + 60)) ]; then
	ok "cpus=1: guest date within a minute of the host's"
else
	fail "cpus=1: guest date '$gdate' not within a minute of the host's [$t0, $t1]"
fi
check "cpus=1: awk arithmetic" "$(field 1 awk)" "$want_awk"
check "cpus=1: sha256sum of a known file" "$(field 1 sha256)" "$want_sha"
check "cpus=1: sh loop" "$(field 1 shloop)" "$want_sh"
check "cpus=1: work ran on CPU 0" "$(field 1 'cpuwork 0')" 0
grep -aq "T_BOOT done" "$work/log.1" && ok "cpus=1: all checks ran" || fail "cpus=1: /init did not finish"
[ "$failed" -eq 0 ] || show_log 1
continue
fi

# ---- N CPUs ----
f0=$failed
boot "$n"
check "cpus=$n: corral exits 0" "$rc" 0
check "cpus=$n: $n CPUs online" "$(field "$n" online)" "$n 0-$((n - 1))"
check "cpus=$n: /proc/cpuinfo has $n processors" "$(field "$n" cpuinfo | cut -d' ' -f1)" "$n"
for c in $(seq 0 $((n - 1))); do
	check "cpus=$n: work ran on CPU $c" "$(field "$n" "cpuwork $c")" "$c"
done
check "cpus=$n: sha256sum of a known file" "$(field "$n" sha256)" "$want_sha"
# (under kvm the TSC is the host's, one per vCPU: they must agree)
if [ "${T_BOOT_ENGINE:-}" != kvm ]; then
	:
elif grep -aq -e "clocksource.*unstable" -e "TSC.*unstable" "$work/log.$n"; then
	fail "cpus=$n: the guest found its TSC unstable: $(grep -a -m 1 unstable "$work/log.$n")"
else
	ok "cpus=$n: the guest's TSC stayed stable"
fi
grep -aq "T_BOOT done" "$work/log.$n" && ok "cpus=$n: all checks ran" || fail "cpus=$n: /init did not finish"
[ "$failed" -eq "$f0" ] || show_log "$n"
done

report
