# Exercised by t_dynamic.sh natively and under corral: the output must match.
import datetime, decimal, hashlib, json, re, struct, subprocess, sys, threading, zlib

data = {"name": "corral", "values": [1, 2.5, None, True], "nested": {"k": "v" * 3}}
text = json.dumps(data, sort_keys=True)
print(text, json.loads(text) == data)
print(re.findall(r"(\w)(\d+)", "a1 b22 c333 d"), re.sub(r"[aeiou]", "_", "process virtual machine"))
print(hashlib.sha256(b"corral" * 1000).hexdigest(), hashlib.md5(b"x").hexdigest())
blob = bytes(range(256)) * 100
z = zlib.compress(blob, 6)
print(len(z), zlib.decompress(z) == blob, zlib.crc32(blob))
decimal.getcontext().prec = 40
print(decimal.Decimal(1) / decimal.Decimal(7), decimal.Decimal("2").sqrt())
print(struct.pack("<iHqd", -5, 65535, 1 << 40, 1.5).hex(), struct.unpack(">I", b"\x01\x02\x03\x04"))
d = datetime.datetime(2024, 2, 29, 13, 45, 10)
print(d + datetime.timedelta(days=366, hours=5), d.strftime("%A %j"), d.isocalendar())
r = subprocess.run(["/bin/sh", "-c", "echo from child $((6 * 7)); exit 5"], capture_output=True, text=True)
print(repr(r.stdout), r.returncode)
out = subprocess.check_output([sys.executable, "-c", "print(sum(range(1000)))"], text=True)
print(out.strip())

lock = threading.Lock()
counts = {}
def work(n):
    h = hashlib.sha1()
    for i in range(2000):
        h.update(str(i * n).encode())
    with lock:
        counts[n] = h.hexdigest()
threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(counts.items()))
print(sum(x * x for x in range(100000)), 2 ** 200 % 1000003, 1e300 * 1e10, float("nan") != float("nan"))
print("%.17g %.6e" % (3.141592653589793 / 7, 2.0 ** -1000))
