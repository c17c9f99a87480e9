#!/bin/bash
# Density (make bench-density, opt-in): N idle 64 MiB busybox VMs (the guest
# kit, emu engine) on one corrald, all created through its API, two ways in
# the same run:
# - cold: POST /vms with "start": true for each, every guest booting its
#   kernel;
# - clones: one VM booted, then POST /vms/{name}/clone (64 at most a
#   request) continuing from its snapshot (guest RAM mapped copy-on-write).
# For each: the time until every console shows busybox's prompt; host
# memory per VM (PSS of the VM process, and that beyond the guest's RAM
# mapping: the VMM's own cost); host CPU of all idle VMs over 10 s
# (target: under 5% of one core); GET /vms latency under that load (P50,
# P99 of 50). Printed with the clones' ratios to the cold boots.
# N=200 by default; N=20 for a quick run. MODE=clones (or cold) runs one of
# the two. Each idle figure also counts the VM processes' wake-ups (ended
# sleeps) per second. CMDLINE is the guests' kernel command line; the
# default quiets the stock kernel's own idle timers (docs/benchmarks.md,
# "corrald's density": they cost more than everything corral does), and
# CMDLINE='console=ttyS0 quiet' measures the kernel as Debian ships it.
# Run as root, each VM process is jailed as in production (namespaces, its
# own uid, seccomp).
set -u
CORRAL=${CORRAL:-build/corral}
N=${N:-200}
MODE=${MODE:-both}
CMDLINE=${CMDLINE:-console=ttyS0 quiet nowatchdog sysctl.vm.compaction_proactiveness=0 sysctl.vm.stat_interval=60}
case $MODE in
both | cold | clones) ;;
*)
	echo "bench: MODE is both, cold or clones, not '$MODE'" >&2
	exit 1
	;;
esac
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
CORRALD=$(dirname "$CORRAL")/corrald
for b in "$CORRAL" "$CORRALD"; do
	[ -x "$b" ] || {
		echo "bench: $b not built" >&2
		exit 1
	}
