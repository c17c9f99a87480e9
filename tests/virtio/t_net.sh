#!/bin/sh
# virtio-net with user networking (libslirp), with the stock kernel and the
# guest kit: the guest gets its address by DHCP, fetches files from an HTTP
# server on the host's loopback through 10.0.2.2, and serves a listener that
# the host reaches through a hostfwd port. A VM without --net has no NIC.
# T_BOOT_ENGINE (default: corral's) the engine; the nested test machine
# (tests/kvm/t_nested.sh) runs this script on --engine kvm, with busybox's
# httpd and nc as the host side where there is no python3.
# Last line: "N passed, N failed".
NAME=t_net
. "$(dirname "$0")/../boot/lib.sh"

need_kit
if command -v python3 >/dev/null 2>&1; then
	pyhost=1
elif busybox httpd --help 2>&1 | grep -q -- '-p' && command -v nc >/dev/null 2>&1; then
	pyhost=
else
	fail "python3 (or busybox's httpd and nc) is needed for the host side"
	report
	exit 1
fi
ENGINE=${T_BOOT_ENGINE:+--engine $T_BOOT_ENGINE}

work=$(mktemp -d "${TMPDIR:-/tmp}/t_net.XXXXXX")
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$work"' EXIT INT TERM

free_port() { # N: the Nth port this test needs
	if [ -n "$pyhost" ]; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
	else
		# busybox's host is a machine of its own (the nested one): its
		# ports are all free
		echo $((18080 + $1))
	fi
}

# The host's HTTP server, on loopback only.
mkdir -p "$work/www"
token=host-$$-$(date +%s)
echo "$token" >"$work/www/hello.txt"
head -c 1048576 /dev/urandom >"$work/www/blob.bin"
blob_sum=$(sha256sum <"$work/www/blob.bin" | cut -d' ' -f1)
http_port=$(free_port 1)
if [ -n "$pyhost" ]; then
	(cd "$work/www" && exec python3 -m http.server "$http_port" --bind 127.0.0.1) >"$work/http.log" 2>&1 &
else
	busybox httpd -f -p "127.0.0.1:$http_port" -h "$work/www" >"$work/http.log" 2>&1 &
fi
pids="$pids $!"
fwd_port=$(free_port 2)
gtoken=guest-$$-$(date +%s)

# The guest: DHCP (udhcpc reports the lease to a script), then HTTP, then a
# listener on port 8080 that answers the host's one connection.
cat >"$work/guest.sh" <<EOF
printf '#!/bin/sh\necho "dhcp: \$1 \$ip \$router \$dns"\n[ "\$1" = bound ] && ip addr add \$ip/24 dev \$interface && ip route add default via \$router\nexit 0\n' >/tmp/dhcp.sh
chmod +x /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh
echo "mac: \$(cat /sys/class/net/eth0/address)"
echo "eth0: \$(cat /sys/class/net/eth0/operstate) carrier \$(cat /sys/class/net/eth0/carrier) \$(ip -4 addr show dev eth0 | grep inet | tr '\n' ' ')"
echo "routes: \$(ip route | tr '\n' ';')"
echo "http: \$(wget -q -O- http://10.0.2.2:$http_port/hello.txt)"
echo "blob: \$(wget -q -O- http://10.0.2.2:$http_port/blob.bin | sha256sum | cut -d' ' -f1)"
echo listening
echo $gtoken | nc -l -p 8080
echo served
EOF
cmd="echo $(base64 -w0 <"$work/guest.sh")|base64 -d|sh"

# The host side of hostfwd: connect once the guest listens, read its line.
cat >"$work/client.py" <<EOF
import socket, sys, time
deadline = time.time() + $TIMEOUT
while time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", $fwd_port), timeout=5)
        # Once connected, wait as long as the test may: a slow guest can take
        # seconds to answer, and the user network closes the connection at
        # once when nothing listens in the guest yet.
        s.settimeout(max(1, deadline - time.time()))
        data = s.recv(4096)
        if data:
            sys.stdout.write(data.decode(errors="replace"))
            sys.exit(0)
        s.close()
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
if [ -n "$pyhost" ]; then
	python3 "$work/client.py" >"$work/client.out" 2>&1 &
