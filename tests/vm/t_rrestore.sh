#!/bin/sh
# Recording a restored VM (docs/replay.md, "A recording of a restored
# VM"): the guest tests/guests/rrestore.S is snapshotted while it waits for
# a console byte (its timer ticking), `corral restore SNAP --record FILE`
# types the byte and records the rest (console input, RDRAND, idle time),
# and `corral restore SNAP --replay FILE` twice gives the same output, the
# same instruction count and hashes. Refused with one clear line: a
# snapshot whose memory or state differs from the recorded one, another
# VM's snapshot, a boot's recording replayed on a snapshot and the
# reverse, options that would change the run. A debugger on the restored
# replay goes forward, back to the restore and forward to the end. Last
# line: "N passed, N failed, N skipped".
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests/rrestore.bin
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_rrestore.XXXXXX")
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
	[ -f "$tmp/err" ] && sed 's/^/    /' "$tmp/err" | tail -n 5
}
# one_line FILE PATTERN: FILE is one line that matches PATTERN
one_line() {
	[ "$(wc -l <"$1")" -eq 1 ] && grep -Eq -- "$2" "$1"
}

# snap NAME: runs the guest until it waits for its byte, snapshots it
# into $tmp/NAME (the guest's timer ticks meanwhile)
snap() {
	rm -f "$tmp/api" "$tmp/run.out"
	"$CORRAL" run --flat "$G" --mem 16M --no-reboot --engine emu --serial "file:$tmp/run.out" \
		--api-sock "$tmp/api" </dev/null 2>"$tmp/err" &
	pid=$!
	pids="$pids $pid"
	i=0
	until grep -q ready "$tmp/run.out" 2>/dev/null || [ $i -gt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 0.2
	if "$CORRAL" snapshot "$tmp/api" "$tmp/$1" --stop 2>"$tmp/err" && wait $pid; then ok; else
		bad "snapshot $1"
	fi
}

# result FILE: the numbers of a record or replay line (inputs, bytes,
# instructions, guest time, hashes)
result() {
	grep -E '^corral: (record|replay): ' "$1" | sed -E 's/^corral: (record|replay): //; s/: identical to the recording$//'
}

snap snap1
# the byte arrives a while after the restore: idle steps before it
(sleep 0.5; printf 'x') | timeout -k 5 60 "$CORRAL" restore "$tmp/snap1" --serial stdio --record "$tmp/r.rr" \
	>"$tmp/rec.out" 2>"$tmp/rec.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^0000000000000078$' "$tmp/rec.out" && grep -q '^done$' "$tmp/rec.out" &&
	[ -n "$(result "$tmp/rec.err")" ]; then ok; else
	cp "$tmp/rec.err" "$tmp/err"
	bad "record a restored VM (rc $rc): $(tr '\n' ' ' <"$tmp/rec.out")"
fi
grep -q ready "$tmp/rec.out" && bad "the restored run printed its start again" || ok

for n in 1 2; do
	timeout -k 5 60 "$CORRAL" restore "$tmp/snap1" --serial stdio --replay "$tmp/r.rr" </dev/null \
		>"$tmp/rep$n.out" 2>"$tmp/rep$n.err"
	rc=$?
	if [ $rc -eq 0 ] && cmp -s "$tmp/rec.out" "$tmp/rep$n.out" && grep -q 'identical to the recording' "$tmp/rep$n.err" &&
		[ "$(result "$tmp/rec.err")" = "$(result "$tmp/rep$n.err")" ]; then ok; else
		cp "$tmp/rep$n.err" "$tmp/err"
		bad "replay $n of the restored recording (rc $rc): $(tr '\n' ' ' <"$tmp/rep$n.out") / $(result "$tmp/rec.err")"
	fi
done

# a debugger on the restored VM's replay: forward to a breakpoint, back to
# an earlier hit and back to the restore (which the replay loads again),
# then forward to the end, identical to the recording
if command -v gdb >/dev/null 2>&1; then
	round=$(printf '0x%x' $((0x100000 + 0x$(nm "$BUILD/tests/guests/rrestore.o" | awk '$3 == "round" { print $1 }'))))
	cat >"$tmp/s.gdb" <<EOF
set pagination off
set confirm off
target remote $tmp/sock
p/x \$pc
break *$round
continue
continue
p \$r12
reverse-continue
p \$r12
delete
reverse-continue
p/x \$pc
continue
EOF
	# from the restore, then from replay snapshots on the way
	for snaps in off 1000; do
		rm -f "$tmp/sock"
		timeout -k 5 120 "$CORRAL" restore "$tmp/snap1" --serial "file:$tmp/gdbrep.out" --replay "$tmp/r.rr" \
			--replay-snapshots $snaps --gdb "unix:$tmp/sock" --gdb-wait </dev/null >/dev/null 2>"$tmp/gdbrep.err" &
		gpid=$!
		pids="$pids $gpid"
		i=0
		while [ ! -S "$tmp/sock" ] && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		timeout -k 5 120 gdb -batch -nx -x "$tmp/s.gdb" >"$tmp/gdb.out" 2>&1
		wait $gpid
		rc=$?
		start=$(sed -n 's/^\$1 = \(0x[0-9a-f]*\)$/\1/p' "$tmp/gdb.out")
		if [ -n "$start" ] && grep -q '^\$2 = 1$' "$tmp/gdb.out" && grep -q '^\$3 = 0$' "$tmp/gdb.out"; then ok; else
			cp "$tmp/gdb.out" "$tmp/err"
			bad "gdb on a restored replay ($snaps): forward to round 1, back to round 0"
		fi
		if [ -n "$start" ] && grep -q "^\\\$4 = $start\$" "$tmp/gdb.out"; then ok; else
			cp "$tmp/gdb.out" "$tmp/err"
			bad "gdb on a restored replay ($snaps): back to the restore's first instruction ($start)"
		fi
		if [ $rc -eq 0 ] && grep -q 'identical to the recording' "$tmp/gdbrep.err" &&
			cmp -s "$tmp/rec.out" "$tmp/gdbrep.out"; then ok; else
			cp "$tmp/gdbrep.err" "$tmp/err"
			bad "gdb on a restored replay ($snaps): the end (rc $rc)"
		fi
	done
	if grep -q '[1-9][0-9]* restored for going back' "$tmp/gdbrep.err"; then ok; else
		cp "$tmp/gdbrep.err" "$tmp/err"
		bad "gdb on a restored replay: no replay snapshot was used to go back"
	fi
else
	echo "skipped: no gdb (the debugger on a restored replay)"
	skipped=$((skipped + 1))
fi

# refuse NAME PATTERN CMD...: CMD fails with one line matching PATTERN
refuse() {
	what=$1
	pat=$2
	shift 2
	if timeout -k 5 60 "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; then
		bad "$what: accepted"
	elif one_line "$tmp/err" "$pat"; then ok; else
		cat "$tmp/err" >&2; bad "$what: not one line matching '$pat'"
	fi
}

# the snapshot's memory changed by one byte (the guest would start from
# other RAM), and its state stream by a re-saved snapshot of the same VM
cp -r "$tmp/snap1" "$tmp/mem"
printf '\001' | dd of="$tmp/mem/memory" bs=1 seek=$((0x20300)) conv=notrunc 2>/dev/null
refuse "another memory" "snapshot memory is not the one recorded.*give the snapshot the recording started from" \
	"$CORRAL" restore "$tmp/mem" --serial none --replay "$tmp/r.rr"
snap snap2
if cmp -s "$tmp/snap1/state" "$tmp/snap2/state"; then bad "two snapshots with the same state"; else ok; fi
refuse "another snapshot" "(snapshot state is not the one recorded|recorded from another snapshot)" \
	"$CORRAL" restore "$tmp/snap2" --serial none --replay "$tmp/r.rr"
# a corrupt state stream: the restore refuses it before any replay
cp -r "$tmp/snap1" "$tmp/bad"
printf 'garbage' | dd of="$tmp/bad/state" bs=1 seek=100 conv=notrunc 2>/dev/null
refuse "a corrupt snapshot" "snapshot '.*/bad': .*corrupt" "$CORRAL" restore "$tmp/bad" --serial none --replay "$tmp/r.rr"

# a boot's recording is not a snapshot's, and the reverse
timeout -k 5 60 "$CORRAL" run --flat "$BUILD/tests/guests/hello.bin" --mem 16M --no-reboot --engine emu \
	--serial none --record "$tmp/boot.rr" </dev/null 2>"$tmp/err" && ok || bad "record a boot"
refuse "a boot's recording on a snapshot" "a recording from a boot, not from a snapshot" \
	"$CORRAL" restore "$tmp/snap1" --serial none --replay "$tmp/boot.rr"
refuse "a snapshot's recording on a boot" "a recording of a restored snapshot: replay it with 'corral restore" \
	"$CORRAL" run --flat "$G" --mem 16M --no-reboot --engine emu --serial none --replay "$tmp/r.rr"
refuse "--record with --paused" "--record cannot be combined with --paused" \
	"$CORRAL" restore "$tmp/snap1" --paused --record "$tmp/x.rr"
refuse "--replay with --api-sock" "--replay cannot be combined with --api-sock" \
	"$CORRAL" restore "$tmp/snap1" --api-sock "$tmp/x.sock" --replay "$tmp/r.rr"
refuse "--record under kvm" "--record needs --engine emu" \
	"$CORRAL" restore "$tmp/snap1" --engine kvm --record "$tmp/x.rr"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
