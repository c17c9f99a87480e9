#!/bin/sh
# What the kvm engine costs inside the nested test machine (tools/mknested.sh:
# QEMU TCG with -cpu max, KVM on emulated AMD-V) beside the emu engine on this
# host, for the guest kit's Debian kernel from start to its /init running a
# command and powering off, with 1, 2 and 4 vCPUs (BENCH_NESTED_CPUS). These
# are nested figures: every exit of the nested guest is emulated by QEMU, so
# they say nothing of kvm on hardware. Usage: bench/nested.sh (after make tests; CORRAL, BUILD as make
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
CPUS=${BENCH_NESTED_CPUS:-1 2 4}

# emu here: the same command line as the nested machine's consoleN suites
for n in $CPUS; do
	t0=$(ms)
	"$CORRAL" run --engine emu --cpus "$n" --mem 512M --no-reboot --kernel "$GUEST_DIR/vmlinuz" \
		--initrd "$GUEST_DIR/initrd.img" \
		--append "console=ttyS0 ignore_loglevel -- cat /sys/devices/system/cpu/online" \
		</dev/null >"$work/emu.$n.log" 2>&1
	eval "emu_$n=$(($(ms) - t0))"
	grep -q "command exited with status 0" "$work/emu.$n.log" ||
		{ echo "bench/nested: the emu boot with $n vCPUs failed" >&2; exit 1; }
done

# kvm in the nested machine: its own boot, then the same corral runs (each
# timed inside, to the second)
suites=$(for n in $CPUS; do printf 'console%s,' "$n"; done)
t0=$(ms)
"$QEMU" -accel tcg -cpu max -smp 2 -m 2048 -nodefaults -display none -monitor none -no-reboot \
	-serial "file:$work/console" -kernel "$GUEST_DIR/vmlinuz" -initrd "$work/nested.cpio" \
	-append "console=ttyS0 panic=-1 quiet tsc=reliable corral.nested=${suites%,}" </dev/null >/dev/null 2>&1
total=$(($(ms) - t0))
tr -d '\r' <"$work/console" >"$work/log"

echo "boot to /init and power-off, Debian $(cat "$GUEST_DIR/version"):"
for n in $CPUS; do
	grep -aq "@nested console$n: corral exited with status 0" "$work/log" ||
		{ echo "bench/nested: the nested kvm boot with $n vCPUs failed" >&2; tail -n 20 "$work/log" >&2; exit 1; }
	kvm=$(($(sed -n "s/^@nested console$n: took \([0-9]*\) s$/\1/p" "$work/log") * 1000))
	eval "emu=\$emu_$n"
	printf "  %d vCPU(s): emu on this host %6.1f s, kvm in the nested machine %6.1f s (%.2fx emu)\n" "$n" \
		"$(echo "$emu / 1000" | bc -l)" "$(echo "$kvm / 1000" | bc -l)" "$(echo "$kvm / $emu" | bc -l)"
done
printf "  the nested machine, start to end (all its boots): %.1f s\n" "$(echo "$total / 1000" | bc -l)"
echo "  (nested figures: QEMU TCG emulates every exit; not a measure of kvm on hardware)"
