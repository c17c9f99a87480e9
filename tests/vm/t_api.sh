#!/bin/sh
# The control API and the snapshot commands, as a user drives them: corral
# run --api-sock with the counting guest (tests/guests/tick.S); every path
# of docs/api.yaml answers, with JSON errors for bad requests; corral
# snapshot --stop saves and ends it; corral restore DIR, a new process,
# prints the sequence on from where it stood; a truncated or corrupted
# state file fails with one line.
: "${CORRAL:?}" "${BUILD:?}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
G=$BUILD/tests/guests/tick.bin
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
if ! command -v curl >/dev/null 2>&1; then
	echo "t_api: skipped: no curl to speak HTTP on a unix socket"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
S=$tmp/api.sock

# api METHOD PATH [BODY]: sets code and body
api() {
	if [ $# -ge 3 ]; then
		body=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$1" --unix-socket "$S" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2")
	else
		body=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$1" --unix-socket "$S" "http://localhost$2")
	fi
	code=$(printf '%s\n' "$body" | tail -n 1)
	body=$(printf '%s\n' "$body" | sed '$d')
}

# expect WHAT CODE [TEXT]: the last answer had status CODE and holds TEXT
expect() {
	if [ "$code" = "$2" ] && { [ -z "$3" ] || printf '%s' "$body" | grep -qF -- "$3"; }; then
		ok
	else
		bad "$1: status $code, body '$body' (want $2 ${3:+with '$3'})"
	fi
}

wait_for() { # FILE LINES (at most 60 s: a loaded host)
	i=0
	while [ "$(cat "$1" 2>/dev/null | wc -l)" -lt "$2" ] && [ $i -lt 1200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

"$CORRAL" run --flat "$G" --mem 16M --engine emu --serial "file:$tmp/out1" --api-sock "$S" \
	</dev/null 2>"$tmp/err1" &
vm=$!
pids="$vm"
wait_for "$tmp/out1" 10
[ -S "$S" ] && ok || bad "the API socket $S"

# every path of docs/api.yaml answers its methods
for p in $(sed -n 's/^  \(\/[^:]*\):$/\1/p' "$ROOT/docs/api.yaml"); do
	case $p in
	/) api GET /; expect "GET /" 200 '"state":"Running"' ;;
	/machine-config) api GET /machine-config; expect "GET /machine-config" 200 '"mem_size_mib":16' ;;
	/vm)
		api PATCH /vm '{"state":"Paused"}'; expect "PATCH /vm Paused" 204
		api GET /; expect "GET / paused" 200 '"state":"Paused"'
		api PATCH /vm '{"state":"Resumed"}'; expect "PATCH /vm Resumed" 204 ;;
	/snapshot/create)
		mkdir -p "$tmp/s1"
		api PUT /snapshot/create "{\"snapshot_path\":\"$tmp/s1/state\",\"mem_file_path\":\"$tmp/s1/memory\"}"
		expect "PUT /snapshot/create" 204
		[ -s "$tmp/s1/state" ] && [ -f "$tmp/s1/memory" ] && ok || bad "snapshot files" ;;
	/snapshot/load)
		api PUT /snapshot/load "{\"snapshot_path\":\"$tmp/s1/state\",\"mem_file_path\":\"$tmp/s1/memory\"}"
		expect "PUT /snapshot/load" 400 'corral restore' ;;
	/actions) api PUT /actions '{"action_type":"Bogus"}'; expect "PUT /actions bad" 400 'Stop' ;;
	/migrate)
		api GET /migrate; expect "GET /migrate before any" 200 '"state":"none"'
		api PUT /migrate '{"destination_url":"bogus:1"}'; expect "PUT /migrate bad URL" 400 'tcp:HOST:PORT'
		api PUT /migrate '{"destination_url":"unix:/x","downtime_limit_ms":0}'
		expect "PUT /migrate bad limit" 400 'downtime_limit_ms'
		api PUT /migrate "{\"destination_url\":\"unix:$tmp/nobody\"}"; expect "PUT /migrate" 204
		i=0
		while api GET /migrate && printf '%s' "$body" | grep -q '"state":"setup"' && [ $i -lt 100 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		expect "GET /migrate failed" 200 'cannot reach the destination' ;;
	/migrate/incoming)
		# a VM that runs takes none (tests/migrate/t_defer.sh: an empty one)
		api GET /migrate/incoming; expect "GET /migrate/incoming" 200 '"state":"none"'
		api PUT /migrate/incoming "{\"url\":\"unix:$tmp/in.sock\"}"
		expect "PUT /migrate/incoming on a running VM" 409 'not started with --incoming defer' ;;
	/drives/{drive_id} | /network-interfaces/{iface_id})
		# this guest has neither; tests/backend/t_ratelimit.sh changes real ones
		q=$(printf '%s' "$p" | sed 's/{[a-z_]*}/0/')
		api GET "$q"; expect "GET $q (no such device)" 404 'no '
		api PATCH "$q" '{}'; expect "PATCH $q (no such device)" 404 'no ' ;;
	/balloon | /balloon/statistics)
		# this guest has none; tests/boot/t_balloon.sh drives a real one
		api GET "$p"; expect "GET $p (no balloon)" 400 'no balloon'
		api PATCH "$p" '{}'; expect "PATCH $p (no balloon)" 400 'no balloon' ;;
	*) bad "docs/api.yaml path $p has no check here" ;;
	esac
