#!/bin/sh
# Disk images against qemu-img (Debian: qemu-utils): images qemu-img makes
# (cluster sizes, refcount widths, v2, compressed, backing files) read the same
# in corral; images corral writes pass qemu-img check and compare; hostile
# images give one clear error line. Last line: "N passed, N failed".
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
passed=0
failed=0

ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

if ! command -v qemu-img >/dev/null 2>&1 || ! command -v qemu-io >/dev/null 2>&1; then
	echo "t_image: qemu-img and qemu-io are needed (Debian: qemu-utils; tools/setup.sh installs it)"
	echo "0 passed, 1 failed"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/t_image.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

# A 6 MiB base with random data, zero stretches and a short tail.
python3 - <<'EOF'
import random
r = random.Random(5)
b = bytearray(6 << 20)
for i in range(60):
    off = r.randrange(0, len(b) - 70000)
    n = r.randrange(1, 70000)
    b[off:off + n] = bytes(r.getrandbits(8) for _ in range(n)) if i % 3 else b'\xa5' * n
open('base.raw', 'wb').write(b)
EOF

# corral reads IMG the same as qemu-img does.
same_as_qemu() { # name img
	rm -f expect.raw got.raw
	if ! qemu-img convert -O raw "$2" expect.raw; then
		fail "$1: qemu-img cannot read it"
		return
	fi
	if ! err=$("$CORRAL" image convert -O raw "$2" got.raw 2>&1); then
		fail "$1: corral image convert: $err"
		return
	fi
	if cmp -s expect.raw got.raw; then
		ok "$1"
	else
		fail "$1: content differs from qemu-img's"
	fi
}

# qemu-img check has no complaint about IMG (exit 0, no leaks).
qemu_clean() { # name img
	if out=$(qemu-img check "$2" 2>&1); then
		ok "$1"
	else
		fail "$1: qemu-img check: $(echo "$out" | head -n 5)"
	fi
}

# Images qemu-img writes, with data written by qemu-io.
qio() { # img commands...
	img=$1
	shift
	for c in "$@"; do
		qemu-io -c "$c" "$img" >/dev/null || echo "qemu-io '$c' failed" >&2
	done
}

for cs in 512 4096 65536 2M; do
	qemu-img convert -O qcow2 -o cluster_size=$cs base.raw q$cs.qcow2
	same_as_qemu "qemu-img qcow2 cluster_size=$cs" q$cs.qcow2
done
for rb in 1 8 64; do
	qemu-img convert -O qcow2 -o refcount_bits=$rb base.raw rb$rb.qcow2
	same_as_qemu "qemu-img qcow2 refcount_bits=$rb" rb$rb.qcow2
done
qemu-img convert -O qcow2 -o compat=0.10 base.raw v2.qcow2
same_as_qemu "qemu-img qcow2 compat=0.10 (version 2)" v2.qcow2
qemu-img convert -c -O qcow2 base.raw z.qcow2
same_as_qemu "qemu-img convert -c (compressed clusters)" z.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4096 base.raw z4k.qcow2
same_as_qemu "qemu-img convert -c, 4 KiB clusters" z4k.qcow2
qemu-img create -q -f qcow2 empty.qcow2 1100M
same_as_qemu "qemu-img create (empty, 1100 MiB: three L2 tables)" empty.qcow2

qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2
qio ov.qcow2 "write -P 0x11 100k 300k" "write -z 1M 64k" "discard 2M 128k" "write -P 0x22 6291000 456"
same_as_qemu "qemu-img overlay -b base.raw -F raw" ov.qcow2
qemu-img create -q -f qcow2 -b ov.qcow2 -F qcow2 -o cluster_size=4096 ov2.qcow2
qio ov2.qcow2 "write -P 0x33 4000 10000" "write -z 200k 8k"
same_as_qemu "qemu-img overlay -b ov.qcow2 -F qcow2 (a chain)" ov2.qcow2
qemu-img create -q -f qcow2 -b z.qcow2 -F qcow2 ovz.qcow2
qio ovz.qcow2 "write -P 0x44 3M 5000"
same_as_qemu "overlay over a compressed image" ovz.qcow2

# corral writes: convert, overlays, and qemu-img agrees.
"$CORRAL" image convert -O qcow2 base.raw c.qcow2 && qemu_clean "corral convert -O qcow2 passes qemu-img check" c.qcow2
if qemu-img compare -q base.raw c.qcow2; then ok "corral convert -O qcow2: qemu-img compare"; else fail "corral convert -O qcow2: qemu-img compare"; fi
"$CORRAL" image convert -O qcow2 -o cluster_size=512 z.qcow2 c512.qcow2 &&
	qemu_clean "corral convert compressed -> qcow2 512-byte clusters: qemu-img check" c512.qcow2
