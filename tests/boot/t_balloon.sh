#!/bin/sh
# The virtio-balloon with Debian's kernel under emu (its virtio_balloon
# module loaded from the kit's modules): two VMs at once.
#  A (--balloon stats=1): the guest fills and frees most of its RAM, then
#    PATCH /balloon inflates 64 MiB: the driver reports it holds them, the
#    guest's MemTotal drops by that, the VM process's RSS drops by about as
#    much (the pages went back to the host); statistics arrive through GET
#    /balloon/statistics and agree with the guest's /proc/meminfo; a
#    snapshot and restore keep the balloon; deflating gives the memory back.
#  B (--balloon free_page_reporting=on): a big file in the guest's RAM is
#    deleted and the kernel reports the free memory: the host RSS drops
#    without any inflation.
# Last line: "N passed, N failed[, N skipped]".
NAME=t_balloon
. "$(dirname "$0")/lib.sh"

need_kit
command -v curl >/dev/null 2>&1 || skip "no curl"
ko=$(find "$GUEST_DIR/modules" -name 'virtio_balloon.ko*' 2>/dev/null | head -n 1)
[ -n "$ko" ] || skip "the kit's kernel has no virtio_balloon module"
work=$(mktemp -d "${TMPDIR:-/tmp}/t_balloon.XXXXXX")
pids=
trap 'exec 8>&- 9>&-; for p in $pids; do kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# The kit's initramfs plus the module (decompressed: busybox insmod reads plain files)
mkdir -p "$work/ov"
case "$ko" in
*.xz) xz -dc "$ko" >"$work/ov/balloon.ko" ;;
*.zst) zstd -dc "$ko" >"$work/ov/balloon.ko" ;;
*) cp "$ko" "$work/ov/balloon.ko" ;;
esac
(cd "$work/ov" && echo balloon.ko | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/ov.img"
cat "$GUEST_DIR/initrd.img" "$work/ov.img" >"$work/initrd.img"

until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}
api() { # SOCK METHOD PATH [BODY]: sets code and body
	if [ $# -ge 4 ]; then
		body=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$2" --unix-socket "$1" -d "$4" "http://localhost$3")
	else
		body=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$2" --unix-socket "$1" "http://localhost$3")
	fi
	code=$(printf '%s\n' "$body" | tail -n 1)
	body=$(printf '%s\n' "$body" | sed '$d')
}
jnum() { # KEY: the number after "KEY": in $body
	printf '%s' "$body" | tr ',{}' '\n\n\n' | grep "\"$1\":" | head -n 1 | sed 's/.*: *//'
}
rss_kib() { # PID
	awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null
}
# guest FD OUT TAG CMD: runs CMD in the guest's shell, waits for "TAG done"
guest() {
	echo "$4; echo $3 done" >&"$1"
	until_seen "$2" "^$3 done" 300
}
near() { # GOT WANT TOLERANCE
	[ -n "$1" ] && [ "$1" -ge $(($2 - $3)) ] && [ "$1" -le $(($2 + $3)) ]
}

SA=$work/a.sock SB=$work/b.sock
mkfifo "$work/ina" "$work/inb"
"$CORRAL" run --engine emu --mem 256M --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
	--balloon stats=1 --api-sock "$SA" <"$work/ina" >"$work/outa" 2>"$work/erra" &
a=$!
"$CORRAL" run --engine emu --mem 256M --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
	--balloon free_page_reporting=on,deflate_on_oom=on --api-sock "$SB" <"$work/inb" >"$work/outb" \
	2>"$work/errb" &
b=$!
pids="$a $b"
exec 8>"$work/ina" 9>"$work/inb"
for v in a b; do
	if until_seen "$work/out$v" '^/ # ' 600; then ok "VM $v: booted to the shell"; else
		fail "VM $v: no shell prompt"
		tail -n 20 "$work/out$v" "$work/err$v" | sed 's/^/    /'
		report
		exit 1
	fi
done
meminfo='awk "/^(MemTotal|MemAvailable):/ {printf \"%s %d\\n\", \$1, \$2}" /proc/meminfo'
for fd in 8 9; do
	echo "mkdir -p /t; mount -t tmpfs -o size=240M t /t; insmod /balloon.ko; ls /sys/bus/virtio/drivers/virtio_balloon | grep -c virtio | sed 's/^/BOUND /'" >&$fd
done
until_seen "$work/outa" '^BOUND 1' 60 && until_seen "$work/outb" '^BOUND 1' 60 &&
	ok "the driver binds to the device in both" || fail "virtio_balloon did not bind"

# ---- A: inflate, statistics, snapshot, deflate ----
guest 8 "$work/outa" fill 'dd if=/dev/zero of=/t/big bs=1M count=140 && rm /t/big' ||
	fail "A: the guest did not fill its RAM"
guest 8 "$work/outa" m0 "$meminfo | sed 's/^/M0 /'" || fail "A: no meminfo"
total0=$(tr -d '\r' <"$work/outa" | grep -a '^M0 MemTotal:' | tail -n 1 | awk '{print $3}')
rss0=$(rss_kib "$a")
api "$SA" GET /balloon
[ "$code" = 200 ] && [ "$(jnum amount_mib)" = 0 ] && [ "$(jnum stats_polling_interval_s)" = 1 ] &&
	ok "GET /balloon: $body" || fail "GET /balloon: $code $body"
api "$SA" PATCH /balloon '{"amount_mib": 64}'
[ "$code" = 204 ] && ok "PATCH /balloon 64 MiB" || fail "PATCH /balloon: $code $body"
i=0
while [ $i -lt 300 ]; do
	api "$SA" GET /balloon/statistics
	[ "$(jnum actual_mib)" = 64 ] && break
	sleep 0.2
	i=$((i + 1))
done
[ "$(jnum actual_mib)" = 64 ] && [ "$(jnum target_mib)" = 64 ] &&
	ok "the driver reports 64 MiB in the balloon" || fail "actual not 64 MiB: $body"
sleep 1
rss1=$(rss_kib "$a")
drop=$(((rss0 - rss1) / 1024))
# most of the pages were touched before; 48 of 64 MiB must come back
[ "$drop" -ge 48 ] && ok "host RSS dropped by $drop MiB ($((rss0 / 1024)) -> $((rss1 / 1024)) MiB)" ||
	fail "host RSS dropped by only $drop MiB ($rss0 -> $rss1 KiB)"
guest 8 "$work/outa" m1 "$meminfo | sed 's/^/M1 /'"
total1=$(tr -d '\r' <"$work/outa" | grep -a '^M1 MemTotal:' | tail -n 1 | awk '{print $3}')
near "$((total0 - total1))" 65536 1024 && ok "the guest's MemTotal dropped by 64 MiB ($total0 -> $total1 KiB)" ||
	fail "MemTotal $total0 -> $total1 KiB"
# statistics: the guest's own numbers
sleep 2
api "$SA" GET /balloon/statistics
st=$(jnum total_memory)
near "$((${st:-0} / 1024))" "$total1" 256 && ok "statistics: total_memory $st agrees with MemTotal" ||
	fail "statistics: total_memory '$st' vs MemTotal $total1 KiB ($body)"
[ -n "$(jnum free_memory)" ] && [ -n "$(jnum available_memory)" ] && ok "statistics: free and available memory" ||
	fail "statistics lack free/available memory: $body"
api "$SA" PATCH /balloon/statistics '{"stats_polling_interval_s": 2}'
[ "$code" = 204 ] && ok "PATCH /balloon/statistics" || fail "PATCH /balloon/statistics: $code $body"
api "$SA" PATCH /balloon/statistics '{"stats_polling_interval_s": 0}'
[ "$code" = 400 ] && ok "statistics cannot be turned off: $body" || fail "interval 0: $code $body"
api "$SA" PATCH /balloon '{"amount_mib": 257}'
[ "$code" = 400 ] && ok "a balloon larger than RAM is refused" || fail "257 MiB: $code $body"
api "$SA" PATCH /balloon '{"amount_mib": 1, "x": 2}'
[ "$code" = 400 ] && ok "unknown keys refused" || fail "unknown key: $code $body"
api "$SA" PUT /balloon '{"amount_mib": 64, "deflate_on_oom": true, "stats_polling_interval_s": 1}'
[ "$code" = 400 ] && ok "PUT cannot change the features" || fail "PUT deflate_on_oom: $code $body"

# snapshot and restore: the balloon goes with it
if "$CORRAL" snapshot "$SA" "$work/snap" --stop 2>"$work/snaperr"; then ok "snapshot"; else
	fail "snapshot: $(cat "$work/snaperr")"
fi
wait "$a" 2>/dev/null
exec 8>&-
rm -f "$work/ina"
mkfifo "$work/ina"
"$CORRAL" restore "$work/snap" --serial stdio --api-sock "$SA" <"$work/ina" >"$work/outr" 2>"$work/errr" &
a=$!
pids="$a $b"
exec 8>"$work/ina"
i=0
while [ ! -S "$SA" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
api "$SA" GET /balloon/statistics
[ "$(jnum target_mib)" = 64 ] && [ "$(jnum actual_mib)" = 64 ] && ok "restored: the balloon holds 64 MiB" ||
	fail "restored balloon: $code $body $(cat "$work/errr")"
api "$SA" PATCH /balloon '{"amount_mib": 0}'
i=0
while [ $i -lt 300 ]; do
	api "$SA" GET /balloon/statistics
	[ "$(jnum actual_mib)" = 0 ] && break
	sleep 0.2
	i=$((i + 1))
done
[ "$(jnum actual_mib)" = 0 ] && ok "deflated after the restore" || fail "deflate: $body"
guest 8 "$work/outr" m2 "$meminfo | sed 's/^/M2 /'"
total2=$(tr -d '\r' <"$work/outr" | grep -a '^M2 MemTotal:' | tail -n 1 | awk '{print $3}')
[ "$total2" = "$total0" ] && ok "the guest has its memory back ($total2 KiB)" ||
	fail "MemTotal after deflating: '$total2', was $total0"
guest 8 "$work/outr" use 'dd if=/dev/zero of=/t/big bs=1M count=130 2>/dev/null && echo USE ok; rm -f /t/big'
tr -d '\r' <"$work/outr" | grep -q '^USE ok' &&
	ok "the guest fills 130 MiB again" || fail "the guest cannot use its memory again"

# ---- B: free page reporting ----
guest 9 "$work/outb" fillb 'dd if=/dev/zero of=/t/big bs=1M count=130' ||
	fail "B: the guest did not fill its RAM"
sleep 1
rssb0=$(rss_kib "$b")
api "$SB" GET /balloon
[ "$code" = 200 ] && [ "$(jnum amount_mib)" = 0 ] && ok "B: no inflation" || fail "B: GET /balloon: $body"
api "$SB" GET /balloon/statistics
[ "$code" = 400 ] && ok "B: statistics off: $body" || fail "B: statistics: $code $body"
guest 9 "$work/outb" freeb 'rm /t/big' || fail "B: rm"
i=0
drop=0
while [ $i -lt 60 ]; do
	sleep 1
	rssb1=$(rss_kib "$b")
	drop=$(((rssb0 - rssb1) / 1024))
	[ "$drop" -ge 64 ] && break
	i=$((i + 1))
done
[ "$drop" -ge 64 ] && ok "B: freed guest memory went back to the host: RSS -$drop MiB" ||
	fail "B: RSS dropped by only $drop MiB ($rssb0 -> $rssb1 KiB)"
guest 9 "$work/outb" useb 'dd if=/dev/zero of=/t/big bs=1M count=130 2>/dev/null && md5sum /t/big | sed "s/^/SUM /"'
tr -d '\r' <"$work/outb" | grep -aq "^SUM $(head -c 136314880 /dev/zero | md5sum | cut -d' ' -f1)" &&
	ok "B: reported pages are RAM again" || fail "B: the guest's new file is wrong"

for s in "$SA" "$SB"; do curl -s -m 20 -X PUT --unix-socket "$s" -d '{"action_type":"Stop"}' http://localhost/actions; done
wait "$a" 2>/dev/null
wait "$b" 2>/dev/null
pids=
grep -h "corral:" "$work/erra" "$work/errb" "$work/errr" 2>/dev/null | grep -v "^corral: api" | head -n 5 |
	sed 's/^/  stderr: /'
report