else
	# the same with nc: retry until the guest listens and a line comes back
	(
		end=$(($(date +%s) + TIMEOUT))
		while [ "$(date +%s)" -lt "$end" ]; do
			nc 127.0.0.1 "$fwd_port" </dev/null >"$work/client.try" 2>/dev/null
			if [ -s "$work/client.try" ]; then
				cat "$work/client.try"
				exit 0
			fi
			sleep 0.5
		done
		exit 1
	) >"$work/client.out" 2>&1 &
fi
client=$!
pids="$pids $client"

timeout "$TIMEOUT" "$CORRAL" run $ENGINE --net "user,hostfwd=tcp:127.0.0.1:$fwd_port-:8080" \
	--append "console=ttyS0 quiet -- $cmd" </dev/null >"$work/boot.log" 2>&1
rc=$?
# The guest is gone: the client has had its chance (a little longer for slow hosts).
n=0
while kill -0 $client 2>/dev/null && [ $n -lt 20 ]; do
	sleep 0.5
	n=$((n + 1))
done
kill $client 2>/dev/null
wait $client
crc=$?
tr -d '\r' <"$work/boot.log" >"$work/boot.txt" # the serial console ends lines with CR LF
log=$work/boot.txt
if [ "$rc" -eq 0 ]; then ok "corral exited 0"; else fail "corral exited $rc"; fi
if grep -q "^dhcp: bound 10.0.2.15 10.0.2.2 10.0.2.3" "$log"; then
	ok "DHCP gave 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3"
else
	fail "DHCP: $(grep '^dhcp:' "$log" | head -n 3)"
fi
if grep -q "^mac: 52:54:00:12:34:56" "$log"; then ok "the NIC's MAC address"; else fail "MAC: $(grep '^mac:' "$log")"; fi
if grep -q "^http: $token\$" "$log"; then
	ok "HTTP from the host's loopback through 10.0.2.2"
else
	fail "HTTP: $(grep '^http:' "$log")"
fi
if grep -q "^blob: $blob_sum\$" "$log"; then
	ok "1 MiB over HTTP arrives intact"
else
	fail "1 MiB over HTTP: $(grep '^blob:' "$log")"
fi
if [ "$crc" -eq 0 ] && grep -q "^$gtoken" "$work/client.out"; then
	ok "hostfwd: the host reached the guest's listener"
else
	fail "hostfwd: the host read '$(cat "$work/client.out")' (status $crc)"
fi
if grep -q "^served" "$log"; then ok "the guest saw the connection"; else fail "the guest's listener saw nothing"; fi
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
	tail -n 30 "$log" | sed 's/^/    /'
fi

# No --net: no NIC at all.
timeout "$TIMEOUT" "$CORRAL" run $ENGINE --append "console=ttyS0 quiet -- echo nics: \$(ls /sys/class/net)" </dev/null 2>&1 |
	tr -d '\r' >"$work/nonet.txt"
if grep -q "^nics: lo$" "$work/nonet.txt"; then
	ok "without --net the guest has only lo"
else
	fail "without --net: $(grep '^nics:' "$work/nonet.txt")"
fi

# Bad specs: one clear line, nonzero status, before anything boots.
for spec in "bogus" "user,hostfwd=tcp:127.0.0.1:1" "user,nosuch=1" "tap"; do
	out=$("$CORRAL" run --net "$spec" --append "console=ttyS0" </dev/null 2>&1)
	st=$?
	if [ "$st" -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^corral: --net"; then
		ok "--net '$spec' is refused: $out"
	else
		fail "--net '$spec': status $st: $out"
	fi
done

report
