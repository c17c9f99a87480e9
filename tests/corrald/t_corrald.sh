#!/bin/sh
# corrald as a user drives it, with a state directory and socket of its own:
# VMs (the counting guest, tests/guests/tick.S) created, listed, paused,
# snapshotted, cloned, stopped and removed through `corral vm` and the API;
# every path of docs/corrald.yaml answers; a killed VM process leaves the
# others running and is reported; VMs outlive a corrald restart and are
# taken back; hostile requests get a JSON error and leave nothing behind.
: "${CORRAL:?}" "${BUILD:?}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CORRALD=$(dirname "$CORRAL")/corrald
G=$BUILD/tests/guests/tick.bin
passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
if ! command -v curl >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
	echo "t_corrald: skipped: curl and python3 are needed"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp -d /tmp/t_corrald.XXXXXX)
S=$tmp/d.sock
ST=$tmp/state
mkdir "$tmp/img" "$tmp/other"
cp "$G" "$tmp/img/tick.bin"
cp "$BUILD/tests/guests/spin.bin" "$tmp/img/spin.bin"
cp "$G" "$tmp/other/tick.bin"
: >"$tmp/img/empty.bin"
dpid=
. "$(dirname "$0")/lib.sh"
cleanup() {
	corrald_cleanup "$dpid" "$ST"
	rm -rf "$tmp"
}
trap cleanup EXIT
export CORRALD_SOCKET=$S

