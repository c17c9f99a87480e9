"""A job for tests/process/t_ckpt_python.sh: a heap of N KiB blocks, four
threads a round each changing and hashing a quarter of it, an input file
read a step per round, a line per round in OUT. Prints one result line
that depends on all of it (the same whatever order the threads run in).

    python3 ckpt_job.py N ROUNDS OUT IN
"""
import hashlib, sys, threading, time

N = int(sys.argv[1]); ROUNDS = int(sys.argv[2]); out = sys.argv[3]
heap = [bytearray(bytes([i % 251]) * 1024) for i in range(N)]
f = open(sys.argv[4], "rb")
lock = threading.Lock()
acc = hashlib.sha256()
def work(k, r):
    h = hashlib.sha256()
    for i in range(k, N, 4):
        heap[i][r % 1024] = (heap[i][r % 1024] + k + r) % 256
        h.update(heap[i])
    with lock:
        parts[k] = h.digest()
with open(out, "w") as o:
    for r in range(ROUNDS):
        parts = [None] * 4
        ts = [threading.Thread(target=work, args=(k, r)) for k in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        for p in parts: acc.update(p)
        acc.update(f.read(256))
        o.write("round %d\n" % r); o.flush()
        time.sleep(0.05)
print("result", acc.hexdigest()[:32])
