#!/bin/bash
# Snapshot benchmark (make bench-snapshot), emu engine:
# - restore to the guest's first instruction, from the exec of `corral
#   restore`, for idle 128 MiB and 1 GiB VMs (P50 and best of REPEAT;
#   target <= 2 ms; Firecracker reports ~3 ms for a snapshot load), with
#   the process's page faults and CPU time at that instruction, beside
#   corral-dyn (the same program linked dynamically, when it is beside
#   CORRAL) and the floor: a C program that only prints the same line,
#   dynamic and static;
# - a snapshot of a 256 MiB 2-vCPU VM through the API (target <= 50 ms;
#   Firecracker's full snapshot: 180 ms);
# - clone rate: sequential restores of a booted busybox guest (the guest
#   kit) per second on one core (target >= 50);
# - host memory of 20 idle clones of that 256 MiB guest (sum of PSS)
#   against one;
# - beside QEMU TCG with the same kernel and initramfs: `migrate` to a file
#   and `-incoming` from it, save and restore times side by side.
# The first instruction: a flat guest whose loop writes port 0x80; with
# CORRAL_BENCH_T0 corral logs the time of the first write after T0.
# - restore of the busybox guest to its shell's answer: a newline typed at
#   once, the time until the prompt comes back (work after the first
#   instruction: what a faster start must not just postpone);
# PARTS=busybox runs only the busybox guest's figures (clones, memory, QEMU).
# BASE=path/to/an/older/corral times that build's restores interleaved with
# CORRAL's (same snapshots, same load) and prints the ratios.
set -u
CORRAL=${CORRAL:-build/corral}
BASE=${BASE:-}
REPEAT=${REPEAT:-30}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
[ -x "$CORRAL" ] || {
	echo "bench: $CORRAL not built" >&2
	exit 1
}
command -v python3 >/dev/null 2>&1 || {
	echo "bench: python3 is needed" >&2
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench_snapshot.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
echo "snapshots, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs"
if [ -n "$BASE" ] && [ ! -x "$BASE" ]; then
	echo "bench: BASE=$BASE is not an executable" >&2
	exit 1
fi
python3 - "$CORRAL" "$work" "$REPEAT" "$GUEST_DIR" "$BASE" <<'PY'
import os, re, signal, socket, statistics, subprocess, sys, time

corral, work, repeat, gdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
base = os.path.abspath(sys.argv[5]) if sys.argv[5] else None

# out %al, $0x80; inc %rax; jmp back
guest = os.path.join(work, "loop80.bin")
open(guest, "wb").write(bytes([0xe6, 0x80, 0x48, 0xff, 0xc0, 0xeb, 0xf9]))

def wait_for(path, secs=30):
    t = time.time() + secs
    while not os.path.exists(path):
        if time.time() > t:
            raise SystemExit("bench: %s did not appear" % path)
        time.sleep(0.01)

def api(sock, method, path, body=b""):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (method.encode(), path.encode(), len(body), body))
    r = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        r += b
    s.close()
    return int(r.split()[1])

def start_vm(args, sock):
    p = subprocess.Popen([corral, "run", "--engine", "emu", "--serial", "none", "--api-sock", sock] + args,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(sock)
    return p

def snapshot(sock, d, stop=True):
    cmd = [corral, "snapshot", sock, d] + (["--stop"] if stop else [])
    subprocess.run(cmd, check=True)

def task_cost(pid):
    """Page faults and CPU time (ms, every thread) of a running process so far."""
    try:
        flt = int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[7])
        cpu = sum(int(open("/proc/%d/task/%s/schedstat" % (pid, t)).read().split()[0])
                  for t in os.listdir("/proc/%d/task" % pid)) / 1e6
    except (OSError, IndexError, ValueError):
        return None, None
    return flt, cpu

cost = {}  # key -> [(faults, cpu ms)] at the line

