#!/bin/sh
# Hostile programs against process VMs (tests/progs/hostile.c): each tries
# one way into corral's memory or out of the sandbox; each check here failed
# on corral before the sandbox work (docs/threat-model.md says which
# promise it tests).
. "$(dirname "$0")/lib.sh"
H=$BUILD/tests/progs/hostile

# out CASE ARGS...: corral's stdout of the case (status in $TMP/rc)
out() {
	timeout 60 "$CORRAL" exec "$@" >"$TMP/o" 2>"$TMP/e" </dev/null
	echo $? >"$TMP/rc"
	cat "$TMP/o"
}

# expect NAME PATTERN: the last `out` printed a line matching PATTERN
expect() {
	if grep -qx -- "$2" "$TMP/o"; then
		ok
	else
		bad "$1: no line '$2' in:"
		sed 's/^/    /' "$TMP/o" "$TMP/e" | head -n 20
	fi
}

# rss KB... : peak RSS of corral running the rest, in KiB
peak_rss() {
	python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}

# --- guest memory never aliases corral's ---
# A read() blocked into a buffer another thread unmaps, then threads are
# created: their host stacks must not be where the data lands.
out "$H" alias-read >/dev/null
expect "alias-read" "alias-read: 8 of 8 threads intact"
# A write() blocked from such a buffer must not leak corral's memory.
out "$H" alias-write >/dev/null
expect "alias-write" "alias-write: 0 foreign bytes, 8 of 8 threads intact"

# and never through procfs (corral's memory is the process's memory)
out "$H" proc-mem >/dev/null
expect "proc mem" "proc mem files opened: 0"
out --sandbox "$H" proc-mem >/dev/null
expect "proc mem, sandbox" "proc mem files opened: 0"

# --- memory moves: realloc and mremap keep the data (arena moves) ---
same "mremap growth" "$H" mremap-grow

# --- memory: reservations are cheap, --mem caps, absurd ELF segments ---
kb=$(peak_rss "$CORRAL" exec "$H" reserve)
if [ "$kb" -lt 40000 ]; then ok; else bad "64 GiB PROT_NONE reservation cost corral $kb KiB"; fi
out --mem 100M "$H" memcap >/dev/null
expect "--mem 100M" "memcap: [0-9]* MiB"
got=$(sed -n 's/memcap: \([0-9]*\) MiB/\1/p' "$TMP/o")
if [ -n "$got" ] && [ "$got" -ge 48 ] && [ "$got" -le 96 ]; then ok; else bad "--mem 100M let $got MiB through"; fi
out "$H" memcap >/dev/null
expect "no --mem" "memcap: 256 MiB"
# and through execve into a new corral
out --mem 100M /bin/busybox sh -c "exec $H memcap" >/dev/null
expect "--mem across execve" "memcap: [4-9][0-9] MiB"
status "--mem 0 refused" 2 "$CORRAL" exec --mem 0 /bin/true
# an ELF whose bss is 1 TiB: a clear error at once, not a growing corral
python3 - "$H" "$TMP/bigbss" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
phoff = struct.unpack_from('<Q', d, 32)[0]
phentsize, phnum = struct.unpack_from('<HH', d, 54)
last = [phoff + k * phentsize for k in range(phnum) if struct.unpack_from('<I', d, phoff + k * phentsize)[0] == 1][-1]
struct.pack_into('<Q', d, last + 40, 1 << 40)
open(sys.argv[2], 'wb').write(d)
EOF
chmod +x "$TMP/bigbss"
kb=$(peak_rss "$CORRAL" exec "$TMP/bigbss" memcap)
status "1 TiB bss refused" 126 "$CORRAL" exec "$TMP/bigbss" memcap
if grep -q "cannot map bss.*Cannot allocate memory" "$TMP/s.err"; then ok; else bad "1 TiB bss message: $(cat "$TMP/s.err")"; fi
if [ "$kb" -lt 40000 ]; then ok; else bad "1 TiB bss cost corral $kb KiB"; fi