"$CORRAL" image convert c512.qcow2 rt.raw && cmp -s rt.raw base.raw && ok "corral convert round trip raw -> qcow2 -> raw" ||
	fail "corral convert round trip"
"$CORRAL" image convert -f qcow2 -O qcow2 c.qcow2 c2.qcow2 && qemu-img compare -q c.qcow2 c2.qcow2 &&
	ok "corral convert qcow2 -> qcow2" || fail "corral convert qcow2 -> qcow2"
sz=$(stat -c %b c.qcow2)
rsz=$(stat -c %b base.raw)
[ "$sz" -lt "$rsz" ] && ok "corral convert skips zero clusters ($sz < $rsz blocks)" || fail "convert output not sparse ($sz >= $rsz)"
# -p: progress on stdout as qemu-img's, "    (P/100%)" rewritten in place with
# carriage returns, rising to 100; the copy is the same.
"$CORRAL" image convert -p -O qcow2 base.raw p.qcow2 >progress.txt 2>&1
rc=$?
last=$(tr '\r' '\n' <progress.txt | grep -v '^$' | tail -n 1)
n=$(tr -cd '\r' <progress.txt | wc -c)
[ $rc -eq 0 ] && [ "$last" = "    (100.00/100%)" ] && [ "$n" -ge 3 ] &&
	tr '\r' '\n' <progress.txt | grep -v '^$' | sed 's/^ *(\([0-9]*\)\..*/\1/' | sort -n -c 2>/dev/null &&
	qemu-img compare -q base.raw p.qcow2 && ok "corral convert -p: $n progress updates up to '$last'" ||
	fail "corral convert -p (exit $rc, $n updates, last '$last')"
"$CORRAL" image convert -O qcow2 base.raw np.qcow2 >progress.txt 2>&1
[ ! -s progress.txt ] && ok "corral convert without -p prints nothing" || fail "corral convert without -p printed: $(head -c 80 progress.txt)"

"$CORRAL" image create -f qcow2 -b base.raw -F raw cov.qcow2 >/dev/null && qemu_clean "corral image create -b -F raw: qemu-img check" cov.qcow2
info=$(qemu-img info cov.qcow2)
echo "$info" | grep -q "backing file: base.raw" && echo "$info" | grep -q "backing file format: raw" &&
	echo "$info" | grep -q "virtual size: 6 MiB" && ok "qemu-img info sees corral's backing file and size" ||
	fail "qemu-img info of corral's overlay: $info"
qemu-img compare -q base.raw cov.qcow2 && ok "corral overlay reads as its base in qemu" || fail "corral overlay vs base"
"$CORRAL" image create -f qcow2 sized.qcow2 10G >/dev/null &&
	qemu-img info sized.qcow2 | grep -q "virtual size: 10 GiB (10737418240 bytes)" && ok "corral image create 10G" ||
	fail "corral image create 10G"
"$CORRAL" image create -f qcow2 -o backing_file=base.raw,backing_fmt=raw,cluster_size=4k ob.qcow2 >/dev/null &&
	qemu-img info ob.qcow2 | grep -q "cluster_size: 4096" && qemu-img compare -q base.raw ob.qcow2 &&
	ok "corral image create -o backing_file=,backing_fmt=,cluster_size=" || fail "create -o backing_file"
"$CORRAL" image create -f raw r.img 1M >/dev/null && [ "$(stat -c %s r.img)" = 1048576 ] && ok "corral image create -f raw" ||
	fail "corral image create -f raw"

cp c.qcow2 self2.qcow2
"$CORRAL" image create -f qcow2 -b self2.qcow2 -F qcow2 self2.qcow2 >/dev/null 2>&1
rc=$?
[ $rc = 2 ] && cmp -s c.qcow2 self2.qcow2 && ok "create refuses an image as its own backing file (left intact)" ||
	fail "create over its own backing file (exit $rc)"
"$CORRAL" image convert c.qcow2 c.qcow2 >/dev/null 2>&1
[ $? = 2 ] && qemu-img compare -q base.raw c.qcow2 && ok "convert refuses to write over its input" ||
	fail "convert over its input"

