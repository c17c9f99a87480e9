#!/bin/bash
# Guest-side benchmark: user-space work inside a system VM (the guest kit's
# Debian kernel and busybox), corral vs QEMU TCG, same kernel, initramfs and
# job script, in one invocation. Boot time is not counted.
#
# Usage: bench/guest.sh [ROUNDS] [CASE...]   (default 3 rounds, every case;
#        CORRAL=path/to/corral, GUEST_BENCH_TIMEOUT=seconds per VM)
#
# The job script is added to the initramfs as /bench.sh (a second cpio
# archive appended to the guest kit's, which Linux unpacks over the first).
# It prints a start and an end marker around each case on the serial
# console, and this script takes the host's clock when each marker line
# arrives: the guest's own clock cannot be the judge, since corral's emu
# engine runs virtual time (instructions, and jumps over idle time).
#
# Cases (1 vCPU unless said): urandom (read 4 MiB of /dev/urandom), gzip
# and gunzip (4 MiB of mixed binary and text), forkexec (a shell loop that
# runs 300 programs), pipe (64 MiB from dd to cat), md5sum (4 MiB), disk
# (write 32 MiB to a virtio disk + sync, read it back after dropping the
# page cache), smp (2 vCPUs: four gzip|md5sum pipelines at once).
# QEMU runs as q35 with -cpu max (virtio disk over PCI, as corral's; microvm
# would put it on virtio-mmio, which the guest kit does not load).
# Prints each case's median over the rounds, the ratio corral/QEMU and the
# geometric mean of the ratios.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-3}
shift $(($# > 0 ? 1 : 0))
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
LIMIT=${GUEST_BENCH_TIMEOUT:-600}
ONE_CASES="urandom gzip gunzip forkexec pipe md5sum disk"
SMP_CASES="smp"
WANT="${*:-$ONE_CASES $SMP_CASES}"

command -v qemu-system-x86_64 >/dev/null || {
	echo "bench/guest.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
[ -x "$CORRAL" ] || {
	echo "bench/guest.sh: $CORRAL not built (make)" >&2
	exit 1
}
for w in $WANT; do
	case " $ONE_CASES $SMP_CASES " in
	*" $w "*) ;;
	*)
		echo "bench/guest.sh: unknown case '$w' (cases: $ONE_CASES $SMP_CASES)" >&2
		exit 2
		;;
	esac
done
sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1
K=$GUEST_DIR/vmlinuz

work=$(mktemp -d "${TMPDIR:-/tmp}/guestbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The job script run by the guest's /init: sh /bench.sh CASE...
mkdir -p "$work/extra"
cat >"$work/extra/bench.sh" <<'EOF'
# Runs inside the guest: prepares the inputs (untimed), then each case
# between "@@B name" and "@@E name" markers.
{ cat /bin/busybox; seq 1 1000000; } | head -c 4194304 >/tmp/data
gzip -c /tmp/data >/tmp/data.gz
sync
for c in "$@"; do
	echo "@@B $c"
	case $c in
	urandom) dd if=/dev/urandom of=/dev/null bs=65536 count=64 2>/dev/null ;;
	gzip) gzip -c /tmp/data >/dev/null ;;
	gunzip) gunzip -c /tmp/data.gz >/dev/null ;;
	forkexec)
		i=0
		while [ $i -lt 300 ]; do
			/bin/busybox true
			i=$((i + 1))
		done
		;;
	pipe) dd if=/dev/zero bs=65536 count=1024 2>/dev/null | cat >/dev/null ;;
	md5sum) md5sum /tmp/data >/dev/null ;;
	disk)
		dd if=/dev/zero of=/dev/vda bs=1048576 count=32 2>/dev/null
		sync
		echo 3 >/proc/sys/vm/drop_caches
		dd if=/dev/vda of=/dev/null bs=1048576 count=32 2>/dev/null
		;;
	smp)
		for j in 1 2 3 4; do
			(gzip -c /tmp/data | md5sum >/dev/null) &
		done
		wait
		;;
	esac
	echo "@@E $c"
