#!/bin/sh
# corrald's kernel cache: two VMs booting the guest kit's bzImage
# (Debian's kernel, busybox initramfs) through corrald; corrald decompresses
# the kernel once into STATE/kernels, each jailed VM process sees that
# directory read-only (bound into its jail) and loads the kernel from it,
# and both guests reach busybox's prompt. The POST /vms times (the VM
# process's start: its kernel loaded) are printed.
: "${CORRAL:?}" "${BUILD:?}"
CORRALD=$(dirname "$CORRAL")/corrald
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); }
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
if ! command -v curl >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
	echo "t_kcache: skipped: curl and python3 are needed"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
if [ ! -s "$GUEST_DIR/vmlinuz" ] || [ ! -s "$GUEST_DIR/initrd.img" ]; then
	echo "t_kcache: skipped: no guest kit in $GUEST_DIR (tools/mkguest.sh)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "t_kcache: skipped: the VM processes are jailed only under root"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
tmp=$(mktemp -d /tmp/t_kcache.XXXXXX)
S=$tmp/d.sock
ST=$tmp/state
mkdir "$tmp/img"
cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initrd.img" "$tmp/img/"
dpid=
. "$(dirname "$0")/lib.sh"
cleanup() {
	corrald_cleanup "$dpid" "$ST"
	[ -n "$KEEP" ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$CORRALD" --foreground --socket "$S" --state-dir "$ST" --image-dir "$tmp/img" 2>>"$tmp/corrald.log" &
dpid=$!
i=0
while [ ! -S "$S" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
export CORRALD_SOCKET=$S

body() {
	printf '{"name":"%s","start":true,"config":{"kernel":"%s","initrd":"%s","mem":100663296,"engine":"emu"}}' \
		"$1" "$tmp/img/vmlinuz" "$tmp/img/initrd.img"
}
now() { date +%s.%N; }
prompt() { # NAME: waits up to 600 s for busybox's prompt
	i=0
	while ! grep -q '/ # ' "$ST/vms/$1/vm/console.log" 2>/dev/null && [ $i -lt 3000 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	grep -q '/ # ' "$ST/vms/$1/vm/console.log" 2>/dev/null
}
t0=$(now)
api POST /vms "$(body k1)"
t1=$(now)
expect "POST /vms k1" 201 '"running"'
[ "$(grep -c 'decompressed into' "$tmp/corrald.log")" = 1 ] && ok ||
	bad "corrald did not decompress the kernel once: $(grep kernel "$tmp/corrald.log")"
[ "$(ls "$ST/kernels" | wc -l)" = 1 ] && ok || bad "the cache holds: $(ls -l "$ST/kernels")"
p1=$(field k1 pid)
# the jail holds the cache, read-only
grep " $ST/kernels .* ro[, ]" "/proc/$p1/mountinfo" >/dev/null && ok ||
	bad "k1's jail has no read-only $ST/kernels: $(grep kernels "/proc/$p1/mountinfo")"
t2=$(now)
api POST /vms "$(body k2)"
t3=$(now)
expect "POST /vms k2" 201 '"running"'
[ "$(grep -c 'decompressed into' "$tmp/corrald.log")" = 1 ] && [ "$(ls "$ST/kernels" | wc -l)" = 1 ] && ok ||
	bad "the second VM decompressed again: $(grep kernel "$tmp/corrald.log")"
prompt k1 && ok || bad "k1 did not reach the prompt: $(tail -c 300 "$ST/vms/k1/vm/console.log")"
prompt k2 && ok || bad "k2 did not reach the prompt: $(tail -c 300 "$ST/vms/k2/vm/console.log")"
echo "t_kcache: POST /vms with the kernel decompressed (by corrald) $(echo "$t1 - $t0" | bc) s, from the cache $(echo "$t3 - $t2" | bc) s"
api DELETE '/vms/k1?force=true'
expect "rm k1" 204
api DELETE '/vms/k2?force=true'
expect "rm k2" 204

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
