#!/bin/sh
# corrald's balloon policy end to end (corrald --balloon-policy,
# src/daemon/policy.c): two Debian guests of the guest kit with a
# virtio-balloon reporting statistics, created through the API.
#  idle: nothing runs; more than a third of its memory is available, so
#    the policy inflates its balloon (the host gets memory back).
#  busy: starts with 96 MiB in its balloon, then fills its RAM until less
#    than an eighth is available, so the policy deflates its balloon (the
#    guest gets memory back), and its available memory rises again.
# Both are read through GET /vms/{name}/balloon and corrald's log. Without
# the policy neither target moves (the test fails).
# Last line: "N passed, N failed[, N skipped]".
NAME=t_balloon_policy
. "$(dirname "$0")/../boot/lib.sh"

need_kit
command -v curl >/dev/null 2>&1 || skip "no curl"
ko=$(find "$GUEST_DIR/modules" -name 'virtio_balloon.ko*' 2>/dev/null | head -n 1)
[ -n "$ko" ] || skip "the kit's kernel has no virtio_balloon module"
CORRALD=$(dirname "$CORRAL")/corrald
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_balloon_policy.XXXXXX")
S=$tmp/d.sock
ST=$tmp/state
dpid=
. "$(dirname "$0")/lib.sh"
cleanup() {
	corrald_cleanup "$dpid" "$ST"
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The kit's initramfs plus the module (decompressed: busybox insmod reads plain files)
mkdir -p "$tmp/ov" "$tmp/img"
case "$ko" in
*.xz) xz -dc "$ko" >"$tmp/ov/balloon.ko" ;;
*.zst) zstd -dc "$ko" >"$tmp/ov/balloon.ko" ;;
*) cp "$ko" "$tmp/ov/balloon.ko" ;;
esac
(cd "$tmp/ov" && echo balloon.ko | cpio -o -H newc --quiet -R 0:0) | gzip >"$tmp/ov.img"
cat "$GUEST_DIR/initrd.img" "$tmp/ov.img" >"$tmp/img/initrd.img"
cp "$GUEST_DIR/vmlinuz" "$tmp/img/vmlinuz"

"$CORRALD" --foreground --balloon-policy --socket "$S" --state-dir "$ST" --image-dir "$tmp/img" \
	2>"$tmp/corrald.log" &
dpid=$!
i=0
while [ ! -S "$S" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done

bad() { fail "$@"; }
console() { cat "$ST/vms/$1/vm/console.log" 2>/dev/null | tr -d '\r'; }
until_seen() { # VM PATTERN SECONDS
	i=0
	while ! console "$1" | grep -qaE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 5)) ] && return 1
		sleep 0.2
	done
}
type_in() { # VM TEXT: a line typed at the VM's console
	api POST "/vms/$1/console" "$2
"
}
balloon_mib() { # VM: the balloon's target now
	api GET "/vms/$1/balloon"
	[ "$code" = 200 ] && printf '%s' "$body" | tr ',{}' '\n\n\n' | sed -n 's/^ *"amount_mib": *\([0-9]*\).*/\1/p'
}

