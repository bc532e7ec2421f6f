# SPDX-License-Identifier: MIT
"""CompSC in Python (devices/compsc.md): the driver side of the protocol on
top of the Python virtio driver, and the VMM side ("hdvm") that migrates a
function without migration support between two hdnics with the driver's
help.  What the C code in hdvm and hdguest does, provable without KVM.

KVM's dirty log is modelled by DirtyLog: every write the "vCPU" makes (the
driver and its guest application) marks its pages, as KVM's log would; the
device's DMA (hdnic writing into the memfd through its own mapping) marks
nothing, as on a device without a DMA dirty log.  Pre-copy passes copy
what is marked.  Hence the dummy write: the driver rewrites one byte of
each page a frame was received into, so the next pass copies it.
"""
import contextlib
import struct
import time

import vfio_user_client as vu
from vfio_user_client import VirtioNetVF
from hosts import UdpGuest, move_driver

# devices/vfio/compsc_abi.h (checked by test_wire_constants.py)
COMPSC_ECAP_POS = 0x100
COMPSC_ECAP_ID = 0x000b
COMPSC_VSEC_ID = 0x4353
COMPSC_VERSION = 1
COMPSC_PAGE_ENABLE = 0x1
COMPSC_ST_ACTIVE = 0x1
COMPSC_ST_REFUSED = 0x2
COMPSC_PAGE_MAGIC = 0x47505343
COMPSC_LOCK_WRITER = 0x80000000
COMPSC_LOCK_READERS = 0x7fffffff
COMPSC_MAX_STATS = 8
COMPSC_F_PF_REPLAYED = 0x1
# struct compsc_ecap: header, vsec, version, status, page_lo, page_hi, lock_timeout_ms
ECAP_S = struct.Struct("<IIHHIII")
ECAP_FIELDS = ("header", "vsec", "version", "status", "page_lo", "page_hi", "lock_timeout_ms")
# struct compsc_page: magic, version, nr_stats, lock, counter, flags, reserved, residual[8]
PAGE_S = struct.Struct("<IHHIIII" + "Q" * 8)
PAGE_FIELDS = ("magic", "version", "nr_stats", "lock", "counter", "flags", "reserved")
OFF_LOCK, OFF_COUNTER, OFF_FLAGS, OFF_RESIDUAL = 8, 12, 16, 24

PAGE = 4096
ETH_P_RARP = 0x8035


