#!/bin/sh
# The user network in snapshots and clones, with the guest kit under emu and
# --net user with two hostfwd ports: a loop serving one line per connection
# (port 7777: "srv" and the guest's MAC address) and a held connection on
# which the guest writes a tick every second (port 7001). Then
# `corral snapshot --stop` and restores in new processes:
# - the held host connection ends with the saving process (libslirp saves no
#   connection): the host sees it closed, never a hang; in the restored
#   guest the connection is reset at its next tick, as after a NAT restart;
# - the hostfwd ports are bound again from the saved configuration (restore
#   1), or from --net given at restore (restores 2 and 3, other ports), and
#   reach the guest's server, which runs on;
# - each restore offers fresh MAC addresses: the running guest keeps the one
#   its driver read, and reads the new one when the driver probes again
#   (unbind and bind); three restores, three different MACs; with --keep-mac
#   the saved one, also after a migration to another corral on this host,
#   which binds the same hostfwd port once the source lets go of it;
# - a state whose user-network section is altered (valid CRC, content libslirp
#   must not see) and a restore with the wrong number of --net are refused
#   with one line.
NAME=t_snapnet
. "$(dirname "$0")/lib.sh"

need_kit
command -v python3 >/dev/null 2>&1 || skip "no python3 for the host side"
work=$(mktemp -d "${TMPDIR:-/tmp}/t_snapnet.XXXXXX")
pids=
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
trap '' PIPE # a console whose corral ended: the write fails, the test goes on
S=$work/api.sock
MAC0=52:54:00:12:34:56

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! tr -d '\r' 2>/dev/null <"$1" | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

# One connection to 127.0.0.1:PORT: the first line the guest sends, retried
# until the guest answers (at most SECONDS).
fetch_line() { # PORT SECONDS
	python3 - "$1" "$2" <<'EOF'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + int(sys.argv[2])
while time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        data = b""
        while not data.endswith(b"\n"):
            b = s.recv(256)
            if not b:
                break
            data += b
        s.close()
        if data.strip():
            print(data.decode(errors="replace").strip())
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
}

P1=$(free_port)
P2=$(free_port)
truncate -s 1M "$work/disk.raw"
mkfifo "$work/in0"
timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$S" --disk "$work/disk.raw" \
	--net "user,hostfwd=tcp:127.0.0.1:$P1-:7777,hostfwd=tcp:127.0.0.1:$P2-:7001" \
	<"$work/in0" >"$work/out0" 2>"$work/err0" &
vm=$!
pids="$vm"
exec 9>"$work/in0"
if until_seen "$work/out0" '^/ # ' 600; then ok "booted to the initramfs shell"; else
	fail "no shell prompt"
	tail -n 20 "$work/out0" "$work/err0" | sed 's/^/    /'
	report
	exit 1
fi
cat >"$work/guest.sh" <<'EOF'
printf '#!/bin/sh\n[ "$1" = bound ] && ip addr add $ip/24 dev $interface && ip route add default via $router\nexit 0\n' >/tmp/dhcp.sh
chmod +x /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh >/dev/null 2>&1
(while :; do echo "srv $(cat /sys/class/net/eth0/address)" | nc -l -p 7777; done) >/dev/null 2>&1 &
( (while :; do echo tick; sleep 1; done) | nc -l -p 7001 >/dev/null 2>&1; echo "held-ended") &
echo "net-up $(ip -4 addr show eth0 | grep -c 10.0.2.15)"
EOF
echo "echo $(base64 -w0 <"$work/guest.sh")|base64 -d>/tmp/g.sh; sh /tmp/g.sh" >&9
until_seen "$work/out0" '^net-up 1$' 300 && ok "the guest has 10.0.2.15 by DHCP" || fail "no DHCP lease in the guest"
line=$(fetch_line "$P1" 300)
[ "$line" = "srv $MAC0" ] && ok "hostfwd reaches the guest's server before the snapshot ($line)" ||
	fail "hostfwd before the snapshot: '$line'"

# the held connection: read ticks, then report how it ended
cat >"$work/held.py" <<EOF
import socket, sys, time
deadline = time.time() + 300
while True:
    try:
        s = socket.create_connection(("127.0.0.1", $P2), timeout=10)
        s.settimeout(10)
        if s.recv(64).startswith(b"tick"):
            break
    except OSError:
        pass
    if time.time() > deadline:
        print("never-connected"); sys.exit(1)
    time.sleep(0.5)
