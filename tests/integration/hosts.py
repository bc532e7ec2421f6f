# SPDX-License-Identifier: MIT
"""Two hosts on one machine, for tests, benchmarks and demos (tools/ may
import this): network namespaces A and B each run their own hdnic whose
uplink is a veth (AF_PACKET, `--uplink iface:up0`) on a bridge in a `lan`
namespace; a `client` namespace sits on the same bridge; A and B also share
a point-to-point veth for migration streams.  Offloads stay at the kernel's
defaults (checksum offload on, as a new user has it).

    client(cl0 10.66.0.1) --+
                            br0 (ns lan) --- upA [A: hdnic iface:up0]
                            +------------- upB [B: hdnic iface:up0]
    A mig0 10.77.0.1/30 <----------------> B mig0 10.77.0.2/30

A UdpGuest is a "guest" made of the Python virtio driver: it answers ARP
for its IP and UDP counter requests (8-byte id -> id + counter) with the
counter kept in its guest memory, so a function moved between hosts with
its memory continues the count.
"""
import os
import mmap
import socket
import struct
import time
from pathlib import Path

from hdvmlib import HDNIC
from nichost import Hdnic, Netns, run
import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF

CLIENT_IP = "10.66.0.1"
MIG_IP = {"a": "10.77.0.1", "b": "10.77.0.2"}
COUNTER_PORT = 9000


def guest_ip(i):
    return f"10.66.0.{10 + i}"


class TwoHosts:
    """Namespaces lan, client, a, b and one hdnic per host (self.nic['a'])."""

    def __init__(self, tmp_path, vfs=2, extra=(), start_nics=True):
        tmp_path = Path(tmp_path)
        self.ns, self.nic = {}, {}
        try:
            for role in ("lan", "client", "a", "b"):
                self.ns[role] = Netns(prefix=f"h{role[0]}")
            lan = self.ns["lan"]
            lan.exec("ip", "link", "add", "br0", "type", "bridge")
            lan.exec("ip", "link", "set", "br0", "type", "bridge", "ageing_time", "30000")
            lan.exec("ip", "link", "set", "br0", "up")
            self._plug("client", "cl0")
            for h in ("a", "b"):
                self._plug(h, "up0")
            cl = self.ns["client"]
            cl.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "cl0")
            # the migration link A <-> B
            a, b = self.ns["a"], self.ns["b"]
            run("ip", "link", "add", "mig0", "netns", a.name, "type", "veth",
                "peer", "name", "mig0", "netns", b.name)
            for h, ns in (("a", a), ("b", b)):
                ns.exec("ip", "addr", "add", f"{MIG_IP[h]}/30", "dev", "mig0")
                ns.exec("ip", "link", "set", "mig0", "up")
            if start_nics:
                for h in ("a", "b"):
                    self.start_nic(h, tmp_path / f"nic{h}", vfs=vfs, extra=extra)
        except Exception:
            self.close()
            raise

    def _plug(self, role, ifname):
        """A veth from namespace role (ifname, up) to a port of br0 in lan."""
        lan, ns = self.ns["lan"], self.ns[role]
        port = f"p{role}"
        run("ip", "link", "add", ifname, "netns", ns.name, "type", "veth",
            "peer", "name", port, "netns", lan.name)
        lan.exec("ip", "link", "set", port, "master", "br0")
        lan.exec("ip", "link", "set", port, "up")
        ns.exec("ip", "link", "set", ifname, "up")

    def start_nic(self, host, directory, vfs=2, extra=()):
        self.nic[host] = Hdnic(HDNIC, directory, vfs=vfs, uplink="iface:up0",
                               netns=self.ns[host], name=f"nic{host}", extra=list(extra))
        return self.nic[host]

    def tx_csum_offload(self, role, ifname):
        """Whether ifname leaves transmit checksums to "hardware"
        (ETHTOOL_GTXCSUM through SIOCETHTOOL; no ethtool binary needed)."""
        import array
        import fcntl
        val = array.array("I", [0x16, 0])               # ETHTOOL_GTXCSUM, data
        addr, _ = val.buffer_info()
        ifr = struct.pack("16sP", ifname.encode(), addr) + bytes(16)
        with self.ns[role].socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), 0x8946, ifr)            # SIOCETHTOOL
        return bool(val[1])

    def udp_socket(self, timeout=2.0):
        s = self.ns["client"].socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        return s

    def close(self):
        for nic in self.nic.values():
            nic.stop()
        for ns in self.ns.values():
            ns.delete()


