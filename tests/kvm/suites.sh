# The kvm suites, by name (sourced, not run): nested_suite NAME runs one
# from the top of the source tree, with CORRAL and BUILD set, in the nested
# test machine (tests/kvm/nested-init.sh) or, on a host with a usable
# /dev/kvm, directly (tests/kvm/t_nested.sh). Each prints its checks and
# "N passed, N failed[, N skipped]" last.
#   guests    tests/guests/t_guests.sh: the tiny guests on kvm, their
#             output identical to emu's (emu: the reference runs alone)
#   bootN     tests/boot/t_boot.sh on --engine kvm with N vCPUs
#   blk, net  tests/virtio/t_blk.sh and t_net.sh on --engine kvm
#   snap      t_snap: snapshots of tiny guests across engines
#   snapdeb   tests/boot/t_snapshot.sh: Debian's snapshots kvm to emu to kvm
#   migrate   tests/migrate/t_engines.sh: live migration across engines
#   migrate-cross  the same, kvm to emu and emu to kvm only (make check's
#             nested pass: the kvm source's dirty log and the kvm destination
#             are both in these; kvm to kvm adds half as much time again)
#   handover  tests/boot/t_handover.sh: Debian's boot moving between engines
#   handover-to-kvm  the same, emu to kvm only (make check's nested pass: the
#             rest of the boot after kvm to emu runs on emu inside QEMU's
#             emulation, about 100 s there)
#   info      corral info (no count: judged by t_nested.sh)
#   consoleN  the kit's kernel on kvm with N vCPUs, its whole console
# The suites a host with /dev/kvm runs in t_nested.sh: the others are
# entries of `make check` of their own, which use /dev/kvm where it is.
KVM_DIRECT_SUITES="boot1 boot2 boot4 blk net snapdeb"

nested_suite() {
	case "$1" in
	guests) T_GUESTS_EMU=ref sh tests/guests/t_guests.sh ;;
	boot[0-9]*) T_BOOT_ENGINE=kvm T_BOOT_CPUS=${1#boot} sh tests/boot/t_boot.sh ;;
	info) "$CORRAL" info ;;
	blk) T_BOOT_ENGINE=kvm sh tests/virtio/t_blk.sh ;;
	net) T_BOOT_ENGINE=kvm sh tests/virtio/t_net.sh ;;
	snap) TEST_VERBOSE=1 "$BUILD/tests/vm/t_snap" ;;
	snapdeb) T_SNAP_ENGINES="kvm emu kvm" sh tests/boot/t_snapshot.sh ;;
	migrate) sh tests/migrate/t_engines.sh ;;
	migrate-cross) T_ENGINES_PAIRS="kvm:emu emu:kvm" sh tests/migrate/t_engines.sh ;;
	handover) sh tests/boot/t_handover.sh ;;
	handover-to-kvm) T_HANDOVER_POINTS=emu:60000000 sh tests/boot/t_handover.sh ;;
	console[0-9]*)
		g=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
		timeout 600 "$CORRAL" run --engine kvm --cpus "${1#console}" --mem 512M --no-reboot \
			--kernel "$g/vmlinuz" --initrd "$g/initrd.img" \
			--append "console=ttyS0 ignore_loglevel -- cat /sys/devices/system/cpu/online"
		echo "corral exited with status $?"
		;;
	*)
		echo "unknown suite '$1'"
		return 1
		;;
	esac
}