print("ticking", flush=True)
s.settimeout(1)
while True:
    try:
        b = s.recv(64)
    except socket.timeout:
        continue
    except OSError as e:
        print("reset", e.errno, flush=True); sys.exit(0)
    if not b:
        print("closed", flush=True); sys.exit(0)
EOF
python3 "$work/held.py" >"$work/held.out" 2>&1 &
held=$!
pids="$pids $held"
until_seen "$work/held.out" '^ticking' 300 && ok "a host connection through hostfwd is held open (ticks arrive)" ||
	fail "the held connection: $(cat "$work/held.out")"

if "$CORRAL" snapshot "$S" "$work/snap" --stop 2>"$work/snaperr"; then ok "corral snapshot --stop"; else
	fail "corral snapshot: $(cat "$work/snaperr")"
fi
wait "$vm"
exec 9>&-
# the saving process is gone: its end of the held connection closed (not a hang)
if until_seen "$work/held.out" '^(closed|reset)' 30; then
	ok "the held host connection ended with the saving process ($(tail -n 1 "$work/held.out"))"
else
	fail "the held host connection did not end: $(cat "$work/held.out")"
fi
kill $held 2>/dev/null
pids=

# a state altered where libslirp would read it (CRC made valid again)
mkdir "$work/bad"
cp "$work/snap/memory" "$work/bad/" 2>/dev/null || ln -s "$work/snap/memory" "$work/bad/memory"
for f in "$work/snap"/disk*; do ln -s "$f" "$work/bad/$(basename "$f")"; done
python3 - "$work/snap/state" "$work/bad/state" <<'EOF'
import struct, sys, zlib
d = bytearray(open(sys.argv[1], "rb").read())
i = d.find(b"SECT\x03net")
assert i >= 0, "no net section"
n = d[i + 4]
length = struct.unpack_from("<Q", d, i + 5 + n + 8)[0]
body = i + 5 + n + 16
# contents: mac[6], kind u8, version u32, length u32, libslirp's blob, u32
assert d[body + 6] == 1 and length == 15 + 131 + 4, (d[body + 6], length)
d[body + 15] = 42  # a guestfwd socket follows, says the blob
crc = zlib.crc32(bytes(d[i + 4:body + length]))
struct.pack_into("<I", d, body + length, crc)
open(sys.argv[2], "wb").write(d)
EOF
if "$CORRAL" restore "$work/bad" --serial none --disk-dir "$work/bad.disks" >"$work/bad.out" 2>&1; then
	fail "a state with an altered user-network section was restored"
elif [ "$(grep -c "^corral: snapshot" "$work/bad.out")" -eq 1 ] && grep "^corral: snapshot" "$work/bad.out" | grep -q "guestfwd"; then
	ok "an altered user-network section is refused in one line ($(grep "^corral: snapshot" "$work/bad.out"))"
else
	fail "an altered user-network section: $(cat "$work/bad.out")"
fi
if "$CORRAL" restore "$work/snap" --serial none --net user --net user --disk-dir "$work/two.disks" \
	>"$work/two.out" 2>&1; then
	fail "a restore with two --net for one NIC ran"
elif grep -q "1 network: give as many --net" "$work/two.out"; then
	ok "a restore with the wrong number of --net is refused ($(cat "$work/two.out"))"
else
	fail "two --net for one NIC: $(cat "$work/two.out")"
fi

# restore K: in the background, console input from a FIFO on fd 3+K
start_restore() { # K [options]
	k=$1
	shift
	mkfifo "$work/in$k"
	timeout 600 "$CORRAL" restore "$work/snap" --serial stdio "$@" \
		<"$work/in$k" >"$work/out$k" 2>"$work/err$k" &
	last=$!
	pids="$pids $last"
	eval "exec $((3 + k))>\"\$work/in\$k\""
}
Q2=$(free_port)
Q3=$(free_port)
start_restore 1
start_restore 2 --net "user,hostfwd=tcp:127.0.0.1:$Q2-:7777"
start_restore 3 --net "user,hostfwd=tcp:127.0.0.1:$Q3-:7777"
for k in 1 2 3; do
	port=$P1
	[ $k = 2 ] && port=$Q2
	[ $k = 3 ] && port=$Q3
	line=$(fetch_line "$port" 300)
	if [ "$line" = "srv $MAC0" ]; then
		ok "restore $k: hostfwd port $port reaches the guest's server, which keeps its MAC while it runs"
	else
		fail "restore $k: port $port answered '$line'"
		tail -n 5 "$work/out$k" "$work/err$k" | sed 's/^/    /'
	fi
