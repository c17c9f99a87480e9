#!/bin/sh
# corral image commit against qemu-img commit (Debian: qemu-utils): chains
# qemu-img makes, with data, zero and discarded clusters written by qemu-io,
# are committed by both; the backing files must read the same, pass
# qemu-img check, and the overlay be emptied (or kept with -d). Hostile
# overlays fail with one line and leave the backing file as it was.
# Last line: "N passed, N failed".
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
	echo "t_image_commit: qemu-img and qemu-io are needed (Debian: qemu-utils; tools/setup.sh installs it)"
	echo "0 passed, 1 failed"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/t_image_commit.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 1

qio() { # img commands...
	img=$1
	shift
	for c in "$@"; do
		qemu-io -c "$c" "$img" >/dev/null || echo "qemu-io '$c' failed" >&2
	done
}

# No cluster of the image itself is allocated (qemu-img map: depth 0).
empty_top() { # img
	! qemu-img map --output=json "$1" | grep -q '"depth": 0, [^}]*"present": true'
}

# make DIR BASEFMT: DIR/base.FMT and DIR/ov.qcow2 on it, with writes of
# every kind, and DIR/expect.raw (what ov.qcow2 reads).
make_chain() { # dir basefmt cluster
	mkdir -p "$1"
	qemu-img create -q -f "$2" "$1/base.$2" 8M
	qemu-io -f "$2" -c "write -P 0x11 0 5M" -c "write -P 0x12 6M 512k" "$1/base.$2" >/dev/null
	qemu-img create -q -f qcow2 -o cluster_size="$3" -b "base.$2" -F "$2" "$1/ov.qcow2"
	qio "$1/ov.qcow2" "write -P 0x22 1M 100k" "write -z 3M 64k" "write -P 0x33 7M 1M" \
		"write -P 0x44 4095k 2k" "discard 6M 64k" "write -P 0x55 8388096 512"
	qemu-img convert -O raw "$1/ov.qcow2" "$1/expect.raw"
}

for fmt in qcow2 raw; do
	for cs in 65536 4096; do
		make_chain c-$fmt-$cs $fmt $cs
		cp -r c-$fmt-$cs q-$fmt-$cs
		qemu-img commit -q q-$fmt-$cs/ov.qcow2
		if out=$("$CORRAL" image commit c-$fmt-$cs/ov.qcow2 2>&1) && [ "$out" = "Image committed." ]; then
			ok "$fmt base, clusters $cs: committed"
		else
			fail "$fmt base, clusters $cs: corral image commit: $out"
		fi
		if qemu-img compare -q -f $fmt -F raw c-$fmt-$cs/base.$fmt c-$fmt-$cs/expect.raw; then
			ok "$fmt base, clusters $cs: the backing file reads as the overlay did"
		else
			fail "$fmt base, clusters $cs: the backing file differs from the overlay's content"
		fi
		if qemu-img compare -q -f $fmt -F $fmt c-$fmt-$cs/base.$fmt q-$fmt-$cs/base.$fmt; then
			ok "$fmt base, clusters $cs: the same as qemu-img commit's"
		else
			fail "$fmt base, clusters $cs: differs from qemu-img commit's"
		fi
		if [ $fmt = raw ] || qemu-img check -q c-$fmt-$cs/base.$fmt; then ok "$fmt base: qemu-img check"; else
			fail "$fmt base, clusters $cs: qemu-img check complains"
		fi
		if empty_top c-$fmt-$cs/ov.qcow2 && qemu-img check -q c-$fmt-$cs/ov.qcow2 &&
			qemu-img compare -q -F raw c-$fmt-$cs/ov.qcow2 c-$fmt-$cs/expect.raw &&
			qemu-img info c-$fmt-$cs/ov.qcow2 | grep -q "^cluster_size: $cs$"; then
			ok "$fmt base, clusters $cs: the overlay is emptied and still reads the same"
		else
			fail "$fmt base, clusters $cs: the overlay is not an empty overlay on its backing file"
		fi
	done
done