# corral image info and check
out=$("$CORRAL" image info ov.qcow2)
echo "$out" | grep -q "file format: qcow2" && echo "$out" | grep -q "cluster_size: 65536" &&
	echo "$out" | grep -q "backing file: base.raw" && echo "$out" | grep -q "virtual size: 6 MiB (6291456 bytes)" &&
	ok "corral image info" || fail "corral image info: $out"
j=$("$CORRAL" image info --output=json ov.qcow2) &&
	echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["virtual-size"]==6291456 and d["backing-filename"]=="base.raw" and d["cluster-size"]==65536' &&
	ok "corral image info --output=json" || fail "corral image info --output=json: $j"
for img in q512.qcow2 rb1.qcow2 rb64.qcow2 v2.qcow2 z.qcow2 ov.qcow2 ov2.qcow2 c512.qcow2; do
	if out=$("$CORRAL" image check "$img" 2>&1); then ok "corral image check $img"; else fail "corral image check $img: $out"; fi
done
# A leak: one more cluster at the end of the file, counted but unused.
cp c.qcow2 leak.qcow2
python3 - <<'EOF'
import struct
f = open('leak.qcow2', 'r+b')
h = f.read(112)
cs = 1 << struct.unpack('>I', h[20:24])[0]
rt = struct.unpack('>Q', h[48:56])[0]
f.seek(rt); rb = struct.unpack('>Q', f.read(8))[0]
import os
n = os.path.getsize('leak.qcow2') // cs
f.truncate((n + 1) * cs)
f.seek(rb + 2 * n); f.write(struct.pack('>H', 1))
EOF
"$CORRAL" image check leak.qcow2 >leak.out 2>&1
rc=$?
[ $rc = 3 ] && grep -q "1 leaked clusters" leak.out && ok "corral image check finds a leak (exit 3)" ||
	fail "leak not found (exit $rc): $(cat leak.out)"
cp leak.qcow2 leak2.qcow2
qemu-img check -r leaks leak.qcow2 >/dev/null 2>&1
"$CORRAL" image check leak.qcow2 >/dev/null && ok "after qemu-img check -r leaks: clean" || fail "still leaking"
"$CORRAL" image check -r leaks leak2.qcow2 >leak.out 2>&1 && grep -q "1 leaked clusters" leak.out &&
	qemu-img check leak2.qcow2 >/dev/null && ok "corral image check -r leaks repairs, qemu-img agrees" ||
	fail "corral image check -r leaks: $(cat leak.out)"

# Internal snapshots (qemu-img snapshot): read as qemu does, checked with
# the snapshots' tables; a snapshot's L1 table with refcount 0 is an error
# for both.
cp q512.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
qio snap.qcow2 "write -P 0x55 0 8k"
qemu-img snapshot -c s2 snap.qcow2
qio snap.qcow2 "write -P 0x66 4k 8k" "discard 64k 4k"
same_as_qemu "image with internal snapshots" snap.qcow2
"$CORRAL" image check snap.qcow2 >/dev/null && qemu-img check snap.qcow2 >/dev/null &&
	ok "corral image check with internal snapshots" || fail "check with internal snapshots"
