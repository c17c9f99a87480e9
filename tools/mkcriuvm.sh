#!/bin/sh
# Builds the CRIU comparison machine: an initramfs for QEMU TCG running
# Debian's stock kernel (the guest kit's, tools/mkguest.sh), where Debian's
# criu can dump and restore a process (it cannot on every host kernel:
# criu 3.17.1 refuses kernels whose vDSO layout it does not know), with
# corral beside it. Its /init runs bench/checkpoint.sh inside, so corral's
# checkpoint/restore-exec and criu dump/restore of the same program
# natively are measured in one invocation on one (emulated) machine.
#
# Usage: tools/mkcriuvm.sh BUILD OUT
#   BUILD  corral's build directory (corral and tests/progs/ckpt_prog,
#          `make tests`)
#   OUT    the initramfs to write (an uncompressed newc cpio)
#
# The archive carries busybox, GNU bash, date and bc (the script's tools),
# criu and corral with their shared libraries (the ldd closure),
# ckpt_prog, bench/checkpoint.sh and an /init that runs it with
# SIZES=corral.sizes and REPEAT=corral.repeat from the kernel command line
# (commas for spaces), prints every line prefixed "@criuvm: ", then
# "@criuvm end", and powers off. bench/checkpoint.sh --vm runs it.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
BUSYBOX=${BUSYBOX:-/bin/busybox}
# criu's kernel feature detection needs the socket diag modules (it reads
# its sockets through them) and nf_tables (it tries a set with
# concatenated keys): Debian builds them as modules, loaded in this order
CRIU_MODULES="crc32c_generic libcrc32c nfnetlink nf_tables unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag af_packet_diag"

die() {
	echo "mkcriuvm: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: tools/mkcriuvm.sh BUILD OUT"
build=$(cd "$1" && pwd)
out=$2
[ -x "$build/corral" ] || die "$build/corral not built: run make first"
[ -x "$build/tests/progs/ckpt_prog" ] || die "$build/tests/progs/ckpt_prog not built: run make tests first"
for tool in cpio ldd criu bash bc date; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (tools/setup.sh installs the packages)"
done
sh "$ROOT/tools/mkguest.sh" >/dev/null || die "the guest kit (tools/mkguest.sh) cannot be built"
release=$(cat "$GUEST_DIR/version")
mdir=$GUEST_DIR/modules/$release

work=$(mktemp -d "${TMPDIR:-/tmp}/mkcriuvm.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
ir=$work/root
mkdir -p "$ir/bin" "$ir/usr/bin" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/tmp" "$ir/etc" "$ir/run" \
	"$ir/corral/build/tests/progs" "$ir/corral/bench" "$ir/lib/criu"

cp "$BUSYBOX" "$ir/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ "$a" = busybox ] || ln -s busybox "$ir/bin/$a"
done
ln -s bin "$ir/sbin"
# GNU date (%N), bc and bash: the script's own tools, as on the host
for t in bash bc date; do
	rm -f "$ir/bin/$t"
	cp "$(command -v "$t")" "$ir/bin/$t"
done
criu=$(command -v criu)
cp "$criu" "$ir/bin/criu"
# the program under test must find its libraries natively too
cp "$build/corral" "$ir/corral/build/corral"
dyn=
if [ -x "$build/corral-dyn" ]; then
	cp "$build/corral-dyn" "$ir/corral/build/corral-dyn"
	dyn="$build/corral-dyn"
fi
cp "$build/tests/progs/ckpt_prog" "$ir/corral/build/tests/progs/ckpt_prog"
# shellcheck disable=SC2086
ldd "$build/corral" $dyn "$build/tests/progs/ckpt_prog" "$criu" "$ir/bin/bash" "$ir/bin/bc" "$ir/bin/date" 2>/dev/null |
	awk '/=> \// { print $3 } /^\t\// { print $1 }' | sort -u | while read -r lib; do
	mkdir -p "$ir$(dirname "$lib")"
	cp -L "$lib" "$ir$lib"
done
: >"$ir/etc/criu-modules"
for m in $CRIU_MODULES; do
	f=$(find "$mdir/kernel" -name "$m.ko*" | head -n 1)
	[ -n "$f" ] || continue # built in
	case "$f" in
	*.xz) xz -dc "$f" >"$ir/lib/criu/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$ir/lib/criu/$m.ko" ;;
	*) cp "$f" "$ir/lib/criu/$m.ko" ;;
	esac
	echo "$m.ko" >>"$ir/etc/criu-modules"
done
cp "$ROOT/bench/checkpoint.sh" "$ir/corral/bench/checkpoint.sh"
echo "root:x:0:0:root:/root:/bin/sh" >"$ir/etc/passwd"
echo "root:x:0:" >"$ir/etc/group"

cat >"$ir/init" <<'EOF'
#!/bin/busybox sh
# /init of the CRIU comparison machine (tools/mkcriuvm.sh)
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up 2>/dev/null
while read -r m; do
	insmod "/lib/criu/$m" 2>&1 | sed "s|^|@criuvm: insmod $m: |"
done </etc/criu-modules
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^corral\.$1=//p" | tr ',' ' '; }
sizes=$(arg sizes)
repeat=$(arg repeat)
echo "@criuvm: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), $(criu --version | head -n 1)"
criu check 2>&1 | tail -n 5 | sed 's/^/@criuvm: criu check: /'
cd /tmp
SIZES=${sizes:-100 1024} REPEAT=${repeat:-1} CORRAL=/corral/build/corral BUILD=/corral/build \
	bash /corral/bench/checkpoint.sh 2>&1 | sed 's/^/@criuvm: /'
echo "@criuvm end"
sync
poweroff -f
EOF
chmod 755 "$ir/init"

(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out.new"
mv "$out.new" "$out"
echo "mkcriuvm: $out ($(($(wc -c <"$out") / 1048576)) MiB, kernel $release)"
