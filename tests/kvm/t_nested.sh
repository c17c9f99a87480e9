#!/bin/sh
# The kvm half of the suite on a real /dev/kvm. Where the host has a usable
# one, the suites that take an engine run on it directly (the tiny guests,
# hand-over, snapshots of tiny guests and migration across engines are
# entries of `make check` of their own, which use /dev/kvm where it is).
# Where it has none, all of them run inside the nested test machine
# (tools/mknested.sh): QEMU TCG with -cpu max emulates AMD-V, its Linux
# loads kvm and kvm_amd, and corral runs there; the results come back on
# the machine's serial console as "@nested SUITE: ..." lines, whose counts
# are added up here.
#
# NESTED_SUITES (comma-separated, default most, some in short forms: see
# tests/kvm/suites.sh) picks the suites. The nested machine runs in `make check`'s normal pass
# only: with CORRAL_SANITIZED=1 (the sanitizer pass, whose corral QEMU's
# emulation would slow down several times more) it is one counted skip.
# CORRAL_NESTED_APPEND: more words for the nested machine's kernel command
# line (a diagnosis, e.g. a timer option under suspicion).
# A machine that stands still (its console silent for CORRAL_NESTED_STALL
# seconds, 120 by default, though /init prints a heartbeat every 15 s) is
# shown (its console's last lines, its CPUs' registers through QEMU's QMP
# socket, sysrq-l) and stopped; the suite it was in fails with that reason
# or, the first time, runs again in a new machine with the ones not yet
# run. A machine that panics or stands still in its kernel's boot is
# started again (twice at most). CORRAL_NESTED_TIMEOUT (1200 s) bounds all
# the machines of one run together. CORRAL_NESTED_FREEZE=SUITE stops a
# machine's CPUs (QMP "stop") whenever SUITE begins: a standstill on
# demand, to see the above work (SUITE fails, having stood still twice,
# and the suites after it run in a third machine).
# Skipped, with the reason, where neither real nor nested KVM can run.
# Last line: "N passed, N failed[, N skipped]".
: "${CORRAL:?}" "${BUILD:?}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
# Left out (see docs/architecture.md): guests (about 480 s here, with echo,
# SIGINT in a REP and info failing there); net, whose last corral (a VM
# without --net, on kvm) can spin in its guest until the suite's limit
# (the machine alive, its heartbeat going: 2026-12-07, cause open); the
# rest of handover (129 s: handover-to-kvm, 28 s, is in) and migrate's
# kvm-to-kvm pairs (migrate-cross runs the rest: tests/kvm/suites.sh).
# make check-kvm-nested runs all.
NESTED_DEFAULT=info,snapdeb,blk,boot1,boot2,boot4,snap,migrate-cross,handover-to-kvm
SUITES=${NESTED_SUITES:-$NESTED_DEFAULT}
TIMEOUT=${CORRAL_NESTED_TIMEOUT:-1200}
# each suite inside is stopped after this many seconds (its process tree
# shown first), so that one that hangs costs no more
SUITE_LIMIT=${CORRAL_NESTED_SUITE_LIMIT:-600}
QEMU=${QEMU:-qemu-system-x86_64}
passed=0
failed=0

skip() {
	echo "t_nested: skipped: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

# add_counts SUITE LINE: a suite's "N passed, N failed[, N skipped]" into
# the totals
add_counts() {
	counts=$2
	p=${counts%% passed*}
	f=${counts#*passed, }
	f=${f%% failed*}
	sk=0
	case "$counts" in *skipped*) sk=${counts#*failed, } sk=${sk%% skipped*} ;; esac
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + sk))
}
skipped=0

