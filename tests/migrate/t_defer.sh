#!/bin/sh
# The incoming side as an API call (QEMU's -incoming defer and
# migrate-incoming): `corral run --incoming defer --api-sock SOCK` is an
# empty VM process; PUT /migrate/incoming {"url": URL} makes it listen, and
# the VM a source sends there runs in it. Before that only GET / and
# /migrate/incoming answer; a bad URL or a second PUT is refused; a stream
# that fails leaves it waiting for the next PUT, with the error in GET
# /migrate/incoming; a signal ends a waiting process.
: "${CORRAL:?}" "${BUILD:?}"
G=$BUILD/tests/guests
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
check() { # WHAT COMMAND...
	what=$1
	shift
	if "$@"; then ok; else bad "$what"; fi
}
. "$(dirname "$0")/lib.sh"
# api SOCK METHOD PATH [BODY]: the body, then the status on a line of its own
api() {
	if [ -n "${4:-}" ]; then
		curl -s -m 20 -X "$2" --unix-socket "$1" -d "$4" -w '\n%{http_code}' "http://localhost$3"
	else
		curl -s -m 20 -X "$2" --unix-socket "$1" -w '\n%{http_code}' "http://localhost$3"
	fi
}
status() { printf '%s\n' "$1" | tail -n 1; }
has() { printf '%s' "$1" | grep -q "$2"; }
start_source() { # NAME
	"$CORRAL" run --flat "$G/tick.bin" --mem 16M --engine emu --serial "file:$tmp/$1.out" \
		--api-sock "$tmp/$1.sock" </dev/null 2>"$tmp/$1.err" &
	src=$!
	pids="$pids $src"
	wait_sock "$tmp/$1.sock"
}
start_deferred() { # NAME
	"$CORRAL" run --incoming defer --api-sock "$tmp/$1.sock" --serial "file:$tmp/$1.out" </dev/null \
		2>"$tmp/$1.err" &
	dst=$!
	pids="$pids $dst"
	wait_sock "$tmp/$1.sock"
}
command -v curl >/dev/null 2>&1 || { echo "t_defer: skipped: no curl"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }

# ---- 1. defer needs the API ----
"$CORRAL" run --incoming defer </dev/null >/dev/null 2>"$tmp/e1.err"
rc=$?
check "--incoming defer without --api-sock: status 2 (got $rc)" test "$rc" -eq 2
check "--incoming defer without --api-sock: one line: $(cat "$tmp/e1.err")" \
	sh -c "[ \$(wc -l <'$tmp/e1.err') -eq 1 ] && grep -q 'needs --api-sock' '$tmp/e1.err'"

# ---- 2. an empty VM process: what it answers before a VM came ----
start_deferred d1
r=$(api "$tmp/d1.sock" GET /)
check "GET / answers: $r" has "$r" '"state":"Not started"'
r=$(api "$tmp/d1.sock" GET /migrate/incoming)
check "GET /migrate/incoming: none yet: $r" has "$r" '"state":"none"'
r=$(api "$tmp/d1.sock" PATCH /vm '{"state":"Paused"}')
check "PATCH /vm without a VM: 409: $r" sh -c "[ '$(status "$r")' = 409 ] && printf '%s' '$r' | grep -q 'no VM here yet'"
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{}')
check "PUT /migrate/incoming without url: 400: $r" test "$(status "$r")" = 400
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{"url":"ftp:x"}')
check "a bad URL: 400 that says why: $r" sh -c "[ '$(status "$r")' = 400 ] && printf '%s' '$r' | grep -q 'not tcp:HOST:PORT or unix:PATH'"
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/in1.sock","x":1}')
check "an unknown key: 400: $r" test "$(status "$r")" = 400
check "the process still waits" kill -0 "$dst"
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/in1.sock"}')
check "PUT /migrate/incoming: 204 ($r)" test "$(status "$r")" = 204
check "it listens when the PUT has answered" test -S "$tmp/in1.sock"
r=$(api "$tmp/d1.sock" GET /migrate/incoming)
check "GET /migrate/incoming: active: $r" has "$r" '"state":"active"'
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/other.sock"}')
check "a second PUT while one waits: 409: $r" test "$(status "$r")" = 409

