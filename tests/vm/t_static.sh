#!/bin/sh
# A static corral and corral-dyn beside it (docs/architecture.md, "Two
# binaries"): a run with a user network and the control API runs as
# corral-dyn; a restore of its snapshot, which has a user network, is handed
# to corral-dyn after the state is read and before anything is written, and
# the guest goes on; a restore of a snapshot without one stays in the static
# corral; a static corral without corral-dyn beside it fails with one line
# naming it and writes nothing (no overlay, no socket).
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests/tick.bin
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
if [ -n "${CORRAL_SANITIZED:-}" ] || readelf -l "$CORRAL" 2>/dev/null | grep -q INTERP; then
	echo "t_static: skipped: $CORRAL is linked dynamically (a sanitizer build, or make STATIC=)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
dir=$(cd "$(dirname "$CORRAL")" && pwd)
DYN=$dir/corral-dyn
STATIC=$dir/$(basename "$CORRAL")

# wait_lines FILE N: until FILE has N lines (20 s at most)
wait_lines() {
	i=0
	while [ "$(cat "$1" 2>/dev/null | wc -l)" -lt "$2" ] && [ $i -lt 400 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}
# exe_of PID: the program PID runs (after any exec)
exe_of() { readlink "/proc/$1/exe"; }

truncate -s 1M "$tmp/disk.img"
S=$tmp/api.sock
"$CORRAL" run --flat "$G" --mem 16M --engine emu --net user --disk "$tmp/disk.img" --serial "file:$tmp/out1" \
	--api-sock "$S" </dev/null 2>"$tmp/err1" &
vm=$!
pids="$pids $vm"
wait_lines "$tmp/out1" 3
exe=$(exe_of $vm)
[ "$exe" = "$DYN" ] && ok "run --net user --api-sock runs as corral-dyn" ||
	bad "run --net user --api-sock runs as '$exe', want $DYN: $(cat "$tmp/err1")"
if "$CORRAL" snapshot "$S" "$tmp/snap" --stop 2>"$tmp/snap.err" && wait $vm; then
	ok "snapshot --stop"
else
	bad "snapshot --stop: $(cat "$tmp/snap.err")"
fi
last=$(tail -n 1 "$tmp/out1")
ls "$tmp/snap" >"$tmp/snap.files"

# the snapshot's user network: corral-dyn restores it
mkdir "$tmp/d2"
"$CORRAL" restore "$tmp/snap" --serial "file:$tmp/out2" --disk-dir "$tmp/d2" </dev/null 2>"$tmp/err2" &
vm=$!
pids="$pids $vm"
wait_lines "$tmp/out2" 3
exe=$(exe_of $vm)
kill $vm 2>/dev/null
wait $vm 2>/dev/null
[ "$exe" = "$DYN" ] && ok "restore of a snapshot with a user network runs as corral-dyn" ||
	bad "restore of a snapshot with a user network runs as '$exe', want $DYN: $(cat "$tmp/err2")"
[ -n "$(ls "$tmp/d2")" ] && ok "corral-dyn's restore wrote its disk overlay into --disk-dir" ||
	bad "corral-dyn's restore wrote no overlay into --disk-dir"
first=$(head -n 1 "$tmp/out2")
if [ -n "$first" ] && [ -n "$last" ] && [ $((0x$first)) -gt $((0x$last)) ] 2>/dev/null; then
	ok "the guest goes on after the hand-over ($last, then $first)"
else
	bad "the restored guest printed '$first' after '$last': $(cat "$tmp/err2")"
fi

# a static corral alone: one line naming corral-dyn, nothing written
mkdir "$tmp/alone" "$tmp/d3"
cp "$STATIC" "$tmp/alone/corral"
"$tmp/alone/corral" restore "$tmp/snap" --serial none --disk-dir "$tmp/d3" </dev/null >"$tmp/out3" 2>"$tmp/err3"
st=$?
if [ $st -eq 1 ] && [ "$(wc -l <"$tmp/err3")" -eq 1 ] && grep -q "corral-dyn" "$tmp/err3" &&
	grep -q "user network" "$tmp/err3"; then
	ok "restore without corral-dyn: status 1, one line: $(cat "$tmp/err3")"
else
	bad "restore without corral-dyn: status $st, '$(cat "$tmp/err3")'"
fi
if [ -z "$(ls "$tmp/d3")" ] && ls "$tmp/snap" | cmp -s - "$tmp/snap.files"; then
	ok "restore without corral-dyn wrote no overlay"
else
	bad "restore without corral-dyn wrote: $(ls "$tmp/d3" "$tmp/snap")"
fi
"$tmp/alone/corral" run --flat "$G" --mem 16M --serial none --api-sock "$tmp/alone.sock" </dev/null 2>"$tmp/err4"
st=$?
if [ $st -eq 1 ] && [ "$(wc -l <"$tmp/err4")" -eq 1 ] && grep -q -- "--api-sock needs.*corral-dyn" "$tmp/err4" &&
	[ ! -e "$tmp/alone.sock" ]; then
	ok "run --api-sock without corral-dyn: status 1, one line, no socket"
else
	bad "run --api-sock without corral-dyn: status $st, '$(cat "$tmp/err4")'"
fi

# no user network, no API: the static corral restores it itself
"$CORRAL" run --flat "$G" --mem 16M --engine emu --serial "file:$tmp/out5" --api-sock "$S.2" </dev/null 2>/dev/null &
vm=$!
pids="$pids $vm"
wait_lines "$tmp/out5" 2
"$CORRAL" snapshot "$S.2" "$tmp/snap2" --stop 2>/dev/null
wait $vm
"$CORRAL" restore "$tmp/snap2" --serial "file:$tmp/out6" </dev/null 2>"$tmp/err6" &
vm=$!
pids="$pids $vm"
wait_lines "$tmp/out6" 2
exe=$(exe_of $vm)
kill $vm 2>/dev/null
wait $vm 2>/dev/null
if [ "$exe" = "$STATIC" ] && [ -s "$tmp/out6" ]; then
	ok "restore of a snapshot without network or API runs in the static corral"
else
	bad "restore without network or API ran as '$exe' (want $STATIC), output $(cat "$tmp/out6" | wc -l) lines: $(cat "$tmp/err6")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
