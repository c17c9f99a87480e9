#!/bin/sh
# What the kvm engine costs inside the nested test machine (tools/mknested.sh:
# QEMU TCG with -cpu max, KVM on emulated AMD-V) beside the emu engine on this
# host, for the guest kit's Debian kernel from start to its /init running a
# command and powering off, 1 vCPU. These are nested figures: every exit of
# the nested guest is emulated by QEMU, so they say nothing of kvm on
# hardware. Usage: bench/nested.sh (after make tests; CORRAL, BUILD as make
# sets them).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
BUILD=${BUILD:-$ROOT/build}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
QEMU=${QEMU:-qemu-system-x86_64}
sh "$ROOT/tools/mkguest.sh" >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-nested.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
sh "$ROOT/tools/mknested.sh" "$BUILD" "$work/nested.cpio" >/dev/null

ms() { echo $(($(date +%s%N) / 1000000)); }

# emu here: the same command line as the nested machine's console1 suite
t0=$(ms)
"$CORRAL" run --engine emu --cpus 1 --mem 512M --no-reboot --kernel "$GUEST_DIR/vmlinuz" \
	--initrd "$GUEST_DIR/initrd.img" --append "console=ttyS0 ignore_loglevel -- cat /sys/devices/system/cpu/online" \
	</dev/null >"$work/emu.log" 2>&1
emu=$(($(ms) - t0))
grep -q "command exited with status 0" "$work/emu.log" || { echo "bench/nested: the emu boot failed" >&2; exit 1; }

# kvm in the nested machine: its own boot, then the same corral run (timed inside)
t0=$(ms)
"$QEMU" -accel tcg -cpu max -smp 2 -m 2048 -nodefaults -display none -monitor none -no-reboot \
	-serial "file:$work/console" -kernel "$GUEST_DIR/vmlinuz" -initrd "$work/nested.cpio" \
	-append "console=ttyS0 panic=-1 quiet corral.nested=console1" </dev/null >/dev/null 2>&1
total=$(($(ms) - t0))
grep -aq "@nested console1: corral exited with status 0" "$work/console" ||
	{ echo "bench/nested: the nested kvm boot failed" >&2; tail -n 20 "$work/console" >&2; exit 1; }
kvm=$(($(tr -d '\r' <"$work/console" | sed -n 's/^@nested console1: took \([0-9]*\) s$/\1/p') * 1000))

echo "boot to /init and power-off, Debian $(cat "$GUEST_DIR/version"), 1 vCPU:"
printf "  emu on this host:                 %6.1f s\n" "$(echo "$emu / 1000" | bc -l)"
printf "  kvm in the nested machine:        %6.1f s   (%.2fx emu)\n" "$(echo "$kvm / 1000" | bc -l)" \
	"$(echo "$kvm / $emu" | bc -l)"
printf "  the nested machine, start to end: %6.1f s   (%.2fx emu)\n" "$(echo "$total / 1000" | bc -l)" \
	"$(echo "$total / $emu" | bc -l)"
echo "  (nested figures: QEMU TCG emulates every exit; not a measure of kvm on hardware)"
