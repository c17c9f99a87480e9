#!/bin/sh
# Disk and network rate limits measured from a guest (Debian's kernel and
# the guest kit under emu): a disk with bw= or ops= and a NIC with rx_bw= and
# tx_bw= move data at their limit (within a tolerance), timed on the host
# from the console; the same transfers without limits run several times
# faster (so the limits are what the timings show). Bad specs are refused.
NAME=t_ratelimit
. "$(dirname "$0")/../boot/lib.sh"

need_kit
command -v python3 >/dev/null 2>&1 || skip "python3 is needed for the host side"
command -v curl >/dev/null 2>&1 || skip "curl is needed for the VM's API"
work=$(mktemp -d "${TMPDIR:-/tmp}/t_ratelimit.XXXXXX")
[ -d "$work" ] || { fail "mktemp"; report; exit 1; }
pids=
trap 'exec 9>&-; for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$work"' EXIT INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The host: a file to download over HTTP, and a sink that reads what the
# guest sends and closes after 1 MiB.
mkdir -p "$work/www"
head -c 1048576 /dev/urandom >"$work/www/blob.bin"
http_port=$(free_port)
(cd "$work/www" && exec python3 -m http.server "$http_port" --bind 127.0.0.1) >"$work/http.log" 2>&1 &
pids="$pids $!"
sink_port=$(free_port)
cat >"$work/sink.py" <<EOF
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", $sink_port))
s.listen(4)
while True:
    c, _ = s.accept()
    n = 0
    while n < 1048576:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.close()
EOF
python3 "$work/sink.py" >"$work/sink.log" 2>&1 &
pids="$pids $!"
truncate -s 64M "$work/d.img"

# until_seen FILE PATTERN SECONDS: waits for a console line matching PATTERN
until_seen() {
	i=0
	while ! cat "$1" 2>/dev/null | tr -d '\r' | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 20)) ] && return 1
		sleep 0.05
	done
}

now() { date +%s%N; }

# boot TAG DISKOPTS NETOPTS: a networked guest, its console on fd 9
boot() {
	rm -f "$work/in"
	mkfifo "$work/in"
	out=$work/out.$1
	timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$work/api.sock" \
		--disk "$work/d.img,format=raw$2" --net "user$3" <"$work/in" >"$out" 2>"$work/err.$1" &
	vm=$!
	pids="$pids $vm"
	exec 9>"$work/in"
	if ! until_seen "$out" '^/ # ' 600; then
		fail "$1: no shell prompt"
		tail -n 20 "$out" "$work/err.$1" | sed 's/^/    /'
		report
		exit 1
	fi
	echo "$dhcp" >&9
	echo 'ip link set eth0 up; udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh >/dev/null 2>&1; echo NET-UP' >&9
	until_seen "$out" '^NET-UP' 120 || fail "$1: no network"
	seq=0
}

# timed CMD: runs CMD in the guest; T is the host's seconds it took
timed() {
	seq=$((seq + 1))
	t0=$(now)
	echo "$1; echo D''ONE-$seq" >&9 # the echoed command line is no match
	if ! until_seen "$out" "^DONE-$seq\$" 300; then
		T=999
		return
	fi
	t1=$(now)
	T=$(echo $(((t1 - t0) / 1000000)) | awk '{printf "%.3f", $1 / 1000}')
}

halt() {
	echo 'poweroff -f' >&9
	exec 9>&-
	i=0
	while kill -0 $vm 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $vm 2>/dev/null; then
		fail "the VM did not power off"
		kill $vm
	fi
	wait $vm 2>/dev/null
}

dhcp='printf "#!/bin/sh\n[ \"\$1\" = bound ] && ip addr add \$ip/24 dev \$interface && ip route add default via \$router\nexit 0\n" >/tmp/dhcp.sh; chmod +x /tmp/dhcp.sh'
W='dd if=/dev/zero of=/dev/vda bs=1M count=12 oflag=direct 2>/dev/null'
R='dd if=/dev/vda of=/dev/null bs=1M count=12 iflag=direct 2>/dev/null'
O='dd if=/dev/zero of=/dev/vda bs=4k count=35 oflag=direct 2>/dev/null'
G="wget -q -O /dev/null http://10.0.2.2:$http_port/blob.bin"
S="head -c 1048576 /dev/zero | nc 10.0.2.2 $sink_port"

# within NAME SECONDS EXPECTED BASE: the time against what the limit allows.
# Never faster; slower by at most 30% plus 1.5 times the transfer's own
# time without a limit (BASE: the wait holds the device's thread, so the
# guest's work does not overlap it; and a loaded host wakes waiters late).
within() {
	if awk -v t="$2" -v e="$3" -v b="$4" 'BEGIN { exit !(t >= e * 0.9 && t <= e * 1.3 + b * 1.5) }'; then
		ok "$1: ${2}s, the limit allows ${3}s (${4}s without it)"
	else
		fail "$1: ${2}s, but the limit allows ${3}s (accepted: x0.9 to x1.3 + 1.5 x ${4}s)"
	fi
}

# Unlimited first: the baseline each limited run must be far faster than.
boot free "" ""
timed "$W"
tw0=$T
timed "$R"
tr0=$T
timed "$O"
to0=$T
timed "$G"
tg0=$T
timed "$S"
ts0=$T
halt
echo "unlimited: write ${tw0}s, read ${tr0}s, 35 ops ${to0}s, rx ${tg0}s, tx ${ts0}s"

