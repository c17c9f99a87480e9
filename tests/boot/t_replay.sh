#!/bin/sh
# Record and replay of the Debian guest kit under emu (docs/replay.md): the
# guest reads a line from the console, gets an address by DHCP and fetches a
# file from an HTTP server on the host (--net user), draws random bytes
# (/dev/urandom, /dev/hwrng from --rng; the kernel seeds its generator with
# RDRAND, whose values are logged too) and reads the clock. The recording is replayed three times with no input,
# the HTTP server gone: the console output is the same byte for byte and the
# RAM and console hashes match each time. Then SMP (--cpus 2), and the
# refusals: a corrupt or truncated file, another kernel, other options,
# kvm; and a file whose logged input was changed (checksum fixed up) must
# be reported as diverged. A writable disk: recorded through an overlay,
# the image as it was, replayed to the same instruction count; another
# image refused. The same for a restored snapshot with a writable disk.
# Last line: "N passed, N failed".
NAME=t_replay
. "$(dirname "$0")/lib.sh"

need_kit
command -v python3 >/dev/null 2>&1 || {
	fail "python3 is needed for the host side"
	report
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/t_replay.XXXXXX")
http=
trap '[ -n "$http" ] && kill $http 2>/dev/null; rm -rf "$work"' EXIT INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/www"
token=host-$$-$(date +%s%N)
echo "$token" >"$work/www/hello.txt"
(cd "$work/www" && exec python3 -m http.server "$port" --bind 127.0.0.1) >"$work/http.log" 2>&1 &
http=$!
i=0
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/hello.txt')" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.1
done

cat >"$work/guest.sh" <<EOF
echo ready
read line </dev/console
echo "input: \$line"
printf '#!/bin/sh\n[ "\$1" = bound ] && ip addr add \$ip/24 dev \$interface && ip route add default via \$router\nexit 0\n' >/tmp/dhcp.sh
chmod +x /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -n -q -t 10 -s /tmp/dhcp.sh >/dev/null 2>&1
echo "http: \$(wget -q -O- http://10.0.2.2:$port/hello.txt)"
echo "urandom: \$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' ')"
echo "hwrng: \$(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' ')"
echo "rdrand: \$(grep -c -w -e rdrand -e rdseed /proc/cpuinfo)"
echo "date: \$(date +%s)"
echo "uptime: \$(cut -d' ' -f1 /proc/uptime)"
EOF
cmd="echo $(base64 -w0 <"$work/guest.sh")|base64 -d|sh"
OPTS="--rng --net user --mem 256M"
line=typed-$$

# record [EXTRA...]: corral run --record, the line typed on the console
# once the guest is ready to read it
record() {
	rm -f "$work/in" "$work/rec.out"
	mkfifo "$work/in"
	(
		i=0
		until tr -d '\r' <"$work/rec.out" 2>/dev/null | grep -q '^ready'; do
			i=$((i + 1))
			[ $i -gt 3000 ] && break
			sleep 0.1
		done
		sleep 0.5
		printf '%s\n' "$line"
	) >"$work/in" &
	timeout "$TIMEOUT" "$CORRAL" run $OPTS "$@" --append "console=ttyS0 quiet -- $cmd" <"$work/in" \
		>"$work/rec.out" 2>"$work/rec.err"
}
# replay N FILE [EXTRA...]: corral run --replay, no input at all
replay() {
	n=$1
	f=$2
	shift 2
	timeout "$TIMEOUT" "$CORRAL" run $OPTS "$@" --replay "$f" --append "console=ttyS0 quiet -- $cmd" </dev/null \
		>"$work/rep$n.out" 2>"$work/rep$n.err"
}
hashes() {
	grep -o 'RAM hash [0-9a-f]*, console hash [0-9a-f]*' "$1"
}

if record --record "$work/a.rr"; then ok "recorded ($(grep -o '[0-9]* inputs, [0-9]* bytes' "$work/rec.err"))"; else
	fail "the recording run failed: $(tail -n 3 "$work/rec.err")"
fi
kill $http 2>/dev/null
wait $http 2>/dev/null
http=
tr -d '\r' <"$work/rec.out" >"$work/rec.txt"
if grep -q "^input: $line\$" "$work/rec.txt" && grep -q "^http: $token\$" "$work/rec.txt" &&
	grep -qE '^urandom: [0-9a-f]{32}$' "$work/rec.txt" && grep -qE '^hwrng: [0-9a-f]{32}$' "$work/rec.txt"; then
	ok "the recorded guest read the console, fetched over HTTP and drew random bytes"
else
	fail "the recorded guest's output:"
	tail -n 15 "$work/rec.txt" | sed 's/^/    /'
fi
if grep -q '^rdrand: [1-9]' "$work/rec.txt"; then ok "the CPU offers RDRAND/RDSEED (their values are logged)"; else
	fail "rdrand/rdseed: $(grep '^rdrand' "$work/rec.txt")"
fi
rec_hash=$(hashes "$work/rec.err")
[ -n "$rec_hash" ] || fail "the recording printed no hashes: $(cat "$work/rec.err")"
# (the third replay writes the console to a file: where the output goes is
# the host's business, the guest's output is the same)
for n in 1 2 3; do
	out=$work/rep$n.out
	if [ $n -eq 3 ]; then
		out=$work/rep3.serial
		replay $n "$work/a.rr" --serial "file:$out"
	else
		replay $n "$work/a.rr"
	fi
	rc=$?
	if [ $rc -eq 0 ] && cmp -s "$work/rec.out" "$out"; then
		ok "replay $n: the console output is the recording's, byte for byte"
	else
		fail "replay $n: status $rc, output differs: $(tail -n 2 "$work/rep$n.err")"
		diff "$work/rec.out" "$out" | head -n 10 | sed 's/^/    /'
	fi
	if [ -n "$rec_hash" ] && [ "$(hashes "$work/rep$n.err")" = "$rec_hash" ] &&
		grep -q "identical to the recording" "$work/rep$n.err"; then
		ok "replay $n: $rec_hash, as recorded"
	else
		fail "replay $n: '$(hashes "$work/rep$n.err")', recorded '$rec_hash'"
	fi
done
# a different run really differs: the guest's random bytes are fresh
printf '%s\n' "$line" | timeout "$TIMEOUT" "$CORRAL" run $OPTS --append "console=ttyS0 quiet -- $cmd" \
	2>/dev/null | tr -d '\r' >"$work/plain.txt"
if [ "$(grep '^urandom:' "$work/plain.txt")" != "$(grep '^urandom:' "$work/rec.txt")" ] &&
	grep -q '^urandom:' "$work/plain.txt"; then
	ok "an unrecorded run draws other random bytes (so the replays' sameness is the log's doing)"
else
	fail "an unrecorded run printed the same random bytes: $(grep '^urandom:' "$work/plain.txt")"
fi

# SMP: two vCPUs in their fixed interleaving
if record --cpus 2 --record "$work/smp.rr" && replay s "$work/smp.rr" --cpus 2 &&
	cmp -s "$work/rec.out" "$work/reps.out" && [ "$(hashes "$work/reps.err")" = "$(hashes "$work/rec.err")" ] &&
	tr -d '\r' <"$work/rec.out" | grep -q "2 CPUs online"; then
	ok "--cpus 2: the replay matches ($(hashes "$work/reps.err"))"
else
	fail "--cpus 2: $(tail -n 1 "$work/rec.err") / $(tail -n 1 "$work/reps.err")"
fi

# refusals: one line, before anything runs
refused() { # WHAT PATTERN CMD...
	what=$1
	pat=$2
	shift 2
	out=$("$@" </dev/null 2>&1 >/dev/null)
	st=$?
	if [ $st -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && printf '%s' "$out" | grep -qE "$pat"; then
		ok "$what is refused: $out"
	else
		fail "$what: status $st: $out"
	fi
}
size=$(stat -c %s "$work/a.rr")
cp "$work/a.rr" "$work/flip.rr"
printf '\377' | dd of="$work/flip.rr" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
refused "a file with a flipped byte" "not a usable replay file" \
	"$CORRAL" run $OPTS --replay "$work/flip.rr" --append "console=ttyS0 quiet -- $cmd"
head -c $((size - 9)) "$work/a.rr" >"$work/trunc.rr"
refused "a truncated file" "not a usable replay file" \
	"$CORRAL" run $OPTS --replay "$work/trunc.rr" --append "console=ttyS0 quiet -- $cmd"
head -c 100 /dev/urandom >"$work/junk.rr"
refused "a file that is no replay file" "not a usable replay file" \
	"$CORRAL" run $OPTS --replay "$work/junk.rr" --append "console=ttyS0 quiet -- $cmd"
cp "$GUEST_DIR/vmlinuz" "$work/vmlinuz"
printf 'x' >>"$work/vmlinuz"
refused "another kernel" "the kernel is not the one recorded" \
	"$CORRAL" run $OPTS --kernel "$work/vmlinuz" --initrd "$GUEST_DIR/initrd.img" --replay "$work/a.rr" \
	--append "console=ttyS0 quiet -- $cmd"
refused "other options (--mem)" "another machine \('mem' differs\)" \
	"$CORRAL" run --rng --net user --mem 512M --replay "$work/a.rr" --append "console=ttyS0 quiet -- $cmd"
refused "another command line" "another machine \('cmdline' differs\)" \
	"$CORRAL" run $OPTS --replay "$work/a.rr" --append "console=ttyS0 quiet"
refused "--engine kvm" "needs --engine emu" "$CORRAL" run --engine kvm --record "$work/k.rr"
refused "--record with --gdb" "cannot be combined" "$CORRAL" run --gdb 1234 --record "$work/g.rr"

# A writable disk: the recording writes to an overlay on it (FILE.disk0.qcow2)
# and the image keeps the contents the recording started from; the replay
# reads what the recording read (the guest reads the image's old contents,
# writes, drops its caches and reads its write back), writes nowhere that
# lasts, and matches to the instruction; a changed image is refused.
printf 'ORIGINAL-CONTENT' >"$work/disk.img"
truncate -s 1M "$work/disk.img"
img_sum=$(md5sum <"$work/disk.img")
cat >"$work/disk.sh" <<'EOF'
echo "before: $(head -c 16 /dev/vda)"
echo "block 1 before: $(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | od -An -c | head -n 1)"
echo "written-by-guest" | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "after: $(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | head -c 16)"
echo "urandom: $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' ')"
EOF
dcmd="echo $(base64 -w0 <"$work/disk.sh")|base64 -d|sh"
timeout "$TIMEOUT" "$CORRAL" run --mem 256M --disk "$work/disk.img" --record "$work/disk.rr" \
	--append "console=ttyS0 quiet -- $dcmd" </dev/null >"$work/drec.out" 2>"$work/drec.err"
tr -d '\r' <"$work/drec.out" >"$work/drec.txt"
if grep -q '^before: ORIGINAL-CONTENT$' "$work/drec.txt" && grep -q '^after: written-by-guest$' "$work/drec.txt"; then
	ok "a writable disk recorded: the guest read the image and its own write"
else
	fail "a writable disk: $(tail -n 2 "$work/drec.err"); output: $(grep -E '^(before|after):' "$work/drec.txt")"
fi
if [ "$(md5sum <"$work/disk.img")" = "$img_sum" ] && [ -s "$work/disk.rr.disk0.qcow2" ]; then
	ok "the recording wrote to its overlay, not to the image"
else
	fail "the image changed, or no overlay $work/disk.rr.disk0.qcow2"
fi
mkdir -p "$work/tmp"
TMPDIR=$work/tmp timeout "$TIMEOUT" "$CORRAL" run --mem 256M --disk "$work/disk.img" --replay "$work/disk.rr" \
	--append "console=ttyS0 quiet -- $dcmd" </dev/null >"$work/drep.out" 2>"$work/drep.err"
rc=$?
rec_line=$(grep -o '[0-9]* instructions, .*console hash [0-9a-f]*' "$work/drec.err")
if [ $rc -eq 0 ] && cmp -s "$work/drec.out" "$work/drep.out" && [ -n "$rec_line" ] &&
	grep -q "$rec_line: identical to the recording" "$work/drep.err"; then
	ok "the writable disk's replay: the same output, instruction count and hashes ($rec_line)"
else
	fail "the writable disk's replay: status $rc: $(tail -n 1 "$work/drep.err")"
fi
if [ "$(md5sum <"$work/disk.img")" = "$img_sum" ] && [ -z "$(ls -A "$work/tmp")" ]; then
	ok "the replay left the image as it was and no overlay behind"
else
	fail "after the replay: image changed or $(ls -A "$work/tmp") left in TMPDIR"
fi
# under gdb such a replay goes back too, its disk with it (an undo log of
# what each write replaced): forward to the recording's end, back to its
# start, forward again: the guest must read the image's old contents
# again, or its output and hashes differ
if command -v gdb >/dev/null 2>&1; then
	rm -f "$work/gsock"
	TMPDIR=$work/tmp timeout "$TIMEOUT" "$CORRAL" run --mem 256M --disk "$work/disk.img" --replay "$work/disk.rr" \
		--gdb "unix:$work/gsock" --gdb-wait --append "console=ttyS0 quiet -- $dcmd" </dev/null >"$work/dgdb.out" \
		2>"$work/dgdb.err" &
	gpid=$!
	i=0
	while [ ! -S "$work/gsock" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	timeout "$TIMEOUT" gdb -batch -nx -ex "target remote $work/gsock" -ex 'stepi' -ex 'reverse-stepi' \
		-ex 'continue' -ex 'reverse-continue' -ex 'continue' >"$work/dgdb.txt" 2>&1
	wait $gpid
	rc=$?
	n=$(grep -c 'No more reverse-execution history' "$work/dgdb.txt")
	if [ "$n" -ge 3 ] && ! grep -q 'not possible' "$work/dgdb.txt" && [ $rc -eq 0 ] &&
		grep -q "$rec_line: identical to the recording" "$work/dgdb.err" && cmp -s "$work/drec.out" "$work/dgdb.out"; then
		ok "under gdb: to the end, back to the start with the disk, to the end again: identical"
	else
		fail "under gdb: $n history ends, status $rc: $(tail -n 4 "$work/dgdb.txt" | tr '\n' ' ') / $(tail -n 1 "$work/dgdb.err")"
	fi
	if [ "$(md5sum <"$work/disk.img")" = "$img_sum" ] && [ -z "$(ls -A "$work/tmp")" ]; then
		ok "the debugged replay left the image as it was and no overlay behind"
	else
		fail "after the debugged replay: image changed or $(ls -A "$work/tmp") left in TMPDIR"
	fi
else
	fail "gdb is needed for the writable disk's replay under gdb (tools/setup.sh installs it)"
fi
printf 'X' | dd of="$work/disk.img" bs=1 seek=100 conv=notrunc 2>/dev/null
refused "another disk image" "the disk0 is not the one recorded" \
	"$CORRAL" run --mem 256M --disk "$work/disk.img" --replay "$work/disk.rr" --append "console=ttyS0 quiet -- $dcmd"

# A restored VM with a writable disk: the recording of the restore writes
# to an overlay of its own on the snapshot's frozen image of the disk
# (FILE.disk0.qcow2), which stays as the recording started from; the
# replay reads the same and writes nowhere that lasts.
printf 'SNAPSHOT-CONTENT' >"$work/disk2.img"
truncate -s 1M "$work/disk2.img"
cat >"$work/disk2.sh" <<'EOF'
echo "ready: $(head -c 16 /dev/vda)"
read line </dev/console
echo "got: $line"
echo "restored-write" | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "after: $(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | head -c 14)"
echo "urandom: $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' ')"
EOF
d2cmd="echo $(base64 -w0 <"$work/disk2.sh")|base64 -d|sh"
rm -f "$work/api2"
timeout "$TIMEOUT" "$CORRAL" run --mem 256M --disk "$work/disk2.img" --api-sock "$work/api2" \
	--serial "file:$work/b2.out" --append "console=ttyS0 quiet -- $d2cmd" </dev/null 2>"$work/b2.err" &
bpid=$!
i=0
until grep -q '^ready: ' "$work/b2.out" 2>/dev/null || [ $i -gt $((TIMEOUT * 5)) ] || ! kill -0 $bpid 2>/dev/null; do
	sleep 0.2
	i=$((i + 1))
done
sleep 0.5
if "$CORRAL" snapshot "$work/api2" "$work/snapd" --stop 2>"$work/s2.err" && wait $bpid; then
	ok "a guest with a writable disk snapshotted while it waits for a line"
else
	kill $bpid 2>/dev/null
	fail "snapshot with a writable disk: $(tail -n 2 "$work/s2.err" "$work/b2.err" | tr '\n' ' ')"
fi
frozen_sum=$(cat "$work"/snapd/disk0.* 2>/dev/null | md5sum)
(sleep 1; echo typed-after-restore) | timeout "$TIMEOUT" "$CORRAL" restore "$work/snapd" --serial stdio \
	--record "$work/r2.rr" >"$work/r2rec.out" 2>"$work/r2rec.err"
tr -d '\r' <"$work/r2rec.out" >"$work/r2rec.txt"
if grep -q '^got: typed-after-restore$' "$work/r2rec.txt" && grep -q '^after: restored-write$' "$work/r2rec.txt"; then
	ok "a restore with a writable disk recorded: the typed line and the guest's own write"
else
	fail "recording the restore: $(tail -n 2 "$work/r2rec.err" | tr '\n' ' '); output: $(grep -E '^(got|after):' "$work/r2rec.txt")"
fi
if [ "$(cat "$work"/snapd/disk0.* | md5sum)" = "$frozen_sum" ] && [ -s "$work/r2.rr.disk0.qcow2" ] &&
	! ls -d "$work"/snapd.restore-* >/dev/null 2>&1; then
	ok "the recording wrote to its own overlay, not to the snapshot's image, and made no restore directory"
else
	fail "the snapshot's image changed, no overlay $work/r2.rr.disk0.qcow2, or a restore directory: $(ls "$work")"
fi
TMPDIR=$work/tmp timeout "$TIMEOUT" "$CORRAL" restore "$work/snapd" --serial stdio --replay "$work/r2.rr" \
	</dev/null >"$work/r2rep.out" 2>"$work/r2rep.err"
rc=$?
rec2=$(grep -o '[0-9]* instructions, .*console hash [0-9a-f]*' "$work/r2rec.err")
if [ $rc -eq 0 ] && cmp -s "$work/r2rec.out" "$work/r2rep.out" && [ -n "$rec2" ] &&
	grep -q "$rec2: identical to the recording" "$work/r2rep.err"; then
	ok "the restored writable disk's replay: the same output, instruction count and hashes"
else
	fail "the restored writable disk's replay: status $rc: $(tail -n 1 "$work/r2rep.err")"
fi
if [ "$(cat "$work"/snapd/disk0.* | md5sum)" = "$frozen_sum" ] && [ -z "$(ls -A "$work/tmp")" ]; then
	ok "the restored replay left the snapshot's image as it was and no overlay behind"
else
	fail "after the restored replay: image changed or $(ls -A "$work/tmp") left in TMPDIR"
fi
refused "--disk-dir with a recording" "record cannot be combined with --disk-dir" \
	"$CORRAL" restore "$work/snapd" --disk-dir "$work/dd" --record "$work/x.rr"

# Logged inputs changed (the random bytes the guest drew; the section's
# checksum fixed up, so the file parses): the replay must say it diverged,
# not finish quietly.
python3 - "$work/a.rr" "$work/edit.rr" <<'EOF'
import struct, sys, zlib
d = bytearray(open(sys.argv[1], 'rb').read())
p = 8 + 5 + d[12] + 4
while d[p:p + 4] == b'SECT':
    start = p
    nl = d[p + 4]
    name = bytes(d[p + 5:p + 5 + nl])
    ln = struct.unpack('<Q', d[p + 5 + nl + 8:p + 5 + nl + 16])[0]
    body = p + 5 + nl + 16
    if name == b'replay-events':
        q = body + 4
        for k in range(struct.unpack('<I', d[body:body + 4])[0]):
            kind, l = d[q], struct.unpack('<I', d[q + 20:q + 24])[0]
            if kind == 3 and l:
                d[q + 24] ^= 0x01
            q += 24 + l
        c = zlib.crc32(bytes(d[body:body + ln]), zlib.crc32(bytes(d[start + 4:body])))
        d[body + ln:body + ln + 4] = struct.pack('<I', c)
        break
    p = body + ln + 4
open(sys.argv[2], 'wb').write(d)
EOF
replay e "$work/edit.rr"
rc=$?
if [ $rc -ne 0 ] && grep -q "replay diverged" "$work/repe.err"; then
	ok "changed inputs are reported: $(grep -o 'replay diverged.*' "$work/repe.err" | head -c 160)"
else
	fail "changed inputs: status $rc: $(tail -n 2 "$work/repe.err")"
fi
report
