#!/bin/sh
# Builds the nested test machine: an initramfs for QEMU TCG with `-cpu max`
# (which emulates AMD-V) whose /init loads Debian's kvm and kvm_amd modules,
# so corral's kvm engine runs on a real /dev/kvm on hosts that have none.
#
# Usage: tools/mknested.sh BUILD OUT
#   BUILD  corral's build directory (corral and the tiny guests, `make tests`)
#   OUT    the initramfs to write (an uncompressed newc cpio: the nested
#          kernel unpacks it faster under TCG than a gzip'd one)
#
# The machine's kernel is the guest kit's (tools/mkguest.sh, cached), the
# kvm modules come from the same package. The archive carries:
#   /corral/build/corral       and its shared libraries (the ldd closure),
#                              corral-dyn beside it where corral is static
#   /corral/build/tests/guests the tiny guests
#   /corral/build/tests/vm/t_snap  the snapshot tests (across engines)
#   /corral/tests/             the test scripts that run inside (guests,
#                              boot, snapshots, hand-over, migration,
#                              virtio disk and network)
#   /corral/guest/             the guest kit: vmlinuz, initrd.img, version
#   /init                      see tests/kvm/nested-init.sh
# /init runs the suites named by corral.nested=a,b,... on the kernel command
# line and prints every line of their output prefixed with "@nested SUITE: ",
# then "@nested end", on the serial console, and powers off.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
BUSYBOX=${BUSYBOX:-/bin/busybox}
# kvm_amd needs ccp (the SEV firmware interface), kvm needs irqbypass.
KVM_MODULES="irqbypass kvm ccp kvm-amd"

die() {
	echo "mknested: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: tools/mknested.sh BUILD OUT"
build=$(cd "$1" && pwd)
out=$2
[ -x "$build/corral" ] || die "$build/corral not built: run make first"
[ -e "$build/tests/guests/hello.bin" ] || die "$build/tests/guests not built: run make tests first"
for tool in cpio ldd; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: install the cpio and libc-bin packages"
done
sh "$ROOT/tools/mkguest.sh" >/dev/null || die "the guest kit (tools/mkguest.sh) cannot be built"
release=$(cat "$GUEST_DIR/version")
mdir=$GUEST_DIR/modules/$release

work=$(mktemp -d "${TMPDIR:-/tmp}/mknested.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
ir=$work/root
mkdir -p "$ir/bin" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/tmp" "$ir/etc" "$ir/lib/kvm" \
	"$ir/corral/build/tests" "$ir/corral/tests" "$ir/corral/guest" "$ir/corral/tools"

cp "$BUSYBOX" "$ir/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ "$a" = busybox ] || ln -s busybox "$ir/bin/$a"
done
ln -s bin "$ir/sbin"
# coreutils' timeout: the tests read its exit status 124 (timed out), which
# busybox's does not give; GNU cpio: t_blk.sh writes its guest's overlay
# with --quiet, which busybox's does not know; util-linux's setpriv:
# t_guests.sh opens /dev/kvm as another user (--reuid), which busybox's
# does not offer
rm -f "$ir/bin/timeout" "$ir/bin/cpio" "$ir/bin/setpriv"
cp "$(command -v timeout)" "$ir/bin/timeout"
cp "$(command -v cpio)" "$ir/bin/cpio"
if command -v setpriv >/dev/null 2>&1 && setpriv --help 2>&1 | grep -q -e '--reuid'; then
	cp "$(command -v setpriv)" "$ir/bin/setpriv"
fi

# The modules, in load order, decompressed here (busybox insmod reads plain
# .ko files).
: >"$ir/etc/kvm-modules"
for m in $KVM_MODULES; do
	f=$(find "$mdir/kernel" -name "$m.ko*" | head -n 1)
	[ -n "$f" ] || die "$m.ko not found in $mdir (a kernel without kvm modules?)"
	case "$f" in
	*.xz) xz -dc "$f" >"$ir/lib/kvm/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$ir/lib/kvm/$m.ko" ;;
	*) cp "$f" "$ir/lib/kvm/$m.ko" ;;
	esac
	echo "$m.ko" >>"$ir/etc/kvm-modules"
done

# corral and its libraries at the paths the dynamic loader looks at.
cp "$build/corral" "$ir/corral/build/corral"
# a static corral hands the API, the GDB stub and the user network over to
# its dynamically linked sibling
dyn=
if [ -x "$build/corral-dyn" ]; then
	cp "$build/corral-dyn" "$ir/corral/build/corral-dyn"
	dyn="$build/corral-dyn"
fi
# libslirp (--net user) and libmicrohttpd (--api-sock) are loaded with
# dlopen, so ldd does not list them
dl=
for so in libslirp.so.0 libmicrohttpd.so.12; do
	f=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so && /x86-64/ { print $NF; exit }')
	[ -n "$f" ] && dl="$dl $f"
done
# shellcheck disable=SC2086
ldd "$build/corral" $dyn "$ir/bin/timeout" "$ir/bin/cpio" "$build/tests/vm/t_snap" $(ls "$ir/bin/setpriv" 2>/dev/null) $dl | awk '/=> \// { print $3 } /^\t\// { print $1 }' | sort -u | while read -r lib; do
	mkdir -p "$ir$(dirname "$lib")"
	cp -L "$lib" "$ir$lib"
done
cp -a "$build/tests/guests" "$ir/corral/build/tests/"
rm -f "$ir"/corral/build/tests/guests/*.o "$ir"/corral/build/tests/guests/*.s
for f in $dl; do
	mkdir -p "$ir$(dirname "$f")"
	cp -L "$f" "$ir$f"
done
mkdir -p "$ir/corral/tests/guests" "$ir/corral/tests/boot" "$ir/corral/tests/virtio" "$ir/corral/tests/vm" \
	"$ir/corral/build/tests/vm"
cp "$ROOT/tests/guests/t_guests.sh" "$ir/corral/tests/guests/"
cp "$ROOT/tests/boot/lib.sh" "$ROOT/tests/boot/t_boot.sh" "$ROOT/tests/boot/t_handover.sh" \
	"$ROOT/tests/boot/t_snapshot.sh" "$ir/corral/tests/boot/"
mkdir -p "$ir/corral/tests/migrate" "$ir/corral/tests/kvm"
cp "$ROOT/tests/migrate/t_engines.sh" "$ir/corral/tests/migrate/"
cp "$ROOT/tests/kvm/suites.sh" "$ir/corral/tests/kvm/"
cp "$ROOT/tests/virtio/t_blk.sh" "$ROOT/tests/virtio/t_net.sh" "$ir/corral/tests/virtio/"
# t_snap (the snapshot tests, across engines among them) and its fixture
cp "$build/tests/vm/t_snap" "$ir/corral/build/tests/vm/"
cp -a "$ROOT/tests/vm/fixtures" "$ir/corral/tests/vm/"
cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initrd.img" "$GUEST_DIR/version" "$ir/corral/guest/"
cp "$ROOT/tests/kvm/nested-init.sh" "$ir/init"
chmod 755 "$ir/init"

(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out.new"
mv "$out.new" "$out"
echo "mknested: $out ($(($(wc -c <"$out") / 1048576)) MiB, kernel $release)"