done
if grep -q "TCP connections\? \(was\|were\) open through the user network at the save: not carried over" "$work/err1"; then
	ok "restore 1 says once that the open connection was not carried over"
else
	fail "restore 1 did not say the connection was lost: $(cat "$work/err1")"
fi
until_seen "$work/out1" '^held-ended' 120 && ok "restore 1: the guest's held connection was reset (as after a NAT restart)" ||
	fail "restore 1: the guest's held connection did not end"
# the driver probes again: it reads the device's (new) address
rebind='d=$(basename $(readlink /sys/class/net/eth0/device)); echo $d >/sys/bus/virtio/drivers/virtio_net/unbind; echo $d >/sys/bus/virtio/drivers/virtio_net/bind; sleep 1; echo "mac-now $(cat /sys/class/net/eth0/address)"'
for k in 1 2 3; do echo "$rebind" >&$((3 + k)); done
macs=
for k in 1 2 3; do
	if until_seen "$work/out$k" '^mac-now ' 120; then
		macs="$macs $(tr -d '\r' <"$work/out$k" | grep '^mac-now ' | head -n 1 | cut -d' ' -f2)"
	else
		fail "restore $k: no MAC after the driver's new probe"
		macs="$macs none$k"
	fi
done
distinct=$(echo $macs | tr ' ' '\n' | grep -E '^52:54:00(:[0-9a-f]{2}){3}$' | grep -v "^$MAC0\$" | sort -u | wc -l)
if [ "$distinct" -eq 3 ]; then ok "three restores, three fresh MAC addresses:$macs"; else
	fail "the restores' MACs are not three fresh ones:$macs"
fi
for k in 1 2 3; do eval "exec $((3 + k))>&-"; done
for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=

# restore 4, with --keep-mac, then migrated to another corral on this host:
# the source lets go of its hostfwd port at the switch and the destination
# binds the same one
start_restore 4 --keep-mac --api-sock "$work/api4.sock"
src=$last
line=$(fetch_line "$P1" 300)
[ "$line" = "srv $MAC0" ] && ok "restore 4 (--keep-mac) serves on port $P1" || fail "restore 4: port $P1 answered '$line'"
mkfifo "$work/in5"
timeout 600 "$CORRAL" run --incoming "unix:$work/mig.sock" --serial stdio <"$work/in5" >"$work/out5" 2>"$work/err5" &
dst=$!
pids="$pids $dst"
exec 8>"$work/in5"
i=0
while [ ! -S "$work/mig.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if "$CORRAL" migrate "$work/api4.sock" "unix:$work/mig.sock" >"$work/mig.out" 2>"$work/mig.err"; then
	ok "corral migrate to a corral on this host"
else
	fail "corral migrate: $(tail -n 1 "$work/mig.err")"
fi
i=0
while kill -0 "$src" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$src" 2>/dev/null; then
	fail "the source still runs after the migration"
	kill "$src"
fi
line=$(fetch_line "$P1" 120)
if [ "$line" = "srv $MAC0" ]; then
	ok "the destination on this host bound hostfwd port $P1 again; the guest serves there"
else
	fail "after the migration, port $P1 answered '$line'"
	tail -n 3 "$work/err5" "$work/err4" | sed 's/^/    /'
fi
echo "$rebind" >&8
if until_seen "$work/out5" '^mac-now ' 300 && tr -d '\r' <"$work/out5" | grep -q "^mac-now $MAC0\$"; then
	ok "with --keep-mac, and across the migration, the NIC keeps $MAC0"
else
	fail "with --keep-mac and a migration: $(tr -d '\r' <"$work/out5" | grep '^mac-now')"
fi
exec 7>&- 8>&-
for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