start_corrald() {
	CORRALD_TEST_FORBIDDEN_SYSCALL=victim \
		"$CORRALD" --foreground --socket "$S" --state-dir "$ST" --image-dir "$tmp/img" 2>>"$tmp/corrald.log" &
	dpid=$!
	i=0
	while [ ! -S "$S" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}

lines() { "$CORRAL" vm logs "$1" | wc -l; }
# alive PID: the process runs (a zombie, reaped by nobody once corrald is gone, does not)
alive() { kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }

start_corrald
[ "$(stat -c %a "$S" 2>/dev/null)" = 660 ] && ok || bad "the socket is not mode 0660: $(stat -c %a "$S" 2>&1)"
api GET /; expect "GET /" 200 '"corrald_version"'
grep -q "uid $(id -u) pid [0-9]*: GET /" "$tmp/corrald.log" && ok || bad "the peer's uid is not logged: $(tail -n 2 "$tmp/corrald.log")"

# ---- create through the CLI, with corral run's options ----
if "$CORRAL" vm create a --flat "$tmp/img/tick.bin" --mem 16M --engine emu >"$tmp/out" 2>&1; then ok; else bad "vm create a: $(cat "$tmp/out")"; fi
"$CORRAL" vm create b --flat "$tmp/img/tick.bin" --mem 16M --engine emu --no-start >/dev/null 2>&1 && ok || bad "vm create --no-start"
[ "$(field a state)" = running ] && [ "$(field b state)" = stopped ] && ok || bad "states: a $(field a state), b $(field b state)"
pa=$(field a pid)
[ "$pa" -gt 1 ] 2>/dev/null && alive "$pa" && ok || bad "vm ls --json: pid of a '$pa' is not a live process"
"$CORRAL" vm start b && ok || bad "vm start b"
pb=$(field b pid)
sleep 0.5
n1=$(lines a)
sleep 0.5
[ "$(lines a)" -gt "$n1" ] && [ "$n1" -gt 0 ] && ok || bad "vm logs: the console does not grow ($n1 lines)"
"$CORRAL" vm ls | grep -q '^a  *running  *'"$pa" && ok || bad "vm ls table: $("$CORRAL" vm ls)"

# pause, resume
"$CORRAL" vm pause a && [ "$(field a state)" = paused ] && ok || bad "vm pause: $(field a state)"
n1=$(lines a)
sleep 0.5
[ "$(lines a)" -eq "$n1" ] && ok || bad "a paused VM's console grew"
"$CORRAL" vm resume a && [ "$(field a state)" = running ] && ok || bad "vm resume"
"$CORRAL" vm reboot a && ok || bad "vm reboot"

# snapshot and clone: the clones go on counting from the snapshot
"$CORRAL" vm snapshot a s1 && [ -s "$ST/vms/a/vm/snapshots/s1/state" ] && ok || bad "vm snapshot"
"$CORRAL" vm snapshot a s1 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "already" "$tmp/e" && ok || bad "a second snapshot s1: $(cat "$tmp/e")"
"$CORRAL" vm clone a --count 2 --prefix c >"$tmp/out" 2>&1 && grep -q '"c-1","c-2"' "$tmp/out" && ok || bad "vm clone: $(cat "$tmp/out")"
sleep 0.5
for c in c-1 c-2; do
	first=$("$CORRAL" vm logs $c | head -n 1)
	[ "$(field $c state)" = running ] && [ -n "$first" ] && [ "$(printf '%d' "0x$first")" -gt 1 ] && ok ||
		bad "clone $c: state $(field $c state), first line '$first' (want a count past 1)"
done

# metrics
api GET /metrics
expect "GET /metrics" 200 'corral_vms{state="running"} 4'
printf '%s\n' "$body" | grep -q "^corral_vm_rss_bytes{vm=\"a\"} [1-9]" && printf '%s\n' "$body" |
	grep -q "^corral_vm_guest_memory_bytes{vm=\"b\"} 16777216$" && printf '%s\n' "$body" |
	grep -q "^corral_vm_cpu_seconds_total{vm=\"a\"} [0-9.]*$" && ok || bad "metrics per VM: $body"
"$CORRAL" vm top | grep -q '^a  *running' && ok || bad "vm top: $("$CORRAL" vm top 2>&1)"

# ---- the jail ----
if [ "$(id -u)" = 0 ]; then
	st=/proc/$pa/status
	uid=$(awk '/^Uid:/ { print $2 }' "$st")
	[ "$uid" -ge 2100000000 ] && [ "$uid" != "$(awk '/^Uid:/ { print $2 }' /proc/$pb/status)" ] && ok ||
		bad "VM a's uid $uid is not its own unprivileged one"
	grep -q '^CapEff:	0000000000000000$' "$st" && grep -q '^CapPrm:	0000000000000000$' "$st" && ok || bad "VM a keeps capabilities: $(grep Cap "$st")"
	grep -q '^NoNewPrivs:	1$' "$st" && grep -q '^Seccomp:	2$' "$st" && ok || bad "VM a: no_new_privs or seccomp missing: $(grep -E 'NoNew|Seccomp:' "$st")"
	for ns in mnt ipc uts net pid; do
		[ "$(readlink /proc/$pa/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] && ok || bad "VM a shares the host's $ns namespace"
	done
	# what the VM process sees of the file system: its own directory and image, nothing else
	R=/proc/$pa/root
	[ -d "$R$ST/vms/a/vm" ] && [ -f "$R$tmp/img/tick.bin" ] && ok || bad "VM a does not see its own files"
	[ ! -e "$R$ST/vms/b" ] && [ ! -e "$R$ST/vms/a/vm.json" ] && [ ! -e "$R$ST/vms/b/vm/console.log" ] && ok ||
		bad "VM a sees another VM's or corrald's files: $(ls "$R$ST/vms" 2>&1)"
	[ ! -e "$R/etc/passwd" ] && [ ! -e "$R$tmp/other/tick.bin" ] && [ ! -e "$R$tmp/img/empty.bin" ] && ok ||
		bad "VM a sees host files: $(ls "$R/" 2>&1)"
	# a forbidden system call after the jail kills the VM process, and corrald says why
	"$CORRAL" vm create victim --flat "$tmp/img/tick.bin" --mem 16M --engine emu >/dev/null 2>&1
	sleep 1
	[ "$(field victim state)" = crashed ] && field victim reason | grep -q "seccomp allow-list" && ok ||
		bad "the forbidden system call: victim $(field victim state), '$(field victim reason)'"
	grep -q "VM 'victim' ended: the VM process was killed by signal 31 .*seccomp" "$tmp/corrald.log" && ok ||
		bad "corrald's log does not say why victim died"
	alive "$pa" && alive "$pb" && ok || bad "victim's death touched the others"
	"$CORRAL" vm rm victim && ok || bad "vm rm victim"
else
	echo "t_corrald: the jail's checks skipped: not root"
	skipped=$((skipped + 1))
fi

# killing one VM process leaves the others running, and corrald says so
pc=$(field c-2 pid)
kill -9 "$pc"
sleep 0.7
[ "$(field c-2 state)" = crashed ] && field c-2 reason | grep -q "signal 9" && ok ||
	bad "killed c-2: state $(field c-2 state), reason '$(field c-2 reason)'"
alive "$pa" && alive "$pb" && [ "$(field c-1 state)" = running ] && ok || bad "killing c-2 touched the others"
grep -q "VM 'c-2' ended: the VM process was killed by signal 9" "$tmp/corrald.log" && ok || bad "corrald's log does not say c-2 died"

# ---- every path of docs/corrald.yaml answers ----
for p in $(sed -n 's/^  \(\/[^:]*\):$/\1/p' "$ROOT/docs/corrald.yaml"); do
	q=$(printf '%s' "$p" | sed 's/{name}/c-1/')
	case $p in
	/ | /vms | /vms/{name} | /vms/{name}/console | /metrics) api GET "$q"; expect "GET $p" 200 ;;
	/vms/{name}/pause | /vms/{name}/resume | /vms/{name}/reboot)
		api POST "$(printf '%s' "$p" | sed 's/{name}/a/')"; expect "POST $p" 204 ;;
	/vms/{name}/start) api POST "$q"; expect "POST $p on a running VM" 409 "running already" ;;
	/vms/{name}/stop) api POST "$q" '{"timeout":5}'; expect "POST $p" 200 '"forced":false' ;;
	/vms/{name}/snapshot) api POST /vms/a/snapshot '{"name":"s2"}'; expect "POST $p" 201 '"snapshot":"s2"' ;;
	/vms/{name}/restore) api POST "$q" '{"snapshot":"nope"}'; expect "POST $p" 404 "no snapshot" ;;
	/vms/{name}/clone) api POST /vms/b/clone '{"count":1}'; expect "POST $p" 201 '"b-1"' ;;
	/vms/{name}/migrate)
		# tests/corrald/t_migrate.sh moves VMs; here: nobody there, the VM runs on
		api POST /vms/a/migrate '{"destination":"tcp:127.0.0.1:1"}'; expect "POST $p" 502 "runs on here" ;;
	/vms/{name}/balloon | /vms/{name}/balloon/statistics)
		# passed through to the VM's API; this VM has no balloon (tests/boot/t_balloon.sh has one)
		api GET "$(printf '%s' "$p" | sed 's/{name}/a/')"; expect "GET $p" 400 'no balloon device' ;;
	*) bad "docs/corrald.yaml path $p has no check here" ;;
	esac