# -d: the overlay keeps its clusters
make_chain keep qcow2 65536
"$CORRAL" image commit -q -d keep/ov.qcow2 >out.txt 2>&1
if [ ! -s out.txt ] && ! empty_top keep/ov.qcow2 && qemu-img compare -q -F raw keep/base.qcow2 keep/expect.raw &&
	qemu-img compare -q -F raw keep/ov.qcow2 keep/expect.raw; then
	ok "-d leaves the overlay's clusters, -q prints nothing"
else
	fail "-d or -q: $(cat out.txt)"
fi

# three files: the top folds into the middle one, the base is untouched
mkdir three && cd three || exit 1
qemu-img create -q -f qcow2 base.qcow2 4M
qio base.qcow2 "write -P 1 0 4M"
cp base.qcow2 base.orig
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
qio mid.qcow2 "write -P 2 1M 1M"
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 "write -P 3 1536k 1M"
qemu-img convert -O raw top.qcow2 expect.raw
"$CORRAL" image commit -q top.qcow2
if cmp -s base.qcow2 base.orig && qemu-img compare -q -F raw mid.qcow2 expect.raw &&
	qemu-img compare -q -F raw top.qcow2 expect.raw; then
	ok "a chain of three: the top goes into the middle, the base is untouched"
else
	fail "a chain of three"
fi
cd .. || exit 1

# Hostile or impossible: one line on stderr, exit 1 (2 for usage), the
# backing file unchanged.
refused() { # name want-in-message command...
	name=$1
	want=$2
	shift 2
	"$@" >out.txt 2>err.txt
	rc=$?
	if [ $rc -ne 0 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q "$want" err.txt; then
		ok "$name: refused ($(cat err.txt))"
	else
		fail "$name: exit $rc, '$(cat err.txt)'"
	fi
}

qemu-img create -q -f qcow2 lone.qcow2 1M
refused "no backing file" "no backing file" "$CORRAL" image commit lone.qcow2
qemu-img create -q -f raw plain.raw 1M
refused "a raw image" "not a qcow2 image" "$CORRAL" image commit plain.raw
refused "-f raw" "no backing file" "$CORRAL" image commit -f raw plain.raw
refused "no such file" "No such file" "$CORRAL" image commit nothere.qcow2
qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 -u orphan.qcow2 1M
refused "missing backing file" "gone.qcow2" "$CORRAL" image commit orphan.qcow2
qemu-img create -q -f raw small.raw 1M
qemu-img create -q -f qcow2 -b small.raw -F raw -u big.qcow2 4M
qio big.qcow2 "write -P 7 3M 64k"
refused "an overlay larger than its backing file" "larger than its backing" "$CORRAL" image commit big.qcow2
qemu-img create -q -f qcow2 self.qcow2 1M
qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2
refused "its own backing file" "own backing file" "$CORRAL" image commit self.qcow2

# an L1 entry past the end of the file
make_chain bad qcow2 65536
cp bad/base.qcow2 bad/base.orig
python3 - bad/ov.qcow2 <<'EOF'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(48)
l1 = struct.unpack('>Q', h[40:48])[0]
f.seek(l1)
f.write(struct.pack('>Q', (1 << 63) | (1 << 40)))
EOF
refused "a corrupt L1 table" "ov.qcow2" "$CORRAL" image commit bad/ov.qcow2
cmp -s bad/base.qcow2 bad/base.orig && ok "corrupt overlay: backing file unchanged" || fail "corrupt overlay: backing file changed"

# a backing file in use by another program (qemu-io holds its lock)
make_chain busy qcow2 65536
(sleep 3 | qemu-io busy/base.qcow2 >/dev/null 2>&1) &
qpid=$!
sleep 1
refused "a backing file in use" "in use" "$CORRAL" image commit busy/ov.qcow2
wait $qpid

"$CORRAL" image commit --help | grep -q "^usage: corral image commit" && ok "--help" || fail "--help"
"$CORRAL" image commit >out.txt 2>err.txt
[ $? -eq 2 ] && grep -q "^usage:" err.txt && ok "no overlay given: usage, exit 2" || fail "no overlay given"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
