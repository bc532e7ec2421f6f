# SPDX-License-Identifier: MIT
"""A guest-style virtio-net driver for an hdnic function over vfio-user.

VirtioNetVF drives an hdnic VF or ADI like a guest driver would: DMA-maps a
memfd as "guest memory" (or, with nofd=True, a bytearray mapped without an
fd that the server reaches with DMA_READ/DMA_WRITE), programs the virtqueues
through REGION_WRITE, posts frames and buffers, and with pairs > 1 runs
multi-queue with the control queue.  The vfio-user side is
vfio_user_client.py, which also still answers every name of this module
(`vu.VirtioNetVF`, `vu.RX`, ...), so its importers need not know of the split.
"""
import mmap
import os
import select
import struct
import time

from vfio_user_client import (BAR0, CONFIG, IRQ_ACTION_TRIGGER, IRQ_DATA_EVENTFD, MAX_FDS,
                              MSIX, VfioUserClient)

# common config offsets
DFSELECT, DF, GFSELECT, GF, MSIX_CONFIG, NUMQ, STATUS, CFGGEN = 0, 4, 8, 12, 16, 18, 20, 21
Q_SELECT, Q_SIZE, Q_MSIX, Q_ENABLE, Q_NOFF = 22, 24, 26, 28, 30
Q_DESC, Q_AVAIL, Q_USED = 32, 40, 48
ISR_OFF, DEVCFG_OFF, NOTIFY_OFF, DOORBELL_OFF = 0x100, 0x200, 0x1000, 0x2000
DB_STRIDE = 64

S_ACK, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET = 1, 2, 4, 8, 0x40
F_MAC, F_STATUS, F_EVENT_IDX, F_VERSION_1 = 1 << 5, 1 << 16, 1 << 29, 1 << 32
F_CTRL_VQ, F_CTRL_RX, F_MQ = 1 << 17, 1 << 18, 1 << 22
DESC_F_NEXT, DESC_F_WRITE = 1, 2
NET_HDR_LEN = 12
RX, TX = 0, 1
CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET = 4, 0
CTRL_RX, CTRL_RX_PROMISC, CTRL_RX_ALLMULTI = 0, 0, 1
CTRL_MAC, CTRL_MAC_TABLE_SET = 1, 0
CTRL_OK, CTRL_ERR = 0, 1
STATS_MAGIC = 0x5453
STATS = ("rx_packets", "rx_bytes", "rx_drops", "tx_packets", "tx_bytes", "tx_drops")


def align(x, a):
    return (x + a - 1) // a * a


