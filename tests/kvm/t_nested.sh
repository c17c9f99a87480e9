#!/bin/sh
# The kvm engine on a real /dev/kvm. Where the host has a usable one, the
# Debian kernel boots on --engine kvm here (tests/boot/t_boot.sh; the tiny
# guests' kvm half is in tests/guests/t_guests.sh). Where it has none, the
# same suites run inside the nested test machine (tools/mknested.sh): QEMU
# TCG with -cpu max emulates AMD-V, its Linux loads kvm and kvm_amd, and
# corral runs there; the results come back on the machine's serial console
# as "@nested SUITE: ..." lines, whose counts are added up here.
#
# NESTED_SUITES (comma-separated, default "boot1,boot2": a few minutes, for
# make check) picks the suites:
# guests (emu then kvm, identical output), bootN (N vCPUs), blk, net, snap,
# handover, info, consoleN (see tests/kvm/nested-init.sh).
# `make check-kvm-nested` runs them all.
# Skipped, with the reason, where neither real nor nested KVM can run.
# Last line: "N passed, N failed[, N skipped]".
: "${CORRAL:?}" "${BUILD:?}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
SUITES=${NESTED_SUITES:-boot1,boot2}
TIMEOUT=${CORRAL_NESTED_TIMEOUT:-1800}
QEMU=${QEMU:-qemu-system-x86_64}
passed=0
failed=0

skip() {
	echo "t_nested: skipped: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

# A usable /dev/kvm here: the boots run directly.
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && "$CORRAL" info 2>/dev/null | grep -q '^kvm: .*API version'; then
	cpus=$(echo "$SUITES" | tr ',' '\n' | sed -n 's/^boot\([0-9]*\)$/\1/p' | tr '\n' ' ')
	echo "t_nested: this host has /dev/kvm: the boots run on it directly (vCPUs: ${cpus:-none})"
	[ -n "$cpus" ] || skip "no boot suite asked for"
	T_BOOT_ENGINE=kvm T_BOOT_CPUS="$cpus" exec sh "$ROOT/tests/boot/t_boot.sh"
fi

command -v "$QEMU" >/dev/null 2>&1 || skip "no /dev/kvm and no $QEMU (qemu-system-x86 package) for the nested machine"
if ! out=$(sh "$ROOT/tools/mkguest.sh" 2>&1); then
	echo "$out" | sed 's/^/  /'
	skip "the guest kit cannot be built here (no apt or no network)"
fi
release=$(cat "$GUEST_DIR/version")
[ -n "$(find "$GUEST_DIR/modules/$release/kernel/arch/x86/kvm" -name 'kvm-amd.ko*' 2>/dev/null)" ] ||
	skip "the guest kit's kernel $release has no kvm-amd module"

work=$(mktemp -d "${TMPDIR:-/tmp}/t_nested.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
if ! sh "$ROOT/tools/mknested.sh" "$BUILD" "$work/nested.cpio" >"$work/mk.log" 2>&1; then
	sed 's/^/  /' "$work/mk.log"
	echo "FAIL tools/mknested.sh"
	echo "0 passed, 1 failed"
	exit 1
fi

t0=$(date +%s)
# 2 vCPUs so that the nested guest's vCPU threads really run side by side.
# tsc=reliable: TCG's TSC is the host's, one clock for both CPUs, but the
# machine's kernel, checking it under emulation, finds it "unsynchronized";
# KVM on a host TSC marked unstable re-bases each vCPU's TSC whenever it is
# scheduled, and the guests would see their TSCs warped between CPUs.
timeout -k 10 "$TIMEOUT" "$QEMU" -accel tcg -cpu max -smp 2 -m 2048 -nodefaults -display none \
	-monitor none -no-reboot -serial "file:$work/console" -kernel "$GUEST_DIR/vmlinuz" \
	-initrd "$work/nested.cpio" -append "console=ttyS0 panic=-1 quiet tsc=reliable corral.nested=$SUITES" \
	</dev/null >"$work/qemu.log" 2>&1
rc=$?
echo "t_nested: the nested machine ran for $(($(date +%s) - t0)) s (exit $rc)"
touch "$work/console"
tr -d '\r' <"$work/console" >"$work/log"

if ! grep -aq '^@nested kvm: /dev/kvm is there' "$work/log"; then
	sed 's/^/  | /' "$work/qemu.log" "$work/log" | tail -n 30
	if grep -aq '^@nested kvm: no /dev/kvm' "$work/log"; then
		skip "the nested machine's kernel has no usable KVM ($(grep -a '^@nested kvm:' "$work/log" | cut -c 14-))"
	fi
	echo "FAIL the nested machine did not start (QEMU exit $rc)"
	echo "0 passed, 1 failed"
	exit 1
fi
grep -a '^@nested \(init\|kvm\):' "$work/log"

skipped=0
for s in $(echo "$SUITES" | tr ',' ' '); do
	line=$(grep -a "^@nested $s: [0-9]* passed, [0-9]* failed" "$work/log" | tail -n 1)
	took=$(grep -a "^@nested $s: took " "$work/log" | tail -n 1 | sed 's/.*took //')
	case "$s" in
	info | console*)
		# no count: shown, and judged on what it prints
		grep -a "^@nested $s: " "$work/log"
		continue
		;;
	esac
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		echo "FAIL $s: no result (timed out or crashed)"
		grep -a "^@nested $s: " "$work/log" | tail -n 40 | sed 's/^/  /'
		continue
	fi
	counts=${line#"@nested $s: "}
	p=${counts%% passed*}
	f=${counts#*passed, }
	f=${f%% failed*}
	sk=0
	case "$counts" in *skipped*) sk=${counts#*failed, } sk=${sk%% skipped*} ;; esac
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + sk))
	echo "suite $s (nested, ${took:-?}): $counts"
	if [ "$f" -ne 0 ]; then
		grep -a "^@nested $s: " "$work/log" | grep -a -e FAIL -e '  |' -e '^@nested [^:]*:   ' | head -n 60 | sed 's/^/  /'
	fi
	grep -a "^@nested $s: .*skipped" "$work/log" | grep -v "passed, " | sed 's/^/  /'
done

# corral info inside: KVM found, and no false alarm about the hypervisor bit
if echo ",$SUITES," | grep -q ',info,'; then
	if grep -aq '^@nested info: kvm: .*API version' "$work/log"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL info: corral info does not report /dev/kvm"
	fi
	if grep -aq "^@nested info: .*host lacks .*1.ecx:80000000" "$work/log"; then
		failed=$((failed + 1))
		echo "FAIL info: corral info says the host lacks the hypervisor bit"
	else
		passed=$((passed + 1))
	fi
fi

if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