done
command -v python3 >/dev/null 2>&1 || {
	echo "bench: python3 is needed" >&2
	exit 1
}
[ -s "$GUEST_DIR/vmlinuz" ] && [ -s "$GUEST_DIR/initrd.img" ] || {
	echo "bench: the guest kit is not built (tools/mkguest.sh)" >&2
	exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench_density.XXXXXX")
mkdir "$work/img"
cp "$GUEST_DIR/vmlinuz" "$GUEST_DIR/initrd.img" "$work/img/"
# corrald starts each VM process from its own executable: a copy, so that a
# rebuild during the run changes nothing
cp "$CORRALD" "$work/corrald"
CORRALD=$work/corrald
"$CORRALD" --foreground --socket "$work/d.sock" --state-dir "$work/state" --image-dir "$work/img" 2>"$work/corrald.log" &
dpid=$!
cleanup() {
	kill "$dpid" 2>/dev/null
	for f in "$work"/state/vms/*/run.json; do
		[ -f "$f" ] || continue
		p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f" 2>/dev/null)
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for _ in $(seq 100); do [ -S "$work/d.sock" ] && break; sleep 0.05; done
echo "density, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg), N=$N$([ "$(id -u)" = 0 ] && echo ", jailed" || echo ", not jailed (not root)"), cmdline '$CMDLINE'"
python3 - "$work" "$N" "$dpid" "$MODE" "$CMDLINE" <<'PY'
import json, os, socket, statistics, sys, time

work, n, dpid, mode, cmdline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sock = os.path.join(work, "d.sock")
kernel, initrd = os.path.join(work, "img", "vmlinuz"), os.path.join(work, "img", "initrd.img")
MEM = int(os.environ.get("MEM_MIB", "96")) << 20
tick = os.sysconf("SC_CLK_TCK")

def api(method, path, body=None, timeout=600, raw=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock)
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, rest

def console(name):
    try:
        return open(os.path.join(work, "state", "vms", name, "vm", "console.log"), "rb").read()
    except OSError:
        return b""

def wait_prompt(names, limit):
    left, t = set(names), time.monotonic() + limit
    while left and time.monotonic() < t:
        left = {v for v in left if b"/ # " not in console(v)}
        time.sleep(0.2)
    return left

def pids():
    st, b = api("GET", "/vms")
    return {v["name"]: v["pid"] for v in json.loads(b) if v["pid"]}

def cpu_ticks(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except (OSError, IndexError):
        return 0

def sleeps(pid):
    """voluntary context switches (ended sleeps) of all the process's threads"""
    n = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            for line in open("/proc/%d/task/%s/status" % (pid, t)):
                if line.startswith("voluntary_ctxt_switches:"):
                    n += int(line.split()[1])
    except OSError:
        pass
    return n

def pss(pid):
    """(PSS of the process, PSS of its guest RAM mapping) in KiB"""
    total = ram = 0
    size = 0
    try:
        for line in open("/proc/%d/smaps" % pid):
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Pss:"):
                k = int(line.split()[1])
                total += k
                if size == MEM >> 10:
                    ram += k
    except OSError:
        pass
    return total, ram

def measure(label, names, t_start):
    left = wait_prompt(names, 3600)
    t_all = time.monotonic() - t_start
    if left:
        print("%s: %d VMs did not reach the prompt: %s" % (label, len(left), sorted(left)[:5]))
    time.sleep(2)  # settled
    p = pids()
    mine = [p[v] for v in names if v in p]
    m = [pss(x) for x in mine]
    tot = sum(a for a, _ in m) / len(m) / 1024
    beyond = sum(a - b for a, b in m) / len(m) / 1024
    c0 = sum(cpu_ticks(x) for x in mine) + cpu_ticks(dpid)
    w0 = sum(sleeps(x) for x in mine)
    time.sleep(10)
    c1 = sum(cpu_ticks(x) for x in mine) + cpu_ticks(dpid)
    w1 = sum(sleeps(x) for x in mine)
    cpu = (c1 - c0) / tick / 10 * 100
    wakes = (w1 - w0) / 10 / len(mine)
    lat = []
    for _ in range(50):
        t = time.monotonic()
        st, _ = api("GET", "/vms")
        lat.append((time.monotonic() - t) * 1000)
        assert st == 200
    lat.sort()
    r = {"start": t_all, "pss": tot, "beyond": beyond, "cpu": cpu, "p50": lat[24], "p99": lat[48],
         "running": len(mine), "wakes": wakes}
    print("%-7s %d VMs running: all at the prompt in %.1f s; PSS %.1f MiB/VM (%.1f MiB beyond guest RAM); "
          "idle CPU %.2f%% of one core (target < 5%%), %.2f wake-ups/s per VM process; "
          "GET /vms P50 %.1f ms, P99 %.1f ms"
          % (label, len(mine), t_all, tot, beyond, cpu, wakes, lat[24], lat[48]))
    sys.stdout.flush()
    return r

def rm_all(names):
    for v in names:
        api("DELETE", "/vms/%s?force=true" % v)

cfg = {"kernel": kernel, "initrd": initrd, "mem": MEM, "engine": "emu", "cmdline": cmdline}

# ---- cold: every VM boots ----
if mode != "clones":
    names = ["cold-%d" % k for k in range(n)]
    t = time.monotonic()
    for v in names:
        st, b = api("POST", "/vms", {"name": v, "config": cfg, "start": True})
        if st != 201:
            raise SystemExit("bench: POST /vms %s: %d %s" % (v, st, b[:200]))
    t_api = time.monotonic() - t
    print("cold: %d POST /vms in %.2f s (%.1f ms each)" % (n, t_api, t_api * 1000 / n))
    cold = measure("cold", names, t)
    rm_all(names)
if mode == "cold":
    raise SystemExit(0)

# ---- clones of one booted VM ----
st, b = api("POST", "/vms", {"name": "base", "config": cfg, "start": True})
if st != 201 or wait_prompt(["base"], 900):
    raise SystemExit("bench: the base VM did not boot: %d %s" % (st, b[:200]))
time.sleep(1)
t = time.monotonic()
made = []
while len(made) < n:
    k = min(64, n - len(made))
    st, b = api("POST", "/vms/base/clone", {"count": k, "prefix": "c%d" % len(made)})
    if st != 201:
        raise SystemExit("bench: clone: %d %s" % (st, b[:200]))
    made += json.loads(b)["names"]
t_api = time.monotonic() - t
print("clones: %d clones through %d POST /vms/base/clone in %.2f s" % (n, (n + 63) // 64, t_api))
# a clone continues at the prompt: its console shows it once the guest
# answers a newline
for v in made:
    api("POST", "/vms/%s/console" % v, raw=b"\n")
clone = measure("clones", made, t)
if mode == "both":
    print("clones/cold: start %.3fx, PSS %.2fx, beyond guest RAM %.2fx, idle CPU %.2fx, GET /vms P50 %.2fx"
          % (clone["start"] / cold["start"], clone["pss"] / cold["pss"], clone["beyond"] / cold["beyond"],
             clone["cpu"] / cold["cpu"] if cold["cpu"] else 0, clone["p50"] / cold["p50"]))
rm_all(made + ["base"])
PY