done
[ "$(grep -c '^  /' "$ROOT/docs/api.yaml")" -ge 6 ] && ok || bad "docs/api.yaml lists the paths"

# hostile requests
api GET /nothing; expect "unknown path" 404 fault_message
api PUT /vm '{"state":"Paused"}'; expect "wrong method" 405 fault_message
api PATCH /vm '{"state":"Paused","extra":1}'; expect "unknown key" 400 "unknown key 'extra'"
api PATCH /vm '{"state":"Paused","state":"Resumed"}'; expect "duplicate key" 400 fault_message
api PATCH /vm '{"state":7}'; expect "wrong type" 400 fault_message
api PATCH /vm '[1,2'; expect "not JSON" 400 "not valid JSON"
api PATCH /vm "$(head -c 20000 /dev/zero | tr '\0' ' '){}"; expect "body too large" 413 fault_message
api PUT /snapshot/create '{"snapshot_path":"/nonexistent/dir/state","mem_file_path":"/nonexistent/dir/memory"}'
expect "unwritable snapshot" 400 "No such file"
api GET /; expect "still running" 200 '"state":"Running"'

# corral snapshot --stop: saved, and the first VM ends
if "$CORRAL" snapshot "$S" "$tmp/snap" --stop 2>"$tmp/snaperr"; then ok; else bad "corral snapshot: $(cat "$tmp/snaperr")"; fi
i=0
while kill -0 "$vm" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$vm" 2>/dev/null; then bad "the VM did not stop after snapshot --stop"; kill "$vm"; else ok; fi
wait "$vm"
[ ! -e "$S" ] && ok || bad "the API socket is left behind"
lines1=$(wc -l <"$tmp/out1")

# corral restore, in a new process: the sequence goes on
"$CORRAL" restore "$tmp/snap" --serial "file:$tmp/out2" --api-sock "$S" </dev/null 2>"$tmp/err2" &
vm=$!
pids="$pids $vm"
wait_for "$tmp/out2" 20
api GET /machine-config; expect "restored machine-config" 200 '"vcpu_count":1'
api PUT /actions '{"action_type":"Stop"}'; expect "PUT /actions Stop" 204
wait "$vm"
cat "$tmp/out1" "$tmp/out2" | python3 -c '
import sys
l = sys.stdin.read().split()
sys.exit(0 if all(int(x, 16) == i + 1 for i, x in enumerate(l)) and len(l) > int(sys.argv[1]) + 10 else 1)' "$lines1"
if [ $? -eq 0 ]; then ok; else bad "the restored guest did not continue: $(tail -n 1 "$tmp/out1") then $(head -n 1 "$tmp/out2"); $(cat "$tmp/err2")"; fi

# restore --paused stands still until resumed
"$CORRAL" restore "$tmp/snap" --serial "file:$tmp/out3" --paused --api-sock "$S" </dev/null 2>"$tmp/err3" &
vm=$!
pids="$pids $vm"
i=0
while [ ! -S "$S" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
api GET /; expect "restore --paused" 200 '"state":"Paused"'
[ ! -s "$tmp/out3" ] && ok || bad "a paused restore printed: $(head -c 100 "$tmp/out3")"
api PATCH /vm '{"state":"Resumed"}'; expect "resume a paused restore" 204
wait_for "$tmp/out3" 3
[ -s "$tmp/out3" ] && ok || bad "the resumed restore prints nothing"
api PUT /actions '{"action_type":"Stop"}'; expect "stop" 204
wait "$vm"

# a truncated or corrupted state file: one line, exit status 1
n=$(wc -c <"$tmp/snap/state")
for how in truncate corrupt empty; do
	rm -rf "$tmp/bad"
	cp -r "$tmp/snap" "$tmp/bad"
	case $how in
	truncate) head -c $((n / 2)) "$tmp/snap/state" >"$tmp/bad/state" ;;
	corrupt) printf 'X' | dd of="$tmp/bad/state" bs=1 seek=$((n / 3)) conv=notrunc 2>/dev/null ;;
	empty) : >"$tmp/bad/state" ;;
	esac
	"$CORRAL" restore "$tmp/bad" --serial none </dev/null >"$tmp/o" 2>"$tmp/e"
	rc=$?
	if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] && grep -q "^corral: snapshot '$tmp/bad': " "$tmp/e"; then
		ok
	else
		bad "restore of a $how state: rc $rc, stderr: $(cat "$tmp/e")"
	fi
done
"$CORRAL" restore "$tmp/snap" --mem 64M </dev/null 2>"$tmp/e"
[ $? -eq 2 ] && grep -q "configuration comes from the snapshot" "$tmp/e" && ok || bad "restore --mem: $(cat "$tmp/e")"
"$CORRAL" snapshot "$tmp/none.sock" "$tmp/x" 2>"$tmp/e"
[ $? -eq 1 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] && ok || bad "snapshot to no socket: $(cat "$tmp/e")"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
