#!/bin/sh
# Snapshot and restore of the Debian guest kit: boot to the initramfs
# shell, start a counting loop there that prints to the console (with
# sleeps, so timers and idle time are in play), snapshot it with `corral
# snapshot --stop`, then `corral restore` in a new process: the count goes
# on from where it stood, without a reboot.
# T_SNAP_ENGINES (default "emu emu") is the chain of engines: the boot runs
# on the first, each later one restores the snapshot of the one before
# (the nested test machine's suite "snapdeb" runs "kvm emu kvm": kvm to
# emu, then emu to kvm, with one boot on kvm).
NAME=t_snapshot
. "$(dirname "$0")/lib.sh"

need_kit
ENGINES=${T_SNAP_ENGINES:-emu emu}
case " $ENGINES " in
*" kvm "*)
	"$CORRAL" info 2>/dev/null | grep -q '^kvm: .*API version' ||
		skip "no usable /dev/kvm for the kvm engine (the nested test machine runs this test: make check-kvm-nested)"
	;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/t_snapshot.XXXXXX")
keep=
trap 'exec 9>&-; [ -n "$keep" ] && kill $keep 2>/dev/null; rm -rf "$work"' EXIT INT TERM
S=$work/api.sock

# until_seen FILE PATTERN SECONDS [PID] (the console's lines end in CR LF):
# waits for PATTERN (grep -E) in FILE, at most SECONDS, and no longer than
# process PID (the corral that writes FILE) lives: once it has ended, FILE
# is read one last time (by the clock: in the nested test machine a fork
# costs a large part of a second, and counted sleeps would stretch the
# limit several times over)
until_seen() {
	end=$(($(date +%s) + $3))
	while ! cat "$1" 2>/dev/null | tr -d '\r' | grep -qE "$2"; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		# a guest kernel that panicked prints nothing more
		grep -q 'Kernel panic - not syncing' "$1" 2>/dev/null && return 1
		if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
			cat "$1" 2>/dev/null | tr -d '\r' | grep -qE "$2"
			return
		fi
		sleep 0.1
	done
}

# ended PID NAME: why corral PID (NAME) is gone, if it is
ended() {
	kill -0 "$1" 2>/dev/null && return 0
	wait "$1"
	echo "    ($2 has ended, exit status $?)"
}

# a corral that has ended leaves the console fifo without a reader: a
# write there fails (EPIPE) instead of ending this script
trap "" PIPE
mkfifo "$work/in"
first=${ENGINES%% *}
# Linux checks at boot that its timer reaches the IO-APIC within a few
# ticks and panics if not: on a slow host (the nested test machine under
# load) the check can miss, as it can under QEMU; one more boot then
tries=0
while :; do
	timeout "$TIMEOUT" "$CORRAL" run --engine "$first" --mem 256M --serial stdio --api-sock "$S" \
		<"$work/in" >"$work/out1" 2>"$work/err1" &
	vm=$!
	keep=$vm
	exec 9>"$work/in" # the console's input stays open
	if until_seen "$work/out1" '^/ # ' 600 $vm; then ok "booted to the initramfs shell"; break; fi
	if [ $tries -eq 0 ] && grep -q 'IO-APIC + timer doesn.t work' "$work/out1"; then
		echo "t_snapshot: the guest's IO-APIC timer check missed (a slow host): booting again"
		tries=1
		exec 9>&-
		kill $vm 2>/dev/null
		wait $vm 2>/dev/null
		rm -f "$S"
		continue
	fi
	fail "no shell prompt"
	ended $vm "corral run"
	tail -n 20 "$work/out1" "$work/err1" | sed 's/^/    /'; report; exit 1
done
echo 'i=0; while true; do i=$((i+1)); echo "count $i"; sleep 0.1; done' >&9
if until_seen "$work/out1" '^count 20$' 300 $vm; then ok "the guest counts"; else
	fail "the guest does not count"
	ended $vm "corral run"
fi
# snap_restore K ENGINE: snapshot the running VM (console in $out) into
# $work/snapK with --stop, restore it on ENGINE; its console is then $work/outK
snap_restore() {
	k=$1 eng=$2
	snap=$work/snap$k
	if "$CORRAL" snapshot "$S" "$snap" --stop 2>"$work/snaperr$k"; then ok "corral snapshot --stop ($prev)"; else
		fail "corral snapshot ($prev): $(cat "$work/snaperr$k")"
	fi
	i=0
	while kill -0 "$vm" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$vm" 2>/dev/null; then fail "the VM on $prev still runs"; kill "$vm"; else ok "the VM on $prev ended"; fi
	last=$(tr -d '\r' <"$out" | grep -E '^count [0-9]+$' | tail -n 1 | cut -d' ' -f2)
	[ -f "$snap/memory" ] && [ "$(du -k "$snap/memory" | cut -f1)" -lt 200000 ] &&
		ok "the memory file is sparse ($(du -k "$snap/memory" | cut -f1) KiB on disk for 256 MiB)" ||
		fail "the memory file is missing or not sparse"

	out=$work/out$k
	timeout "$TIMEOUT" "$CORRAL" restore "$snap" --engine "$eng" --serial "file:$out" --api-sock "$S" \
		</dev/null 2>"$work/err$k" &
	vm=$!
	keep=$vm
	next=$((last + 1))
	if until_seen "$out" "^count $((last + 30))\$" 300 $vm; then ok "the guest restored on $eng counts on"; else
		fail "the guest restored on $eng did not count to $((last + 30))"
		ended $vm "corral restore"
		: >>"$out"
		tail -n 10 "$out" "$work/err$k" | sed 's/^/    /'
	fi
	got=$(tr -d '\r' <"$out" | grep -E '^count [0-9]+$' | head -n 1 | cut -d' ' -f2)
	if [ "$got" = "$next" ]; then ok "the count continues ($prev to $eng): $last, then $got"; else
		fail "the count was at $last on $prev; the guest restored on $eng printed $got first"
	fi
	if grep -q "Linux version" "$out"; then fail "the guest restored on $eng rebooted"; elif [ -s "$out" ]; then
		ok "no reboot on $eng"
	else
		fail "no console output from the guest restored on $eng"
	fi
	prev=$eng
}

out=$work/out1
prev=$first
k=1
for eng in ${ENGINES#* }; do
	k=$((k + 1))
	snap_restore $k "$eng"
done
# the last VM: the API's Stop where curl is, else the stop signal
if command -v curl >/dev/null 2>&1; then
	curl -s -m 20 -X PUT --unix-socket "$S" -d '{"action_type":"Stop"}' http://localhost/actions
else
	kill "$vm"
fi
wait "$vm"
keep=
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