def restore_once(d, pattern, extra=(), argv=None, key=None):
    """Spawns corral restore (or argv) with T0; returns ms from the exec to the log line matching
    pattern; with key, keeps the process's page faults and CPU time at that line in cost[key]."""
    r, w = os.pipe()
    env = dict(os.environ)
    t0 = time.monotonic_ns()
    env["CORRAL_BENCH_T0"] = str(t0)
    argv = argv or [corral, "restore", d, "--serial", "none", *extra]
    pid = os.posix_spawn(argv[0], argv, env,
                         file_actions=[(os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_CLOSE, r),
                                       (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)])
    os.close(w)
    buf, ms = b"", None
    while ms is None:
        b = os.read(r, 4096)
        if not b:
            break
        buf += b
        m = re.search(pattern.encode() + rb" ([0-9.]+) ms after start", buf)
        if m:
            ms = float(m.group(1))
            if key:
                cost.setdefault(key, []).append(task_cost(pid))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(r)
    if ms is None:
        raise SystemExit("bench: restore of %s: %s" % (d, buf.decode(errors="replace")))
    return ms

def p50(xs):
    return statistics.median(xs)

parts = os.environ.get("PARTS", "flat,busybox").split(",")

# ---- restore to the first instruction ----
# The floor beside it: the same timing of a C program that does nothing but
# print the line, linked dynamically (libc, as corral) and statically, so a
# loaded machine shows in the floor and the ratios stay comparable.
floor = {}
src = os.path.join(work, "floor.c")
open(src, "w").write(r"""#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long now = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
	fprintf(stderr, "bench: first guest instruction %.3f ms after start\n",
		(double)(now - strtoull(getenv("CORRAL_BENCH_T0"), NULL, 10)) / 1e6);
	pause();
	return 0;
}
""")
for kind, flags in (("dynamic", []), ("static", ["-static"])):
    exe = os.path.join(work, "floor-" + kind)
    if subprocess.run(["cc", "-O2", "-o", exe, src] + flags, stderr=subprocess.DEVNULL).returncode == 0:
        floor[kind] = exe

if "flat" in parts and not floor:
    print("floor: no C compiler (cc) to build the floor programs: floor skipped")

def costs(key):
    got = [c for c in cost.pop(key, []) if c[0] is not None]
    if not got:
        return "page faults and CPU time unknown"
    return "%d page faults, %.2f ms of CPU" % (p50([c[0] for c in got]), p50([c[1] for c in got]))

# corral beside corral-dyn, the same program linked dynamically (installed
# beside a static corral; it restores the same snapshot the same way)
dyn = os.path.join(os.path.dirname(os.path.abspath(corral)), "corral-dyn")
if "flat" in parts and not os.access(dyn, os.X_OK):
    print("corral-dyn: not beside %s (a dynamically linked corral): its figures skipped" % corral)
    dyn = None

first = {}
for mem in (("128M", "1G") if "flat" in parts else ()):
    sock, d = os.path.join(work, "r%s.sock" % mem), os.path.join(work, "snap-" + mem)
    p = start_vm(["--flat", guest, "--mem", mem], sock)
    time.sleep(0.2)
    snapshot(sock, d)
    p.wait()
    # interleaved with the floor programs, so that both see the same load
    xs, fl, ds, bs = [], {k: [] for k in floor}, [], []
    for _ in range(repeat):
        xs.append(restore_once(d, "first guest instruction", key="corral"))
        if base:
            bs.append(restore_once(d, "first guest instruction", key="base",
                                   argv=[base, "restore", d, "--serial", "none"]))
        if dyn:
            ds.append(restore_once(d, "first guest instruction", key="dyn",
                                   argv=[dyn, "restore", d, "--serial", "none"]))
        for k, exe in floor.items():
            fl[k].append(restore_once(None, "first guest instruction", argv=[exe], key=k))
    es = [restore_once(d, "restored, the engine starts") for _ in range(min(repeat, 10))]
    first[mem] = p50(xs)
    print("restore to first instruction, %-5s idle VM: P50 %.2f ms, best %.2f ms (%d runs; "
          "engine starts at %.2f ms; %s; target <= 2 ms: %.2fx)" %
          (mem, p50(xs), min(xs), repeat, p50(es), costs("corral"), p50(xs) / 2.0))
    if bs:
        print("  BASE %s: P50 %.2f ms, best %.2f ms (%s; corral restore: %.2fx)" %
              (base, p50(bs), min(bs), costs("base"), p50(xs) / p50(bs)))
    if ds:
        print("  corral-dyn, linked dynamically: P50 %.2f ms, best %.2f ms (%s; corral restore: %.2fx)" %
              (p50(ds), min(ds), costs("dyn"), p50(xs) / p50(ds)))
    for k in fl:
        print("  floor: a C program that only prints the line, %s: P50 %.2f ms, best %.2f ms (%s; "
              "corral restore: %.2fx)" % (k, p50(fl[k]), min(fl[k]), costs(k), p50(xs) / p50(fl[k])))

