#!/bin/bash
# Boot benchmark: time from start to the guest kit's init marker, same kernel,
# initramfs and command line, corral vs QEMU TCG (microvm), alternating.
#
# Usage: bench/boot.sh [ROUNDS]   (default 3; CORRAL=path/to/corral)
# Runs, in each round: corral with the bzImage; QEMU with the bzImage;
# QEMU with the extracted vmlinux (PVH entry). Prints each time, the medians
# and the ratios corral/QEMU. Needs tools/mkguest.sh's guest kit (built if
# missing) and qemu-system-x86_64 (Debian: qemu-system-x86).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-3}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
MARKER="corral-guest: init started"
APPEND="console=ttyS0 quiet -- true"
LIMIT=${BOOT_BENCH_TIMEOUT:-300}
# microvm with ACPI: QEMU 7.2's TCG microvm gives the kernel no timer it can
# calibrate against and the boot stops in the TSC/APIC timer checks; with
# acpi=off it takes the MP table and boots (then halts instead of powering
# off, which does not matter here: the clock stops at the marker).
QEMU_MACHINE="microvm,acpi=off"

command -v qemu-system-x86_64 >/dev/null || {
	echo "bench/boot.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
[ -x "$CORRAL" ] || {
	echo "bench/boot.sh: $CORRAL not built (make)" >&2
	exit 1
}
sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1
K=$GUEST_DIR/vmlinuz
V=$GUEST_DIR/vmlinux
I=$GUEST_DIR/initrd.img

work=$(mktemp -d "${TMPDIR:-/tmp}/bootbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ms from start until the marker appears on the console ("" if it never does).
time_to_marker() {
	local fifo=$work/fifo t0 t="" line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	t0=$(date +%s%N)
	setsid timeout "$LIMIT" "$@" </dev/null >"$fifo" 2>&1 &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*"$MARKER"*)
			t=$((($(date +%s%N) - t0) / 1000000))
			break
			;;
		esac
	done <"$fifo"
	kill -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "$t"
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

declare -a c_t q_t p_t
echo "boot to '$MARKER', $ROUNDS rounds, kernel $(cat "$GUEST_DIR/version"), 512 MiB, 1 CPU"
for r in $(seq 1 "$ROUNDS"); do
	a=$(time_to_marker "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M)
	b=$(time_to_marker qemu-system-x86_64 -accel tcg -M "$QEMU_MACHINE" -m 512M -nographic \
		-no-reboot -kernel "$K" -initrd "$I" -append "$APPEND")
	c=""
	if [ -s "$V" ]; then
		c=$(time_to_marker qemu-system-x86_64 -accel tcg -M "$QEMU_MACHINE" -m 512M -nographic \
			-no-reboot -kernel "$V" -initrd "$I" -append "$APPEND")
	fi
	printf 'round %d: corral %s ms, qemu-tcg bzImage %s ms, qemu-tcg vmlinux (PVH) %s ms\n' \
		"$r" "${a:-FAILED}" "${b:-FAILED}" "${c:-FAILED}"
	[ -n "$a" ] && c_t+=("$a")
	[ -n "$b" ] && q_t+=("$b")
	[ -n "$c" ] && p_t+=("$c")
done
mc=$(median "${c_t[@]}")
mq=$(median "${q_t[@]}")
mp=$(median "${p_t[@]}")
echo "median: corral ${mc:-n/a} ms, qemu-tcg bzImage ${mq:-n/a} ms, qemu-tcg PVH ${mp:-n/a} ms"
if [ -n "$mc" ] && [ -n "$mq" ]; then
	awk -v c="$mc" -v q="$mq" 'BEGIN { printf "ratio corral / qemu-tcg (bzImage): %.2fx (target <= 1.5x)\n", c / q }'
fi
if [ -n "$mc" ] && [ -n "$mp" ]; then
	awk -v c="$mc" -v q="$mp" 'BEGIN { printf "ratio corral / qemu-tcg (PVH vmlinux): %.2fx\n", c / q }'
fi
[ -n "$mc" ]
