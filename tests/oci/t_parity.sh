#!/bin/sh
# The error paths of runc's command line, run with runc and with corral-runc
# on the same bundle, step by step: the same exit status, and runc's message
# within corral-runc's (Podman, conmon and containerd's shim look for those
# words: "does not exist", "container not running", "executable file not
# found"...). Unknown ids, create twice, start of a running or stopped
# container, pause and resume twice, delete of a running or paused one
# without --force, kill of a stopped one, exec failures (runc's 255), bad
# signals and ids; --log with --log-format json gets the error as conmon
# reads it. Skipped without runc.
. "$(dirname "$0")/lib.sh"
N=51
need_root $N
if ! command -v runc >/dev/null 2>&1; then
	skip $N "runc is not installed (tools/setup.sh installs it)"
	report
	exit $?
fi
B=$(bundle par 'c["process"]["args"] = ["sleep", "60"]')
RSTATE=$TMP/runc-state
mkdir -p "$RSTATE"
trap 'for d in "$RSTATE"/*/; do [ -d "$d" ] && runc --root "$RSTATE" delete --force "$(basename "$d")" >/dev/null 2>&1; done
	cleanup_containers; rm -rf "$TMP"' EXIT

# msg FILE: the error line without runc's logrus prefix or corral-runc's name
msg() {
	sed -e 's/^time="[^"]*" level=error msg="\(.*\)"$/\1/' -e 's/\\"/"/g' -e 's/^corral-runc: //' "$1" | head -n 1
}

# step NAME WORDS ARGS...: the runtime command with both; the same status,
# and when it fails, WORDS (what callers look for; "-" for none) in both
# messages, case aside as Podman matches them, corral-runc's on one line
step() {
	name=$1
	words=$2
	shift 2
	(cd "$B" && runc --root "$RSTATE" "$@") >"$TMP/r.out" 2>"$TMP/r.err" </dev/null
	rrc=$?
	(cd "$B" && "$RUNC" --root "$STATE" "$@") >"$TMP/c.out" 2>"$TMP/c.err" </dev/null
	crc=$?
	rm=$(msg "$TMP/r.err")
	cm=$(msg "$TMP/c.err")
	if [ "$rrc" != "$crc" ]; then
		bad "$name: status $crc, runc's $rrc (runc: '$rm', corral-runc: '$cm')"
	elif [ "$rrc" = 0 ] || [ -z "$rm" ]; then
		ok
	elif [ "$words" != - ] && ! printf '%s\n' "$rm" | grep -qiF -- "$words"; then
		bad "$name: runc's message '$rm' lacks '$words' (the test is wrong)"
	elif [ "$words" != - ] && ! printf '%s\n' "$cm" | grep -qiF -- "$words"; then
		bad "$name: message '$cm' lacks '$words' (runc: '$rm')"
	elif [ "$(wc -l <"$TMP/c.err")" != 1 ]; then
		bad "$name: not one line: $(cat "$TMP/c.err")"
	else
		ok
	fi
}

# stopped ID: wait until both runtimes see it stopped
stopped() {
	for i in $(seq 50); do
		[ "$(state_of "$1")" = stopped ] &&
			runc --root "$RSTATE" state "$1" 2>/dev/null | grep -q '"status": "stopped"' && return 0
		sleep 0.2
	done
	bad "$1 did not stop"
}

for c in state start kill delete pause resume ps; do
	step "$c of an unknown id" "container does not exist" $c nope
done
step "exec in an unknown id" "exec failed: container does not exist" exec nope true
step "delete --force of an unknown id" - delete --force nope
step "create with a bad id" "invalid container ID format" create --bundle "$B" "a/b"
step "create with a missing bundle" "no such file or directory" create --bundle "$TMP/nonexistent" c2
step "state without an id" - state
step "kill without an id" - kill

# --log --log-format json: the error as a JSON line with level and msg
"$RUNC" --root "$STATE" --log "$TMP/log.json" --log-format json state nope 2>/dev/null
expect "state of an unknown id (json log)" 1 $?
python3 -c 'import json, sys
e = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert e["level"] == "error" and "container does not exist" in e["msg"] and e["time"], e' "$TMP/log.json" &&
	ok || bad "json log: $(cat "$TMP/log.json")"
"$RUNC" --root "$STATE" --log "$TMP/log.txt" state nope 2>/dev/null
grep -q '^time=".*" level=error msg="container does not exist' "$TMP/log.txt" && ok || bad "text log: $(cat "$TMP/log.txt")"
"$RUNC" --root "$STATE" --log-format yaml state nope >"$TMP/e" 2>&1
expect "unknown --log-format" 1 $?
# the rest runs containers: runc's and corral-runc's, side by side
need_static 34 || { report; exit $?; }
step "create" - create --bundle "$B" c1
step "create twice" "container with given ID already exists" create --bundle "$B" c1
step "exec in a created container" - exec c1 true
step "resume of a created container" "container not paused" resume c1
step "start" - start c1
step "start of a running container" "cannot start an already running container" start c1
step "resume of a running container" "container not paused" resume c1
step "delete of a running container" "cannot delete container c1 that is not stopped: running" delete c1
step "exec of a missing program" 'exec failed: unable to start container process: exec: "nosuchprogram": executable file not found in $PATH' exec c1 nosuchprogram
step "exec of a path that is not there" "no such file or directory" exec c1 /no/such/file
step "exec with a missing cwd" 'exec failed: unable to start container process: chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory' exec --cwd /nonexistent c1 true
step "exec's exit status" - exec c1 sh -c 'exit 3'
step "exec of nothing" "process args cannot be empty" exec c1
step "exec --process of a missing file" "no such file or directory" exec --process "$TMP/nonexistent.json" c1
step "exec --tty without a console socket" "exec failed:" exec --tty c1 true
step "pause" - pause c1
step "pause twice" "container not running" pause c1
step "delete of a paused container" "cannot delete container c1 that is not stopped: paused" delete c1
step "resume" - resume c1
step "resume twice" "container not paused" resume c1
step "unknown signal" 'unknown signal "NOPE"' kill c1 NOPE
step "signal out of range" - kill c1 99
step "kill" - kill c1 KILL
stopped c1
step "kill of a stopped container" "container not running" kill c1 KILL
step "kill --all of a stopped container" - kill --all c1 TERM
step "start of a stopped container" "cannot start a container that has stopped" start c1
step "pause of a stopped container" "container not running" pause c1
step "exec in a stopped container" "exec failed: cannot exec in a stopped container" exec c1 true
step "delete" - delete c1
step "delete twice" "container does not exist" delete c1
step "create, then delete without start" - create --bundle "$B" c3
step "delete of a created container" - delete c3
nothing_left c1
nothing_left c3

report