class DirtyLog:
    """What KVM's dirty log would hold: pages the vCPU wrote."""

    def __init__(self):
        self.pages = set()

    def mark(self, off, length=1):
        for p in range(off // PAGE, (off + max(length, 1) - 1) // PAGE + 1):
            self.pages.add(p)

    def take(self):
        pages, self.pages = self.pages, set()
        return pages


class TrackedRing(vu.Ring):
    """A ring whose driver-side writes are logged."""

    def __init__(self, mem, base, size, log):
        super().__init__(mem, base, size)
        self.log = log

    def set_desc(self, i, addr, length, flags=0, nxt=0):
        super().set_desc(i, addr, length, flags, nxt)
        self.log.mark(self.desc + 16 * i, 16)

    def publish_many(self, heads):
        super().publish_many(heads)
        self.log.mark(self.avail, 4 + 2 * self.size)

    def set_avail_idx(self, value):
        super().set_avail_idx(value)
        self.log.mark(self.avail, 4)

    def set_used_event(self, value):
        super().set_used_event(value)
        self.log.mark(self.avail + 4 + 2 * self.size, 2)


class LockTimeout(Exception):
    pass


class CompscVF(VirtioNetVF):
    """The Python virtio driver speaking CompSC: every device section under
    the shared page's read lock, restore on a new counter (replay, ring
    shift, statistics residual, announce), read-clear statistics
    accumulated, and the dummy write on received pages (dummy_write=False
    to measure what it is for)."""

    PAGE_OFF = 0xF0000          # the shared page (guest memory offset)

    def __init__(self, path, dummy_write=True, **kw):
        self.log = DirtyLog()
        self.dummy_write = dummy_write
        self.depth = 0
        self.seen = 0
        self.restores = 0
        self.tx_unsent = 0          # TX chains completed unsent at a restore
        self.rx_reposted = 0        # RX buffers posted again at a restore
        self.totals = dict.fromkeys(vu.STATS, 0)
        self.rx_mode_state = {}
        self.mac_tables = None
        self.announce_frames = 0
        self.lock_ns = 0            # time spent taking/releasing the read lock
        self.sections = 0
        super().__init__(path, **kw)
        self.rings = {q: self._tracked(r) for q, r in self.rings.items()}
        self._mac = bytes(self.c.region_read(vu.BAR0, vu.DEVCFG_OFF, 6))

    def _tracked(self, r):
        t = TrackedRing(self.mem, r.desc, r.size, self.log)
        t.avail_idx, t.last_used, t.kicked_idx = r.avail_idx, r.last_used, r.kicked_idx
        r.release()
        return t

    # ---- the shared page ----

    def page(self):
        return dict(zip(PAGE_FIELDS, PAGE_S.unpack_from(self.mem, self.PAGE_OFF)))

    def _u32(self, off):
        return struct.unpack_from("<I", self.mem, self.PAGE_OFF + off)[0]

    def _put_u32(self, off, v):
        struct.pack_into("<I", self.mem, self.PAGE_OFF + off, v)
        self.log.mark(self.PAGE_OFF + off, 4)

    def opt_in(self, host):
        """Set up the page and hand its address to the VMM (the capability
        write); True if the VMM took it."""
        PAGE_S.pack_into(self.mem, self.PAGE_OFF, COMPSC_PAGE_MAGIC, COMPSC_VERSION,
                         len(vu.STATS), 0, 0, 0, 0, *([0] * COMPSC_MAX_STATS))
        self.log.mark(self.PAGE_OFF, PAGE_S.size)
        status = host.cap_write(self.IOVA + self.PAGE_OFF | COMPSC_PAGE_ENABLE)
        self.seen = self._u32(OFF_COUNTER)
        return bool(status & COMPSC_ST_ACTIVE)

    @contextlib.contextmanager
    def section(self, timeout=5.0):
        """A device section: under the read lock, restored first if the
        counter moved."""
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        t0 = time.perf_counter_ns()
        deadline = time.monotonic() + timeout
        while True:
            v = self._u32(OFF_LOCK)
            if not v & COMPSC_LOCK_WRITER:
                self._put_u32(OFF_LOCK, v + 1)      # a CAS in a real driver
                break
            if time.monotonic() > deadline:
                raise LockTimeout("the VMM holds the CompSC write lock")
            time.sleep(0.0002)
        self.lock_ns += time.perf_counter_ns() - t0
        self.depth = 1
        try:
            if self._u32(OFF_COUNTER) != self.seen:
                self.restore()
            yield
        finally:
            self.depth = 0
            t1 = time.perf_counter_ns()
            self._put_u32(OFF_LOCK, self._u32(OFF_LOCK) - 1)
            self.lock_ns += time.perf_counter_ns() - t1
            self.sections += 1

    # ---- restore (devices/compsc.md §4) ----

    def shift_ring(self, q, r):
        """CompSC §5.5: the entries the driver still owns move to positions
        0..n-1, so a device whose head restarts at 0 finds them."""
        u, a, size = r.last_used, r.avail_idx, r.size
        n = (a - u) & 0xFFFF
        base = (r.avail + 4) // 2
        owned = [r.u16[base + (u + k) % size] for k in range(n)]
        if q != vu.RX and q not in range(0, 2 * self.pairs, 2):
            self.tx_unsent += n                 # TX/control: completed unsent
            owned = []
        else:
            self.rx_reposted += n
        for k, head in enumerate(owned):
            r.u16[base + k] = head
        self.mem[r.used:r.used + 6 + 8 * size] = bytes(6 + 8 * size)
        self.log.mark(r.used, 6 + 8 * size)
        r.last_used = r.kicked_idx = 0
        r.set_avail_idx(len(owned))
        self.log.mark(r.avail, 4 + 2 * size)

    def restore(self):
        """The device is a fresh function: bring it to where the old one was."""
        self.depth += 1                         # we are inside the section
        try:
            self.w8(vu.STATUS, 0)
            for q, r in self.rings.items():
                self.shift_ring(q, r)
            self.w8(vu.STATUS, vu.S_ACK)
            self.w8(vu.STATUS, vu.S_ACK | vu.S_DRIVER)
            assert self.device_features() & self.feats == self.feats
            self.w32(vu.GFSELECT, 0)
            self.w32(vu.GF, self.feats & 0xFFFFFFFF)
            self.w32(vu.GFSELECT, 1)
            self.w32(vu.GF, self.feats >> 32)
            self.w8(vu.STATUS, vu.S_ACK | vu.S_DRIVER | vu.S_FEATURES_OK)
            assert self.status() & vu.S_FEATURES_OK
            for q, r in self.rings.items():
                self.program_queue(q, r.desc, r.avail, r.used)
            self.w16(vu.MSIX_CONFIG, 0)
            self.w8(vu.STATUS, vu.S_ACK | vu.S_DRIVER | vu.S_FEATURES_OK | vu.S_DRIVER_OK)
            if self.mq:
                assert self.ctrl(vu.CTRL_MQ, vu.CTRL_MQ_VQ_PAIRS_SET,
                                 struct.pack("<H", self.pairs)) == vu.CTRL_OK
            if self.rx_mode_state:
                VirtioNetVF.rx_mode(self, **self.rx_mode_state)
            if self.mac_tables is not None:
                VirtioNetVF.mac_table(self, *self.mac_tables)
            for q in range(0, 2 * self.pairs, 2):
                self.ring_doorbell(q)
            # statistics: what the old device counted after our last read
            for i, k in enumerate(vu.STATS):
                off = self.PAGE_OFF + OFF_RESIDUAL + 8 * i
                self.totals[k] += struct.unpack_from("<Q", self.mem, off)[0]
                struct.pack_into("<Q", self.mem, off, 0)
            self.log.mark(self.PAGE_OFF + OFF_RESIDUAL, 8 * len(vu.STATS))
            mac = bytes(self.c.region_read(vu.BAR0, vu.DEVCFG_OFF, 6))
            assert mac == self._mac, f"the PF did not replay the MAC ({mac.hex()})"
            self.seen = self._u32(OFF_COUNTER)
            self.restores += 1
            # tell the switches where we are now (as a guest's notify_peers)
            frame = (b"\xff" * 6 + self._mac + struct.pack("!H", ETH_P_RARP) +
                     bytes(46))
            self._send_locked(frame)
            self.announce_frames += 1
        finally:
            self.depth -= 1

    # ---- the driver's operations, each a device section ----

    def init_device(self, setup_queues=True):
        super().init_device(setup_queues)
        self.log.mark(0, self.ring_area)

    def mac(self):
        return self._mac

    def rx_mode(self, promisc=None, allmulti=None):
        with self.section():
            for k, v in (("promisc", promisc), ("allmulti", allmulti)):
                if v is not None:
                    self.rx_mode_state[k] = v
            return super().rx_mode(promisc, allmulti)

    def mac_table(self, unicast=(), multicast=()):
        with self.section():
            self.mac_tables = (list(unicast), list(multicast))
            return super().mac_table(unicast, multicast)

    def ctrl(self, cls, cmd, data=b"", timeout=5.0):
        self.log.mark(self.scratch, 0x801)
        with self.section():
            return super().ctrl(cls, cmd, data, timeout)

    def post_rx(self, count=None, q=vu.RX):
        with self.section():
            super().post_rx(count, q)

    def _send_locked(self, frame, q=vu.TX):
        r = self.rings[q]
        while r.pop_used() is not None:         # reclaim finished chains
            pass
        slot = self.tx_next[q] % self.QSIZE
        self.log.mark(self.bufs[q] + slot * self.BUF_SIZE, vu.NET_HDR_LEN + len(frame))
        return VirtioNetVF.send(self, frame, True, q)

    def send(self, frame, kick=True, q=vu.TX):
        with self.section():
            return self._send_locked(frame, q)

    def kick(self, q):
        with self.section():
            super().kick(q)

    def rx_take(self, q=vu.RX):
        """Take every received buffer off the used ring: (head, addr, len)
        each; with the dummy write, each of its pages is rewritten."""
        out = []
        with self.section():
            r = self.rings[q]
            while True:
                e = r.pop_used()
                if e is None:
                    break
                head, length = e
                addr = self.bufs[q] + head * self.BUF_SIZE
                if self.dummy_write:
                    for p in range(addr // PAGE, (addr + max(length, 1) - 1) // PAGE + 1):
                        off = max(addr, p * PAGE)
                        self.mem[off] = self.mem[off]   # the dummy write
                        self.log.mark(off)
                out.append((head, addr, length))
        return out

    def rx_repost(self, heads, q=vu.RX):
        if not heads:
            return
        with self.section():
            self.rings[q].publish_many(heads)
            self.ring_doorbell(q)

    def stats(self):
        """Guest-visible totals: read-clear counters accumulated."""
        with self.section():
            for k, v in self.stats_cap(whole=True).items():
                self.totals[k] += v
        return dict(self.totals)


class CompscGuest(UdpGuest):
    """UdpGuest on a CompscVF, with a socket-queue model: the driver takes
    frames off the ring into a backlog; the application handles at most
    app_batch of them per pass (None: all), so frames can wait in guest
    memory across a migration, as in a socket's receive queue."""

    def __init__(self, vf, ip, app_batch=None):
        super().__init__(vf, ip)
        self.backlog = []
        self.app_batch = app_batch

    def handle(self, f):
        super().handle(f)
        self.vf.log.mark(self.COUNTER_OFF, 16)

    def _send(self, frame):
        self.vf.send(frame + bytes(max(0, 60 - len(frame))))

    def pass_once(self):
        vf = self.vf
        took = vf.rx_take()
        self.backlog.extend(took)
        n = len(self.backlog) if self.app_batch is None else self.app_batch
        done, self.backlog = self.backlog[:n], self.backlog[n:]
        for _head, addr, length in done:
            self.handle(bytes(vf.mem[addr + vu.NET_HDR_LEN:addr + length]))
        vf.rx_repost([h for h, _, _ in done])
        return bool(took or done)

    def poll(self, duration=0.0, step=0.02):
        end = time.monotonic() + max(duration, step)
        while True:
            if self.pass_once():
                continue
            if time.monotonic() >= end:
                return
            time.sleep(0.001)


class CompscHost:
    """The VMM's side ("hdvm") for one device: the capability, the write
    lock with a bounded wait, the stop (statistics residual, reset), RAM
    pre-copy over the vCPU dirty log, the PF-held state replayed through
    the destination NIC's pf.sock, the counter and the unlock."""

    def __init__(self, vf, lock_timeout=0.5):
        self.vf = vf
        self.lock_timeout = lock_timeout
        self.status = 0
        self.result = {}

    def cap_write(self, page_lo):
        vf = self.vf
        off = (page_lo & ~0xFFF) - vf.IOVA
        ok = (page_lo & COMPSC_PAGE_ENABLE and 0 <= off < vf.MEM_SIZE and
              struct.unpack_from("<I", vf.mem, off)[0] == COMPSC_PAGE_MAGIC)
        self.page_off = off
        self.status = COMPSC_ST_ACTIVE if ok else COMPSC_ST_REFUSED
        return self.status

    def _lock(self, mem=None):
        return struct.unpack_from("<I", self.vf.mem if mem is None else mem,
                                  self.page_off + OFF_LOCK)[0]

    def _set(self, off, v, mem=None):
        mem = self.vf.mem if mem is None else mem
        struct.pack_into("<I", mem, self.page_off + off, v)
        if mem is self.vf.mem:
            self.vf.log.mark(self.page_off + off, 4)   # hdvm's writes are logged too

    def write_lock(self):
        self._set(OFF_LOCK, self._lock() | COMPSC_LOCK_WRITER)
        deadline = time.monotonic() + self.lock_timeout
        while self._lock() & COMPSC_LOCK_READERS:
            if time.monotonic() > deadline:
                self._set(OFF_LOCK, self._lock() & ~COMPSC_LOCK_WRITER)
                raise LockTimeout(f"the guest driver held the CompSC lock for more than "
                                  f"{int(self.lock_timeout * 1000)} ms")
            time.sleep(0.0005)

    def _copy(self, image, pages):
        for p in pages:
            image[p * PAGE:(p + 1) * PAGE] = self.vf.mem[p * PAGE:(p + 1) * PAGE]

    def migrate(self, dst_path, src_nic, src_dev, dst_nic, dst_dev, between=()):
        """Pre-copy (a full pass, then one pass after each callable in
        between, the guest running in them), then the stop and the switch.
        Returns the old client (the source function, reset).  Raises
        LockTimeout with the source untouched if the driver holds the lock."""
        vf = self.vf
        if self.status != COMPSC_ST_ACTIVE:
            raise RuntimeError(f"{src_dev} has no VFIO migration support and its guest "
                               f"driver did not opt into CompSC")
        t0 = time.monotonic()
        image = bytearray(vf.mem[:])
        vf.log.take()
        for run in between:
            run()
            self._copy(image, vf.log.take())
        # the final stop
        t_stop = time.monotonic()
        self.write_lock()
        # vCPUs parked (the guest is not called); the device's read-clear
        # counters into the residual, then reset: no more DMA
        residual = vf.stats_cap(whole=True)
        for i, k in enumerate(vu.STATS):
            off = self.page_off + OFF_RESIDUAL + 8 * i
            struct.pack_into("<Q", vf.mem, off,
                             struct.unpack_from("<Q", vf.mem, off)[0] + residual[k])
        vf.log.mark(self.page_off + OFF_RESIDUAL, 8 * len(vu.STATS))
        vf.c.reset()
        final = vf.log.take()
        self._copy(image, final)
        # the PF-held state, through the destination's management socket
        info = src_nic.dev_info(src_dev)
        q = info["qos"]
        for args in (("set-mac", dst_dev, info["mac"]),
                     ("trust", dst_dev, "on" if info["trusted"] else "off"),
                     ("qos", dst_dev, "--tx-rate", str(q["tx_rate"]), "--rx-rate",
                      str(q["rx_rate"]), "--weight", str(q["weight"]))):
            r = dst_nic.ctl(*args)
            assert r.returncode == 0, (args, r.stderr)
        old = move_driver(vf, dst_path, None, image=bytes(image))
        vf.rings = {qn: vf._tracked(r) for qn, r in vf.rings.items()}
        # destination: counter, PF_REPLAYED, unlock
        self._set(OFF_COUNTER, (struct.unpack_from("<I", vf.mem, self.page_off + OFF_COUNTER)[0]
                                + 1) & 0xFFFFFFFF)
        self._set(OFF_FLAGS, struct.unpack_from("<I", vf.mem, self.page_off + OFF_FLAGS)[0] |
                  COMPSC_F_PF_REPLAYED)
        self._set(OFF_LOCK, self._lock() & ~COMPSC_LOCK_WRITER)
        t_end = time.monotonic()
        self.result = {"total_ms": (t_end - t0) * 1000, "downtime_ms": (t_end - t_stop) * 1000,
                       "final_pages": len(final), "residual": residual}
        return old

    def resume_here(self):
        """A migration that failed after the stop: the source's device was
        reset, so the counter moves here and the driver restores it."""
        self._set(OFF_COUNTER, (struct.unpack_from("<I", self.vf.mem, self.page_off +
                                                   OFF_COUNTER)[0] + 1) & 0xFFFFFFFF)
        self._set(OFF_LOCK, self._lock() & ~COMPSC_LOCK_WRITER)