# A usable /dev/kvm here: the suites that take an engine run directly.
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && "$CORRAL" info 2>/dev/null | grep -q '^kvm: .*API version'; then
	. "$ROOT/tests/kvm/suites.sh"
	cd "$ROOT" || exit 1
	ran=
	for s in $(echo "$SUITES" | tr ',' ' '); do
		case " $KVM_DIRECT_SUITES " in *" $s "*) ;; *) continue ;; esac
		ran="$ran $s"
		t0=$(date +%s)
		nested_suite "$s" </dev/null >"${TMPDIR:-/tmp}/t_nested.$$.$s" 2>&1
		line=$(grep -a "^[0-9]* passed, [0-9]* failed" "${TMPDIR:-/tmp}/t_nested.$$.$s" | tail -n 1)
		if [ -z "$line" ]; then
			failed=$((failed + 1))
			echo "FAIL $s: no result"
			tail -n 20 "${TMPDIR:-/tmp}/t_nested.$$.$s" | sed 's/^/  /'
		else
			add_counts "$s" "$line"
			echo "suite $s (this host's /dev/kvm, $(($(date +%s) - t0)) s): $line"
			grep -a -e FAIL -e 'skipped' "${TMPDIR:-/tmp}/t_nested.$$.$s" | grep -v "passed, " | sed 's/^/  /'
		fi
		rm -f "${TMPDIR:-/tmp}/t_nested.$$.$s"
	done
	[ -n "$ran" ] || skip "none of the suites asked for runs here (the others are make check entries of their own)"
	if [ "$skipped" -gt 0 ]; then
		echo "$passed passed, $failed failed, $skipped skipped"
	else
		echo "$passed passed, $failed failed"
	fi
	[ "$failed" -eq 0 ]
	exit
fi

[ -z "${CORRAL_SANITIZED:-}" ] ||
	skip "no /dev/kvm: the nested test machine runs in make check's normal pass only (QEMU's emulation of a sanitized corral would take the pass past CI's time)"
command -v "$QEMU" >/dev/null 2>&1 || skip "no /dev/kvm and no $QEMU (qemu-system-x86 package) for the nested machine"
if ! out=$(sh "$ROOT/tools/mkguest.sh" 2>&1); then
	echo "$out" | sed 's/^/  /'
	skip "the guest kit cannot be built here (no apt or no network)"
fi
release=$(cat "$GUEST_DIR/version")
[ -n "$(find "$GUEST_DIR/modules/$release/kernel/arch/x86/kvm" -name 'kvm-amd.ko*' 2>/dev/null)" ] ||
	skip "the guest kit's kernel $release has no kvm-amd module"

work=$(mktemp -d "${TMPDIR:-/tmp}/t_nested.XXXXXX")
trap '[ -n "${qpid:-}" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
if ! sh "$ROOT/tools/mknested.sh" "$BUILD" "$work/nested.cpio" >"$work/mk.log" 2>&1; then
	sed 's/^/  /' "$work/mk.log"
	echo "FAIL tools/mknested.sh"
	echo "0 passed, 1 failed"
	exit 1
fi

# A machine that stands still: its console silent for STALL seconds while
# /init's heartbeat (every 15 s) should be printing, or BOOT_STALL before
# /init's first line (the kernel boots quietly).
STALL=${CORRAL_NESTED_STALL:-120}
BOOT_STALL=$((STALL * 3))

