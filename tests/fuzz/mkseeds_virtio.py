#!/usr/bin/env python3
# Regenerates tests/fuzz/seeds/virtq, seeds/blk and seeds/net: well-formed rings and
# virtio-blk requests in the input format of fuzz_virtio.h (byte 0: log2
# queue size, byte 1: flags, then guest RAM from address 0 with the
# descriptor table at 0, the avail ring at 0x1000, the used ring at 0x2000).
import os, struct

DESC, AVAIL, BUF, IND = 0x0, 0x1000, 0x2800, 0x3000
NEXT, WRITE, INDIRECT = 1, 2, 4
here = os.path.dirname(os.path.abspath(__file__))


def image(qlog, flags, descs, heads, extra=(), indirect=()):
    ram = bytearray(0x3400)
    for i, (addr, ln, fl, nx) in enumerate(descs):
        struct.pack_into("<QIHH", ram, DESC + 16 * i, addr, ln, fl, nx)
    for i, (addr, ln, fl, nx) in enumerate(indirect):
        struct.pack_into("<QIHH", ram, IND + 16 * i, addr, ln, fl, nx)
    struct.pack_into("<HH", ram, AVAIL, 0, len(heads))
    for i, h in enumerate(heads):
        struct.pack_into("<H", ram, AVAIL + 4 + 2 * i, h)
    for off, data in extra:
        ram[off:off + len(data)] = data
    return bytes([qlog, flags]) + bytes(ram)


def blkhdr(t, sector):
    return struct.pack("<IIQ", t, 0, sector)


def save(sub, name, data):
    d = os.path.join(here, "seeds", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def req(t, sector, data_len, data_writable, flags=0, qlog=3, payload=b""):
    descs = [(BUF, 16, NEXT, 1)]
    nxt = 1
    if data_len:
        descs.append((BUF + 0x100, data_len, (WRITE if data_writable else 0) | NEXT, 2))
        nxt = 2
    descs.append((BUF + 0x600, 1, WRITE, 0))
    if not data_len:
        descs[0] = (BUF, 16, NEXT, 1)
    return image(qlog, flags, descs, [0], [(BUF, blkhdr(t, sector)), (BUF + 0x100, payload)])


# virtio-blk: read, write, flush, get-id, discard, write-zeroes, unknown
save("blk", "read", req(0, 2, 512, True))
save("blk", "write", req(1, 5, 1024, False, payload=b"\xab" * 1024))
save("blk", "flush", req(4, 0, 0, False))
save("blk", "get-id", req(8, 0, 20, True))
save("blk", "discard", req(11, 0, 16, False, payload=struct.pack("<QII", 3, 2, 0)))
save("blk", "write-zeroes", req(13, 0, 16, False, payload=struct.pack("<QII", 7, 4, 1)))
save("blk", "unsupported", req(99, 0, 0, False))
save("blk", "readonly-write", req(1, 5, 512, False, flags=0x80))
save("blk", "read-past-end", req(0, 63, 1024, True))
save("blk", "msix-snapshot", req(0, 1, 512, True, flags=8 | 16))
# an indirect request and two requests with EVENT_IDX
save("blk", "indirect", image(3, 2, [(IND, 48, INDIRECT, 0)], [0],
                              [(BUF, blkhdr(0, 4))],
                              [(BUF, 16, NEXT, 1), (BUF + 0x100, 512, WRITE | NEXT, 2), (BUF + 0x600, 1, WRITE, 0)]))
save("blk", "event-idx", image(4, 1, [(BUF, 16, NEXT, 1), (BUF + 0x600, 1, WRITE, 0),
                                      (BUF + 0x10, 16, NEXT, 3), (BUF + 0x100, 512, WRITE | NEXT, 4),
                                      (BUF + 0x601, 1, WRITE, 0)], [0, 2],
                               [(BUF, blkhdr(4, 0)), (BUF + 0x10, blkhdr(0, 9))]))

# the walker: plain chains, indirect, a loop, and several heads
save("virtq", "chain", image(3, 0, [(BUF, 16, NEXT, 1), (BUF + 0x100, 512, WRITE, 0)], [0]))
save("virtq", "indirect", image(3, 2, [(IND, 32, INDIRECT, 0)], [0], (),
                                [(BUF, 16, NEXT, 1), (BUF + 0x100, 8, WRITE, 0)]))
save("virtq", "loop", image(3, 0, [(BUF, 16, NEXT, 1), (BUF, 16, NEXT, 0)], [0]))
save("virtq", "event-idx", image(2, 1, [(BUF, 4, 0, 0), (BUF, 4, WRITE, 0), (BUF, 4, 0, 0)], [0, 1, 2]))
save("virtq", "big", image(8, 3, [(BUF + i, 1, NEXT if i < 30 else 0, i + 1) for i in range(31)], [0]))

# virtio-net (both queues share the rings; byte 1 bits 5-7: frames waiting
# for the guest): a frame sent with its header split, a short chain, receive
# buffers of several sizes, an oversized frame, and a snapshot.
hdr = bytes(12)
frame = bytes(range(64))
save("net", "tx", image(3, 0, [(BUF, 12, NEXT, 1), (BUF + 0x100, 64, 0, 0)], [0],
                        [(BUF, hdr), (BUF + 0x100, frame)]))
save("net", "tx-split-header", image(3, 0, [(BUF, 5, NEXT, 1), (BUF + 0x10, 7 + 64, 0, 0)], [0],
                                     [(BUF + 0x10 + 7, frame)]))
save("net", "tx-short", image(3, 0, [(BUF, 8, 0, 0)], [0]))
save("net", "rx", image(3, 1 << 5, [(BUF, 1526, WRITE, 0)], [0]))
save("net", "rx-several", image(3, 3 << 5 | 1, [(BUF, 1526, WRITE, 0), (BUF + 0x700, 100, WRITE, 0),
                                                (BUF + 0x800, 1526, WRITE, 0)], [0, 1, 2]))
save("net", "rx-tiny", image(3, 4 << 5, [(BUF, 8, WRITE, 0)], [0]))
save("net", "rx-indirect", image(3, 2 << 5 | 2, [(IND, 32, INDIRECT, 0)], [0], (),
                                 [(BUF, 12, WRITE | NEXT, 1), (BUF + 0x100, 1514, WRITE, 0)]))
save("net", "snapshot", image(3, 1 << 5 | 16, [(BUF, 1526, WRITE, 0)], [0]))
