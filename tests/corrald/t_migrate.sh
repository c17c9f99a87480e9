#!/bin/sh
# `corral vm migrate` between two corralds on this machine (state
# directories and sockets of their own): the counting guest
# (tests/guests/tick.S) moves from A to B by B's API socket and back to A
# by A's TCP address (corrald --incoming); its printed count goes on at
# the destination without a gap or a repeat, the destination lists it
# running and the source no longer does. Failures: a destination that
# refuses the VM (its name is taken there), one that drops the stream
# mid-way, one that is not there: the VM runs on at the source, listed
# there, and the destination keeps nothing.
: "${CORRAL:?}" "${BUILD:?}"
CORRALD=$(dirname "$CORRAL")/corrald
passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
if ! command -v curl >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
	echo "t_migrate: skipped: curl and python3 are needed"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp -d /tmp/t_vmmig.XXXXXX)
mkdir "$tmp/img"
cp "$BUILD/tests/guests/tick.bin" "$BUILD/tests/guests/dirty.bin" "$tmp/img/"
PA=$((20000 + $$ % 20000))
PB=$((PA + 1))
PX=$((PA + 2))
pids=
. "$(dirname "$0")/lib.sh"
cleanup() {
	corrald_cleanup "$pids" "$tmp/a" "$tmp/b"
	[ -n "$KEEP" ] || rm -rf "$tmp"
}
trap cleanup EXIT

