#!/bin/sh
# Snapshot and restore of the Debian guest kit under emu: boot to the
# initramfs shell, start a counting loop there that prints to the console
# (with sleeps, so timers and idle time are in play), snapshot it with
# `corral snapshot --stop`, then `corral restore` in a new process: the
# count goes on from where it stood, without a reboot.
NAME=t_snapshot
. "$(dirname "$0")/lib.sh"

need_kit
command -v curl >/dev/null 2>&1 || skip "no curl"
work=$(mktemp -d "${TMPDIR:-/tmp}/t_snapshot.XXXXXX")
keep=
trap 'exec 9>&-; [ -n "$keep" ] && kill $keep 2>/dev/null; rm -rf "$work"' EXIT INT TERM
S=$work/api.sock

# until_seen FILE PATTERN SECONDS (the console's lines end in CR LF): waits for PATTERN (grep -E) in FILE
until_seen() {
	i=0
	while ! cat "$1" 2>/dev/null | tr -d '\r' | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

mkfifo "$work/in"
timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$S" \
	<"$work/in" >"$work/out1" 2>"$work/err1" &
vm=$!
keep=$vm
exec 9>"$work/in" # the console's input stays open
if until_seen "$work/out1" '^/ # ' 600; then ok "booted to the initramfs shell"; else
	fail "no shell prompt"; tail -n 20 "$work/out1" "$work/err1" | sed 's/^/    /'; report; exit 1
fi
echo 'i=0; while true; do i=$((i+1)); echo "count $i"; sleep 0.1; done' >&9
if until_seen "$work/out1" '^count 20$' 300; then ok "the guest counts"; else fail "the guest does not count"; fi
if "$CORRAL" snapshot "$S" "$work/snap" --stop 2>"$work/snaperr"; then ok "corral snapshot --stop"; else
	fail "corral snapshot: $(cat "$work/snaperr")"
fi
i=0
while kill -0 "$vm" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$vm" 2>/dev/null; then fail "the first VM still runs"; kill "$vm"; else ok "the first VM ended"; fi
last=$(tr -d '\r' <"$work/out1" | grep -E '^count [0-9]+$' | tail -n 1 | cut -d' ' -f2)
[ -f "$work/snap/memory" ] && [ "$(du -k "$work/snap/memory" | cut -f1)" -lt 200000 ] &&
	ok "the memory file is sparse ($(du -k "$work/snap/memory" | cut -f1) KiB on disk for 256 MiB)" ||
	fail "the memory file is missing or not sparse"

timeout 300 "$CORRAL" restore "$work/snap" --serial "file:$work/out2" --api-sock "$S" </dev/null 2>"$work/err2" &
vm=$!
keep=$vm
next=$((last + 1))
if until_seen "$work/out2" "^count $((last + 30))\$" 300; then ok "the restored guest counts on"; else
	fail "the restored guest did not count to $((last + 30))"
	tail -n 10 "$work/out2" "$work/err2" | sed 's/^/    /'
fi
first=$(tr -d '\r' <"$work/out2" | grep -E '^count [0-9]+$' | head -n 1 | cut -d' ' -f2)
if [ "$first" = "$next" ]; then ok "the count continues: $last, then $first"; else
	fail "the count was at $last; the restored guest printed $first first"
fi
if grep -q "Linux version" "$work/out2"; then fail "the restored guest rebooted"; else ok "no reboot"; fi
curl -s -m 20 -X PUT --unix-socket "$S" -d '{"action_type":"Stop"}' http://localhost/actions
wait "$vm"
keep=
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