for v in idle:0 busy:96; do
	name=${v%:*}
	cfg='{"kernel": "'$tmp/img/vmlinuz'", "initrd": "'$tmp/img/initrd.img'", "mem": 268435456, "engine": "emu",
	      "cmdline": "console=ttyS0 quiet",
	      "balloon": {"amount_mib": '${v#*:}', "stats_polling_interval_s": 1, "deflate_on_oom": false}}'
	# the first POST decompresses the kernel into corrald's cache: more
	# than lib.sh's 30 s on a loaded machine
	code=$(curl -s -m 600 -o "$tmp/post.out" -w '%{http_code}' -X POST --unix-socket "$S" \
		-H 'Content-Type: application/json' --data-binary '{"name": "'$name'", "config": '"$cfg"', "start": true}' \
		http://localhost/vms)
	[ "$code" = 201 ] && ok "POST /vms $name" || fail "POST /vms $name: status $code, $(cat "$tmp/post.out")"
done
for v in idle busy; do
	if until_seen $v "^/ # " $((600 * ${CORRAL_TEST_SLOW:-1})); then ok "VM $v: at its shell"; else
		fail "VM $v: no shell prompt"
		console $v | tail -n 20 | sed 's/^/    /'
		tail -n 5 "$tmp/corrald.log"
		report
		exit 1
	fi
	type_in $v "mkdir -p /t; mount -t tmpfs -o size=250M t /t; insmod /balloon.ko; ls /sys/bus/virtio/drivers/virtio_balloon | grep -c virtio | sed 's/^/BOUND /'"
done
for v in idle busy; do
	until_seen $v "^BOUND 1" 120 && ok "VM $v: virtio_balloon bound" || fail "VM $v: virtio_balloon did not bind"
done
b0=$(balloon_mib busy)
# 96 MiB as configured, or more if a round has found it idle already
[ -n "$b0" ] && [ "$b0" -ge 96 ] && ok "busy: $b0 MiB in its balloon" ||
	fail "busy: the balloon's target is '$b0', not 96 MiB or more"

# busy: fill RAM until 16 MiB are available (less than an eighth of 256)
type_in busy 'a=$(awk "/^MemAvailable:/ {print int(\$2 / 1024)}" /proc/meminfo); dd if=/dev/zero of=/t/fill bs=1M count=$((a - 16)) 2>/dev/null; echo FILLED $a'
until_seen busy "^FILLED [0-9]" 120 && ok "busy: RAM filled" || fail "busy: the guest did not fill its RAM"
# (a round before the fill may have inflated it while it was idle)
b1=$(balloon_mib busy)

# The policy looks every 10 s: a few rounds
end=$(($(date +%s) + 90 * ${CORRAL_TEST_SLOW:-1}))
while :; do
	bi=$(balloon_mib idle)
	bb=$(balloon_mib busy)
	[ "${bi:-0}" -gt 0 ] && [ "${bb:-999}" -lt "${b1:-0}" ] && break
	[ "$(date +%s)" -lt "$end" ] || break
	sleep 1
done
if [ "${bi:-0}" -gt 0 ] && [ "$bi" -le 128 ]; then
	ok "idle: its balloon inflated to $bi MiB"
else
	fail "idle: the policy did not inflate its balloon (target '$bi' MiB, 1-128 wanted)"
fi
if [ -n "$bb" ] && [ -n "$b1" ] && [ "$bb" -lt "$b1" ]; then
	ok "busy: its balloon deflated from $b1 to $bb MiB"
else
	fail "busy: the policy did not deflate its balloon (target '$bb' MiB, under '$b1' wanted)"
fi
# corrald's log: "VM 'NAME': balloon FROM -> TO MiB (N MiB available)"
moves() { # NAME up|down: such a move is logged
	sed -n "s/.*VM '$1': balloon \([0-9]*\) -> \([0-9]*\) MiB.*/\1 \2/p" "$tmp/corrald.log" |
		awk -v d="$2" '(d == "up" && $2 > $1) || (d == "down" && $2 < $1) { f = 1 } END { exit !f }'
}
moves idle up && moves busy down &&
	ok "corrald's log names both moves" || fail "corrald's log does not name both moves: $(grep balloon "$tmp/corrald.log" | tail -n 3)"

# the memory reached the busy guest: its MemAvailable rose
type_in busy 'awk "/^MemAvailable:/ {print \"AVAIL\", int(\$2 / 1024)}" /proc/meminfo'
until_seen busy '^AVAIL [0-9]' 60
av=$(console busy | grep -a '^AVAIL [0-9]' | tail -n 1 | awk '{print $2}')
[ -n "$av" ] && [ "$av" -gt 24 ] && ok "busy: $av MiB available after the deflation" || fail "busy: MemAvailable ${av:-?} MiB after the deflation (more than 24 wanted)"
report
