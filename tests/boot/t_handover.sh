#!/bin/sh
# Engine hand-over of Debian's stock kernel in mid-boot (--handover, a test
# hook: one vCPU): the boot starts on one engine, its vCPU moves to the
# other after a number of emu instructions or kvm exits, and the guest
# boots on to its shell there. Both directions, emu to kvm and kvm to emu.
# Needs a usable /dev/kvm: the nested test machine (tests/kvm/t_nested.sh,
# suite "handover") runs it where the host has none; elsewhere it is
# skipped. T_HANDOVER_POINTS (default "emu:60000000 kvm:4000") lists
# ENGINE:COUNT, the engine the boot starts on and when it leaves it.
# Last line: "N passed, N failed[, N skipped]".
NAME=t_handover
. "$(dirname "$0")/../boot/lib.sh"

need_kit
release=$(cat "$GUEST_DIR/version")
"$CORRAL" info 2>/dev/null | grep -q '^kvm: .*API version' ||
	skip "no usable /dev/kvm (the nested test machine runs this test: make check-kvm-nested)"

work=$(mktemp -d "${TMPDIR:-/tmp}/t_handover.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

for point in ${T_HANDOVER_POINTS:-emu:60000000 kvm:4000}; do
	from=${point%%:*}
	n=${point#*:}
	to=kvm
	[ "$from" = kvm ] && to=emu
	t0=$(date +%s)
	timeout "$TIMEOUT" "$CORRAL" run --engine "$from" --handover "$n" --mem 256M \
		--kernel "$GUEST_DIR/vmlinuz" --initrd "$GUEST_DIR/initrd.img" \
		--append "console=ttyS0 quiet -- uname -r" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	echo "  $from -> $to after $n: exit $rc in $(($(date +%s) - t0)) s"
	tr -d '\r' <"$work/out" >"$work/log"
	f0=$failed
	if [ "$rc" -eq 0 ]; then ok "$from -> $to after $n: corral exits 0"; else fail "$from -> $to after $n: exit $rc"; fi
	if grep -q "handover: $from -> $to at rip" "$work/err"; then
		ok "$from -> $to after $n: the hand-over happened ($(grep -o 'at rip .*' "$work/err"))"
	else
		fail "$from -> $to after $n: no hand-over in corral's messages"
	fi
	if grep -aqx "$release" "$work/log" && grep -aq "corral-guest: command exited with status 0" "$work/log"; then
		ok "$from -> $to after $n: the guest booted to its shell on $to and ran a command"
	else
		fail "$from -> $to after $n: the guest did not finish its boot"
	fi
	if [ "$failed" -ne "$f0" ]; then
		sed 's/^/  ! /' "$work/err" | tail -n 5
		tail -n 30 "$work/log" | sed 's/^/  | /'
	fi
done
report
