#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed inputs of the hdnic fuzzers (tests/fuzz/seeds-*): a driver
bringing a VF up and sending a frame, a multi-queue driver on the two-pair
ADI (control queue, second pair), a valid ring for the walker, receive-filter commands.  Run from the
repository root; the seeds are committed."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import vfio_user_client as vu  # noqa: E402

IOVA = 0x0


def rec(ctl, body):
    return struct.pack("<BH", ctl, len(body)) + body


def msg(cmd, payload=b"", fds=0, efd=False, vf=0):
    hdr = vu.HDR.pack(1, cmd, 16 + len(payload), 0, 0)
    return rec((vf << 7) | (4 if efd else 0) | fds, hdr + payload)


def mem(off, data, vf=0):
    return rec((vf << 7) | 0x20, struct.pack("<H", off // 16) + data)


def wr(off, data, region=vu.BAR0, vf=0):
    return msg(vu.REGION_WRITE, vu.ACCESS_S.pack(off, region, len(data)) + data, vf=vf)


def driver_up(vf=0):
    caps = json.dumps({"capabilities": {"max_msg_fds": 16, "write_multiple": True}}).encode()
    s = msg(vu.VERSION, struct.pack("<HH", 0, 2) + caps + b"\0", vf=vf)
    s += msg(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, IOVA, 256 * 1024), fds=1, vf=vf)
    s += msg(vu.DEVICE_SET_IRQS, vu.IRQ_SET_S.pack(20, 4 | 32, 2, 0, 3), fds=3, efd=True, vf=vf)
    s += wr(vu.STATUS, b"\x03", vf=vf)
    s += wr(vu.GFSELECT, struct.pack("<I", 0), vf=vf) + wr(vu.GF, struct.pack("<I", 0x20010020), vf=vf)
    s += wr(vu.GFSELECT, struct.pack("<I", 1), vf=vf) + wr(vu.GF, struct.pack("<I", 1), vf=vf)
    s += wr(vu.STATUS, b"\x0b", vf=vf)
    for q, base in ((0, 0x0000), (1, 0x3000)):
        s += wr(vu.Q_SELECT, struct.pack("<H", q), vf=vf) + wr(vu.Q_SIZE, struct.pack("<H", 16), vf=vf)
        s += wr(vu.Q_MSIX, struct.pack("<H", q + 1), vf=vf)
        s += wr(vu.Q_DESC, struct.pack("<Q", IOVA + base), vf=vf)
        s += wr(vu.Q_AVAIL, struct.pack("<Q", IOVA + base + 0x1000), vf=vf)
        s += wr(vu.Q_USED, struct.pack("<Q", IOVA + base + 0x2000), vf=vf)
        s += wr(vu.Q_ENABLE, struct.pack("<H", 1), vf=vf)
    s += wr(vu.STATUS, b"\x0f", vf=vf)
    return s


def driver_up_mq(dev=1):
    """Multi-queue on the fuzzers' two-pair ADI: 5 virtqueues, control queue 4."""
    caps = json.dumps({"capabilities": {"max_msg_fds": 16}}).encode()
    lo = 0x20010020 | (1 << 17) | (1 << 22)          # + CTRL_VQ, MQ
    s = msg(vu.VERSION, struct.pack("<HH", 0, 2) + caps + b"\0", vf=dev)
    s += msg(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, IOVA, 256 * 1024), fds=1, vf=dev)
    s += msg(vu.DEVICE_SET_IRQS, vu.IRQ_SET_S.pack(20, 4 | 32, 2, 0, 3), fds=3, efd=True, vf=dev)
    s += wr(vu.STATUS, b"\x03", vf=dev)
    s += wr(vu.GFSELECT, struct.pack("<I", 0), vf=dev) + wr(vu.GF, struct.pack("<I", lo), vf=dev)
    s += wr(vu.GFSELECT, struct.pack("<I", 1), vf=dev) + wr(vu.GF, struct.pack("<I", 1), vf=dev)
    s += wr(vu.STATUS, b"\x0b", vf=dev)
    for q in range(5):
        base = 0x3000 * q
        s += wr(vu.Q_SELECT, struct.pack("<H", q), vf=dev) + wr(vu.Q_SIZE, struct.pack("<H", 16), vf=dev)
        s += wr(vu.Q_MSIX, struct.pack("<H", q + 1), vf=dev)
        s += wr(vu.Q_DESC, struct.pack("<Q", IOVA + base), vf=dev)
        s += wr(vu.Q_AVAIL, struct.pack("<Q", IOVA + base + 0x1000), vf=dev)
        s += wr(vu.Q_USED, struct.pack("<Q", IOVA + base + 0x2000), vf=dev)
        s += wr(vu.Q_ENABLE, struct.pack("<H", 1), vf=dev)
    s += wr(vu.STATUS, b"\x0f", vf=dev)
    # control queue (4): VQ_PAIRS_SET 2, ack byte writable
    s += mem(0x30000, bytes([4, 0]) + struct.pack("<H", 2), vf=dev)
    s += mem(0xC000, struct.pack("<QIHH", IOVA + 0x30000, 4, 1, 1) +
             struct.pack("<QIHH", IOVA + 0x30040, 1, 2, 0), vf=dev)
    s += mem(0xD000, struct.pack("<HHH", 0, 1, 0), vf=dev)
    s += wr(0x1000 + 4 * 4, struct.pack("<H", 4), vf=dev)
    return s