done
[ "$(grep -c '^  /' "$ROOT/docs/corrald.yaml")" -ge 12 ] && ok || bad "docs/corrald.yaml lists the paths"
[ "$(field c-1 state)" = stopped ] && [ "$(field c-1 reason)" = stopped ] && ok || bad "stopped c-1: $(field c-1 state) $(field c-1 reason)"
api POST /vms/c-1/stop; expect "stop a stopped VM" 409 "not running"

# restore a stopped VM from a snapshot
api POST /vms/c-1/restore '{"snapshot":"s1"}'
expect "restore c-1 from a's snapshot" 404 "no snapshot"
api POST /vms/a/stop '{"timeout":5}'; expect "stop a" 200
api POST /vms/a/restore '{"snapshot":"s1"}'; expect "restore a from s1" 204
sleep 0.3
first=$("$CORRAL" vm logs a | head -n 1)
[ "$(field a state)" = running ] && [ "$(printf '%d' "0x${first:-0}")" -gt 1 ] && ok || bad "restored a: $(field a state), first line '$first'"
pa=$(field a pid)

# ---- corrald restarts; the VMs run on and are taken back ----
kill "$dpid"
wait "$dpid"
dpid=
alive "$pa" && alive "$pb" && ok || bad "VM processes ended with corrald"
n1=$(wc -l <"$ST/vms/a/vm/console.log")
sleep 0.4
[ "$(wc -l <"$ST/vms/a/vm/console.log")" -gt "$n1" ] && ok || bad "a does not run while corrald is away"
start_corrald
[ "$(field a pid)" = "$pa" ] && [ "$(field a state)" = running ] && [ "$(field b pid)" = "$pb" ] && ok ||
	bad "after a restart: a $(field a state) pid $(field a pid) (was $pa), b pid $(field b pid) (was $pb)"
