# SPDX-License-Identifier: MIT
"""hdnic's packet path without a VMM: a Python driver programs a VF's virtqueues
over vfio-user, frames go out a TAP (or a veth through AF_PACKET) inside a
network namespace the test owns, and frames injected there land in RX buffers.
Only addresses inside those namespaces are used."""
import os
import struct
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VirtioNetVF, ether_frame, wait_for
from nichost import Hdnic, sniff

BCAST = b"\xff" * 6
PEER = bytes.fromhex("02aabbccdd01")         # a host "behind" the uplink
ETH_TEST = 0x88B5


def is_test_frame(tag):
    return lambda f: len(f) >= 14 and f[12:14] == struct.pack("!H", ETH_TEST) and tag in f


def test_tx_frame_leaves_through_tap(nic, tap):
    with VirtioNetVF(nic.sock(0)) as vf:
        mac = vf.mac()
        frame = ether_frame(PEER, mac, payload=b"tx-to-tap-0001")
        vf.send(frame)
        assert vf.wait_tx_done(1), "TX descriptor never completed"
        got = sniff(tap, is_test_frame(b"tx-to-tap-0001"))
        assert got == frame
        st = nic.stats(0)
        assert st["tx_packets"] == 1 and st["tx_bytes"] == len(frame)


def test_frame_injected_on_tap_lands_in_rx(nic, tap):
    with VirtioNetVF(nic.sock(1)) as vf:
        vf.post_rx()
        mac = vf.mac()
        frame = ether_frame(mac, PEER, payload=b"rx-from-tap-1")
        tap.send(frame)
        assert vf.recv(match=is_test_frame(b"rx-from-tap-1")) == frame
        assert vf.wait_irq(1), "no RX interrupt on vector 1"
        bframe = ether_frame(BCAST, PEER, payload=b"rx-bcast")
        tap.send(bframe)
        assert vf.recv(match=is_test_frame(b"rx-bcast")) == bframe
        st = nic.stats(1)
        assert st["rx_packets"] >= 2
        # the switch learned PEER behind the uplink
        assert nic.stats()["switch"]["fdb_learned"] >= 1


def test_arp_round_trip_with_namespace_stack(ns, nic):
    """The VF asks for 10.199.0.1 (the TAP inside our namespace); the kernel answers."""
    ns.exec("ip", "addr", "add", "10.199.0.1/24", "dev", "hdt0")
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.post_rx()
        mac = vf.mac()
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, bytes([10, 199, 0, 2]),
                          bytes(6), bytes([10, 199, 0, 1]))
        vf.send(ether_frame(BCAST, mac, 0x0806, arp))
        deadline = time.monotonic() + 5
        reply = None
        while time.monotonic() < deadline and reply is None:
            f = vf.recv(timeout=0.5)
            if f and f[12:14] == b"\x08\x06" and struct.unpack("!H", f[20:22])[0] == 2:
                reply = f
        assert reply is not None, "no ARP reply from the namespace"
        assert reply[0:6] == mac and reply[28:32] == bytes([10, 199, 0, 1])


def test_vf_to_vf_switched_inside_the_nic(nic, tap):
    with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b:
        b.post_rx()
        frame = ether_frame(b.mac(), a.mac(), payload=b"vf0-to-vf1")
        a.send(frame)
        assert b.recv(match=is_test_frame(b"vf0-to-vf1")) == frame
        # unicast between VFs never shows up on the uplink
        assert sniff(tap, is_test_frame(b"vf0-to-vf1"), timeout=0.5) is None
        # broadcast reaches the other VF and the uplink
        bframe = ether_frame(BCAST, a.mac(), payload=b"vf0-bcast")
        a.send(bframe)
        assert b.recv(match=is_test_frame(b"vf0-bcast")) == bframe
        assert sniff(tap, is_test_frame(b"vf0-bcast")) == bframe
        assert nic.stats(0)["tx_packets"] == 2 and nic.stats(1)["rx_packets"] == 2


