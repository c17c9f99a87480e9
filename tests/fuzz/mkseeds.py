#!/usr/bin/env python3
# Regenerates tests/fuzz/seeds/cpu: short runs of real instructions taken
# from busybox's code (deterministic choice), as starting points for fuzz_cpu.
import os, random, re, subprocess, sys

src = sys.argv[1] if len(sys.argv) > 1 else "/bin/busybox"
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "cpu")
count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
os.makedirs(out, exist_ok=True)
dis = subprocess.run(["objdump", "-d", "-w", src], capture_output=True, text=True, check=True).stdout
line_re = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$")
funcs, cur = [], None
for line in dis.splitlines():
    if line.endswith(">:"):
        cur = []
        funcs.append(cur)
        continue
    m = line_re.match(line)
    if m and cur is not None:
        cur.append(bytes.fromhex(m.group(2)))
funcs = [f for f in funcs if len(f) >= 4]
rng = random.Random(0xc0a1)
for k in range(count):
    f = rng.choice(funcs)
    start = rng.randrange(0, max(1, len(f) - 4))
    n = rng.randrange(4, 32)
    code = b"".join(f[start:start + n])
    with open(os.path.join(out, "bb%03d" % k), "wb") as fp:
        fp.write(code)