grep -q "VM 'a': its process $pa runs: taken back" "$tmp/corrald.log" && ok || bad "the restart does not say it took a back"
"$CORRAL" vm pause a && [ "$(field a state)" = paused ] && "$CORRAL" vm resume a && ok || bad "an adopted VM obeys"
"$CORRAL" vm stop b --timeout 5 && ! alive "$pb" && [ "$(field b state)" = stopped ] && ok || bad "stop an adopted VM"

cfg="\"flat\":\"$tmp/img/tick.bin\",\"mem\":16777216,\"engine\":\"emu\""
# ---- limits (cgroup v1 here): a VM told to use half a core uses half a core ----
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
if [ "$(id -u)" = 0 ] && [ -d /sys/fs/cgroup/cpu ]; then
	spin="\"flat\":\"$tmp/img/spin.bin\",\"mem\":16777216,\"engine\":\"emu\""
	api POST /vms "{\"name\":\"half\",\"config\":{$spin},\"limits\":{\"cpu_max\":0.5,\"memory_max\":268435456,\"pids_max\":64},\"start\":true}"
	expect "a VM with limits" 201
	api POST /vms "{\"name\":\"full\",\"config\":{$spin},\"start\":true}"
	expect "a VM without" 201
	ph=$(field half pid)
	pf=$(field full pid)
	grep -q "^$ph$" /sys/fs/cgroup/cpu/corral/half/cgroup.procs && [ "$(cat /sys/fs/cgroup/cpu/corral/half/cpu.cfs_quota_us)" = 50000 ] &&
		grep -q '^64$' /sys/fs/cgroup/pids/corral/half/pids.max && ok || bad "half is not in its cgroups with its limits"
	sleep 1
	h0=$(cpu_ticks "$ph")
	f0=$(cpu_ticks "$pf")
	sleep 4
	h1=$(cpu_ticks "$ph")
	f1=$(cpu_ticks "$pf")
	hz=$(getconf CLK_TCK)
	# cores used, in hundredths
	h=$(((h1 - h0) * 100 / hz / 4))
	f=$(((f1 - f0) * 100 / hz / 4))
	echo "t_corrald: cpu_max 0.5 used $h/100 of a core; unlimited $f/100"
	if [ "$f" -lt 70 ]; then
		echo "t_corrald: the half-core check skipped: the host is busy (an unlimited VM got $f/100 of a core)"
		skipped=$((skipped + 1))
	elif [ "$h" -ge 40 ] && [ "$h" -le 56 ]; then
		ok
	else
		bad "cpu_max 0.5: the VM used $h/100 of a core (unlimited: $f/100)"
	fi
	# live: new values for half's limits (the others stay), and limits for
	# full, which had none, put it into cgroups of its own
	api PATCH /vms/half '{"limits":{"cpu_max":0.25,"pids_max":32}}'
	expect "PATCH /vms/half" 200 '"cpu_max":0.25'
	[ "$(cat /sys/fs/cgroup/cpu/corral/half/cpu.cfs_quota_us)" = 25000 ] && grep -q '^32$' /sys/fs/cgroup/pids/corral/half/pids.max &&
		grep -q '"memory_max": *268435456' "$ST/vms/half/vm.json" && grep -q '"cpu_max": *0.25' "$ST/vms/half/vm.json" && ok ||
		bad "PATCH /vms/half: quota $(cat /sys/fs/cgroup/cpu/corral/half/cpu.cfs_quota_us), $(cat "$ST/vms/half/vm.json")"
	api PATCH /vms/full '{"limits":{"cpu_max":0.5}}'
	expect "PATCH /vms/full" 200
	grep -q "^$pf$" /sys/fs/cgroup/cpu/corral/full/cgroup.procs 2>/dev/null &&
		[ "$(cat /sys/fs/cgroup/cpu/corral/full/cpu.cfs_quota_us)" = 50000 ] && grep -q "corral/full" "$ST/vms/full/run.json" && ok ||
		bad "PATCH /vms/full did not put its process into a cgroup with the limit"
	api PATCH /vms/half '{"limits":{"memory_max":1}}'; expect "PATCH a bad limit" 400 memory_max
	[ "$(cat /sys/fs/cgroup/cpu/corral/half/cpu.cfs_quota_us)" = 25000 ] && grep -q '"memory_max": *268435456' "$ST/vms/half/vm.json" &&
		ok || bad "a refused PATCH changed the limits"
	"$CORRAL" vm rm half --force && "$CORRAL" vm rm full --force && [ ! -e /sys/fs/cgroup/cpu/corral/half ] && ok ||
		bad "the cgroups of a removed VM are left"