def test_spoofed_source_is_dropped(nic, tap):
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.send(ether_frame(PEER, bytes.fromhex("02deadbeef00"), payload=b"spoofed"))
        assert vf.wait_tx_done(1)
        assert sniff(tap, is_test_frame(b"spoofed"), timeout=0.5) is None
        assert nic.stats(0)["tx_drops"] == 1 and nic.stats()["switch"]["spoof_drops"] == 1


def polling(vf, q):
    """The device suppresses notifications: what the driver sees of its polling,
    read from the ring, with no `hdnic ctl` round trip (slow under ASan)."""
    r = vf.rings[q]
    return ((r.avail_event() - r.avail_idx) & 0xFFFF) >= 0x4000


@pytest.mark.parametrize("how", ["ioeventfd", "region"])
def test_kick_paths(nic, tap, how):
    """Each way a driver can notify a sleeping device gets the frame out."""
    with VirtioNetVF(nic.sock(2)) as vf:
        mac = vf.mac()
        # let the VF go idle so a doorbell alone would not be seen
        assert wait_for(lambda: not nic.vf_info(2)["polling"], timeout=3)
        tag = f"kick-{how}".encode()
        vf.send(ether_frame(PEER, mac, payload=tag), kick=False)
        vf.notify(vu.TX, how)
        assert vf.wait_tx_done(1)
        assert sniff(tap, is_test_frame(tag)) is not None


# Polled for 10 s: only the doorbell can have told the device about frame 2
# (a device going idle rechecks its rings, which would hide a lost doorbell).
@pytest.mark.hdnic_extra("--idle-us", "10000000")
def test_kick_path_doorbell(nic, tap):
    """While the device polls, a doorbell store alone gets the frame out."""
    with VirtioNetVF(nic.sock(2)) as vf:
        mac = vf.mac()
        vf.send(ether_frame(PEER, mac, payload=b"kick-doorbell-1"))   # wakes it
        assert vf.wait_tx_done(1)
        assert wait_for(lambda: polling(vf, vu.TX), timeout=5)
        vf.send(ether_frame(PEER, mac, payload=b"kick-doorbell-2"), kick=False)
        vf.ring_doorbell(vu.TX)
        assert vf.wait_tx_done(1, timeout=5)
        assert polling(vf, vu.TX)           # no idle recheck in between
        assert nic.vf_info(2)["polling"]
        assert sniff(tap, is_test_frame(b"kick-doorbell-2")) is not None


def test_notification_suppression_and_idle(nic):
    with VirtioNetVF(nic.sock(0)) as vf:
        txq = vf.rings[vu.TX]
        vf.send(ether_frame(PEER, vf.mac(), payload=b"wake"))
        assert vf.wait_tx_done(1)
        # while polling, avail_event is kept far ahead: no notify needed
        assert nic.vf_info(0)["polling"]
        assert (txq.avail_event() - txq.avail_idx) & 0xFFFF >= 0x4000
        # idle: notifications come back (avail_event = next index) and polling stops
        assert wait_for(lambda: not nic.vf_info(0)["polling"], timeout=3)
        assert txq.avail_event() == txq.avail_idx
        assert nic.stats()["sleeps"] >= 1
        # an idle NIC costs (almost) no CPU
        before = nic.cpu_seconds()
        time.sleep(1.0)
        assert nic.cpu_seconds() - before < 0.05


def test_no_event_idx_uses_flags(nic):
    with VirtioNetVF(nic.sock(1), event_idx=False) as vf:
        txq = vf.rings[vu.TX]
        vf.send(ether_frame(PEER, vf.mac(), payload=b"flags"))
        assert vf.wait_tx_done(1)
        assert nic.vf_info(1)["polling"] and txq.used_flags() & 1     # NO_NOTIFY
        assert wait_for(lambda: not nic.vf_info(1)["polling"], timeout=3)
        assert txq.used_flags() & 1 == 0