# ---- 3. a VM moves in ----
start_source s1
wait_lines "$tmp/s1.out" 10
"$CORRAL" migrate "$tmp/s1.sock" "unix:$tmp/in1.sock" >"$tmp/m1.out" 2>"$tmp/m1.err"
check "corral migrate to the deferred destination: $(tail -n 1 "$tmp/m1.err")" test $? -eq 0
wait_pid "$src" 10
check "the source ends with status 0 (got $rc)" test "$rc" -eq 0
check "the VM runs in the empty process" wait_lines "$tmp/d1.out" 10
cat "$tmp/s1.out" "$tmp/d1.out" | head -n -1 >"$tmp/seq1"
n=$(wc -l <"$tmp/seq1")
expect=$(i=1; while [ $i -le "$n" ]; do printf '%08X\n' $i; i=$((i + 1)); done)
if [ "$(cat "$tmp/seq1")" = "$expect" ]; then ok; else
	bad "the count goes on at the destination: $(head -c 200 "$tmp/seq1" | tr '\n' ' ') ..."
fi
r=$(api "$tmp/d1.sock" GET /migrate/incoming)
check "GET /migrate/incoming: completed: $r" has "$r" '"state":"completed"'
r=$(api "$tmp/d1.sock" GET /)
check "GET /: the VM runs: $r" has "$r" '"state":"Running"'
r=$(api "$tmp/d1.sock" PATCH /vm '{"state":"Paused"}')
check "the API acts on the VM that came: PATCH /vm 204 ($r)" test "$(status "$r")" = 204
r=$(api "$tmp/d1.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/again.sock"}')
check "no second incoming VM: 409: $r" test "$(status "$r")" = 409
kill "$dst"

# ---- 4. a failed stream: reported, and the next PUT may come ----
start_deferred d2
r=$(api "$tmp/d2.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/in2.sock"}')
check "PUT /migrate/incoming: 204 ($r)" test "$(status "$r")" = 204
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(64)); s.recv(100)' "$tmp/in2.sock"
i=0
while ! api "$tmp/d2.sock" GET /migrate/incoming | grep -q failed && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
r=$(api "$tmp/d2.sock" GET /migrate/incoming)
check "a garbage stream: GET /migrate/incoming says failed and why: $r" has "$r" 'not a corral migration stream'
check "a garbage stream: the process waits on" kill -0 "$dst"
check "a garbage stream: one line on stderr: $(cat "$tmp/d2.err")" \
	sh -c "[ \$(wc -l <'$tmp/d2.err') -eq 1 ] && grep -q 'not a corral migration stream' '$tmp/d2.err'"
r=$(api "$tmp/d2.sock" PUT /migrate/incoming '{"url":"unix:'"$tmp"'/in3.sock"}')
check "a new PUT after the failure: 204 ($r)" test "$(status "$r")" = 204
start_source s2
wait_lines "$tmp/s2.out" 5
"$CORRAL" migrate "$tmp/s2.sock" "unix:$tmp/in3.sock" >"$tmp/m2.out" 2>"$tmp/m2.err"
check "the VM moves in on the second try: $(tail -n 1 "$tmp/m2.err")" test $? -eq 0
check "and runs there" wait_lines "$tmp/d2.out" 5
kill "$dst"

# ---- 5. a signal ends a waiting process ----
start_deferred d3
kill -TERM "$dst"
wait_pid "$dst" 5
check "SIGTERM ends an empty VM process (status $rc)" test "$rc" -eq 143
check "its API socket is gone" test ! -e "$tmp/d3.sock"

# a sanitized build's reports (ASan, UBSan) in any corral's stderr
san=$(grep -l "Sanitizer\|runtime error" "$tmp"/*.err 2>/dev/null | tr '\n' ' ')
check "no sanitizer report in any corral's stderr: $san" test -z "$san"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
