#!/bin/sh
# corrald's VM processes kept apart and held to their limits: each the
# first process of a PID namespace of its own (corrald still lists, stops
# and takes back the host's pid), open-file and task limits, cgroup v2 on
# the machine's real v2 hierarchy (with the controllers it has), live limits
# from `corral vm set`, and the serial console attached with input and left
# with C-] while the VM runs on.
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
skip() {
	skipped=$((skipped + 1))
	echo "t_isolation: skipped: $*"
}
if ! command -v curl >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
	echo "t_isolation: skipped: curl and python3 are needed"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp -d /tmp/t_isolation.XXXXXX)
S=$tmp/d.sock
ST=$tmp/state
mkdir "$tmp/img"
cp "$BUILD/tests/guests/tick.bin" "$BUILD/tests/guests/echo.bin" "$tmp/img/"
# VM names unique on this host: cgroups are corral/NAME for every corrald
u=$$
dpids=
. "$(dirname "$0")/lib.sh"
cleanup() {
	corrald_cleanup "$dpids" "$tmp"/*/
	sleep 0.3
	rmdir /sys/fs/cgroup/*/corral/*-$u /sys/fs/cgroup/unified/corral/*-$u 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export CORRALD_SOCKET=$S

# start_corrald SOCKET STATE [OPTIONS...]
start_corrald() {
	sock=$1 state=$2
	shift 2
	"$CORRALD" --foreground --socket "$sock" --state-dir "$state" --image-dir "$tmp/img" "$@" 2>>"$tmp/corrald.log" &
	dpid=$!
	dpids="$dpids $dpid"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
# waitfor COMMAND: until the shell command succeeds, for up to 30 s
waitfor() {
	i=0
	while ! eval "$1" && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
alive() { kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
limit_of() { awk -v w="$2" 'index($0, w) == 1 { print $(NF - 2) }' "/proc/$1/limits"; }
root=0
d2=
[ "$(id -u)" = 0 ] && root=1
tick="--flat $tmp/img/tick.bin --mem 16M --engine emu"

start_corrald "$S" "$ST"
d1=$dpid

# ---- PID namespace and the process's own limits ----
"$CORRAL" vm create a-$u $tick --nofile 200 --pids-max 64 >/dev/null 2>"$tmp/e" && ok || bad "vm create with limits: $(cat "$tmp/e")"
"$CORRAL" vm create b-$u $tick >/dev/null 2>"$tmp/e" && ok || bad "vm create b: $(cat "$tmp/e")"
pa=$(field a-$u pid)
pb=$(field b-$u pid)
api GET /vms/a-$u
expect "the limits from vm create" 200 '"limits":{"nofile":200,"pids_max":64}'
if [ $root = 1 ]; then
	[ "$(readlink /proc/$pa/ns/pid)" != "$(readlink /proc/self/ns/pid)" ] &&
		[ "$(readlink /proc/$pa/ns/pid)" != "$(readlink /proc/$pb/ns/pid)" ] && ok ||
		bad "VM a's process shares a PID namespace: $(readlink /proc/$pa/ns/pid) $(readlink /proc/$pb/ns/pid)"
	# the host's pid, and 1 inside: it sees no other process
	[ "$(awk '/^NSpid:/ { print $2 "," $3 }' /proc/$pa/status)" = "$pa,1" ] && ok ||
		bad "NSpid of VM a: $(grep NSpid /proc/$pa/status)"
	[ "$(limit_of "$pa" 'Max open files')" = 200 ] && [ "$(limit_of "$pb" 'Max open files')" = 4096 ] && ok ||
		bad "open files: a $(limit_of "$pa" 'Max open files'), b $(limit_of "$pb" 'Max open files') (want 200, 4096)"
	[ "$(limit_of "$pa" 'Max processes')" = 64 ] && [ "$(limit_of "$pb" 'Max processes')" = 256 ] && ok ||
		bad "tasks: a $(limit_of "$pa" 'Max processes'), b $(limit_of "$pb" 'Max processes') (want 64, 256)"
	# a live nofile needs CAP_SYS_RESOURCE (to change another process's limits)
	before=$(cat "$ST/vms/a-$u/vm.json")
	api PATCH /vms/a-$u '{"limits":{"nofile":300}}'
	if capsh --has-p=cap_sys_resource 2>/dev/null || grep -q '^CapEff:.*[1-9a-f]\{2\}[13579bdf][0-9a-f]\{6\}$' /proc/self/status; then
		expect "PATCH nofile" 200 '"nofile": 300'
		[ "$(limit_of "$pa" 'Max open files')" = 300 ] && ok || bad "PATCH nofile: $(limit_of "$pa" 'Max open files')"
	else
		expect "PATCH nofile without CAP_SYS_RESOURCE" 409 "CAP_SYS_RESOURCE"
		[ "$(cat "$ST/vms/a-$u/vm.json")" = "$before" ] && [ "$(limit_of "$pa" 'Max open files')" = 200 ] && ok ||
			bad "a refused PATCH nofile changed something"
	fi
	# corrald restarts: the processes in their namespaces are found again, and obey
	kill "$d1"
	wait "$d1" 2>/dev/null
	alive "$pa" && ok || bad "VM a ended with corrald"
	start_corrald "$S" "$ST"
	d1=$dpid
	[ "$(field a-$u pid)" = "$pa" ] && [ "$(field a-$u state)" = running ] && ok || bad "after a restart: a pid $(field a-$u pid) (was $pa)"
	"$CORRAL" vm stop b-$u --timeout 5 && ! alive "$pb" && [ "$(field b-$u state)" = stopped ] && ok || bad "stop an adopted VM in its namespace"
	"$CORRAL" vm stop a-$u --force 2>/dev/null
	! alive "$pa" && [ "$(field a-$u state)" = stopped ] && ok || bad "kill an adopted VM in its namespace"
else
	skip "PID namespaces and rlimits: not root"
fi
api POST /vms "{\"name\":\"x-$u\",\"config\":{\"flat\":\"$tmp/img/tick.bin\"},\"limits\":{\"nofile\":10}}"
expect "nofile too small" 400 nofile
"$CORRAL" vm rm a-$u --force && "$CORRAL" vm rm b-$u --force && ok || bad "vm rm"

# ---- corral vm set: live limits ----
"$CORRAL" vm create s-$u $tick --disk "$tmp/img/tick.bin,readonly" >/dev/null 2>"$tmp/e" || bad "vm create s: $(cat "$tmp/e")"
if [ $root = 1 ] && [ -d /sys/fs/cgroup/cpu ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
	"$CORRAL" vm set s-$u --cpu-max 0.5 --cpu-weight 512 && [ "$(cat /sys/fs/cgroup/cpu/corral/s-$u/cpu.cfs_quota_us)" = 50000 ] &&
		[ "$(cat /sys/fs/cgroup/cpu/corral/s-$u/cpu.shares)" = 512 ] && ok ||
		bad "vm set --cpu-max: $(cat /sys/fs/cgroup/cpu/corral/s-$u/cpu.cfs_quota_us 2>&1)"
else
	skip "vm set's cgroup v1 check: not root or no cgroup v1 cpu controller"
fi
"$CORRAL" vm set s-$u --disk-rate 0,bw=2M:100,ops=500 --json >"$tmp/out" 2>"$tmp/e" && grep -q '"size": *2097152' "$tmp/out" &&
	curl -s --unix-socket "$ST/vms/s-$u/vm/api.sock" http://localhost/drives/0 | grep -q '"ops": *{[^}]*"size": *500' && ok ||
	bad "vm set --disk-rate: $(cat "$tmp/e" "$tmp/out")"
"$CORRAL" vm set s-$u --disk-rate 0,none && ! grep -q rate_limiter "$ST/vms/s-$u/vm.json" && ok || bad "vm set --disk-rate 0,none: $(cat "$ST/vms/s-$u/vm.json")"
"$CORRAL" vm set s-$u --memory-max 5 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "memory_max" "$tmp/e" && ok || bad "vm set --memory-max 5: $(cat "$tmp/e")"
"$CORRAL" vm set s-$u --disk-rate 3,bw=1M 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "index" "$tmp/e" && ok || bad "vm set a disk it has not: $(cat "$tmp/e")"
"$CORRAL" vm set s-$u --net-rate 0,bw=1M 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "not a rate option" "$tmp/e" && ok || bad "vm set --net-rate without tx_/rx_: $(cat "$tmp/e")"
"$CORRAL" vm set s-$u 2>"$tmp/e"; [ $? -eq 2 ] && ok || bad "vm set without limits: $(cat "$tmp/e")"
"$CORRAL" vm set s-$u --cpu-max half 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "cpu-max" "$tmp/e" && ok || bad "vm set --cpu-max half: $(cat "$tmp/e")"
"$CORRAL" vm set s-$u --bogus 1 2>"$tmp/e"; [ $? -eq 2 ] && ok || bad "vm set --bogus"
"$CORRAL" vm rm s-$u --force >/dev/null || bad "vm rm s"

# ---- the console: input, detach, the VM runs on ----
"$CORRAL" vm create e-$u --flat "$tmp/img/echo.bin" --mem 16M --engine emu >/dev/null 2>"$tmp/e" || bad "vm create e: $(cat "$tmp/e")"
pe=$(field e-$u pid)
sleep 0.5
# (the waits are for what the guest shows, not for fixed times: under a
# sanitizer on a loaded host the echo takes seconds)
(
	sleep 1
	printf 'ab'
	waitfor '"$CORRAL" vm logs e-$u | grep -q "<a><b>"'
	sleep 1 # the attached client shows it too
	printf 'c\035zz'
) | timeout 60 "$CORRAL" vm console e-$u >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] && grep -q '^ready' "$tmp/out" && grep -q '<a><b>' "$tmp/out" && grep -q "detached" "$tmp/err" && ok ||
	bad "vm console: rc $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"
waitfor '"$CORRAL" vm logs e-$u | grep -q "<a><b><c>"'
sleep 0.5 # nothing after C-] arrives meanwhile
alive "$pe" && [ "$(field e-$u state)" = running ] && "$CORRAL" vm logs e-$u | grep -q '<a><b><c>$' && ok ||
	bad "after detaching: state $(field e-$u state), log '$("$CORRAL" vm logs e-$u)' (want <a><b><c>, nothing after C-])"
api POST /vms/e-$u/console 'q'
expect "POST console" 204
waitfor '[ "$(field e-$u state)" = stopped ]'
[ "$(field e-$u state)" = stopped ] && "$CORRAL" vm logs e-$u | grep -q '<q>' && ok || bad "the guest did not take 'q': $(field e-$u state)"
api POST /vms/e-$u/console 'x'
expect "console input to a stopped VM" 409 "not running"
"$CORRAL" vm start e-$u >/dev/null
api POST /vms/e-$u/console ''
expect "empty console input" 400 "empty"
api GET "/vms/e-$u/console?from=999999"
expect "console from beyond its end" 416 "bytes"
api GET "/vms/e-$u/console?from=-1"
expect "console from -1" 400 "from"
api GET "/vms/e-$u/console?from=2"
expect "console from 2" 200 "ady"
if [ $root = 1 ]; then
	# a link planted where the console's socket was (the VM's own directory)
	# is not followed to corrald's socket
	rm -f "$ST/vms/e-$u/vm/console.sock"
	ln -s "$S" "$ST/vms/e-$u/vm/console.sock"
	api POST /vms/e-$u/console 'GET / HTTP/1.0'
	expect "a planted link" 502 "not a socket of the VM's own"
	grep -q "GET / HTTP/1.0" "$tmp/corrald.log" && bad "corrald followed the link to its own socket" || ok
fi
"$CORRAL" vm rm e-$u --force >/dev/null || bad "vm rm e"

# ---- cgroup v2: on the machine's real v2 hierarchy ----
if [ $root = 0 ]; then
	skip "cgroup v2: not root"
elif ! "$CORRALD" --help | grep -q -- --cgroup; then
	bad "corrald has no --cgroup"
else
	S2=$tmp/d2.sock
	start_corrald "$S2" "$tmp/st2" --cgroup v2
	d2=$dpid
	# the socket is there before corrald's "serving" line
	i=0
	while ! grep -q "cgroup v2 at" "$tmp/corrald.log" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	V2=$(sed -n 's/.*cgroup v2 at \([^)]*\)).*/\1/p' "$tmp/corrald.log" | tail -n 1)
	if [ -z "$V2" ]; then
		bad "corrald --cgroup v2 does not serve: $(tail -n 2 "$tmp/corrald.log")"
	else
		own=$(sed -n 's/^0:://p' /proc/$d2/cgroup)
		base=$V2${own%/corrald}
		[ "$base" = "$V2/" ] && base=$V2
		SOCK=$S2 api POST /vms "{\"name\":\"g-$u\",\"config\":{\"flat\":\"$tmp/img/tick.bin\",\"mem\":16777216,\"engine\":\"emu\"},\"limits\":{},\"start\":true}"
		expect "a VM in a v2 cgroup" 201
		pg=$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
		[ -n "$pg" ] && grep -q "^$pg$" "$base/corral/g-$u/cgroup.procs" && grep -q "^0::.*/corral/g-$u$" /proc/$pg/cgroup && ok ||
			bad "VM g is not in $base/corral/g-$u: $(cat /proc/$pg/cgroup 2>&1 | grep '^0::')"
		echo "t_isolation: cgroup v2 at $V2 offers: $(cat "$base/cgroup.controllers")"
		for c in pids memory cpu; do
			case $c in
			pids) l='"pids_max":64' f=pids.max want=64 ;;
			memory) l='"memory_max":268435456' f=memory.max want=268435456 ;;
			cpu) l='"cpu_max":0.5' f=cpu.max want='50000 100000' ;;
			esac
			SOCK=$S2 api POST /vms "{\"name\":\"$c-$u\",\"config\":{\"flat\":\"$tmp/img/tick.bin\",\"mem\":16777216,\"engine\":\"emu\"},\"limits\":{$l},\"start\":true}"
			if grep -qw "$c" "$base/cgroup.controllers"; then
				expect "v2 $c limit" 201
				[ "$(cat "$base/corral/$c-$u/$f")" = "$want" ] && ok || bad "v2 $f: $(cat "$base/corral/$c-$u/$f" 2>&1)"
			else
				# bound to a v1 hierarchy here: refused, naming the controller, nothing left behind
				expect "v2 $c limit without the controller" 400 "no $c controller"
				[ ! -e "$tmp/st2/vms/$c-$u" ] && ok || bad "a refused v2 VM is left defined"
			fi
		done
		CORRALD_SOCKET=$S2 "$CORRAL" vm rm g-$u --force && [ ! -e "$base/corral/g-$u" ] && ok ||
			bad "the v2 cgroup of a removed VM is left"
		for c in pids memory cpu; do CORRALD_SOCKET=$S2 "$CORRAL" vm rm $c-$u --force 2>/dev/null; done
	fi
fi
"$CORRALD" --cgroup v3 --foreground --socket "$tmp/x.sock" --state-dir "$tmp/x" 2>"$tmp/e"; [ $? -eq 2 ] && grep -q "auto, v1 or v2" "$tmp/e" && ok || bad "corrald --cgroup v3: $(cat "$tmp/e")"

for p in $d1 $d2; do alive "$p" || bad "corrald $p died"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