# ---- a guest made of the Python driver ----

def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def udp_checksum_ok(ip_hdr, udp):
    """The UDP checksum of a frame checks out (a zero checksum means none)."""
    if struct.unpack_from("!H", udp, 6)[0] == 0:
        return True
    pseudo = ip_hdr[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    return csum16(pseudo + udp) == 0xFFFF


def udp_frame(dst_mac, src_mac, src_ip, dst_ip, sport, dport, payload):
    """An Ethernet/IPv4/UDP frame with both checksums filled in."""
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", ~csum16(ip) & 0xFFFF) + ip[12:]
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    c = ~csum16(ip[12:20] + struct.pack("!BBH", 0, 17, udp_len) + udp) & 0xFFFF
    udp = udp[:6] + struct.pack("!H", c or 0xFFFF) + udp[8:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


class UdpGuest:
    """The Python driver as a guest with an IP: answers ARP and UDP counter
    requests; the counter (and the id of the request it answered last, so a
    retry is answered the same) lives at guest memory offset COUNTER_OFF, so
    it moves with the memory.  bad_csum counts UDP frames whose checksum did not
    check out (a guest without checksum offload drops those)."""

    COUNTER_OFF = 0xF8000

    def __init__(self, vf, ip):
        self.vf, self.ip = vf, ip
        self.ip_b = socket.inet_aton(ip)
        self.bad_csum = 0
        self.answered = 0
        self.seen = []

    @property
    def counter(self):
        return struct.unpack_from("<Q", self.vf.mem, self.COUNTER_OFF)[0]

    def _bump(self):
        v = self.counter + 1
        struct.pack_into("<Q", self.vf.mem, self.COUNTER_OFF, v)
        return v

    def handle(self, f):
        vf = self.vf
        if len(f) < 42:
            return
        etype = f[12:14]
        if etype == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == self.ip_b:
            reply = (f[6:12] + vf.mac() + b"\x08\x06" + f[14:20] + b"\x00\x02" + vf.mac() +
                     self.ip_b + f[22:28] + f[28:32])
            self._send(reply)
        elif etype == b"\x08\x00" and f[23] == 17 and f[30:34] == self.ip_b:
            ihl = (f[14] & 0xF) * 4
            ip_hdr, udp = f[14:14 + ihl], f[14 + ihl:]
            ulen = struct.unpack_from("!H", udp, 4)[0]
            udp = udp[:ulen]
            if not udp_checksum_ok(ip_hdr, udp):
                self.bad_csum += 1
                return
            sport, dport = struct.unpack_from("!HH", udp)
            if dport != COUNTER_PORT or ulen < 16:
                return
            rid = struct.unpack_from("!Q", udp, 8)[0]
            self.seen.append(rid)
            # a retry of the request answered last gets the same answer
            if rid and rid == struct.unpack_from("<Q", vf.mem, self.COUNTER_OFF + 8)[0]:
                val = self.counter
            else:
                val = self._bump()
                struct.pack_into("<Q", vf.mem, self.COUNTER_OFF + 8, rid)
            self._send(udp_frame(f[6:12], vf.mac(), self.ip, socket.inet_ntoa(ip_hdr[12:16]),
                                 dport, sport, struct.pack("!QQ", rid, val)))
            self.answered += 1

    def _send(self, frame):
        vf = self.vf
        tx = vf.rings[vu.TX]
        # reclaim finished transmit buffers so the ring never fills
        while tx.pop_used() is not None:
            pass
        vf.send(frame + bytes(max(0, 60 - len(frame))))

    def poll(self, duration=0.0, step=0.02):
        """Handle what arrived (for duration seconds at least once)."""
        deadline = time.monotonic() + duration
        while True:
            f = self.vf.recv(timeout=step, repost=True)
            if f is not None:
                self.handle(f)
                continue
            if time.monotonic() >= deadline:
                return


def read_state(c, chunk=1 << 16):
    """A function's whole device state, in STOP_COPY, read to its end."""
    stream = b""
    while True:
        part = c.mig_data_read(chunk)
        stream += part
        if len(part) < chunk:
            return stream


def move_driver(vf, path, stream, image=None):
    """Move the driver `vf` (its "guest") onto the function at path, as a
    VMM's destination would: its memory is copied into a new memfd (as RAM
    travels; `image`, what a pre-copy delivered, instead of the live
    memory when given) mapped at the same IOVA, interrupts and doorbells set
    up, the device state written in RESUMING and the function set RUNNING
    (with stream None the function stays as it is: fresh, for CompSC).  The
    driver then continues with its rings where it was.  On failure the
    driver is untouched.  Returns the old client, still connected to the
    source function."""
    c = VfioUserClient(path)
    memfd, mem, db, db16, kick_fds, irq_fds = -1, None, None, None, [], []
    try:
        c.version()
        memfd = os.memfd_create("guest-ram-moved")
        os.ftruncate(memfd, vf.MEM_SIZE)
        mem = mmap.mmap(memfd, vf.MEM_SIZE)
        mem[:] = vf.mem[:] if image is None else image
        c.dma_map(memfd, vf.IOVA, vf.MEM_SIZE)
        info = c.region_info(vu.BAR0)
        if info["fd"] is not None:
            for off, size in info["areas"]:
                if off == vu.DOORBELL_OFF:
                    db = mmap.mmap(info["fd"], size, offset=info["offset"] + off)
                    db16 = memoryview(db).cast("H")
            os.close(info["fd"])
        subs, kick_fds = c.region_io_fds(vu.BAR0)
        nvec = c.irq_info(vu.MSIX)[1]
        irq_fds = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(nvec)]
        for start in range(0, nvec, vu.MAX_FDS):
            chunk = irq_fds[start:start + vu.MAX_FDS]
            c.set_irqs(vu.MSIX, vu.IRQ_DATA_EVENTFD | vu.IRQ_ACTION_TRIGGER, start,
                       len(chunk), chunk)
        if stream is not None:
            c.set_mig_state(vu.MIG_RESUMING)
            c.mig_data_write(stream)
            c.set_mig_state(vu.MIG_RUNNING)
    except Exception:
        if db16 is not None:
            db16.release()
            db.close()
        for fd in kick_fds + irq_fds:
            os.close(fd)
        if mem is not None:
            mem.close()
        if memfd >= 0:
            os.close(memfd)
        c.close()
        raise
    old = vf.c
    rings = {}
    for q, r in vf.rings.items():
        n = vu.Ring(mem, r.desc, r.size)
        n.avail_idx, n.last_used, n.kicked_idx = r.avail_idx, r.last_used, r.kicked_idx
        r.release()
        rings[q] = n
    if vf.db:
        vf.db16.release()
        vf.db.close()
    for fd in vf.kick_fds + vf.irq_fds:
        os.close(fd)
    vf.mem.close()
    os.close(vf.memfd)
    vf.c, vf.mem, vf.memfd, vf.rings = c, mem, memfd, rings
    vf.db, vf.kick_fds, vf.irq_fds = db, kick_fds, irq_fds
    if db is not None:
        vf.db16 = db16
    vf.kick_by_offset = {s[0]: kick_fds[s[2]] for s in subs}
    return old
