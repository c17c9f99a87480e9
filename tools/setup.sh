#!/bin/sh
# Installs what corral needs to build and test (Debian 12 packages), then
# builds it. With --demo, also builds the guest kit (Debian's kernel and a
# busybox initramfs) and boots it: the guest prints what it is and powers
# off; then runs a Debian program as a process VM. With --aarch64, also
# installs the aarch64 cross compiler and libraries for `make check-aarch64`.
# With --deb, also installs the Debian packaging tools for `make deb` and
# `make check-deb` (debhelper, dpkg-dev, fakeroot, lintian).
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential binutils make gcc clang libclang-rt-14-dev busybox-static \
qemu-user qemu-utils qemu-system-x86 python3 perl coreutils gzip file zlib1g-dev liblzma-dev libzstd-dev liblz4-dev libslirp-dev libseccomp-dev libjansson-dev libmicrohttpd-dev cpio xz-utils debootstrap e2fsprogs \
scdoc groff-base bash procps util-linux podman runc containerd gdb criu bc python3-grpcio python3-grpc-tools"

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	missing=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "corral setup: installing$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
else
	echo "corral setup: not root or no apt-get; assuming these are installed: $PKGS" >&2
fi

if [ "${1:-}" = "--aarch64" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "corral setup: --aarch64 needs root (apt-get)" >&2; exit 1; }
	dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu \
		libc6-dev-arm64-cross libc6:arm64 qemu-user zlib1g-dev:arm64 liblzma-dev:arm64 libzstd-dev:arm64 liblz4-dev:arm64 libslirp-dev:arm64 libseccomp-dev:arm64 libjansson-dev:arm64 >/dev/null
fi

if [ "${1:-}" = "--deb" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "corral setup: --deb needs root (apt-get)" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debhelper dpkg-dev \
		fakeroot lintian debootstrap >/dev/null
fi

make -j"$(nproc)"

if [ "${1:-}" = "--demo" ]; then
	sh tools/mkguest.sh
	echo "corral setup: booting Debian's kernel on corral's virtual PC (emu engine):"
	./build/corral run --cpus 2 --append "console=ttyS0 quiet -- true" </dev/null
	echo "corral setup: running /bin/busybox in a process VM:"
	./build/corral exec /bin/busybox sh -c \
		'echo "hello from $(uname -m) code on corral'"'"'s CPU"; echo "2^20 = $((1 << 20))"; echo corral | sha256sum'
fi