def test_many_frames_in_order(nic, tap):
    with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b:
        n = 200
        got = []
        b.post_rx()
        for i in range(n):
            a.send(ether_frame(b.mac(), a.mac(), payload=b"seq%05d" % i))
            assert a.wait_tx_done(1)
            f = b.recv(match=is_test_frame(b"seq"), repost=True)
            assert f is not None, f"frame {i} lost"
            got.append(f[14:22])
        assert got == [b"seq%05d" % i for i in range(n)]


def test_rx_without_buffers_drops_and_counts(nic, tap):
    with VirtioNetVF(nic.sock(1)) as vf:
        tap.send(ether_frame(vf.mac(), PEER, payload=b"nobuf"))
        assert wait_for(lambda: nic.stats(1)["rx_drops"] >= 1)


# ---- hostile drivers ----

def expect_needs_reset(nic, vf_drv, vf_index):
    assert wait_for(lambda: vf_drv.status() & vu.S_NEEDS_RESET), "VF not in NEEDS_RESET"
    assert vf_drv.wait_irq(0), "no config-change interrupt"
    assert nic.stats(vf_index)["needs_reset"] == 1
    assert nic.vf_info(vf_index)["state"] == "needs-reset"


def hostile(vf, mutate):
    """Post one TX chain, let mutate() corrupt it, then kick."""
    r = vf.rings[vu.TX]
    addr = vf.tx_buf
    vf.mem[addr:addr + 72] = bytes(12) + ether_frame(PEER, vf.mac())
    r.set_desc(0, vf.IOVA + addr, 72)
    r.publish(0)
    mutate(vf, r)
    vf.ring_doorbell(vu.TX)
    vf.notify(vu.TX)


HOSTILE = {
    "address-outside-map": lambda vf, r: r.set_desc(0, 0x1000, 64),
    "length-past-map-end": lambda vf, r: r.set_desc(0, vf.IOVA + vf.MEM_SIZE - 16, 64),
    "length-overflow": lambda vf, r: r.set_desc(0, 0xFFFFFFFFFFFFFF00, 0x1000),
    "chain-loop": lambda vf, r: r.set_desc(0, vf.IOVA + vf.tx_buf, 64, vu.DESC_F_NEXT, 0),
    "chain-longer-than-queue": lambda vf, r: [
        r.set_desc(i, vf.IOVA + vf.tx_buf, 8, vu.DESC_F_NEXT, (i + 1) % vf.QSIZE)
        for i in range(vf.QSIZE)],
    "bad-next-index": lambda vf, r: r.set_desc(0, vf.IOVA + vf.tx_buf, 64, vu.DESC_F_NEXT, 999),
    "bad-head-index": lambda vf, r: struct.pack_into("<H", vf.mem, r.avail + 4, 4242),
    "avail-idx-too-far": lambda vf, r: r.set_avail_idx(vf.QSIZE + 5),
    "indirect-not-negotiated": lambda vf, r: r.set_desc(0, vf.IOVA + vf.tx_buf, 64, 4),
    "writable-tx-buffer": lambda vf, r: r.set_desc(0, vf.IOVA + vf.tx_buf, 64, vu.DESC_F_WRITE),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_tx_chain(nic, tap, kind):
    with VirtioNetVF(nic.sock(0)) as bad, VirtioNetVF(nic.sock(1)) as good:
        hostile(bad, HOSTILE[kind])
        expect_needs_reset(nic, bad, 0)
        # the other VF is undisturbed
        good.send(ether_frame(PEER, good.mac(), payload=b"still-works"))
        assert good.wait_tx_done(1)
        assert sniff(tap, is_test_frame(b"still-works")) is not None
        # the broken VF recovers with a driver reset
        bad.init_device()
        assert bad.status() & vu.S_DRIVER_OK and not bad.status() & vu.S_NEEDS_RESET
        bad.send(ether_frame(PEER, bad.mac(), payload=b"recovered"))
        assert bad.wait_tx_done(1)
        assert sniff(tap, is_test_frame(b"recovered")) is not None
    assert nic.alive()


def test_hostile_rx_buffer(nic, tap):
    with VirtioNetVF(nic.sock(1)) as vf:
        r = vf.rings[vu.RX]
        r.set_desc(0, 0x7000_0000_0000, 2048, vu.DESC_F_WRITE)   # not mapped
        r.publish(0)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"to-bad-rx"))
        expect_needs_reset(nic, vf, 1)


