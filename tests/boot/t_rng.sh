#!/bin/sh
# The guest's random number generator on corral's CPU: Debian's kernel sees
# RDRAND and RDSEED, seeds its generator from them at boot (so the first
# read of /dev/urandom does not wait for a second of timer jitter on
# virtual time, bench/guest.sh's urandom case), and reads work.
# Last line: "N passed, N failed".
NAME=t_rng
. "$(dirname "$0")/../boot/lib.sh"

need_kit
work=$(mktemp -d "${TMPDIR:-/tmp}/t_rng.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

mkdir -p "$work/ov"
cat >"$work/ov/rng.sh" <<'SH'
echo "T_RNG flags $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -cxE 'rdrand|rdseed')"
echo "T_RNG ready $(dmesg | grep -c 'crng init done')"
echo "T_RNG read $(head -c 65536 /dev/urandom | wc -c)"
a=$(head -c 32 /dev/urandom | md5sum)
b=$(head -c 32 /dev/urandom | md5sum)
[ "$a" != "$b" ] && echo "T_RNG differ yes"
SH
(cd "$work/ov" && echo rng.sh | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/ov.img"
cat "$GUEST_DIR/initrd.img" "$work/ov.img" >"$work/initrd.img"

timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" \
	--append "console=ttyS0 quiet -- sh /rng.sh" --mem 256M </dev/null >"$work/out" 2>&1
rc=$?
tr -d '\r' <"$work/out" >"$work/log"

field() {
	grep -a "^T_RNG $1 " "$work/log" | head -n 1 | sed "s/^T_RNG $1 //"
}
check() { # description, got, want
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1: got '$2', want '$3'"
	fi
}

check "corral exits 0" "$rc" 0
check "/proc/cpuinfo lists rdrand and rdseed" "$(field flags)" 2
check "the generator is seeded before the first read" "$(field ready)" 1
check "64 KiB from /dev/urandom" "$(field read)" 65536
check "two reads differ" "$(field differ)" yes
[ "$failed" -eq 0 ] || tail -n 20 "$work/log" | sed 's/^/  | /'
report
