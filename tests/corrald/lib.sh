# corrald tests' helpers (sourced): api, expect and field talk to the
# corrald on $SOCK (default $S); ok and bad are the test's own;
# corrald_cleanup is what each test's EXIT trap runs.

# corrald_cleanup "DAEMON_PIDS" STATE_DIR...: stops the corralds (SIGTERM),
# then kills (SIGKILL) every VM process named in STATE_DIR/vms/*/run.json,
# which outlive their corrald by design
corrald_cleanup() {
	for _p in $1; do kill "$_p" 2>/dev/null; done
	shift
	for _st in "$@"; do
		for _f in "$_st"/vms/*/run.json; do
			[ -f "$_f" ] || continue
			_p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$_f" 2>/dev/null)
			[ -n "$_p" ] && kill -9 "$_p" 2>/dev/null
		done
	done
	return 0
}

# api METHOD PATH [BODY]: sets code and body
api() {
	if [ $# -ge 3 ]; then
		body=$(curl -s -m 30 -o - -w '\n%{http_code}' -X "$1" --unix-socket "${SOCK:-$S}" \
			-H 'Content-Type: application/json' --data-binary "$3" "http://localhost$2")
	else
		body=$(curl -s -m 30 -o - -w '\n%{http_code}' -X "$1" --unix-socket "${SOCK:-$S}" "http://localhost$2")
	fi
	code=$(printf '%s\n' "$body" | tail -n 1)
	body=$(printf '%s\n' "$body" | sed '$d')
}
# expect NAME STATUS [TEXT]: the last answer had STATUS (and TEXT in its body)
expect() {
	if [ "$code" = "$2" ] && { [ -z "$3" ] || printf '%s' "$body" | grep -qF -- "$3"; }; then
		ok
	else
		bad "$1: status $code, body '$body' (want $2 ${3:+with '$3'})"
	fi
}
# field NAME KEY: a VM's KEY from `corral vm ls --json`
field() {
	"$CORRAL" vm ls --json | python3 -c '
import json, sys
for v in json.load(sys.stdin):
    if v["name"] == sys.argv[1]:
        print(v.get(sys.argv[2], ""))' "$1" "$2"
}