done
echo "@@done"
EOF
(cd "$work/extra" && echo bench.sh | cpio -o -H newc 2>/dev/null | gzip) >"$work/extra.cpio.gz"
I=$work/initrd.img
cat "$GUEST_DIR/initrd.img" "$work/extra.cpio.gz" >"$I"
truncate -s 64M "$work/disk.img"

# Runs one VM ("$@"), prints "case ms" for each case whose two markers came.
run_vm() {
	local fifo=$work/fifo pid line now c
	declare -A t0
	rm -f "$fifo"
	mkfifo "$fifo"
	setsid timeout "$LIMIT" "$@" </dev/null >"$fifo" 2>&1 &
	pid=$!
	while IFS= read -r line; do
		now=$(date +%s%N)
		line=${line%$'\r'}
		case "$line" in
		"@@B "*) t0[${line#@@B }]=$now ;;
		"@@E "*)
			c=${line#@@E }
			[ -n "${t0[$c]:-}" ] && echo "$c $(((now - ${t0[$c]}) / 1000000))"
			;;
		*"@@done"*) break ;;
		esac
	done <"$fifo"
	kill -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

declare -A ct qt
one="" smp=""
for w in $WANT; do
	case " $SMP_CASES " in
	*" $w "*) smp="$smp $w" ;;
	*) one="$one $w" ;;
	esac
done
echo "guest suite, $ROUNDS rounds, kernel $(cat "$GUEST_DIR/version"), 512 MiB; corral vs qemu-system-x86_64 -accel tcg -M q35 -cpu max"
for r in $(seq 1 "$ROUNDS"); do
	for set in one smp; do
		cases=${!set}
		[ -n "$cases" ] || continue
		n=1
		[ "$set" = smp ] && n=2
		app="console=ttyS0 quiet -- sh /bench.sh$cases"
		out_c=$(run_vm "$CORRAL" run --kernel "$K" --initrd "$I" --append "$app" --mem 512M \
			--cpus "$n" --disk "$work/disk.img,format=raw" --no-reboot)
		out_q=$(run_vm qemu-system-x86_64 -accel tcg -M q35 -cpu max -smp "$n" -m 512M \
			-nographic -no-reboot -kernel "$K" -initrd "$I" -append "$app" \
			-drive "file=$work/disk.img,format=raw,if=virtio")
		for c in $cases; do
			a=$(echo "$out_c" | awk -v c="$c" '$1 == c { print $2 }')
			b=$(echo "$out_q" | awk -v c="$c" '$1 == c { print $2 }')
			printf 'round %d %-9s corral %6s ms   qemu-tcg %6s ms\n' "$r" "$c" "${a:-FAILED}" "${b:-FAILED}"
			[ -n "$a" ] && ct[$c]="${ct[$c]:-} $a"
			[ -n "$b" ] && qt[$c]="${qt[$c]:-} $b"
		done
	done
done
echo "median over rounds (ms), ratio corral / qemu-tcg:"
ratios=""
status=0
for c in $WANT; do
	# shellcheck disable=SC2086
	a=$(median ${ct[$c]:-})
	# shellcheck disable=SC2086
	b=$(median ${qt[$c]:-})
	if [ -z "$a" ] || [ -z "$b" ]; then
		printf '%-9s corral %6s   qemu-tcg %6s   ratio n/a\n' "$c" "${a:-n/a}" "${b:-n/a}"
		status=1
		continue
	fi
	# A case faster than the markers can measure counts as 1 ms.
	[ "$a" -lt 1 ] && a=1
	[ "$b" -lt 1 ] && b=1
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
	ratios="$ratios $ratio"
	printf '%-9s corral %6s   qemu-tcg %6s   ratio %sx\n' "$c" "$a" "$b" "$ratio"
done
if [ -n "$ratios" ]; then
	echo "$ratios" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += log($i); printf "geometric mean: %.2fx over %d cases\n", exp(s / NF), NF }'
fi
exit $status
