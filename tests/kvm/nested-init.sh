#!/bin/busybox sh
# /init of the nested test machine (tools/mknested.sh): loads the kvm
# modules, then runs the suites named by corral.nested=a,b,... and prints
# their output, each line prefixed "@nested SUITE: ", on the console.
# Suites: guests (tests/guests/t_guests.sh, emu then kvm), bootN (t_boot.sh
# on --engine kvm with N vCPUs), blk and net (tests/virtio/t_blk.sh and
# t_net.sh on --engine kvm), snap (t_snap: snapshots across engines),
# snapdeb (tests/boot/t_snapshot.sh: Debian's snapshots kvm to emu to kvm),
# migrate (tests/migrate/t_engines.sh: live migration across engines),
# handover (tests/boot/t_handover.sh: Debian's boot moving between engines),
# info (corral info), consoleN (the kit's kernel on kvm with N vCPUs, its
# whole console, for diagnosis).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /var/tmp && mount -t devpts devpts /dev/pts
echo "@nested init: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
while read -r m; do
	insmod "/lib/kvm/$m" 2>&1 | sed "s|^|@nested modules: $m: |"
done </etc/kvm-modules
if [ -c /dev/kvm ]; then
	echo "@nested kvm: /dev/kvm is there"
else
	echo "@nested kvm: no /dev/kvm after loading the modules: $(dmesg | grep -i -m 3 -e kvm -e svm | tr '\n' ' ')"
fi
# the machine's own clock: a TSC its kernel found unstable makes KVM
# keep vCPU TSCs in step by catch-up, which the guests then see
echo "@nested clock: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)," \
	"$(dmesg | grep -i -e 'tsc' -e 'clocksource' | grep -v -e 'Switched to' -e 'mask:' | cut -c 16- | tr '\n' ';')"
# run_limited SECS CMD...: CMD, stopped after SECS; a hung one first shows
# where each of its threads (and its children's) waits in the kernel
run_limited() {
	lim=$1
	shift
	"$@" &
	pid=$!
	n=0
	while kill -0 $pid 2>/dev/null && [ $n -lt "$lim" ]; do
		sleep 1
		n=$((n + 1))
	done
	if kill -0 $pid 2>/dev/null; then
		echo "hung after $lim s: $*"
		for p in $pid $(cat /proc/$pid/task/*/children 2>/dev/null); do
			for t in /proc/$p/task/*; do
				echo "  thread ${t##*/} of $p ($(cat $t/comm)): $(cat $t/wchan 2>/dev/null)" \
					"$(tr '\n' ' ' <$t/stack 2>/dev/null | cut -c 1-300)"
			done
		done
		kill -9 $(cat /proc/$pid/task/*/children 2>/dev/null) $pid 2>/dev/null
	fi
	wait $pid
}
suites=
for w in $(cat /proc/cmdline); do
	case "$w" in corral.nested=*) suites=$(echo "${w#corral.nested=}" | tr ',' ' ') ;; esac
done
export CORRAL=/corral/build/corral BUILD=/corral/build CORRAL_GUEST_DIR=/corral/guest CORRAL_KIT_READY=1
export TMPDIR=/tmp CORRAL_TEST_SLOW=10
cd /corral
for s in $suites; do
	t0=$(date +%s)
	case "$s" in
	guests) sh tests/guests/t_guests.sh ;;
	boot[0-9]*) T_BOOT_ENGINE=kvm T_BOOT_CPUS=${s#boot} sh tests/boot/t_boot.sh ;;
	info) "$CORRAL" info ;;
	blk) T_BOOT_ENGINE=kvm sh tests/virtio/t_blk.sh ;;
	net) T_BOOT_ENGINE=kvm sh tests/virtio/t_net.sh ;;
	snap) run_limited 900 env TEST_VERBOSE=1 build/tests/vm/t_snap ;;
	snapdeb) T_SNAP_ENGINES="kvm emu kvm" sh tests/boot/t_snapshot.sh ;;
	migrate) sh tests/migrate/t_engines.sh ;;
	handover) sh tests/boot/t_handover.sh ;;
	console[0-9]*)
		timeout 600 "$CORRAL" run --engine kvm --cpus "${s#console}" --mem 512M --no-reboot \
			--kernel guest/vmlinuz --initrd guest/initrd.img \
			--append "console=ttyS0 ignore_loglevel -- cat /sys/devices/system/cpu/online"
		echo "corral exited with status $?"
		;;
	*) echo "unknown suite '$s'" ;;
	esac 2>&1 </dev/null | sed "s|^|@nested $s: |"
	echo "@nested $s: took $(($(date +%s) - t0)) s"
done
echo "@nested end"
poweroff -f
