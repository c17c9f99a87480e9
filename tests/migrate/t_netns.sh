#!/bin/sh
# Live migration between two "hosts" on this machine: two network
# namespaces joined by a veth pair, a corral in each. The Debian guest kit
# (emu engine) counts in its shell and writes a numbered 4 KiB block per
# count to its raw disk (shared storage: both sides open the same image);
# it moves over TCP from one namespace to the other while it counts. The
# count goes on at the destination with no number lost or repeated, the
# guest's clock shows no gap larger than the stop corral measured (plus
# the loop's own 0.1 s), and every block on the disk is whole afterwards.
# The guest has --net user with a hostfwd port on each side's loopback: the
# user network's state moves with the VM, the destination binds the port in
# its namespace, and the guest's server answers there with the same MAC
# address (a migration is the same machine, not a clone).
NAME=t_netns
. "$(dirname "$0")/../boot/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null 2>&1 || skip "no ip(8)"
need_kit
work=$(mktemp -d "${TMPDIR:-/tmp}/t_netns.XXXXXX")
A=corral-mgA-$$
B=corral-mgB-$$
keep=
cleanup() {
	exec 8>&- 9>&-
	for p in $keep; do kill "$p" 2>/dev/null; done
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
if ! ip netns add "$A" 2>"$work/ip.err" || ! ip netns add "$B" 2>>"$work/ip.err"; then
	skip "cannot make network namespaces: $(head -n 1 "$work/ip.err")"
fi
ip link add mgA$$ netns "$A" type veth peer name mgB$$ netns "$B" &&
	ip -n "$A" addr add 10.251.0.1/24 dev mgA$$ && ip -n "$B" addr add 10.251.0.2/24 dev mgB$$ &&
	ip -n "$A" link set mgA$$ up && ip -n "$B" link set mgB$$ up &&
	ip -n "$A" link set lo up && ip -n "$B" link set lo up || skip "cannot set up the veth pair"
if ip -n "$A" route get 10.251.0.2 2>/dev/null | grep -q "dev mgA$$"; then ok "a route from one namespace to the other"; else
	fail "no route between the namespaces"; report; exit 1
fi

until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

# One connection to 127.0.0.1:7780 in namespace NS: the guest's first line.
fetch_line() { # NS SECONDS
	ip netns exec "$1" python3 - "$2" <<'PY'
import socket, sys, time
deadline = time.time() + int(sys.argv[1])
while time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", 7780), timeout=10)
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
PY
}

truncate -s 16M "$work/disk.img"
mkfifo "$work/in1" "$work/in2"
ip netns exec "$A" timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio \
	--api-sock "$work/api.sock" --disk "$work/disk.img" --net "user,hostfwd=tcp:127.0.0.1:7780-:7777" \
	<"$work/in1" >"$work/out1" 2>"$work/err1" &
src=$!
keep=$src
exec 9>"$work/in1"
ip netns exec "$B" timeout "$TIMEOUT" "$CORRAL" run --incoming tcp:10.251.0.2:4444 --serial stdio \
	<"$work/in2" >"$work/out2" 2>"$work/err2" &
dst=$!
keep="$keep $dst"
exec 8>"$work/in2"
if until_seen "$work/out1" '^/ # ' 600; then ok "the source booted to the initramfs shell"; else
	fail "no shell prompt"; tail -n 20 "$work/out1" "$work/err1" | sed 's/^/    /'; report; exit 1
fi
# DHCP, then a loop serving one line per connection on port 7777
cat >"$work/guest.sh" <<'EOF'
printf '#!/bin/sh\n[ "$1" = bound ] && ip addr add $ip/24 dev $interface\nexit 0\n' >/tmp/dhcp.sh
chmod +x /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh >/dev/null 2>&1
(while :; do echo "srv $(cat /sys/class/net/eth0/address)" | nc -l -p 7777; done) >/dev/null 2>&1 &
echo "net-up $(ip -4 addr show eth0 | grep -c 10.0.2.15)"
EOF
echo "echo $(base64 -w0 <"$work/guest.sh")|base64 -d>/tmp/g.sh; sh /tmp/g.sh" >&9
until_seen "$work/out1" '^net-up 1' 300 && ok "the guest has 10.0.2.15 by DHCP" || fail "no DHCP lease in the guest"
line=$(fetch_line "$A" 300)
[ "$line" = "srv 52:54:00:12:34:56" ] && ok "hostfwd at the source reaches the guest's server ($line)" ||
	fail "hostfwd at the source: '$line'"
# count to 400, a block per count at block N of /dev/vda, the guest's uptime with each
echo 'i=0; while [ $i -lt 400 ]; do i=$((i+1)); printf "block %08d\n" $i | dd of=/dev/vda bs=4096 seek=$i conv=sync,notrunc 2>/dev/null; echo "count $i $(cut -d" " -f1 /proc/uptime)"; sleep 0.1; done; sync; echo all-done' >&9
if until_seen "$work/out1" '^count 30 ' 300; then ok "the guest counts and writes"; else fail "the guest does not count"; fi
if ip netns exec "$A" "$CORRAL" migrate "$work/api.sock" tcp:10.251.0.2:4444 >"$work/mig.out" 2>"$work/mig.err"; then
	ok "corral migrate from one namespace to the other"
else
	fail "corral migrate: $(tail -n 1 "$work/mig.err")"
fi
stop=$(sed -n 's/.*the guest stood \([0-9]*\) ms.*/\1/p' "$work/mig.err")
i=0
while kill -0 "$src" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$src"
rc=$?
[ "$rc" -eq 0 ] && ok "the source ends with status 0" || fail "the source ended with status $rc: $(cat "$work/err1")"
if until_seen "$work/out2" '^all-done' 300; then ok "the guest counted to the end at the destination"; else
	fail "the count did not end at the destination"; tail -n 5 "$work/out2" "$work/err2" | sed 's/^/    /'
fi
# every number once, in order, across the two consoles; the largest step of the guest's clock
cat "$work/out1" "$work/out2" | tr -d '\r' | grep -a '^count [0-9]* [0-9.]*$' |
	awk -v stop="${stop:-0}" '
	{ if ($2 in seen) { print "repeated " $2; bad = 1 } seen[$2] = 1
	  if (NR > 1 && $2 != prev + 1) { print "gap after " prev; bad = 1 }
	  if (NR > 1 && $3 - t > gap) gap = $3 - t
	  prev = $2; t = $3 }
	END { if (prev != 400) { print "ended at " prev; bad = 1 }
	      if (gap > 0.1 + stop / 1000 + 0.5) { print "the guest clock jumped " gap " s"; bad = 1 }
	      printf "largest step of the guest clock %.3f s (stop %d ms)\n", gap, stop > "/dev/stderr"
	      exit bad }' >"$work/seq" 2>"$work/gap"
if [ ! -s "$work/seq" ]; then ok "count 1..400 with no gap or repeat ($(cat "$work/gap"))"; else
	fail "the count: $(head -n 3 "$work/seq" | tr '\n' ' ')"
fi
line=$(fetch_line "$B" 120)
if [ "$line" = "srv 52:54:00:12:34:56" ]; then
	ok "the destination bound the hostfwd port; the guest's server answers with its MAC unchanged"
else
	fail "hostfwd at the destination: '$line'"
fi
kill "$dst" 2>/dev/null
wait "$dst" 2>/dev/null
# every block whole on the shared disk
python3 - "$work/disk.img" >"$work/blocks" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
bad = [n for n in range(1, 401) if not d[n * 4096:(n + 1) * 4096].startswith(b"block %08d\n" % n)
       or d[n * 4096 + 15:(n + 1) * 4096].strip(b"\0")]
print(" ".join(map(str, bad[:10])))
PY
if [ ! -s "$work/blocks" ] || [ "$(cat "$work/blocks")" = "" ]; then ok "the 400 blocks on the disk are whole"; else
	fail "blocks damaged or missing: $(cat "$work/blocks")"
fi
report
