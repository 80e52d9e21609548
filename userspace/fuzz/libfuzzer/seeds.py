#!/usr/bin/env python3
# Writes the committed seed corpus (userspace/fuzz/corpus/TARGET/NAME): one
# well-formed input per case a target must handle, so that the bounded runs
# of "make check" start from every path instead of finding them by chance.
# The layouts are those the targets' header comments describe.
# Usage: seeds.py [CORPUS_DIR]
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz_vmbus: state byte, nested root (8), HvPostMessage input (256).
def post(conn, msg_type, payload, size=None):
    payload = payload.ljust(240, b"\0")
    return struct.pack("<IIII", conn, 0, msg_type, len(payload.rstrip(b"\0")) if size is None else size) + payload


def contact(version, sint=2, monitor=0):
    return struct.pack("<IIIIBBxxIQQ", 14, 0, version, 0, sint, 0, 0, monitor, monitor)


root = struct.pack("<Q", 0x1234000)
put("vmbus", "contact-5.0", b"\x00" + root + post(4, 1, contact(5 << 16), 40))
put("vmbus", "contact-4.1-relayed", b"\x01" + root + post(1, 1, contact(4 << 16 | 1), 40))
put("vmbus", "contact-5.3-direct-monitor", b"\x05" + root + post(4, 1, contact(5 << 16 | 3, 5, 0x5000), 40))
put("vmbus", "contact-old-version", b"\x02" + root + post(1, 1, contact(3 << 16), 40))
put("vmbus", "gpadl-relayed", b"\x03" + root + post(4, 1, struct.pack("<II", 8, 0) + b"\x11" * 32))
put("vmbus", "other-message", b"\x02" + root + post(4, 1, struct.pack("<II", 3, 0)))
put("vmbus", "bad-connection", b"\x00" + root + post(7, 1, contact(5 << 16), 40))
put("vmbus", "short", b"\x00" + root + b"\x04" * 100)

# fuzz_vmware: size selector, exit, direction, size, port, count (4), count=1
# flag, data offset (8), offset flag, then registers (7 x 8), twice.
def io(sel, exit_io, direction, size, port_sel, regs, hregs, count=1, off_flag=1):
    hdr = bytes([sel, 1 if exit_io else 2, direction, size, port_sel, 0])
    hdr += struct.pack("<I", count) + bytes([1 if count == 1 else 0]) + struct.pack("<Q", 0) + bytes([off_flag])
    return hdr + b"".join(struct.pack("<Q", r) for r in regs + hregs)


magic = 0x564D5868
getversion = [magic, 0xffffffff, 10, 0x5658, 0, 0, 0]
put("vmware", "in-getversion", io(2, True, 0, 4, 0, getversion, getversion))
put("vmware", "in-getmhz", io(3, True, 0, 4, 0, [magic, 0, 1, 0x5658, 0, 0, 0], [magic, 0, 1, 2, 0, 0, 0]))
put("vmware", "in-no-magic", io(2, True, 0, 4, 0, [0x12345678, 0, 10, 0x5658, 0, 0, 0], [0, 0, 10, 0, 0, 0, 0]))
put("vmware", "out", io(2, True, 1, 4, 0, getversion, getversion))
put("vmware", "in-hb-port", io(2, True, 0, 4, 1, getversion, [magic, 0, 10, 1, 0, 0, 0]))
put("vmware", "ins-count-2", io(2, True, 0, 4, 0, getversion, getversion, count=2))
put("vmware", "in-byte", io(0, True, 0, 1, 0, getversion, getversion))
put("vmware", "not-io", io(2, False, 0, 4, 0, getversion, getversion))

# fuzz_snapshot: part byte, then 20-byte records: kind, address flags,
# address (8), exit reason, flags/len, data (8).
def rec(kind, addr_flags, gpa, reason=0, fl=0, data=b"\0" * 8):
    return bytes([kind, addr_flags]) + struct.pack("<Q", gpa) + bytes([reason, fl]) + data.ljust(8, b"\0")


EFAULT_RET = 0x40 | 0x20
put("snapshot", "write-faults", b"\x00" + b"".join(
    rec(4, EFAULT_RET | (i & 1), 0x1000 + i * 0x800, fl=4 | 1) for i in range(8)))
put("snapshot", "mmio-writes", b"\x01" + b"".join(
    rec(5, i & 1, 0x1000 + i * 0x7f9, fl=8 - (i % 3), data=bytes([i, 1, 2, 3, 1, 5, 6, i | 1])) for i in range(8)))
put("snapshot", "handler", b"\x00" + b"".join(rec(2, i & 1, 0x1000 * (i + 1)) for i in range(6)))
put("snapshot", "mixed", b"\x01" + rec(4, EFAULT_RET, 0x1000, fl=4 | 0) + rec(5, 1, 0x2ffc, fl=8, data=b"\x01" * 8) +
    rec(4, EFAULT_RET, 0x0, fl=4 | 1) + rec(1, 0, 0x1010, reason=6, fl=4) + rec(3, 0x80, 0xffffffffffff0000))
# Nested state: VMX with a VMCS12 (TPR shadow, MSR-store area), SVM in guest mode.
vmx = struct.pack("<HHI", 1, 0, 128 + 4096 * 2) + struct.pack("<QQH", 0x9000, 0xffffffffffffffff, 0).ljust(120, b"\0")
vmcs12 = bytearray(4096)
struct.pack_into("<Q", vmcs12, 64, 0x3ff0)
struct.pack_into("<Q", vmcs12, 96, 0xa000)
struct.pack_into("<I", vmcs12, 748, 1 << 21)
struct.pack_into("<I", vmcs12, 772, 3)
put("snapshot", "nested-vmx", b"\x80" + vmx + bytes(vmcs12) + bytes(4096))
svm = struct.pack("<HHI", 2, 1, 128) + struct.pack("<Q", 0xb000).ljust(120, b"\0")
put("snapshot", "nested-svm", b"\x80" + svm)