class Ring:
    """One split virtqueue laid out in the driver's memory.  Ring indexes are
    read and written as single aligned 16-bit accesses, as virtio requires:
    the device polls them while the driver updates them."""

    def __init__(self, mem, base, size):
        self.mem, self.size = mem, size
        self.u16 = memoryview(mem).cast("H")
        self.desc, self.avail, self.used = base, base + 0x1000, base + 0x2000
        self.avail_idx = 0
        self.last_used = 0
        self.kicked_idx = 0      # avail_idx at the previous kick

    def release(self):
        self.u16.release()

    def set_desc(self, i, addr, length, flags=0, nxt=0):
        struct.pack_into("<QIHH", self.mem, self.desc + 16 * i, addr, length, flags, nxt)

    def publish(self, head):
        self.publish_many((head,))

    def publish_many(self, heads):
        """Make several chains available with one index update."""
        ring = (self.avail + 4) // 2
        for head in heads:
            self.u16[ring + self.avail_idx % self.size] = head
            self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.u16[(self.avail + 2) // 2] = self.avail_idx

    def set_avail_idx(self, value):
        self.avail_idx = value & 0xFFFF
        self.u16[(self.avail + 2) // 2] = self.avail_idx

    def set_used_event(self, value):
        self.u16[(self.avail + 4) // 2 + self.size] = value & 0xFFFF

    def used_idx(self):
        return self.u16[(self.used + 2) // 2]

    def used_flags(self):
        return self.u16[self.used // 2]

    def avail_event(self):
        return self.u16[(self.used + 4 + 8 * self.size) // 2]

    def pop_used(self):
        """Next used element (id, len) or None."""
        if self.used_idx() == self.last_used:
            return None
        off = self.used + 4 + 8 * (self.last_used % self.size)
        self.last_used = (self.last_used + 1) & 0xFFFF
        return struct.unpack_from("<II", self.mem, off)


class VirtioNetVF:
    """A guest-style driver for one hdnic function (VF or ADI), with a memfd
    as guest memory mapped at `iova`.  With pairs > 1 it negotiates
    multi-queue, sets up that many queue pairs and the control queue, and
    tells the device how many pairs it uses.  With ctrl_rx it negotiates
    CTRL_VQ + CTRL_RX (receive filtering) and sets up the control queue.
    With nofd the guest memory is a bytearray mapped without an fd: rings,
    buffers and frames all go through the server's DMA_READ/DMA_WRITE."""

    MEM_SIZE = 1 << 20
    IOVA = 0x40000000
    QSIZE = 16
    BUF_SIZE = 2048

    def __init__(self, path, event_idx=True, irqs=True, iova=None, qsize=None, pairs=1,
                 mq=None, ctrl_rx=False, nofd=False, caps=None):
        self.IOVA = VirtioNetVF.IOVA if iova is None else iova
        self.QSIZE = qsize or VirtioNetVF.QSIZE
        self.pairs = pairs
        self.mq = pairs > 1 if mq is None else mq
        self.c = VfioUserClient(path)
        self.c.version(caps=caps)
        self.max_pairs = struct.unpack("<H", self.c.region_read(BAR0, DEVCFG_OFF + 8, 2))[0]
        self.ctrl_rx = ctrl_rx
        self.ctrl_index = (2 * self.max_pairs if self.mq else 2) if self.mq or ctrl_rx else None
        self.queues = list(range(2 * pairs)) + ([self.ctrl_index] if self.ctrl_index else [])
        ring_area = align(len(self.queues) * 0x3000, 0x10000)
        buf_area = len(self.queues) * self.QSIZE * self.BUF_SIZE
        self.scratch = ring_area + buf_area          # control commands
        self.MEM_SIZE = max(VirtioNetVF.MEM_SIZE, align(self.scratch + 0x1000, 1 << 20))
        self.nofd = nofd
        self.closed = False
        if nofd:
            self.memfd = -1
            self.mem = self.c.dma_map_nofd(self.IOVA, self.MEM_SIZE)
        else:
            self.memfd = os.memfd_create("guest-ram")
            os.ftruncate(self.memfd, self.MEM_SIZE)
            self.mem = mmap.mmap(self.memfd, self.MEM_SIZE)
            self.c.dma_map(self.memfd, self.IOVA, self.MEM_SIZE)
        self.ring_area = ring_area
        self.rings = {q: Ring(self.mem, 0x3000 * i, self.QSIZE) for i, q in enumerate(self.queues)}
        self.bufs = {q: ring_area + i * self.QSIZE * self.BUF_SIZE
                     for i, q in enumerate(self.queues)}
        self.rx_buf, self.tx_buf = self.bufs[RX], self.bufs[TX]
        self.tx_next = {q: 0 for q in self.queues}
        self.db = None
        info = self.c.region_info(BAR0)
        if info["fd"] is not None:
            for off, size in info["areas"]:
                if off == DOORBELL_OFF:
                    self.db = mmap.mmap(info["fd"], size, offset=info["offset"] + off)
                    self.db16 = memoryview(self.db).cast("H")
            os.close(info["fd"])
        subs, self.kick_fds = self.c.region_io_fds(BAR0)
        self.kick_by_offset = {s[0]: self.kick_fds[s[2]] for s in subs}
        self.irq_fds = []
        if irqs:
            nvec = self.c.irq_info(MSIX)[1]
            self.irq_fds = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(nvec)]
            for start in range(0, nvec, MAX_FDS):
                chunk = self.irq_fds[start:start + MAX_FDS]
                self.c.set_irqs(MSIX, IRQ_DATA_EVENTFD | IRQ_ACTION_TRIGGER, start, len(chunk),
                                chunk)
        self.event_idx = event_idx
        self.init_device()

    def close(self):
        if self.closed:
            return                          # closed already
        self.closed = True
        if self.db:
            self.db16.release()
            self.db.close()
        for r in self.rings.values():
            r.release()
        if not self.nofd:
            self.mem.close()
            os.close(self.memfd)
        self.memfd = -1
        for fd in self.kick_fds + self.irq_fds:
            os.close(fd)
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # register helpers
    def w8(self, off, v):
        self.c.region_write(BAR0, off, struct.pack("<B", v))

    def w16(self, off, v):
        self.c.region_write(BAR0, off, struct.pack("<H", v))

    def w32(self, off, v):
        self.c.region_write(BAR0, off, struct.pack("<I", v))

    def w64(self, off, v):
        self.c.region_write(BAR0, off, struct.pack("<Q", v))

    def r8(self, off):
        return self.c.region_read(BAR0, off, 1)[0]

    def r16(self, off):
        return struct.unpack("<H", self.c.region_read(BAR0, off, 2))[0]

    def r32(self, off):
        return struct.unpack("<I", self.c.region_read(BAR0, off, 4))[0]

    def status(self):
        return self.r8(STATUS)

    def device_features(self):
        self.w32(DFSELECT, 0)
        lo = self.r32(DF)
        self.w32(DFSELECT, 1)
        return lo | self.r32(DF) << 32

    def init_device(self, setup_queues=True):
        self.w8(STATUS, 0)
        self.w8(STATUS, S_ACK)
        self.w8(STATUS, S_ACK | S_DRIVER)
        feats = F_VERSION_1 | F_MAC | F_STATUS | (F_EVENT_IDX if self.event_idx else 0)
        if self.mq:
            feats |= F_CTRL_VQ | F_MQ
        if self.ctrl_rx:
            feats |= F_CTRL_VQ | F_CTRL_RX
        assert self.device_features() & feats == feats
        self.feats = feats
        self.w32(GFSELECT, 0)
        self.w32(GF, feats & 0xFFFFFFFF)
        self.w32(GFSELECT, 1)
        self.w32(GF, feats >> 32)
        self.w8(STATUS, S_ACK | S_DRIVER | S_FEATURES_OK)
        assert self.status() & S_FEATURES_OK
        self.mem[0:self.ring_area] = bytes(self.ring_area)
        for r in self.rings.values():
            r.avail_idx = r.last_used = r.kicked_idx = 0
        for q in self.tx_next:
            self.tx_next[q] = 0
        if setup_queues:
            for q, r in self.rings.items():
                self.program_queue(q, r.desc, r.avail, r.used)
            self.w16(MSIX_CONFIG, 0)
            self.w8(STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
            if self.mq:
                assert self.ctrl(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET,
                                 struct.pack("<H", self.pairs)) == CTRL_OK

    def program_queue(self, q, desc, avail, used, size=None):
        self.w16(Q_SELECT, q)
        self.w16(Q_SIZE, size or self.QSIZE)
        self.w16(Q_MSIX, q + 1)
        self.w64(Q_DESC, self.IOVA + desc)
        self.w64(Q_AVAIL, self.IOVA + avail)
        self.w64(Q_USED, self.IOVA + used)
        self.w16(Q_ENABLE, 1)

    def mac(self):
        return bytes(self.c.region_read(BAR0, DEVCFG_OFF, 6))

    def ctrl(self, cls, cmd, data=b"", timeout=5.0):
        """One control-queue command; returns the device's ack byte."""
        r, base = self.rings[self.ctrl_index], self.scratch
        assert 2 + len(data) <= 0x800
        self.mem[base:base + 2 + len(data)] = bytes([cls, cmd]) + data
        self.mem[base + 0x800] = 0xFF
        r.set_desc(0, self.IOVA + base, 2 + len(data), DESC_F_NEXT, 1)
        r.set_desc(1, self.IOVA + base + 0x800, 1, DESC_F_WRITE)
        r.publish(0)
        self.notify(self.ctrl_index)
        deadline = time.monotonic() + timeout
        while r.pop_used() is None:
            assert time.monotonic() < deadline, "control command never completed"
            time.sleep(0.001)
        return self.mem[base + 0x800]

    def rx_mode(self, promisc=None, allmulti=None):
        """PROMISC / ALLMULTI on or off (None: leave); returns the acks."""
        acks = []
        for cmd, on in ((CTRL_RX_PROMISC, promisc), (CTRL_RX_ALLMULTI, allmulti)):
            if on is not None:
                acks.append(self.ctrl(CTRL_RX, cmd, bytes([1 if on else 0])))
        return acks

    def mac_table(self, unicast=(), multicast=()):
        """VIRTIO_NET_CTRL_MAC_TABLE_SET with these address lists (bytes each)."""
        data = b""
        for lst in (unicast, multicast):
            data += struct.pack("<I", len(lst)) + b"".join(lst)
        return self.ctrl(CTRL_MAC, CTRL_MAC_TABLE_SET, data)

    # doorbells
    def ring_doorbell(self, q):
        """Tell the device about new buffers the no-exit way."""
        if self.db is not None:
            self.db16[q * DB_STRIDE // 2] = self.rings[q].avail_idx     # one 16-bit store
        else:
            self.c.region_write(BAR0, DOORBELL_OFF + q * DB_STRIDE,
                                struct.pack("<H", self.rings[q].avail_idx))

    def notify(self, q, how="region"):
        """Ring the trapped notify register (as a VM exit would)."""
        if how == "ioeventfd":
            os.eventfd_write(self.kick_by_offset[NOTIFY_OFF + 4 * q], 1)
        else:
            self.w16(NOTIFY_OFF + 4 * q, q)

    def kick(self, q):
        """Doorbell always; notify when the device asks for it (event idx / flags)."""
        self.ring_doorbell(q)
        r = self.rings[q]
        old, r.kicked_idx = r.kicked_idx, r.avail_idx
        if self.event_idx:
            ev = r.avail_event()
            need = ((r.avail_idx - ev - 1) & 0xFFFF) < ((r.avail_idx - old) & 0xFFFF)
        else:
            need = not (r.used_flags() & 1)
        if need:
            self.notify(q, "ioeventfd" if self.kick_by_offset else "region")

    # data path
    def post_rx(self, count=None, q=RX):
        r = self.rings[q]
        for _ in range(count or self.QSIZE):
            slot = r.avail_idx % self.QSIZE
            r.set_desc(slot, self.IOVA + self.bufs[q] + slot * self.BUF_SIZE, self.BUF_SIZE,
                       DESC_F_WRITE)
            r.publish(slot)
        self.ring_doorbell(q)

    def send(self, frame, kick=True, q=TX):
        r = self.rings[q]
        slot = self.tx_next[q] % self.QSIZE
        self.tx_next[q] += 1
        addr = self.bufs[q] + slot * self.BUF_SIZE
        data = bytes(NET_HDR_LEN) + frame
        self.mem[addr:addr + len(data)] = data
        r.set_desc(slot, self.IOVA + addr, len(data))
        r.publish(slot)
        if kick:
            self.kick(q)
        return slot

    def wait_tx_done(self, count=1, timeout=5.0, q=TX):
        r = self.rings[q]
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            e = r.pop_used()
            if e is None:
                time.sleep(0.001)
                continue
            got.append(e)
        return got

    def recv(self, timeout=5.0, match=None, repost=False, q=RX):
        """Next received frame (without the virtio-net header) for which
        match(frame) holds, or None.  Non-matching frames are skipped; with
        repost their buffers go back to the device."""
        r = self.rings[q]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = r.pop_used()
            if e is None:
                time.sleep(0.001)
                continue
            head, length = e
            addr = self.bufs[q] + head * self.BUF_SIZE
            frame = bytes(self.mem[addr + NET_HDR_LEN:addr + length])
            if repost:
                r.publish(head)
                self.ring_doorbell(q)
            if match is None or match(frame):
                return frame
        return None

    def wait_irq(self, vector, timeout=2.0):
        """True if the vector's eventfd fired within timeout (and consume it)."""
        fd = self.irq_fds[vector]
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return False
        os.eventfd_read(fd)
        return True

    def stats_cap(self, whole=False):
        """The statistics capability's counters as the guest reads them: low
        dword then high dword of each (or the whole block in one read)."""
        pos = self.c.region_read(CONFIG, 0x34, 1)[0]
        for _ in range(16):
            cap = self.c.region_read(CONFIG, pos, 8)
            if cap[0] == 0x09 and cap[3] == 9 and struct.unpack_from("<H", cap, 6)[0] == STATS_MAGIC:
                break
            pos = cap[1]
            assert pos, "no statistics capability"
        base = pos + 8
        if whole:
            return dict(zip(STATS, struct.unpack("<6Q", self.c.region_read(CONFIG, base, 48))))
        vals = []
        for i in range(len(STATS)):
            lo = self.c.read32(CONFIG, base + 8 * i)
            hi = self.c.read32(CONFIG, base + 8 * i + 4)
            vals.append(lo | hi << 32)
        return dict(zip(STATS, vals))


def ether_frame(dst, src, ethertype=0x88B5, payload=b"hdnic-test"):
    """A minimal Ethernet frame (0x88b5: IEEE local experimental ethertype)."""
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))