# ---- snapshot of a 256 MiB 2-vCPU VM ----
sock = os.path.join(work, "s.sock")
if "flat" in parts:
    p = start_vm(["--flat", guest, "--mem", "256M", "--cpus", "2"], sock)
    time.sleep(0.2)
ts = []
for k in range(min(repeat, 15) if "flat" in parts else 0):
    d = os.path.join(work, "s%d" % k)
    os.mkdir(d)
    body = ('{"snapshot_path": "%s/state", "mem_file_path": "%s/memory"}' % (d, d)).encode()
    t = time.monotonic()
    st = api(sock, "PUT", "/snapshot/create", body)
    ts.append((time.monotonic() - t) * 1000)
    if st != 204 and st != 200:
        raise SystemExit("bench: snapshot/create answered %d" % st)
    subprocess.run(["rm", "-rf", d])
if "flat" in parts:
    api(sock, "PUT", "/actions", b'{"action_type": "Stop"}')
    p.wait()
    snap_ms = p50(ts)
    print("snapshot of a 256 MiB 2-vCPU VM (API, VM running): P50 %.2f ms, best %.2f ms "
          "(target <= 50 ms: %.2fx; Firecracker 180 ms)" % (snap_ms, min(ts), snap_ms / 50.0))

# ---- the guest kit: busybox, booted ----
kernel, initrd = os.path.join(gdir, "vmlinuz"), os.path.join(gdir, "initrd.img")
if not (os.path.exists(kernel) and os.path.exists(initrd)):
    print("busybox guest: the guest kit is not built (tools/mkguest.sh): clone figures skipped")
    sys.exit(0)

def boot_busybox(sock, out):
    r, w = os.pipe()
    p = subprocess.Popen([corral, "run", "--engine", "emu", "--mem", "256M", "--serial", "stdio",
                          "--api-sock", sock], stdin=r, stdout=open(out, "wb"), stderr=subprocess.DEVNULL)
    os.close(r)
    t = time.time() + 600
    while b"/ # " not in open(out, "rb").read():
        if time.time() > t:
            raise SystemExit("bench: the busybox guest did not boot")
        time.sleep(0.2)
    time.sleep(1)
    return p, w

bsock, bout, bsnap = os.path.join(work, "b.sock"), os.path.join(work, "b.out"), os.path.join(work, "bsnap")
t = time.monotonic()
p, w = boot_busybox(bsock, bout)
tb = time.monotonic()
snapshot(bsock, bsnap)
save_corral = (time.monotonic() - tb) * 1000
p.wait()
os.close(w)

cl = []
t = time.monotonic()
for _ in range(repeat):
    cl.append(restore_once(bsnap, "restored, the engine starts"))
wall = time.monotonic() - t
rate = repeat / wall
print("clone rate, busybox guest (256 MiB), one at a time: %.0f restores/s per core "
      "(restore to running P50 %.2f ms; target >= 50/s: %.2fx)" % (rate, p50(cl), rate / 50.0))