else
	echo "t_corrald: the limits' checks skipped: not root or no cgroup v1 cpu controller"
	skipped=$((skipped + 1))
fi
api POST /vms "{\"name\":\"x\",\"config\":{$cfg},\"limits\":{\"cpu_max\":0}}"; expect "cpu_max 0" 400 cpu_max
api POST /vms "{\"name\":\"x\",\"config\":{$cfg},\"limits\":{\"memory_max\":5}}"; expect "memory_max 5" 400 memory_max
api POST /vms "{\"name\":\"x\",\"config\":{$cfg},\"limits\":{\"cpuset\":\"0;rm\"}}"; expect "cpuset" 400 cpuset
api POST /vms "{\"name\":\"x\",\"config\":{$cfg},\"limits\":{\"disk\":1}}"; expect "unknown limit" 400 "unknown key 'disk'"

# ---- rate limits of a running VM's disk and NIC, through corrald ----
truncate -s 1M "$tmp/img/disk.img"
api POST /vms "{\"name\":\"rl\",\"config\":{$cfg,\"disks\":[{\"path\":\"$tmp/img/disk.img\",\"rate_limiter\":{\"ops\":{\"size\":100,\"refill_time\":1000}}}],\"nets\":[\"user,tx_bw=1M\"]},\"start\":true}"
expect "a VM with rate limits" 201
# vmapi PATH: the VM process's own API (what corrald set in it)
vmapi() { curl -s -m 10 --unix-socket "$ST/vms/rl/vm/api.sock" "http://localhost$1"; }
vmapi /drives/0 | grep -q '"ops": *{[^}]*"size": *100' && vmapi /network-interfaces/0 | grep -q '"tx_rate_limiter": *{ *"bandwidth": *{[^}]*"size": *1048576' &&
	ok || bad "the VM process does not have its configured limits: $(vmapi /drives/0) $(vmapi /network-interfaces/0)"
api PATCH /vms/rl '{"disks":[{"index":0,"rate_limiter":{"bandwidth":{"size":2097152,"refill_time":100,"one_time_burst":4096}}}],"nets":[{"index":0,"rx_rate_limiter":{"ops":{"size":1000,"refill_time":10}}}]}'
expect "PATCH /vms/rl rate limits" 200 '"user,rx_ops=1000:10"'
vmapi /drives/0 | grep -q '"bandwidth": *{[^}]*"size": *2097152' && ! vmapi /drives/0 | grep -q '"ops"' &&
	vmapi /network-interfaces/0 | grep -q '"rx_rate_limiter": *{ *"ops": *{[^}]*"size": *1000' &&
	! vmapi /network-interfaces/0 | grep -q '"tx_rate_limiter": *{ *"' && ok ||
	bad "PATCH did not reach the VM process: $(vmapi /drives/0) $(vmapi /network-interfaces/0)"
