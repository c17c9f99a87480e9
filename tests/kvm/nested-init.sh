#!/bin/busybox sh
# /init of the nested test machine (tools/mknested.sh): loads the kvm
# modules, then runs the suites named by corral.nested=a,b,... (see
# tests/kvm/suites.sh) and prints their output, each line prefixed
# "@nested SUITE: ", on the console.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /var/tmp && mount -t devpts devpts /dev/pts
echo "@nested init: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
# the loopback interface, as on any host: the user network's 10.0.2.2 is
# the host's 127.0.0.1, and without it a guest's connection there gets
# an ICMP "network unreachable" from libslirp (whose connect fails)
ip link set lo up 2>&1 | sed 's/^/@nested init: lo: /'
echo "@nested init: lo: $(ip -4 addr show dev lo | grep -o 'inet [0-9./]*')"
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
# tree PID: PID and all its descendants (this machine is its own PID
# namespace: nothing else runs here)
tree() {
	echo "$1"
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		tree "$c"
	done
}
# run_limited SECS CMD...: CMD, stopped after SECS; a hung one first shows
# where each thread of its process tree waits in the kernel, and what the
# corrals in it were doing
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
		procs=$(tree $pid)
		for p in $procs; do
			echo "  process $p: $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c 1-200)"
			for t in /proc/$p/task/*; do
				echo "    thread ${t##*/} ($(cat $t/comm)): $(cat $t/wchan 2>/dev/null)" \
					"$(tr '\n' ' ' <$t/stack 2>/dev/null | cut -c 1-300)"
			done
		done
		kill -9 $procs 2>/dev/null
	fi
	wait $pid
}
suites=
limit=900
for w in $(cat /proc/cmdline); do
	case "$w" in
	corral.nested=*) suites=$(echo "${w#corral.nested=}" | tr ',' ' ') ;;
	corral.nested_limit=*) limit=${w#corral.nested_limit=} ;;
	esac
done
export CORRAL=/corral/build/corral BUILD=/corral/build CORRAL_GUEST_DIR=/corral/guest CORRAL_KIT_READY=1
export TMPDIR=/tmp CORRAL_TEST_SLOW=10
cd /corral
. tests/kvm/suites.sh
# a heartbeat: t_nested.sh takes a console silent for CORRAL_NESTED_STALL
# seconds for a machine that stands still, even while a suite prints nothing
(
	while sleep 15; do
		echo "@nested tick: up $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
	done
) &
tick=$!
for s in $suites; do
	t0=$(date +%s)
	echo "@nested begin $s"
	# one suite that hangs costs its limit, not the rest of the run
	# each line as it comes: busybox's sed holds its output for a tty
	# until it ends, so the console showed a suite's lines only after it
	run_limited "$limit" nested_suite "$s" 2>&1 </dev/null | while IFS= read -r l; do
		echo "@nested $s: $l"
	done
	echo "@nested $s: took $(($(date +%s) - t0)) s"
done
kill $tick
echo "@nested end"
poweroff -f
