#!/bin/bash
# I/O benchmark: disk and network throughput inside the guest, corral vs QEMU
# TCG, with the same kernel, initramfs, raw disk image and device types
# (virtio-blk and virtio-net over PCI, user networking through libslirp in
# both), alternating corral and QEMU in each round.
#
# Usage: bench/io.sh [ROUNDS]   (default 3; CORRAL=path/to/corral)
#   IO_BENCH_SEQ_MIB   sequential phases and disk size, MiB (default 1024)
#   IO_BENCH_RAND_OPS  4 KiB operations per random phase (default 4000)
#   IO_BENCH_TCP_MIB   guest -> host TCP transfer, MiB (default 64)
#   IO_BENCH_QEMU_MACHINE  QEMU machine type (default q35)
#   IO_BENCH_CACHE     the disk's host cache mode, the same for corral and
#                      QEMU: none (default: O_DIRECT on the host, so a
#                      long write is not throttled by the host's dirty
#                      page balancing) or writeback (the host's page
#                      cache); IO_BENCH_QEMU_CACHE is an older name
#   IO_BENCH_KEEP=DIR  keep every run's console log in DIR
#
# The guest's clock cannot time anything here (corral's is virtual time,
# driven by instructions), so bench/iob.c, run in the guest, prints a marker
# line on the serial console just before the first and just after the last
# I/O of each phase, and the host timestamps the lines as they arrive. The
# TCP phase is timed by the host's listener itself (first byte to end of
# stream). Phases, in order: sequential write and read of the disk in 1 MiB
# O_DIRECT requests, random 4 KiB O_DIRECT writes and reads (queue depth 1,
# fixed-seed offsets), then the TCP transfer to 10.0.2.2 (the host's
# loopback). Writes end with fsync, which the guest turns into a virtio-blk
# flush. Reads check every 4 KiB block's tag (written by the writes).
# Figures are throughputs: higher is better, and the ratio corral / QEMU
# should be at least 1.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
ROUNDS=${1:-3}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
SEQ_MIB=${IO_BENCH_SEQ_MIB:-1024}
RAND_OPS=${IO_BENCH_RAND_OPS:-4000}
TCP_MIB=${IO_BENCH_TCP_MIB:-64}
# q35: a PCI host for the virtio devices, and timers the kernel calibrates
# against under TCG (microvm, used by bench/boot.sh, has no PCI here).
QEMU_MACHINE=${IO_BENCH_QEMU_MACHINE:-q35}
CACHE=${IO_BENCH_CACHE:-${IO_BENCH_QEMU_CACHE:-none}}
LIMIT=${IO_BENCH_TIMEOUT:-900}

die() {
	echo "bench/io.sh: $*" >&2
	exit 1
}
case $CACHE in
none | writeback) ;;
*) die "IO_BENCH_CACHE '$CACHE': must be none or writeback (the modes corral has)" ;;
esac
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)"
command -v python3 >/dev/null || die "python3 not found"
command -v gcc >/dev/null || die "gcc not found (the guest's helper is built with gcc -static)"
[ -x "$CORRAL" ] || die "$CORRAL not built (make)"
sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/iobench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The guest's side: bench/iob.c and a script, in an overlay archive after
# the kit's initramfs (the kernel unpacks both).
ov=$work/overlay
mkdir -p "$ov/bin"
gcc -O2 -static -o "$ov/bin/iob" "$ROOT/bench/iob.c" || die "cannot build bench/iob.c with gcc -static (Debian: libc6-dev)"
cat >"$ov/iobench.sh" <<GUEST
port=\$1
echo "IOB info eth0 \$(basename \$(readlink /sys/class/net/eth0/device/driver)) vda \$(basename \$(readlink /sys/block/vda/device/driver)) max_sectors_kb \$(cat /sys/block/vda/queue/max_sectors_kb) max_segments \$(cat /sys/block/vda/queue/max_segments) nics \$(ls /sys/class/net | tr '\\n' ' ')"
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || echo "IOB error eth0"
iob seqwrite /dev/vda $SEQ_MIB
iob seqread /dev/vda $SEQ_MIB
iob randwrite /dev/vda $RAND_OPS $SEQ_MIB
iob randread /dev/vda $RAND_OPS $SEQ_MIB
iob tcpsend 10.0.2.2 \$port $TCP_MIB
echo "IOB done"
GUEST
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"

# The disk: written through once, so no run pays for the host allocating
# it, then synced and dropped from the page cache, so that the first run
# does not pay for writing back or invalidating the cached pages (a direct
# write does both first) and every run starts alike: with cache=none
# neither VM leaves the image cached.
disk=$work/disk.img
dd if=/dev/zero of="$disk" bs=1M count="$SEQ_MIB" conv=fsync status=none || die "cannot write $disk"
dd if="$disk" iflag=nocache count=0 status=none

K=$GUEST_DIR/vmlinuz
I=$work/initrd.img
APPEND="console=ttyS0 quiet -- sh /iobench.sh @PORT@"
export IO_SEQ_MIB=$SEQ_MIB IO_RAND_OPS=$RAND_OPS IO_TCP_MIB=$TCP_MIB IO_LIMIT=$LIMIT IO_ROUNDS=$ROUNDS
export IO_KEEP=${IO_BENCH_KEEP:-}
echo "disk and network I/O in the guest, $ROUNDS rounds, kernel $(cat "$GUEST_DIR/version"), 512 MiB, 1 CPU;" \
	"disk $SEQ_MIB MiB raw, random $RAND_OPS ops, TCP $TCP_MIB MiB; cache=$CACHE; QEMU: -M $QEMU_MACHINE -accel tcg"