def test_rings_outside_map_at_driver_ok(nic):
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.init_device(setup_queues=False)
        vf.program_queue(vu.RX, 0, 0x1000, 0x2000)
        vf.program_queue(vu.TX, 0x3000, 0x4000, vf.MEM_SIZE - 8)     # used ring runs off the end
        vf.w16(vu.MSIX_CONFIG, 0)
        vf.w8(vu.STATUS, vu.S_ACK | vu.S_DRIVER | vu.S_FEATURES_OK | vu.S_DRIVER_OK)
        expect_needs_reset(nic, vf, 0)


def test_unmapping_live_rings(nic):
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.c.dma_unmap(vf.IOVA, vf.MEM_SIZE)
        assert vf.status() & vu.S_NEEDS_RESET
        assert nic.stats(0)["needs_reset"] == 1


def test_truncated_memfd_does_not_crash(nic, tap):
    """A client shrinks the file behind its DMA map: SIGBUS must hit only that VF."""
    with VirtioNetVF(nic.sock(0)) as vf, VirtioNetVF(nic.sock(1)) as good:
        vf.send(ether_frame(PEER, vf.mac(), payload=b"before"))
        assert vf.wait_tx_done(1)
        os.ftruncate(vf.memfd, 0)
        try:
            vf.notify(vu.TX)
        except Exception:
            pass
        assert wait_for(lambda: nic.stats(0)["needs_reset"] == 1)
        good.send(ether_frame(PEER, good.mac(), payload=b"good-after"))
        assert good.wait_tx_done(1)
    assert nic.alive()


def test_egress_hold_queue(nic, tap):
    with VirtioNetVF(nic.sock(0)) as vf:
        r = nic.ctl("egress", "0", "hold", "7")
        assert r.returncode == 0, r.stderr
        vf.send(ether_frame(PEER, vf.mac(), payload=b"held-frame"))
        assert vf.wait_tx_done(1)
        assert sniff(tap, is_test_frame(b"held-frame"), timeout=0.5) is None
        assert nic.stats(0)["egress_held"] == 1
        assert nic.ctl("egress", "0", "epoch", "8").returncode == 0
        assert nic.ctl("egress", "0", "commit", "7").returncode == 0
        assert sniff(tap, is_test_frame(b"held-frame")) is not None
        assert nic.ctl("egress", "0", "pass").returncode == 0
        vf.send(ether_frame(PEER, vf.mac(), payload=b"passed-frame"))
        assert sniff(tap, is_test_frame(b"passed-frame")) is not None


def test_iface_uplink_through_veth(ns, tmp_path):
    ns.exec("ip", "link", "add", "hdv0", "type", "veth", "peer", "name", "hdv1")
    ns.exec("ip", "link", "set", "hdv1", "up")
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=1, uplink="iface:hdv0", netns=ns)
    peer = ns.packet_socket("hdv1")
    try:
        with VirtioNetVF(n.sock(0)) as vf:
            vf.post_rx()
            frame = ether_frame(PEER, vf.mac(), payload=b"out-veth")
            vf.send(frame)
            assert sniff(peer, is_test_frame(b"out-veth")) == frame
            back = ether_frame(vf.mac(), PEER, payload=b"in-veth")
            peer.send(back)
            assert vf.recv(match=is_test_frame(b"in-veth")) == back
        assert n.stats()["uplink"]["tx_packets"] >= 1
    finally:
        peer.close()
        assert n.stop() == 0, n.output()