# 12 MiB at 2 MiB/s from a full 2 MiB bucket: 5 s.
boot bw ",bw=2M" ",rx_bw=256K,tx_bw=256K"
timed "$W"
tw=$T
timed "$R"
tr=$T
timed "$G"
tg=$T
timed "$S"
ts=$T
halt
within "a disk with bw=2M writes 12 MiB" "$tw" 5 "$tw0"
within "a disk with bw=2M reads 12 MiB" "$tr" 5 "$tr0"
# 1 MiB of payload in frames (~1.04 MiB) at 256 KiB/s from a full bucket:
# 3.2 s (the rest of the exchange is small)
within "a NIC with rx_bw=256K downloads 1 MiB" "$tg" 3.2 "$tg0"
within "a NIC with tx_bw=256K sends 1 MiB" "$ts" 3.2 "$ts0"

# 35 writes at 10 a second, 5 of them from a one-time burst and 10 from
# the full bucket: 20 / 10 = 2 s; the bandwidth bucket is large.
boot ops ",ops=10:1000:5,bw=64M" ""
timed "$O"
to=$T
within "a disk with ops=10:1000:5 does 35 writes" "$to" 2 "$to0"

# Live changes through the VM's API (Firecracker's PATCH /drives/{id}):
# 512 KiB/s from a full 512 KiB bucket, 2 MiB: 3 s; then no limit again.
api() {
	curl -s -m 20 --unix-socket "$work/api.sock" -o "$work/ans" -w '%{http_code}' -X "$1" "http://localhost$2" \
		${3:+-H 'Content-Type: application/json' -d "$3"}
}
W2='dd if=/dev/zero of=/dev/vda bs=512k count=4 oflag=direct 2>/dev/null'
code=$(api PATCH /drives/0 '{"drive_id":0,"rate_limiter":{"bandwidth":{"size":524288,"refill_time":1000}}}')
[ "$code" = 204 ] && ok "PATCH /drives/0: 204" || fail "PATCH /drives/0: $code $(cat "$work/ans")"
code=$(api GET /drives/0)
if [ "$code" = 200 ] && grep -q '"bandwidth": *{[^}]*"size": *524288' "$work/ans" && ! grep -q '"ops"' "$work/ans"; then
	ok "GET /drives/0 shows the new limit"
else
	fail "GET /drives/0: $code $(cat "$work/ans")"
fi
timed "$W2"
within "after PATCH to 512 KiB/s, 2 MiB" "$T" 3 "$tw0"
code=$(api PATCH /drives/0 '{"rate_limiter":{}}')
timed "$W2"
tl=$T
if [ "$code" = 204 ] && awk -v t="$tl" 'BEGIN { exit !(t < 1.5) }'; then
	ok "after PATCH to no limit, 2 MiB take ${tl}s (512 KiB/s would need 3 s)"
else
	fail "after PATCH to no limit ($code): 2 MiB take ${tl}s (512 KiB/s would need 3 s)"
fi
code=$(api PATCH /network-interfaces/0 '{"iface_id":"0","tx_rate_limiter":{"ops":{"size":100,"refill_time":10}}}')
code2=$(api GET /network-interfaces/0)
if [ "$code" = 204 ] && [ "$code2" = 200 ] && grep -q '"tx_rate_limiter": *{ *"ops": *{[^}]*"size": *100' "$work/ans"; then
	ok "PATCH /network-interfaces/0 sets a tx limit that GET shows"
else
	fail "PATCH /network-interfaces/0: $code, GET: $code2 $(cat "$work/ans")"
fi
for bad in '/drives/0:{"rate_limiter":{"bandwidth":{"size":5}}}' '/drives/0:{"rate_limiter":{"bw":{}}}' \
	'/drives/0:{"drive_id":1,"rate_limiter":{}}' '/drives/0:{"rate_limiter":{"ops":{"size":-1,"refill_time":1}}}' \
	'/drives/1:{"rate_limiter":{}}' '/drives/01:{}' '/network-interfaces/1:{}' \
	'/network-interfaces/0:{"tx_rate_limiter":{"ops":{"size":1}}}'; do
	path=${bad%%:*}
	code=$(api PATCH "$path" "${bad#*:}")
	case "$code" in
	400 | 404) grep -q fault_message "$work/ans" && ok "PATCH $bad: $code $(cat "$work/ans")" ||
		fail "PATCH $bad: $code without a fault_message" ;;
	*) fail "PATCH $bad: $code $(cat "$work/ans")" ;;
	esac
done
halt

# The limits are what made those slow: unlimited, each takes at most half
# the time its limit allows (else this host is too slow or too loaded for
# the timing to show the limit, and that check is a skip).
skipped=0
for pair in "disk write:$tw0:5" "disk read:$tr0:5" "disk ops:$to0:2" "rx:$tg0:3.2" "tx:$ts0:3.2"; do
	n=${pair%%:*}
	rest=${pair#*:}
	a=${rest%%:*}
	e=${rest#*:}
	if awk -v a="$a" -v e="$e" 'BEGIN { exit !(a * 2 <= e) }'; then
		ok "$n without a limit: ${a}s"
	else
		skipped=$((skipped + 1))
		echo "skip $n: ${a}s without a limit, too close to the ${e}s the limit allows to tell them apart here"
	fi
done

# Bad specs: one line, refused before anything boots.
for spec in "--disk $work/d.img,bw=0" "--disk $work/d.img,bw=1M:0" "--disk $work/d.img,ops=x" \
	"--disk $work/d.img,bw=2T" "--net user,rx_bw=1M:99999999" "--net user,tx_ops=" "--net user,rx_bw=5Q"; do
	out=$("$CORRAL" run $spec --append console=ttyS0 </dev/null 2>&1)
	st=$?
	if [ "$st" -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^corral: --"; then
		ok "'$spec' is refused: $out"
	else
		fail "'$spec': status $st: $out"
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
