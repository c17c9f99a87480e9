#!/usr/bin/env python3
"""Writes the state-stream fuzz seeds (tests/fuzz/seeds/state/) with an
encoder of its own written from docs/state-format.md, so the seeds also
check that the C reader follows the specification."""
import os
import struct
import sys
import zlib

MAGIC = b"CORRALST"


def header(kind, version=1):
    h = MAGIC + struct.pack("<IB", version, len(kind)) + kind.encode()
    return h + struct.pack("<I", zlib.crc32(h))


def section(name, instance, version, body):
    h = struct.pack("<B", len(name)) + name.encode() + struct.pack("<IIQ", instance, version, len(body))
    return b"SECT" + h + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(h)))


def end():
    return b"END!" + struct.pack("<I", zlib.crc32(b"END!"))


def text(s):
    return struct.pack("<I", len(s)) + s.encode()


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "empty": header("vm") + end(),
        "vm": header("vm")
        + section("config", 0, 1, text('{"mem_mib":128,"vcpus":1}'))
        + section("cpu", 0, 1, struct.pack("<16Q", *range(16)) + struct.pack("<QQ", 0x1000, 0x202))
        + section("cpu", 1, 1, struct.pack("<16Q", *range(16, 32)) + struct.pack("<QQ", 0x2000, 0x2))
        + section("uart", 0, 2, bytes(range(12)) + struct.pack("<B", 1))
        + section("clock", 0, 1, struct.pack("<Q", 123456789))
        + end(),
        "process": header("process")
        + section("thread", 7, 1, struct.pack("<I", 3) + text("main") + struct.pack("<Q", 0x400000))
        + section("files", 0, 1, struct.pack("<I", 2) + text("/etc/passwd") + struct.pack("<QI", 10, 0) + text("/tmp") + struct.pack("<QI", 0, 0x10000))
        + end(),
        "counts": header("vm") + section("bus", 0, 1, struct.pack("<I", 100000) + b"\x00" * 64) + end(),
        "newer": header("vm", 99) + end(),
        "trailing": header("vm") + end() + b"junk",
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds", "state"))