def restore_answer(d, exe):
    """ms from the exec of `exe restore d` (its console on a pipe) to the
    shell's prompt after a newline typed at once."""
    env = dict(os.environ)
    env.pop("CORRAL_BENCH_T0", None)
    t0 = time.monotonic()
    p = subprocess.Popen([exe, "restore", d, "--serial", "stdio"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(b"\n")
    p.stdin.flush()
    buf, ms = b"", None
    while ms is None:
        b = os.read(p.stdout.fileno(), 4096)
        if not b:
            break
        buf += b
        if b"/ # " in buf:
            ms = (time.monotonic() - t0) * 1000
    p.kill()
    p.wait()
    if ms is None:
        raise SystemExit("bench: restore of %s: no prompt after a newline: %r" % (d, buf[-200:]))
    return ms

ans, bans = [], []
for _ in range(min(repeat, 20)):
    ans.append(restore_answer(bsnap, corral))
    if base:
        bans.append(restore_answer(bsnap, base))
print("busybox guest: restore to the shell's answer (a newline typed at once): P50 %.2f ms, best %.2f ms" %
      (p50(ans), min(ans)))
if bans:
    print("  BASE %s: P50 %.2f ms, best %.2f ms (corral: %.2fx)" % (base, p50(bans), min(bans), p50(ans) / p50(bans)))

def pss_kib(pid):
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def clone_memory(exe, label):
    def start_clone():
        return subprocess.Popen([exe, "restore", bsnap, "--serial", "none"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    one = start_clone()
    time.sleep(3)
    one_pss = pss_kib(one.pid)
    clones = [one] + [start_clone() for k in range(1, 20)]
    time.sleep(5)
    total = sum(pss_kib(c.pid) for c in clones)
    alive = sum(c.poll() is None for c in clones)
    for c in clones:
        c.kill()
        c.wait()
    print("%smemory of 20 idle clones (256 MiB guest, %d running): sum of PSS %.1f MiB, one alone %.1f MiB: "
          "%.2fx one VM (20 separate VMs: 20x)" % (label, alive, total / 1024, one_pss / 1024, total / max(one_pss, 1)))

clone_memory(corral, "")
if base:
    clone_memory(base, "  BASE %s: " % base)

# corral's own save and restore of that guest, beside QEMU's
cr = [restore_once(bsnap, "restored, the engine starts") for _ in range(5)]

qemu = "qemu-system-x86_64"
if subprocess.run(["sh", "-c", "command -v " + qemu], stdout=subprocess.DEVNULL).returncode != 0:
    print("QEMU: %s not installed: comparison skipped" % qemu)
    sys.exit(0)

def hmp(sock, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.settimeout(60)
    buf = b""
    while b"(qemu)" not in buf:
        b = s.recv(4096)
        if not b:
            break
        buf += b
    s.sendall(cmd.encode() + b"\n")
    buf = b""
    while b"(qemu)" not in buf:  # none after quit: the monitor closes
        b = s.recv(4096)
        if not b:
            break
        buf += b
    s.close()
    return buf.decode(errors="replace")

def qemu_start(mon, out, extra):
    return subprocess.Popen([qemu, "-accel", "tcg", "-m", "256M", "-kernel", kernel, "-initrd", initrd,
                             "-append", "console=ttyS0 no_timer_check", "-display", "none", "-serial", "file:" + out,
                             "-monitor", "unix:%s,server,nowait" % mon, "-nodefaults", "-no-user-config"] + extra,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

mon, qout, qfile = os.path.join(work, "q.mon"), os.path.join(work, "q.out"), os.path.join(work, "q.state")
q = qemu_start(mon, qout, [])
t = time.time() + 900
while b"/ # " not in (open(qout, "rb").read() if os.path.exists(qout) else b""):
    if time.time() > t or q.poll() is not None:
        print("QEMU: the guest did not boot: comparison skipped")
        q.kill()
        sys.exit(0)
    time.sleep(0.5)
time.sleep(1)
t = time.monotonic()
hmp(mon, "stop")
hmp(mon, "migrate \"exec:cat > %s\"" % qfile)
while "completed" not in hmp(mon, "info migrate"):
    time.sleep(0.005)
qsave = (time.monotonic() - t) * 1000
hmp(mon, "quit")
q.wait()
qr = []
for _ in range(5):
    mon2 = mon + "2"
    t = time.monotonic()
    q = qemu_start(mon2, qout + "2", ["-incoming", "exec:cat %s" % qfile])
    wait_for(mon2)
    while "completed" not in hmp(mon2, "info migrate"):
        time.sleep(0.002)
    qr.append((time.monotonic() - t) * 1000)
    q.kill()
    q.wait()
    os.unlink(mon2)
print("busybox guest, 256 MiB: save (stop + write) corral %.1f ms (corral snapshot --stop, a process "
      "and the API included), QEMU TCG migrate to a file %.1f ms: %.2fx" % (save_corral, qsave, qsave / save_corral))
print("busybox guest, 256 MiB: restore to running corral P50 %.1f ms, QEMU TCG -incoming from the file "
      "P50 %.1f ms: %.1fx" % (p50(cr), p50(qr), p50(qr) / p50(cr)))
PY