python3 - "$ST/vms/rl/vm.json" <<'PY' && ok || bad "the definition does not keep the new rate limits: $(cat "$ST/vms/rl/vm.json")"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["disks"][0]["rate_limiter"] == {"bandwidth": {"size": 2097152, "refill_time": 100, "one_time_burst": 4096}}
assert c["nets"] == ["user,rx_ops=1000:10"], c["nets"]
PY
before=$(cat "$ST/vms/rl/vm.json")
api PATCH /vms/rl '{"disks":[{"index":1,"rate_limiter":{}}]}'; expect "PATCH a disk it has not" 400 "index"
api PATCH /vms/rl '{"disks":[{"index":0,"rate_limiter":{"bandwidth":{"size":5}}}]}'; expect "PATCH a bucket without refill_time" 400 refill_time
api PATCH /vms/rl '{"nets":[{"index":0,"rx":{}}]}'; expect "PATCH an unknown key" 400 "unknown key"
api PATCH /vms/rl '{"disks":{"0":{}}}'; expect "PATCH disks as an object" 400 "array"
api PATCH /vms/rl '{"disks":[{"index":0},{"index":0}]}'; expect "PATCH a disk twice" 400 "twice"
api PATCH /vms/rl '{"cpu":1}'; expect "PATCH an unknown member" 400 "cpu"
[ "$(cat "$ST/vms/rl/vm.json")" = "$before" ] && vmapi /drives/0 | grep -q '"size": *2097152' && ok || bad "a refused PATCH changed the definition or the VM"
"$CORRAL" vm rm rl --force >/dev/null && ok || bad "vm rm rl"

# ---- hostile requests ----
vms_before=$(ls -A "$ST/vms" | sort | tr '\n' ' ')
api POST /vms '{"name":"x",'; expect "malformed JSON" 400 "not valid JSON"
api POST /vms "{\"name\":\"x\",\"config\":{$cfg},\"bogus\":1}"; expect "unknown key" 400 "unknown key 'bogus'"
api POST /vms "{\"name\":\"x\",\"name\":\"y\",\"config\":{$cfg}}"; expect "duplicate key" 400 fault_message
api POST /vms "{\"name\":\"x\",\"config\":{$cfg,\"colour\":\"red\"}}"; expect "unknown config key" 400 "colour"
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/img/tick.bin\",\"mem\":1}}"; expect "impossible size" 400 "mem"
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/img/tick.bin\",\"mem\":99999999999999999999}}"; expect "huge size" 400 fault_message
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/img/tick.bin\",\"cpus\":-1}}"; expect "negative cpus" 400 "cpus"
for n in 'a/b' '..' '../x' '.hidden' '' 'x y' "$(printf 'n%.0s' $(seq 70))"; do
	api POST /vms "{\"name\":\"$n\",\"config\":{$cfg}}"; expect "name '$n'" 400 fault_message
