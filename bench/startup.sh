#!/bin/bash
# Start-up benchmark of system VMs, each engine: time from `corral run` (the
# exec) to the guest's first instruction, and corral's resident memory
# beyond guest RAM for a 128 MiB guest. Firecracker documents <= 5 MiB of
# memory overhead and ~12 ms to API readiness; corral's targets are 3 MiB
# and 5 ms. Prints the median and best of REPEAT runs.
#
# The first instruction: tests/guests/bench_first.S writes port 0x80 first
# thing; with CORRAL_BENCH_T0 (CLOCK_MONOTONIC ns taken just before the
# exec) corral prints the time of that write. Memory: bench_touch.S touches
# every page of its 128 MiB, so peak RSS minus 128 MiB is corral's own.
set -u
CORRAL=${CORRAL:-build/corral}
BUILD=${BUILD:-$(dirname "$CORRAL")}
REPEAT=${REPEAT:-20}
G=$BUILD/tests/guests
for f in "$CORRAL" "$G/bench_first.bin" "$G/bench_touch.bin"; do
	if [ ! -e "$f" ]; then
		echo "bench: $f not built (run make tests)" >&2
		exit 1
	fi
done
command -v python3 >/dev/null 2>&1 || {
	echo "bench: python3 is needed to time the exec precisely" >&2
	exit 1
}

engines="emu"
if "$CORRAL" run --flat "$G/bench_first.bin" --mem 16M --serial none --engine kvm </dev/null 2>/dev/null; then
	engines="emu kvm auto"
else
	echo "bench: no usable /dev/kvm: emu only" >&2
fi
echo "start-up, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs"
"$CORRAL" info | sed -n 's/^auto picks: /auto picks: /p'

python3 - "$CORRAL" "$G" "$REPEAT" $engines <<'PY'
import os, sys, time, statistics

corral, gdir, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
engines = sys.argv[4:]
GUEST_KIB = 128 * 1024

def spawn(engine, guest):
    """Runs corral once; returns (ms to the first guest instruction, peak RSS KiB)."""
    r, w = os.pipe()
    args = [corral, "run", "--flat", os.path.join(gdir, guest), "--mem", "128M",
            "--serial", "none", "--engine", engine]
    env = dict(os.environ)
    fa = [(os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_CLOSE, r)]
    t0 = time.monotonic_ns()
    env["CORRAL_BENCH_T0"] = str(t0)
    pid = os.posix_spawn(corral, args, env, file_actions=fa)
    os.close(w)
    err = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        err += b
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench: corral failed (%s, %s): %s" % (engine, guest, err.decode(errors="replace")))
    ms = None
    for line in err.decode().splitlines():
        if "first guest instruction" in line:
            ms = float(line.split("instruction ")[1].split(" ms")[0])
    # ru_maxrss starts from this (forking) process's own peak, so it is only
    # meaningful above python's size: the touched 128 MiB guest is
    return ms, ru.ru_maxrss

print("| engine | first instruction, median | best | RSS beyond guest RAM (128 MiB touched) |")
print("| --- | ---: | ---: | ---: |")
for e in engines:
    t = [spawn(e, "bench_first.bin") for _ in range(repeat)]
    ms = [x[0] for x in t]
    touch = [spawn(e, "bench_touch.bin")[1] for _ in range(max(3, repeat // 5))]
    over = statistics.median(touch) - GUEST_KIB
    print("| %s | %.2f ms | %.2f ms | %.2f MiB |" % (e, statistics.median(ms), min(ms), over / 1024.0))
print("targets: <= 5 ms to the first instruction, <= 3 MiB beyond guest RAM "
      "(Firecracker: ~12 ms to API readiness, <= 5 MiB)")
PY

# Peak RSS of the whole process when the guest touches almost nothing (GNU
# time measures from its own small fork).
if [ -x /usr/bin/time ]; then
	for e in $engines; do
		/usr/bin/time -f "peak RSS, $e, guest RAM untouched: %M KiB" "$CORRAL" run --flat "$G/bench_first.bin" \
			--mem 128M --serial none --engine "$e" </dev/null 2>&1 | grep '^peak'
	done
fi