# --- SIGBUS past the end of a file, EFAULT for system calls: as Linux ---
same "sigbus" "$H" sigbus
same "sigbus in hot code" "$H" sigbus-hot
export CORRAL_JIT=0
same "sigbus, interpreter" "$H" sigbus
unset CORRAL_JIT

# --- code changed through a second mapping of the same file page ---
same "alias-code" "$H" alias-code
export CORRAL_JIT=0
same "alias-code, interpreter" "$H" alias-code
unset CORRAL_JIT

# --- the top page of the address space ---
same "top page" "$H" top-page

# --- instructions fault as the hardware's do ---
same "instruction faults" "$H" insns

# --- the sandbox: processes, devices, network, unix sockets ---
if [ "$(id -u)" != 0 ] && ! unshare -U true 2>/dev/null; then
	skip 27 "this host allows no user namespaces to non-root users"
	report
	exit
fi
R=$TMP/root
mkdir -p "$R/tmp" "$R/dev"
cp "$H" "$R/h"
# a root that brings device nodes of its own (as a careless image might)
mknod "$R/dev/sda" b 8 0 2>/dev/null
mknod "$R/dev/kmsg" c 1 11 2>/dev/null

# host processes: invisible and unreachable (as root, kill(-1) would
# otherwise end every process on the host)
sleep 60 &
victim=$!
# kill(-1) only once the PID space is known to be the sandbox's own (and
# hostile.c refuses it unless it runs as one of a namespace's first pids)
out --root "$R" /h host-procs "$victim" >/dev/null
grep -qx "kill host pid: No such process" "$TMP/o" && out --root "$R" /h host-procs "$victim" kill-all >/dev/null
for call in "kill host pid" "prlimit host pid" "setpriority host pid" "sched_setaffinity host pid" \
	"pidfd_open host pid"; do
	expect "sandbox: $call" "$call: No such process"
done
expect "sandbox: own pid space" "kill(-1) done, my pid 2"
# nor listed in its /proc, whose kernel settings it cannot change
status "sandbox: host pid not in /proc" 1 "$CORRAL" exec --sandbox /bin/busybox test -e "/proc/$victim"
# (each writes back the value it read: harmless should the sandbox fail)
status "sandbox: /proc/sys read-only" 1 "$CORRAL" exec --sandbox /bin/busybox sh -c \
	'v=$(cat /proc/sys/vm/swappiness) && echo "$v" >/proc/sys/vm/swappiness'
status "sandbox: /sys read-only" 1 "$CORRAL" exec --sandbox /bin/busybox sh -c \
	'v=$(cat /sys/kernel/mm/ksm/run) && echo "$v" >/sys/kernel/mm/ksm/run' 
if kill -0 "$victim" 2>/dev/null; then ok; else bad "sandbox: kill(-1) reached a host process"; fi
kill "$victim" 2>/dev/null
wait "$victim" 2>/dev/null
# the same calls without a sandbox do reach the host (the test can fail;
# never kill(-1) there)
sleep 60 &
victim=$!
out "$H" host-procs "$victim" >/dev/null
expect "no sandbox: host pid reachable" "setpriority host pid: reached"
kill "$victim" 2>/dev/null
wait "$victim" 2>/dev/null

# devices: a /dev of its own, no device nodes, no mknod of one
out --root "$R" /h devices >/dev/null
expect "sandbox: mknod" "mknod char: Operation not permitted"
expect "sandbox: fifo" "mkfifo: made"
expect "sandbox: /dev/null" "/dev/null: opened"
expect "sandbox: /dev/urandom" "/dev/urandom: opened"
expect "sandbox: no devices" "host devices reached: 0"
expect "sandbox: none of corral's descriptors through /dev/fd" "descriptors not its own opened: 0"
out --sandbox "$H" devices >/dev/null
expect "sandbox without root: no devices" "host devices reached: 0"
# the host's terminals are not in the sandbox's /dev/pts
pts=$("$CORRAL" exec --sandbox /bin/busybox ls /dev/pts 2>&1 | tr '\n' ' ')
if [ "$pts" = "ptmx " ]; then ok; else bad "sandbox: /dev/pts holds '$pts'"; fi

