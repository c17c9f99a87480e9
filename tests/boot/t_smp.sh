#!/bin/sh
# Debian's stock kernel on emu with a host thread per vCPU (--accel-threads
# multi), with 2 and 4 vCPUs (T_SMP_CPUS): every CPU comes online, and a
# parallel job (one awk and one sha256sum per CPU, each pinned to its CPU,
# all at once) gives the results the host computes, which t_boot.sh checks
# on one vCPU. Last line: "N passed, N failed".
NAME=t_smp
. "$(dirname "$0")/../boot/lib.sh"

need_kit
work=$(mktemp -d "${TMPDIR:-/tmp}/t_smp.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

ov=$work/overlay
mkdir -p "$ov/testdata"
head -c 262144 /dev/urandom >"$ov/testdata/known.bin"
want_sha=$(sha256sum "$ov/testdata/known.bin" | cut -d' ' -f1)
AWK_PROG='BEGIN { s = 0; for (i = 1; i <= 20000; i++) s += i * i % 97; printf "%d %.6f\n", s, s / 7 * 1.5 }'
want_awk=$(awk "$AWK_PROG")
cat >"$ov/init" <<EOF
#!/bin/busybox sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "T_SMP online \$(nproc) \$(cat /sys/devices/system/cpu/online)"
for c in \$(seq 0 \$((\$(nproc) - 1))); do
	taskset -c \$c sh -c 'a=\$(awk '"'"'$AWK_PROG'"'"'); s=\$(sha256sum /testdata/known.bin | cut -d" " -f1); echo "T_SMP job '\$c' \$(cut -d" " -f39 /proc/self/stat) \$s \$a"' &
done
wait
echo "T_SMP done"
poweroff -f
EOF
chmod 755 "$ov/init"
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"

check() { # description, got, want
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}

for n in ${T_SMP_CPUS:-2 4}; do
	t0=$(date +%s)
	timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
		--append "console=ttyS0 quiet" --mem 512M --cpus "$n" --engine emu --accel-threads multi \
		</dev/null >"$work/out" 2>&1
	rc=$?
	t1=$(date +%s)
	tr -d '\r' <"$work/out" >"$work/log.$n"
	echo "  corral run --cpus $n --accel-threads multi: exit $rc in $((t1 - t0)) s"
	f0=$failed
	check "cpus=$n: corral exits 0" "$rc" 0
	check "cpus=$n: every CPU online" "$(grep -a '^T_SMP online' "$work/log.$n" | head -n 1)" \
		"T_SMP online $n 0-$((n - 1))"
	for c in $(seq 0 $((n - 1))); do
		check "cpus=$n: job $c on CPU $c, same results as the host" \
			"$(grep -a "^T_SMP job $c " "$work/log.$n" | head -n 1)" "T_SMP job $c $c $want_sha $want_awk"
	done
	grep -aq "^T_SMP done" "$work/log.$n" && ok "cpus=$n: all jobs ran" || fail "cpus=$n: /init did not finish"
	if grep -a -q -e Sanitizer -e 'runtime error' "$work/log.$n"; then
		fail "cpus=$n: sanitizer report"
	fi
	if [ "$failed" -ne "$f0" ]; then
		echo "  --- console (last 30 lines) ---"
		tail -n 30 "$work/log.$n" | sed 's/^/  | /'
	fi
done

report