def main():
    mac0 = bytes([2, 0, 0, 0, 0, 1])
    mac1 = bytes([2, 0, 0, 0, 0, 2])
    frame = vu.ether_frame(mac1, mac0, payload=b"seed")
    s = driver_up(0) + driver_up(1)
    # VF1 posts an RX buffer, VF0 sends a frame to it
    s += mem(0x0000, struct.pack("<QIHH", IOVA + 0x10000, 2048, 2, 0), vf=1)
    s += mem(0x1000, struct.pack("<HHH", 0, 1, 0), vf=1)
    s += mem(0x20000, bytes(12) + frame)
    s += mem(0x3000, struct.pack("<QIHH", IOVA + 0x20000, 12 + len(frame), 0, 0))
    s += mem(0x4000, struct.pack("<HHH", 0, 1, 0))
    s += wr(0x2000 + 64, struct.pack("<H", 1))
    s += wr(0x1004, struct.pack("<H", 1))
    s += rec(0x60, b"")
    s += rec(0x40, vu.ether_frame(b"\xff" * 6, bytes.fromhex("02aabbccddee")))
    s += msg(vu.REGION_READ, vu.ACCESS_S.pack(0, vu.BAR0, 0x4000))
    s += msg(vu.REGION_READ, vu.ACCESS_S.pack(0, vu.CONFIG, 256))
    s += msg(vu.DEVICE_GET_REGION_INFO, vu.REGION_INFO_S.pack(64, 0, 0, 0, 0, 0))
    s += msg(vu.DEVICE_GET_REGION_IO_FDS, vu.IO_FDS_S.pack(128, 0, 0, 0))
    s += msg(vu.DEVICE_FEATURE, struct.pack("<II", 8, (1 << 18) | 1))
    s += msg(vu.DMA_UNMAP, vu.DMA_UNMAP_S.pack(24, 0, IOVA, 256 * 1024))
    s += msg(vu.DEVICE_RESET)
    with open(os.path.join(HERE, "seeds-fuzz_vfu_msg", "driver-up-tx-rx"), "wb") as f:
        f.write(s)

    # output commit: hold, VF0 sends to VF1 (held), new epoch, commit, status, stop
    def oc(op, epoch=0, max_frames=0):
        return msg(vu.DEVICE_FEATURE, struct.pack("<II", 24, vu.FEATURE_SET | vu.FEAT_OUTPUT_COMMIT)
                   + vu.OUTPUT_COMMIT_S.pack(op, max_frames, epoch))
    s = driver_up(0) + driver_up(1)
    s += oc(vu.OUTPUT_START, 1, 2)
    s += mem(0x0000, struct.pack("<QIHH", IOVA + 0x10000, 2048, 2, 0), vf=1)
    s += mem(0x1000, struct.pack("<HHH", 0, 1, 0), vf=1)
    s += mem(0x20000, bytes(12) + frame)
    s += mem(0x3000, struct.pack("<QIHH", IOVA + 0x20000, 12 + len(frame), 0, 0))
    s += mem(0x4000, struct.pack("<HHH", 0, 1, 0))
    s += wr(0x2000 + 64, struct.pack("<H", 1))
    s += wr(0x1004, struct.pack("<H", 1))
    s += rec(0x60, b"")
    s += oc(vu.OUTPUT_EPOCH, 2)
    s += oc(vu.OUTPUT_COMMIT, 1)
    s += msg(vu.DEVICE_FEATURE, struct.pack("<II", 8 + vu.OUTPUT_STATUS_S.size,
                                            vu.FEATURE_GET | vu.FEAT_OUTPUT_COMMIT))
    s += oc(vu.OUTPUT_DISCARD)
    s += oc(vu.OUTPUT_STOP)
    with open(os.path.join(HERE, "seeds-fuzz_vfu_msg", "output-commit"), "wb") as f:
        f.write(s)

    # the ADI with two pairs: multi-queue, then a frame on the second pair's TX (queue 3)
    frame = vu.ether_frame(b"\xff" * 6, mac1, payload=b"mq-seed")
    s = driver_up_mq()
    s += mem(0x38000, bytes(12) + frame, vf=1)
    s += mem(0x9000, struct.pack("<QIHH", IOVA + 0x38000, 12 + len(frame), 0, 0), vf=1)
    s += mem(0xA000, struct.pack("<HHH", 0, 1, 0), vf=1)
    s += wr(0x2000 + 3 * 64, struct.pack("<H", 1), vf=1)
    s += wr(0x1000 + 3 * 4, struct.pack("<H", 3), vf=1)
    s += rec(0x60, b"")
    s += msg(vu.REGION_READ, vu.ACCESS_S.pack(0, vu.CONFIG, 256), vf=1)
    s += msg(vu.DEVICE_GET_REGION_IO_FDS, vu.IO_FDS_S.pack(256, 0, 0, 0), vf=1)
    with open(os.path.join(HERE, "seeds-fuzz_vfu_msg", "adi-multiqueue"), "wb") as f:
        f.write(s)

    # a valid 16-entry TX ring for the walker: desc at 0, avail at 0x100, used at 0x200
    ring = bytearray(0x1000)
    for i in range(4):
        struct.pack_into("<QIHH", ring, 16 * i, 0x100000 + 0x800 + 64 * i, 64,
                         1 if i < 3 else 0, i + 1)
    struct.pack_into("<HHH", ring, 0x100, 0, 1, 0)
    hdr = struct.pack("<BBHHHH", 4, 2, 0, 0x10, 0x20, 0)
    with open(os.path.join(HERE, "seeds-fuzz_virtq", "chain-of-4"), "wb") as f:
        f.write(hdr + bytes(ring))

    write_rx_filter_seeds()


def write_rx_filter_seeds():
    """Receive-filter command records: u8 op (bit 7 MAC class), u8 len, data."""
    def rx(cmd, on):
        return bytes([cmd, 1, on])

    def mac(cmd, body):
        return bytes([0x80 | cmd, len(body)]) + body

    def table(uc, mc):
        return (struct.pack("<I", len(uc)) + b"".join(uc) +
                struct.pack("<I", len(mc)) + b"".join(mc))

    seeds = {
        "rx_modes": b"\x00" + rx(0, 0) + rx(1, 0) + rx(0, 1) + rx(1, 1),
        "mac_table": b"\x01" + rx(0, 0) + mac(0, table(
            [bytes.fromhex("02aabbccdd77")],
            [bytes.fromhex("333300000001"), bytes.fromhex("01005e0000fb")])),
        "mac_addr_set": b"\x00" + mac(1, bytes.fromhex("02aabbccdd01")),
    }
    d = os.path.join(HERE, "seeds-fuzz_rx_filter")
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