# qmp CMD...: each CMD (a QEMU monitor command line) run in the machine's
# QEMU through its QMP socket, the answers printed
qmp() {
	command -v python3 >/dev/null 2>&1 || {
		echo "(no python3 to ask QEMU's monitor)"
		return 0
	}
	python3 - "$work/qmp" "$@" <<'EOF'
import json, socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    def call(cmd, args=None):
        m = {"execute": cmd}
        if args is not None:
            m["arguments"] = args
        f.write(json.dumps(m).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise OSError("QMP connection closed")
            r = json.loads(line)
            if "return" in r or "error" in r:
                return r
    f.readline()  # the greeting
    call("qmp_capabilities")
    for c in sys.argv[2:]:
        r = call("human-monitor-command", {"command-line": c})
        print("(qemu) " + c)
        print(r.get("return", r.get("error")))
except (OSError, ValueError) as e:
    print("(QEMU's monitor: %s)" % e)
EOF
}

# run_machine SUITES LIMIT: one nested machine running SUITES (a,b,...),
# its console in $con; sets $state: end (it ran them all), exited (QEMU
# ended early), stalled (the console stood still: the machine's CPUs are
# shown, then it is stopped) or timeout (LIMIT s)
run_machine() {
	con=$work/console.$machines
	: >"$con"
	rm -f "$work/qmp"
	# 2 vCPUs so that the nested guest's vCPU threads really run side by side.
	# tsc=reliable: TCG's TSC is the host's, one clock for both CPUs, but the
	# machine's kernel, checking it under emulation, finds it "unsynchronized";
	# KVM on a host TSC marked unstable re-bases each vCPU's TSC whenever it is
	# scheduled, and the guests would see their TSCs warped between CPUs.
	# Not no_timer_check: on a loaded host QEMU's emulated PIT can miss the
	# kernel's IO-APIC timer check, which then panics the machine at boot
	# ("IO-APIC + timer doesn't work"); with the check off, the machine twice
	# stood still instead (no timer, no progress, until the outer timeout):
	# a fast, clear failure is the better of the two.
	# nokaslr: the rips shown at a stall are those of /proc/kallsyms of any
	# run of the machine; sysrq_always_enabled: the monitor's sendkey asks
	# the stalled machine's kernel for its CPUs' backtraces.
	"$QEMU" -accel tcg -cpu max -smp 2 -m 2048 -nodefaults -display none \
		-qmp "unix:$work/qmp,server=on,wait=off" -no-reboot -serial "file:$con" \
		-kernel "$GUEST_DIR/vmlinuz" -initrd "$work/nested.cpio" \
		-append "console=ttyS0 panic=-1 quiet tsc=reliable nokaslr sysrq_always_enabled corral.nested=$1 corral.nested_limit=$SUITE_LIMIT${CORRAL_NESTED_APPEND:+ $CORRAL_NESTED_APPEND}" \
		</dev/null >"$work/qemu.log" 2>&1 &
	qpid=$!
	m0=$(date +%s)
	last=$m0
	size=0
	state=exited
	frozen=
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 2
		now=$(date +%s)
		n=$(wc -c <"$con")
		[ "$n" -ne "$size" ] && size=$n last=$now
		lim=$STALL
		grep -aq '^@nested ' "$con" || lim=$BOOT_STALL
		if [ -n "${CORRAL_NESTED_FREEZE:-}" ] && [ -z "$frozen" ] &&
			tr -d '\r' <"$con" | grep -aqx "@nested begin $CORRAL_NESTED_FREEZE"; then
			frozen=1
			echo "t_nested: CORRAL_NESTED_FREEZE: the machine's CPUs are stopped in $CORRAL_NESTED_FREEZE"
			qmp stop >/dev/null
		fi
		if [ $((now - last)) -ge "$lim" ]; then
			state=stalled
			break
		fi
		if [ "$now" -ge $((m0 + $2)) ]; then
			state=timeout
			break
		fi
	done
	if [ "$state" != exited ]; then
		if [ "$state" = stalled ]; then
			echo "t_nested: the nested machine stood still: no console output for $((now - last)) s" \
				"(at $((now - m0)) s; CORRAL_NESTED_STALL=$STALL)"
		else
			echo "t_nested: the nested machine's time ran out after $((now - m0)) s (CORRAL_NESTED_TIMEOUT)"
		fi
		echo "  its console's last lines:"
		tr -d '\r' <"$con" | grep -av '^@nested tick' | tail -n 15 | sed 's/^/  | /'
		echo "  its CPUs (QEMU's monitor):"
		# sysrq-9 first: the backtraces are printed below `quiet`'s level
		qmp "info status" "info cpus" "info registers -a" "sendkey alt-sysrq-9" "sendkey alt-sysrq-l" 2>&1 |
			tr -d '\r' | grep -v -e '^FPR' -e '^[XYZ]MM' -e '^FCW' -e '^DR' -e '^ *$' | sed 's/^/  /'
		sleep 10
		echo "  its console after sysrq-l:"
		tail -c +$((size + 1)) "$con" | tr -d '\r' | head -n 80 | sed 's/^/  | /'
		kill "$qpid" 2>/dev/null
		n=0
		while kill -0 "$qpid" 2>/dev/null && [ $n -lt 10 ]; do
			sleep 1
			n=$((n + 1))
		done
		kill -9 "$qpid" 2>/dev/null
	fi
	wait "$qpid"
	rc=$?
	tr -d '\r' <"$con" >"$con.txt"
	[ "$state" = exited ] && grep -aqx '@nested end' "$con.txt" && state=end
	echo "t_nested: nested machine $machines ($1) ran for $(($(date +%s) - m0)) s: $state (QEMU exit $rc)"
}

t0=$(date +%s)
deadline=$((t0 + TIMEOUT))
todo=$(echo "$SUITES" | tr ',' ' ')
retried=
boot_retried=0
machines=0
: >"$work/log"
: >"$work/lost"
while [ -n "$todo" ]; do
	left=$((deadline - $(date +%s)))
	if [ "$left" -le 0 ]; then
		for s in $todo; do
			printf '%s\t%s\n' "$s" "not run: the nested machines' time (CORRAL_NESTED_TIMEOUT=$TIMEOUT s) ran out" >>"$work/lost"
		done
		break
	fi
	machines=$((machines + 1))
	run_machine "$(echo $todo | tr ' ' ',')" "$left"
	c=$con.txt
	if ! grep -aq '^@nested kvm: /dev/kvm is there' "$c"; then
		sed 's/^/  | /' "$work/qemu.log" "$c" | tail -n 30
		if grep -aq '^@nested kvm: no /dev/kvm' "$c"; then
			skip "the nested machine's kernel has no usable KVM ($(grep -a '^@nested kvm:' "$c" | cut -c 14-))"
		fi
		# its kernel's boot under a loaded host: the IO-APIC timer check can
		# miss QEMU's PIT and panic ("IO-APIC + timer doesn't work"), or the
		# machine stands still; both are the host's timing, and a new
		# machine gets past them (twice at most)
		if { [ "$state" = stalled ] || grep -aq 'Kernel panic' "$c"; } && [ "$boot_retried" -lt 2 ]; then
			boot_retried=$((boot_retried + 1))
			echo "t_nested: the nested machine did not get to its suites ($state$(grep -a -m 1 -o 'Kernel panic.*' "$c" | cut -c 1-80 | sed 's/^/: /')): once more"
			continue
		fi
		echo "FAIL the nested machine did not start ($state, QEMU exit $rc)"
		echo "$passed passed, $((failed + 1)) failed"
		exit 1
	fi
	[ -s "$work/head" ] || grep -a '^@nested \(init\|kvm\|clock\|modules\)' "$c" >"$work/head"
	next=
	progress=
	for s in $todo; do
		if grep -aq "^@nested $s: took " "$c"; then
			grep -a "^@nested $s: " "$c" >>"$work/log"
			progress=1
		elif grep -aqx "@nested begin $s" "$c"; then
			# the suite the machine was in when it stood still or ended
			progress=1
			case $state in
			stalled) why="the nested machine stood still in it (no console output for $STALL s)" ;;
			timeout) why="the nested machines' time (CORRAL_NESTED_TIMEOUT=$TIMEOUT s) ran out in it" ;;
			*) why="the nested machine ended in it (QEMU exit $rc, no '@nested end')" ;;
			esac
			case " $retried " in
			*" $s "*)
				printf '%s\t%s, twice\n' "$s" "$why" >>"$work/lost"
				grep -a "^@nested $s: " "$c" >"$work/partial.$s"
				;;
			*)
				if [ "$state" = timeout ]; then
					printf '%s\t%s\n' "$s" "$why" >>"$work/lost"
					grep -a "^@nested $s: " "$c" >"$work/partial.$s"
				else
					echo "t_nested: $s: $why; once more in a new machine"
					retried="$retried $s"
					next="$next $s"
				fi
				;;
			esac
		else
			next="$next $s"
		fi
	done
	todo=$next
	if [ -z "$progress" ]; then
		for s in $todo; do
			printf '%s\t%s\n' "$s" "not run: the nested machine ended before it ($state, QEMU exit $rc)" >>"$work/lost"
		done
		break
	fi
done
echo "t_nested: the nested machines ran for $(($(date +%s) - t0)) s ($machines machines)"
cat "$work/head"
[ -z "$retried" ] || echo "t_nested: stood still once and ran again:$retried"
# the machine's loopback, which the user network's 10.0.2.2 reaches
if grep -aq '^@nested init: lo: inet 127.0.0.1/8' "$work/head"; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
	echo "FAIL the nested machine's loopback interface has no 127.0.0.1"
fi

for s in $(echo "$SUITES" | tr ',' ' '); do
	why=$(awk -F '\t' -v s="$s" '$1 == s { print $2; exit }' "$work/lost")
	if [ -n "$why" ]; then
		failed=$((failed + 1))
		echo "FAIL $s: $why"
		grep -av '^@nested tick' "$work/partial.$s" 2>/dev/null | tail -n 20 | sed 's/^/  /'
		continue
	fi
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
	add_counts "$s" "${line#"@nested $s: "}"
	echo "suite $s (nested, ${took:-?}): ${line#"@nested $s: "}"
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