done
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/other/tick.bin\"}}"; expect "path outside the image dirs" 400 "outside the image directories"
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/img/../other/tick.bin\"}}"; expect "path with .." 400 "outside the image directories"
ln -s "$tmp/other/tick.bin" "$tmp/img/link.bin"
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"$tmp/img/link.bin\"}}"; expect "symlink out" 400 "outside the image directories"
api POST /vms "{\"name\":\"x\",\"config\":{\"flat\":\"img/tick.bin\"}}"; expect "relative path" 400 "absolute"
api POST /vms "{\"name\":\"x\",\"config\":{\"disks\":[{\"path\":\"/etc/passwd\"}]}}"; expect "disk outside" 400 "outside"
api POST /vms "{\"name\":\"x\",\"config\":{$cfg,\"serial_path\":\"/etc/x\"}}"; expect "host key" 400 "corrald's to set"
api POST /vms "{\"name\":\"a\",\"config\":{$cfg}}"; expect "a name taken" 409 "exists"
api POST /vms "{\"name\":\"x\",\"config\":{\"kernel\":\"$tmp/img/empty.bin\",\"mem\":16777216,\"engine\":\"emu\"},\"start\":true}"
expect "a VM that cannot start" 400 "does not start"
api POST /vms "{\"name\":\"x\",\"config\":{$cfg}}$(head -c 20000 /dev/zero | tr '\0' ' ')"; expect "body too large" 413 fault_message
api GET /vms/nope; expect "unknown VM" 404 "no VM named 'nope'"
code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' --unix-socket "$S" http://localhost/vms/..); body=fault_message; expect "dot-dot VM" 404 fault_message
api PUT /vms; expect "wrong method" 405 fault_message
api POST /vms/a/fly; expect "unknown action" 404 "no action"
api POST /vms/a/stop '{"timeout":"soon"}'; expect "stop timeout type" 400 timeout
api POST /vms/a/clone '{"count":1000}'; expect "clone count" 400 count
api POST /vms/a/snapshot '{"name":"../../x"}'; expect "snapshot name" 400 fault_message
api DELETE /vms/a; expect "delete a running VM" 409 "force=true"
# a flood of requests, and clients that leave mid-request
i=0
cpids=
while [ $i -lt 100 ]; do
	curl -s -m 30 --unix-socket "$S" http://localhost/vms >/dev/null &
	cpids="$cpids $!"
	i=$((i + 1))
done
python3 - "$S" <<'PY'
import socket, sys
for k in range(20):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"POST /vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"half")
    s.close()
PY
for p in $cpids; do wait "$p"; done
api GET /vms; expect "corrald answers after a flood" 200 '"name":"a"'
[ "$(ls -A "$ST/vms" | sort | tr '\n' ' ')" = "$vms_before" ] && ok || bad "bad requests left files: $(ls -A "$ST/vms")"
"$CORRAL" vm ls --json | python3 -c 'import json,sys; sys.exit(0 if "x" not in [v["name"] for v in json.load(sys.stdin)] else 1)' &&
	ok || bad "a half-created VM x is listed"
"$CORRAL" vm create 'a/b' --flat "$tmp/img/tick.bin" 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "not a name" "$tmp/e" && ok || bad "vm create a/b: $(cat "$tmp/e")"
"$CORRAL" vm create y --flat "$tmp/img/tick.bin" --serial none 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "serial" "$tmp/e" && ok || bad "vm create --serial: $(cat "$tmp/e")"
"$CORRAL" vm create y --bogus 2>"$tmp/e"; [ $? -eq 2 ] && ok || bad "vm create --bogus: $(cat "$tmp/e")"
"$CORRAL" vm start nope 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "no VM named 'nope'" "$tmp/e" && ok || bad "vm start nope: $(cat "$tmp/e")"
"$CORRAL" vm --socket "$tmp/none.sock" ls 2>"$tmp/e"; [ $? -eq 1 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] && ok || bad "no corrald: $(cat "$tmp/e")"
alive "$dpid" && ok || bad "corrald died"

# ---- rm ----
for v in $("$CORRAL" vm ls --json | python3 -c 'import json,sys; print(" ".join(v["name"] for v in json.load(sys.stdin)))'); do
	p=$(field "$v" pid)
	"$CORRAL" vm rm "$v" --force || bad "vm rm $v --force"
	[ "$p" != 0 ] && alive "$p" && bad "vm rm --force left $v's process $p running"
done
[ -z "$(ls -A "$ST/vms")" ] && [ "$("$CORRAL" vm ls --json)" = "[]" ] && ok || bad "vm rm left: $(ls -A "$ST/vms")"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