# network: loopback of its own only; no netlink, raw or packet sockets
python3 - "$TMP/host.sock" "corral-hostile-$$" "$TMP/port" <<'EOF' &
import os, socket, sys, time
u = socket.socket(socket.AF_UNIX); u.bind(sys.argv[1]); u.listen(8)
a = socket.socket(socket.AF_UNIX); a.bind('\0' + sys.argv[2]); a.listen(8)
t = socket.socket(); t.bind(('127.0.0.1', 0)); t.listen(8)
open(sys.argv[3] + '.tmp', 'w').write(str(t.getsockname()[1])); os.rename(sys.argv[3] + '.tmp', sys.argv[3])
time.sleep(600)
EOF
server=$!
n=0
while [ ! -s "$TMP/port" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
port=$(cat "$TMP/port")
out --root "$R" /h network "$port" >/dev/null
expect "sandbox: netlink" "netlink: Address family not supported by protocol"
expect "sandbox: raw" "raw: Operation not permitted"
expect "sandbox: packet" "packet: Address family not supported by protocol"
expect "sandbox: host loopback" "host loopback: Connection refused"
expect "sandbox: own loopback" "own loopback: works"
out --root "$R" --net host /h network "$port" >/dev/null
expect "--net host: host loopback" "host loopback: connected"
# --net user: the host's loopback as 10.0.2.2 through the NAT, a port
# published with hostfwd, and none of the NAT's host sockets inside
out --root "$R" --net user /h network "$port" 10.0.2.2 >/dev/null
expect "--net user: host service through the NAT" "host loopback: connected"
expect "--net user: still no netlink" "netlink: Address family not supported by protocol"
fds_none=$("$CORRAL" exec --sandbox /bin/busybox ls /proc/self/fd | tr '\n' ' ')
fds_user=$("$CORRAL" exec --sandbox --net user,hostfwd=tcp:127.0.0.1:0-:80 /bin/busybox ls /proc/self/fd | tr '\n' ' ')
if [ -n "$fds_none" ] && [ "$fds_none" = "$fds_user" ]; then ok; else bad "--net user: descriptors inside differ: '$fds_none' vs '$fds_user'"; fi
fwd=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CORRAL" exec --sandbox --net "user,hostfwd=tcp:127.0.0.1:$fwd-:8080" /bin/busybox sh -c \
	'echo served-from-the-sandbox | nc -l -p 8080' >/dev/null 2>&1 &
served=$!
got=$(python3 -c '
import socket, sys, time
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        d = s.recv(100)
        if d:
            print(d.decode().strip()); break
    except OSError:
        pass
    time.sleep(0.1)' "$fwd")
if [ "$got" = "served-from-the-sandbox" ]; then ok; else bad "--net user hostfwd: got '$got'"; fi
kill "$served" 2>/dev/null
wait "$served" 2>/dev/null
# unix sockets: the host's path, a symlink pointing out, an abstract name
out --root "$R" /h unix "$TMP/host.sock" "corral-hostile-$$" >/dev/null
expect "sandbox: unix path" "unix path: No such file or directory"
expect "sandbox: unix symlink" "unix symlink: No such file or directory"
expect "sandbox: unix sendto" "unix dgram sendto: No such file or directory"
expect "sandbox: abstract" "abstract: Connection refused"
expect "sandbox: own socket named as the guest named it" "own socket: bound /tmp/own.sock"
expect "sandbox: own socket connects" "own connect: connected"
# without the sandbox the host's are reachable (the checks can fail)
out "$H" unix "$TMP/host.sock" "corral-hostile-$$" >/dev/null
expect "no sandbox: abstract reachable" "abstract: connected"
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null

report