python3 - "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M \
	--disk "$disk,format=raw,cache=$CACHE" --net user \
	-- qemu-system-x86_64 -accel tcg -M "$QEMU_MACHINE" -m 512M -nographic -no-reboot \
	-kernel "$K" -initrd "$I" -append "$APPEND" \
	-drive "file=$disk,format=raw,if=none,id=d0,cache=$CACHE" -device virtio-blk-pci,drive=d0 \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0 <<'PY'
import os, select, signal, socket, subprocess, sys, threading, time

argv = sys.argv[1:]
cut = argv.index("--")
cmds = {"corral": argv[:cut], "qemu-tcg": argv[cut + 1:]}
seq_mib = int(os.environ["IO_SEQ_MIB"])
rand_ops = int(os.environ["IO_RAND_OPS"])
tcp_mib = int(os.environ["IO_TCP_MIB"])
limit = float(os.environ["IO_LIMIT"])
rounds = int(os.environ["IO_ROUNDS"])
keep = os.environ.get("IO_KEEP")
PHASES = ["seqwrite", "seqread", "randwrite", "randread", "tcp"]
UNIT = {"seqwrite": "MiB/s", "seqread": "MiB/s", "randwrite": "IOPS", "randread": "IOPS", "tcp": "MiB/s"}


def listener():
    """A host-side TCP sink on loopback: counts bytes, timestamps the first and the last."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    res = {}

    def run():
        try:
            c, _ = s.accept()
        except OSError:
            return
        n = 0
        first = last = None
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            if first is None:
                first = time.monotonic()
            n += len(d)
            last = time.monotonic()
        c.close()  # the guest waits for this before its end marker
        res.update(bytes=n, first=first, last=last)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return s, t, res


def one_run(name, r):
    """Boots one VM, returns {phase: throughput} and a note."""
    s, t, res = listener()
    port = s.getsockname()[1]
    cmd = [a.replace("@PORT@", str(port)) for a in cmds[name]]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    marks, log, buf, ginfo = {}, [], b"", []
    done = False
    while not done and time.monotonic() - t0 < limit:
        rl, _, _ = select.select([p.stdout], [], [], 1.0)
        if not rl:
            if p.poll() is not None:
                break
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        now = time.monotonic()
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.decode(errors="replace").rstrip("\r")
            log.append("%9.3f %s" % (now - t0, line))
            w = line.split()
            if len(w) >= 2 and w[0] == "IOB":
                if w[1] == "done":
                    done = True
                elif w[1] == "info":
                    ginfo.append(" ".join(w[2:]))
                elif len(w) < 3:
                    pass
                elif w[2] in ("start", "end"):
                    marks[(w[1], w[2])] = (now, w[3:])
                elif w[1] == "error":
                    done = True
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    s.close()
    t.join(5)
    if keep:
        with open(os.path.join(keep, "%s.%d.log" % (name, r)), "w") as f:
            f.write("\n".join(log) + "\n")
    out, notes = {}, []
    for ph in PHASES[:4]:
        if (ph, "start") in marks and (ph, "end") in marks:
            a, _ = marks[(ph, "start")]
            b, info = marks[(ph, "end")]
            amount, bad = int(info[0]), int(info[1])
            if bad:
                notes.append("%s: %d blocks read back wrong" % (ph, bad))
                continue
            dt = b - a
            out[ph] = amount / dt / (1 << 20) if ph.startswith("seq") else amount / dt
    if res.get("bytes") == tcp_mib << 20 and res["last"] > res["first"]:
        out["tcp"] = res["bytes"] / (res["last"] - res["first"]) / (1 << 20)
    elif res:
        notes.append("tcp: host received %d of %d bytes" % (res.get("bytes", 0), tcp_mib << 20))
    if ("seqwrite", "start") in marks:
        out["boot"] = marks[("seqwrite", "start")][0] - t0
    if len(out) < len(PHASES) + 1:
        notes.append("incomplete run; console tail:\n    " + "\n    ".join(log[-15:]))
    if r == 1:
        notes = ["guest: " + i for i in ginfo] + notes
    return out, notes


def fmt(ph, v):
    if v is None:
        return "FAILED"
    return ("%.0f" % v) if UNIT[ph] == "IOPS" else ("%.1f" % v)


def median(xs):
    xs = sorted(xs)
    return xs[(len(xs) - 1) // 2] if xs else None


results = {n: {ph: [] for ph in PHASES + ["boot"]} for n in cmds}
for r in range(1, rounds + 1):
    for name in cmds:
        out, notes = one_run(name, r)
        for k, v in out.items():
            results[name][k].append(v)
        print("round %d %-8s: " % (r, name) +
              ", ".join("%s %s %s" % (ph, fmt(ph, out.get(ph)), UNIT[ph]) for ph in PHASES) +
              ("; boot to first phase %.1f s" % out["boot"] if "boot" in out else ""), flush=True)
        for n in notes:
            print("  " + n, flush=True)

print("median of %d rounds (throughput: higher is better; ratio = corral / qemu-tcg, target >= 1.00):" % rounds)
print("%-10s %12s %12s %8s" % ("phase", "corral", "qemu-tcg", "ratio"))
ok = True
for ph in PHASES:
    c = median(results["corral"][ph])
    q = median(results["qemu-tcg"][ph])
    ratio = "%.2fx" % (c / q) if c and q else "n/a"
    ok = ok and c is not None
    print("%-10s %12s %12s %8s" % (ph + " " + UNIT[ph].replace("MiB/s", "MiB/s"),
          fmt(ph, c), fmt(ph, q), ratio))
sys.exit(0 if ok else 1)
PY