start() { # NAME PORT
	"$CORRALD" --foreground --socket "$tmp/$1.sock" --state-dir "$tmp/$1" --image-dir "$tmp/img" \
		--incoming "tcp:127.0.0.1:$2" 2>>"$tmp/$1.log" &
	pids="$pids $!"
	i=0
	while [ ! -S "$tmp/$1.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
start a "$PA"
start b "$PB"
A="--socket $tmp/a.sock"
B="--socket $tmp/b.sock"
# state SOCK NAME: the VM's state there, or "none"
state() {
	"$CORRAL" vm --socket "$1" ls --json | python3 -c '
import json, sys
s = [v["state"] for v in json.load(sys.stdin) if v["name"] == sys.argv[1]]
print(s[0] if s else "none")' "$2"
}
wait_state() { # SOCK NAME STATE
	i=0
	while [ "$(state "$1" "$2")" != "$3" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(state "$1" "$2")" = "$3" ]
}
count() { "$CORRAL" vm --socket "$1" logs "$2" | wc -l; }
# grows SOCK NAME: its console goes on
grows() {
	n=$(count "$1" "$2")
	i=0
	while [ "$(count "$1" "$2")" -le "$((n + 2))" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(count "$1" "$2")" -gt "$((n + 2))" ]
}
# seq_ok FILE: hex counts, each one more than the last
seq_ok() {
	python3 -c '
import sys
v = [int(l, 16) for l in open(sys.argv[1]).read().split()]
bad = [(a, b) for a, b in zip(v, v[1:]) if b != a + 1]
sys.exit(1 if not v or bad else 0)' "$1"
}

# shellcheck disable=SC2086
"$CORRAL" vm $A create m --flat "$tmp/img/tick.bin" --mem 16M --engine emu >/dev/null 2>"$tmp/out" && ok ||
	bad "create m on A: $(cat "$tmp/out")"
grows "$tmp/a.sock" m && ok || bad "m does not run on A"

# ---- failures: the VM runs on at the source ----
# the destination refuses: the name is taken there
# shellcheck disable=SC2086
"$CORRAL" vm $B create m --flat "$tmp/img/tick.bin" --mem 16M --engine emu --no-start >/dev/null 2>&1
# shellcheck disable=SC2086
if "$CORRAL" vm $A migrate m "$tmp/b.sock" >"$tmp/out" 2>&1; then
	bad "migrate to a destination where the name is taken succeeded"
else
	grep -q "refused.*exists here" "$tmp/out" && [ "$(wc -l <"$tmp/out")" -eq 1 ] && ok ||
		bad "refused migration's message: $(cat "$tmp/out")"
fi
[ "$(state "$tmp/a.sock" m)" = running ] && grows "$tmp/a.sock" m && ok ||
	bad "after a refused migration m is $(state "$tmp/a.sock" m) on A"
[ "$(state "$tmp/b.sock" m)" = stopped ] && ok || bad "B's own m is $(state "$tmp/b.sock" m)"
# shellcheck disable=SC2086
"$CORRAL" vm $B rm m
# nobody there
# shellcheck disable=SC2086
if "$CORRAL" vm $A migrate m "tcp:127.0.0.1:$PX" >"$tmp/out" 2>&1; then
	bad "migrate to nowhere succeeded"
else
	grep -q "cannot reach" "$tmp/out" && ok || bad "migrate to nowhere: $(cat "$tmp/out")"
fi
[ "$(state "$tmp/a.sock" m)" = running ] && grows "$tmp/a.sock" m && ok ||
	bad "after migrating to nowhere m is $(state "$tmp/a.sock" m) on A"
# a destination that takes the VM, then drops the connection mid-stream
python3 - "$PX" >"$tmp/drop.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(60)
print("listening", flush=True)
c, _ = s.accept()
f = c.makefile("rb")
f.readline()
c.sendall(b'{"ok":true}\n')
got = 0
while got < 32768:
    b = f.read1(65536)
    if not b:
        break
    got += len(b)
print("dropped after", min(got, 32768))
c.close()
PY
dropper=$!
pids="$pids $dropper"
i=0
while ! grep -q listening "$tmp/drop.out" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
# shellcheck disable=SC2086
if "$CORRAL" vm $A migrate m "tcp:127.0.0.1:$PX" >"$tmp/out" 2>&1; then
	bad "migrate to a destination that drops the stream succeeded"
else
	grep -q "failed (it runs on here)" "$tmp/out" && ! grep -q "cannot reach" "$tmp/out" && ok ||
		bad "dropped migration: $(cat "$tmp/out")"
fi
wait "$dropper" 2>/dev/null
grep -q "dropped after 32768" "$tmp/drop.out" && ok || bad "the dropping destination: $(cat "$tmp/drop.out")"
[ "$(state "$tmp/a.sock" m)" = running ] && grows "$tmp/a.sock" m && ok ||
	bad "after a dropped migration m is $(state "$tmp/a.sock" m) on A"
[ "$(state "$tmp/b.sock" m)" = none ] && ok || bad "B keeps a VM after the failures: $(state "$tmp/b.sock" m)"

# ---- A to B by B's API socket ----
# the source's whole console, read on after its directory goes
tail -c +1 -f "$tmp/a/vms/m/vm/console.log" >"$tmp/a.console" 2>/dev/null &
tailer=$!
pids="$pids $tailer"
# shellcheck disable=SC2086
if "$CORRAL" vm $A migrate m "$tmp/b.sock" >"$tmp/out" 2>&1; then
	grep -q "^m: migrated to $tmp/b.sock (stopped [0-9]* ms" "$tmp/out" && ok ||
		bad "migrate's report: $(cat "$tmp/out")"
else
	bad "migrate A to B: $(cat "$tmp/out")"
fi
sleep 0.3
kill "$tailer" 2>/dev/null
[ "$(state "$tmp/a.sock" m)" = none ] && [ ! -e "$tmp/a/vms/m" ] && ok ||
	bad "A still has m after the migration: $(state "$tmp/a.sock" m)"
wait_state "$tmp/b.sock" m running && ok || bad "m on B is $(state "$tmp/b.sock" m)"
grows "$tmp/b.sock" m && ok || bad "m does not run on at B"
# shellcheck disable=SC2086
"$CORRAL" vm $B logs m >"$tmp/b.console"
cat "$tmp/a.console" "$tmp/b.console" >"$tmp/ab.console"
seq_ok "$tmp/a.console" && seq_ok "$tmp/b.console" && seq_ok "$tmp/ab.console" && ok ||
	bad "the count does not go on across the move: A ended at $(tail -n 1 "$tmp/a.console"), B began at $(head -n 1 "$tmp/b.console")"
pb=$(SOCK=$tmp/b.sock CORRALD_SOCKET=$tmp/b.sock field m pid)
[ "$pb" -gt 1 ] 2>/dev/null && kill -0 "$pb" && ok || bad "B's m has no process: '$pb'"

# ---- and back to A by A's TCP address ----
tail -c +1 -f "$tmp/b/vms/m/vm/console.log" >"$tmp/b.console" 2>/dev/null &
tailer=$!
pids="$pids $tailer"
# shellcheck disable=SC2086
"$CORRAL" vm $B migrate m "tcp:127.0.0.1:$PA" --json >"$tmp/out" 2>&1 &&
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["name"]=="m" and j["bytes_sent"]>0 else 1)' "$tmp/out" &&
	ok || bad "migrate B to A over TCP: $(cat "$tmp/out")"
sleep 0.3
kill "$tailer" 2>/dev/null
wait_state "$tmp/a.sock" m running && [ "$(state "$tmp/b.sock" m)" = none ] && ok ||
	bad "after the move back: A $(state "$tmp/a.sock" m), B $(state "$tmp/b.sock" m)"
grows "$tmp/a.sock" m && ok || bad "m does not run on back at A"
# shellcheck disable=SC2086
"$CORRAL" vm $A logs m >"$tmp/a2.console"
cat "$tmp/b.console" "$tmp/a2.console" >"$tmp/ba.console"
seq_ok "$tmp/ba.console" && ok ||
	bad "the count does not go on across the move back: B ended at $(tail -n 1 "$tmp/b.console"), A began at $(head -n 1 "$tmp/a2.console")"

# ---- a busy guest migrates: the API answers meanwhile ----
# tests/guests/dirty.S rewrites 8 MiB over and over; with a 1 ms stop
# allowed the pre-copy goes round after round. GET /vms/d and GET /vms on
# A, every 100 ms while POST /vms/d/migrate runs: each answered within
# 1 s, d "migrating", and its progress (bytes sent) moving.
# shellcheck disable=SC2086
"$CORRAL" vm $A create d --flat "$tmp/img/dirty.bin" --mem 64M --engine emu >/dev/null 2>"$tmp/out" && ok ||
	bad "create d on A: $(cat "$tmp/out")"
grows "$tmp/a.sock" d || sleep 2
python3 - "$tmp/a.sock" "$tmp/b.sock" >"$tmp/busy.out" 2>&1 <<'PY'
import json, socket, sys, threading, time
src, dst = sys.argv[1], sys.argv[2]
def call(method, path, body=None, timeout=120):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(src)
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, text = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), text
result = {}
def migrate():
    result["ans"] = call("POST", "/vms/d/migrate", {"destination": dst, "downtime_limit_ms": 1})
t = threading.Thread(target=migrate)
t.start()
samples, slow, sent = 0, [], []
while t.is_alive():
    t0 = time.monotonic()
    try:
        st, text = call("GET", "/vms/d", timeout=10)
        call("GET", "/vms", timeout=10)
    except OSError as e:
        slow.append("error %s" % e)
        break
    dt = time.monotonic() - t0
    if not t.is_alive():
        break
    if dt > 1.0:
        slow.append("%.2f s" % dt)
    j = json.loads(text) if st == 200 else {}
    if j.get("state") == "migrating":
        samples += 1
        b = j.get("migration", {}).get("bytes_sent")
        if b is not None and (not sent or sent[-1] != b):
            sent.append(b)
    time.sleep(0.1)
t.join()
print("migrate", result.get("ans", (0,))[0])
print("samples", samples, "slow", len(slow), " ".join(slow[:5]))
print("progress", len(sent), " ".join(str(b) for b in sent[:8]))
PY
cat "$tmp/busy.out"
grep -q "^migrate 200" "$tmp/busy.out" && ok || bad "the busy guest's migration: $(cat "$tmp/busy.out")"
n=$(awk '/^samples/ { print $2 }' "$tmp/busy.out")
[ "${n:-0}" -ge 3 ] && grep -q "^samples [0-9]* slow 0 " "$tmp/busy.out" && ok ||
	bad "requests during the migration: $(grep samples "$tmp/busy.out") (3 or more answers wanted, each within 1 s)"
p=$(awk '/^progress/ { print $2 }' "$tmp/busy.out")
[ "${p:-0}" -ge 2 ] && ok || bad "the migration's progress did not move: $(grep progress "$tmp/busy.out")"
wait_state "$tmp/b.sock" d running && ok || bad "d on B is $(state "$tmp/b.sock" d)"
# shellcheck disable=SC2086
"$CORRAL" vm $B rm d --force >/dev/null 2>&1

# ---- bad requests ----
SOCK=$tmp/a.sock api POST /vms/m/migrate '{"destination":"relative.sock"}'
expect "relative destination" 400 "absolute path"
SOCK=$tmp/a.sock api POST /vms/m/migrate '{"destination":"'"$tmp"'/a.sock"}'
expect "migrate to itself" 400 "is this corrald"
SOCK=$tmp/a.sock api POST /vms/m/migrate '{"destination":"/x","speed":1}'
expect "unknown key" 400 "speed"
# garbage on the incoming port: refused, nothing defined
printf 'not json\n' | python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(sys.stdin.buffer.read())
print(c.makefile().readline().strip())' "$PB" >"$tmp/out" 2>&1
# shellcheck disable=SC2086
grep -q fault_message "$tmp/out" && [ "$("$CORRAL" vm $B ls --json)" = "[]" ] && ok ||
	bad "garbage on the incoming port: $(cat "$tmp/out"); B has $("$CORRAL" vm $B ls --json)"
# shellcheck disable=SC2086
"$CORRAL" vm $A rm m --force && ok || bad "rm m on A"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