python3 - <<'EOF2'
import struct
f = open('snap.qcow2', 'r+b')
h = f.read(112)
cs = 1 << struct.unpack('>I', h[20:24])[0]
rt = struct.unpack('>Q', h[48:56])[0]
snaps = struct.unpack('>Q', h[64:72])[0]
f.seek(snaps); l1 = struct.unpack('>Q', f.read(8))[0]
idx = l1 // cs
rb_entries = cs * 8 // 16
f.seek(rt + 8 * (idx // rb_entries)); rb = struct.unpack('>Q', f.read(8))[0]
f.seek(rb + 2 * (idx % rb_entries)); f.write(struct.pack('>H', 0))
EOF2
"$CORRAL" image check snap.qcow2 >snap.out 2>&1
rc=$?
qemu-img check snap.qcow2 >/dev/null 2>&1
qrc=$?
[ $rc = 2 ] && [ $qrc = 2 ] && ok "a snapshot's L1 table with refcount 0: errors for corral and qemu-img" ||
	fail "snapshot L1 refcount 0: corral exit $rc, qemu-img exit $qrc: $(head -n 3 snap.out)"

# Corrupt: an L2 entry pointing into another cluster's data.
cp c.qcow2 dup.qcow2
python3 - <<'EOF'
import struct
f = open('dup.qcow2', 'r+b')
h = f.read(112)
l1 = struct.unpack('>Q', h[40:48])[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2); ents = [struct.unpack('>Q', f.read(8))[0] for _ in range(8)]
used = [e for e in ents if e & 0x00fffffffffffe00]
f.seek(l2 + 8 * ents.index(0)); f.write(struct.pack('>Q', used[0]))
EOF
"$CORRAL" image check dup.qcow2 >dup.out 2>&1
rc=$?
[ $rc = 2 ] && grep -q "errors were found" dup.out && ok "corral image check finds a doubly used cluster (exit 2)" ||
	fail "corruption not found (exit $rc): $(cat dup.out)"

# Hostile images: one line on stderr, "corral: disk '...': ...", nonzero, no crash.
python3 - <<'EOF'
import struct, shutil
def edit(name, src, patches):
    shutil.copy(src, name)
    with open(name, 'r+b') as f:
        for off, data in patches:
            f.seek(off); f.write(data)
h = open('c.qcow2', 'rb').read(112)
l1 = struct.unpack('>Q', h[40:48])[0]
rt = struct.unpack('>Q', h[48:56])[0]
edit('h-l1-past-eof.qcow2', 'c.qcow2', [(40, struct.pack('>Q', 1 << 40))])
edit('h-huge-size.qcow2', 'c.qcow2', [(24, struct.pack('>Q', (1 << 63) + 4096))])
edit('h-huge-l1.qcow2', 'c.qcow2', [(36, struct.pack('>I', 0xffffffff))])
edit('h-incompat.qcow2', 'c.qcow2', [(72, struct.pack('>Q', 1 << 40))])
edit('h-loop-l1.qcow2', 'c.qcow2', [(l1, struct.pack('>Q', l1 | (1 << 63)))])
edit('h-loop-rt.qcow2', 'c.qcow2', [(rt, struct.pack('>Q', rt))])
edit('h-l2-twice.qcow2', 'c.qcow2', [(36, struct.pack('>I', 2)), (l1 + 8, open('c.qcow2', 'rb').read()[l1:l1 + 8])])
edit('h-cluster-bits.qcow2', 'c.qcow2', [(20, struct.pack('>I', 40))])
edit('h-version.qcow2', 'c.qcow2', [(4, struct.pack('>I', 9))])
edit('h-rt-huge.qcow2', 'c.qcow2', [(56, struct.pack('>I', 0x7fffffff))])
edit('h-backing-name.qcow2', 'c.qcow2', [(8, struct.pack('>QI', 0xfff0, 4000))])
# an L2 entry past the end of the file: found when read
f = open('c.qcow2', 'rb').read()
l2 = struct.unpack('>Q', f[l1:l1 + 8])[0] & 0x00fffffffffffe00
edit('h-data-past-eof.qcow2', 'c.qcow2', [(l2, struct.pack('>Q', (1 << 63) | (1 << 44)))])
EOF
qemu-img create -q -f qcow2 -b loop-b.qcow2 -F qcow2 -u loop-a.qcow2 1M
qemu-img create -q -f qcow2 -b loop-a.qcow2 -F qcow2 -u loop-b.qcow2 1M
qemu-img create -q -f qcow2 -b xelf.qcow2 -F qcow2 -u self.qcow2 1M
python3 -c "
d = open('self.qcow2', 'rb').read()
open('self.qcow2', 'wb').write(d.replace(b'xelf.qcow2', b'self.qcow2', 1))"

qemu-img create -q -f qcow2 -b AAAAAAAA -F raw -u ctl.qcow2 1M
python3 -c "
d = open('ctl.qcow2', 'rb').read()
open('ctl.qcow2', 'wb').write(d.replace(b'AAAAAAAA', b'a\\n\\x1b[2Jzz', 1))"

hostile() { # name img what-the-error-says [command]
	cmd=${4:-info}
	if [ "$cmd" = info ]; then
		"$CORRAL" image info "$2" >/dev/null 2>err.txt
	else
		"$CORRAL" image convert "$2" out.raw >/dev/null 2>err.txt
	fi
	rc=$?
	lines=$(wc -l <err.txt)
	if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" = 1 ] && grep -q "^corral: disk '.*': .*$3" err.txt; then
		ok "hostile: $1: $(cat err.txt)"
	else
		fail "hostile: $1 (exit $rc, $lines lines): $(cat err.txt)"
	fi
}
hostile "L1 offset past EOF" h-l1-past-eof.qcow2 "L1 table offset 0x10000000000 is past the end of the file"
hostile "huge size" h-huge-size.qcow2 "too large"
hostile "huge L1 table" h-huge-l1.qcow2 "too large"
hostile "unknown incompatible feature" h-incompat.qcow2 "unknown incompatible feature bit 40"
hostile "L1 entry pointing at the L1 table" h-loop-l1.qcow2 "loop"
hostile "refcount block = refcount table" h-loop-rt.qcow2 "loop"
hostile "one L2 table twice" h-l2-twice.qcow2 "used twice"
hostile "cluster_bits 40" h-cluster-bits.qcow2 "cluster_bits 40"
hostile "version 9" h-version.qcow2 "version 9"
hostile "huge refcount table" h-rt-huge.qcow2 "refcount table"
hostile "backing name outside the header" h-backing-name.qcow2 "backing file name"
hostile "backing chain loop" loop-a.qcow2 "loops back"
hostile "backing name with a newline and an escape" ctl.qcow2 "backing file 'a??\[2Jzz'"
hostile "backing file is itself" self.qcow2 "loops back"
hostile "data cluster past EOF (convert)" h-data-past-eof.qcow2 "past the end of the file" convert
# Special files as images or backing files: refused with one line, never
# waited on (opening a FIFO blocks until a writer comes; timeout makes a
# hang a failure).
mkfifo pipe.fifo
mkdir dir.d
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock.s')"
special() { # name what-the-error-says corral-args...
	name=$1
	what=$2
	shift 2
	timeout 10 "$CORRAL" "$@" >/dev/null 2>err.txt </dev/null
	rc=$?
	lines=$(wc -l <err.txt)
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -lt 128 ] && [ "$lines" = 1 ] &&
		grep -q "^corral: disk '.*': $what\$" err.txt; then
		ok "special: $name: $(cat err.txt)"
	else
		fail "special: $name (exit $rc, $lines lines): $(cat err.txt)"
	fi
}
for f in pipe.fifo:FIFO dir.d:directory sock.s:socket /dev/zero:"character device"; do
	file=${f%%:*}
	kind=${f#*:}
	case $kind in [aeiou]*) a=an ;; *) a=a ;; esac
	b=bk-${file##*/}.qcow2
	qemu-img create -q -f qcow2 -u -b "$file" -F raw "$b" 1M
	for cmd in info check; do
		special "$cmd, backing file is $a $kind" "backing file '.*$file': not a regular file ($a $kind)" \
			image $cmd "$b"
	done
	special "image info of $a $kind" "not a regular file or block device ($a $kind)" image info "$file"
	special "run --disk $a $kind" "not a regular file or block device ($a $kind)" run --disk "$file"
	special "create over a backing $kind" "not a regular file.* ($a $kind)" \
		image create -f qcow2 -b "$file" -F raw "new-$b" 1M
done
# A read-only open of a FIFO is the one that blocks.
special "run --disk a FIFO,readonly" "not a regular file or block device (a FIFO)" run --disk pipe.fifo,readonly
special "run --disk over a FIFO backing file" "backing file 'pipe.fifo': not a regular file (a FIFO)" \
	run --disk bk-pipe.fifo.qcow2,readonly
for f in raw qcow2; do
	special "create a $f image onto a FIFO" "not a regular file (a FIFO)" image create -f $f pipe.fifo 1M
done
# Locks shared with QEMU: while qemu-io writes an image, corral stays out;
# afterwards it opens.
qemu-img create -q -f qcow2 busy.qcow2 1M
(sleep 4 | qemu-io busy.qcow2 >/dev/null 2>&1) &
qpid=$!
ino=$(stat -c %i busy.qcow2)
n=0
while [ $n -lt 50 ] && ! grep -q ":$ino " /proc/locks 2>/dev/null; do
	sleep 0.1
	n=$((n + 1))
done
"$CORRAL" image info busy.qcow2 >/dev/null 2>err.txt
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <err.txt)" = 1 ] && grep -q "in use by another program" err.txt &&
	ok "image in use by qemu-io: $(cat err.txt)" || fail "image in use by qemu-io (exit $rc): $(cat err.txt)"
cp busy.qcow2 busy.orig
"$CORRAL" image create -f qcow2 busy.qcow2 2M >/dev/null 2>err.txt
rc=$?
[ $rc -ne 0 ] && cmp -s busy.qcow2 busy.orig && grep -q "in use" err.txt &&
	ok "create over an image in use: refused, image intact" || fail "create over an image in use (exit $rc)"
wait $qpid
"$CORRAL" image info busy.qcow2 >/dev/null && ok "image free again after qemu-io" || fail "image still locked"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
