# SPDX-License-Identifier: MIT
"""Isolation between hdnic's functions: DMA through a queue pair only reaches
the address space bound to its PASID, a VF/ADI sends only from its own MAC
unless trusted, and the per-device counters a guest reads from the
statistics capability agree with the host's.  Each "microVM" is a driver
with its own memfd as guest memory."""
import hashlib
import struct

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VirtioNetVF, ether_frame, wait_for
from nichost import Hdnic, sniff

PEER = bytes.fromhex("02aabbccdd01")
FAKE = bytes.fromhex("02f00df00d01")
SECRET_OFF = 0x80000                  # where the victim keeps its secret page
VICTIM_IOVA = 0x40000000
ATTACKER_IOVA = 0x90000000            # a different guest-physical layout


@pytest.fixture
def nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=2, uplink="tap:hdt0", netns=ns, name="isotest",
              extra=["--idle-us", "300000"])
    n.adi_add("evil")
    n.adi_add("twin")
    yield n
    n.stop_checked()


def tagged(tag):
    return lambda f: len(f) >= 14 and tag in f


def digest(drv):
    return hashlib.sha256(bytes(drv.mem)).hexdigest()


def quiet_digest(nic, dev, drv):
    """A digest once dev's own device has gone idle: from then on nothing may
    write its memory (a polling device keeps its used ring's event index)."""
    assert wait_for(lambda: not nic.dev_info(dev)["polling"], timeout=3)
    return digest(drv)


def plant_secret(victim):
    secret = (b"victim-secret:" + bytes(range(256)) * 16)[:4096]
    victim.mem[SECRET_OFF:SECRET_OFF + 4096] = secret
    return secret


def expect_refused(nic, drv, dev):
    assert wait_for(lambda: drv.status() & vu.S_NEEDS_RESET), f"{dev} not in NEEDS_RESET"
    assert drv.wait_irq(0), "no config-change interrupt"
    s = nic.dev_stats(dev)
    assert s["needs_reset"] == 1 and s["dma_faults"] == 1, s
    assert nic.ctl_json("stats")["iommu"]["faults"] >= 1


def test_pasids_differ_per_client(nic):
    with VirtioNetVF(nic.sock(0)), VirtioNetVF(nic.adi_sock("evil")):
        pa, pb = nic.vf_info(0)["pasid"], nic.dev_info("adi-evil")["pasid"]
        assert pa and pb and pa != pb
        assert nic.ctl_json("stats")["iommu"]["pasids_bound"] == 2
    assert wait_for(lambda: nic.ctl_json("stats")["iommu"]["pasids_bound"] == 0)
    assert nic.vf_info(0)["pasid"] == 0


def test_tx_descriptor_into_another_vm_is_refused(nic, tap):
    """The attacker's TX descriptor names an IOVA only the victim mapped."""
    with VirtioNetVF(nic.sock(0), iova=VICTIM_IOVA) as victim, \
            VirtioNetVF(nic.adi_sock("evil"), iova=ATTACKER_IOVA) as evil:
        secret = plant_secret(victim)
        before = quiet_digest(nic, "vf0", victim)
        r = evil.rings[vu.TX]
        evil.mem[evil.tx_buf:evil.tx_buf + 12] = bytes(12)       # header in its own memory...
        r.set_desc(0, evil.IOVA + evil.tx_buf, 12, vu.DESC_F_NEXT, 1)
        r.set_desc(1, VICTIM_IOVA + SECRET_OFF, 1000)             # ...the frame in the victim's
        r.publish(0)
        evil.kick(vu.TX)
        expect_refused(nic, evil, "adi-evil")
        assert sniff(tap, tagged(secret[:14]), timeout=0.5) is None   # nothing leaked out
        assert digest(victim) == before
        s = nic.dev_stats("adi-evil")
        assert s["tx_packets"] == 0
        # the victim never noticed
        victim.send(ether_frame(PEER, victim.mac(), payload=b"victim-fine"))
        assert sniff(tap, tagged(b"victim-fine")) is not None
        assert nic.stats(0)["needs_reset"] == 0 and nic.stats(0)["dma_faults"] == 0


def test_rx_buffer_in_another_vm_is_refused(nic, tap):
    """The attacker posts an RX buffer at the victim's IOVA; a frame arrives."""
    with VirtioNetVF(nic.sock(0), iova=VICTIM_IOVA) as victim, \
            VirtioNetVF(nic.adi_sock("evil"), iova=ATTACKER_IOVA) as evil:
        victim.post_rx()
        plant_secret(victim)
        before = quiet_digest(nic, "vf0", victim)
        r = evil.rings[vu.RX]
        r.set_desc(0, VICTIM_IOVA + SECRET_OFF, 2048, vu.DESC_F_WRITE)
        r.publish(0)
        evil.ring_doorbell(vu.RX)
        tap.send(ether_frame(evil.mac(), PEER, payload=b"overwrite-victim" * 8))
        expect_refused(nic, evil, "adi-evil")
        assert digest(victim) == before                 # not a byte changed
        assert victim.rings[vu.RX].used_idx() == 0
        # the victim still receives normally
        tap.send(ether_frame(victim.mac(), PEER, payload=b"victim-rx"))
        assert victim.recv(match=tagged(b"victim-rx")) is not None
        assert nic.stats(0)["needs_reset"] == 0


def test_same_iova_means_own_memory(nic, tap):
    """Two VMs map the same IOVAs: a queue pair only ever reaches its own."""
    with VirtioNetVF(nic.adi_sock("evil"), iova=VICTIM_IOVA) as a, \
            VirtioNetVF(nic.adi_sock("twin"), iova=VICTIM_IOVA) as b:
        a.post_rx()
        b.post_rx()
        before_a = quiet_digest(nic, "adi-evil", a)
        frame = ether_frame(b.mac(), PEER, payload=b"for-b-only")
        tap.send(frame)
        assert b.recv(match=tagged(b"for-b-only")) == frame
        assert digest(a) == before_a and a.rings[vu.RX].used_idx() == 0
        # and TX from the same IOVA sends each one's own bytes
        a.send(ether_frame(PEER, a.mac(), payload=b"bytes-of-a"))
        b.send(ether_frame(PEER, b.mac(), payload=b"bytes-of-b"))
        assert sniff(tap, tagged(b"bytes-of-a")) is not None
        assert sniff(tap, tagged(b"bytes-of-b")) is not None
        assert nic.ctl_json("stats")["iommu"]["faults"] == 0


def test_ring_in_another_vm_is_refused(nic):
    """Rings (not just buffers) go through the PASID check at DRIVER_OK."""
    with VirtioNetVF(nic.sock(1), iova=VICTIM_IOVA) as victim, \
            VirtioNetVF(nic.adi_sock("evil"), iova=ATTACKER_IOVA) as evil:
        before = quiet_digest(nic, "vf1", victim)
        evil.init_device(setup_queues=False)
        evil.program_queue(vu.RX, 0, 0x1000, 0x2000)
        evil.w16(vu.Q_SELECT, vu.TX)
        evil.w16(vu.Q_SIZE, evil.QSIZE)
        evil.w64(vu.Q_DESC, VICTIM_IOVA + 0x3000)
        evil.w64(vu.Q_AVAIL, VICTIM_IOVA + 0x4000)
        evil.w64(vu.Q_USED, VICTIM_IOVA + 0x5000)       # the victim's memory
        evil.w16(vu.Q_ENABLE, 1)
        evil.w16(vu.MSIX_CONFIG, 0)
        evil.w8(vu.STATUS, vu.S_ACK | vu.S_DRIVER | vu.S_FEATURES_OK | vu.S_DRIVER_OK)
        assert evil.status() & vu.S_NEEDS_RESET
        assert digest(victim) == before
        assert nic.dev_stats("adi-evil")["needs_reset"] == 1


# ---- anti-spoofing ----

@pytest.mark.parametrize("dev", ["vf1", "adi-evil"])
def test_spoofed_source_refused_unless_trusted(nic, tap, dev):
    sock = nic.sock(1) if dev == "vf1" else nic.adi_sock("evil")
    with VirtioNetVF(sock) as drv:
        drv.post_rx()
        spoof = ether_frame(PEER, FAKE, payload=b"spoof-1")
        drv.send(spoof)
        assert drv.wait_tx_done(1)
        assert sniff(tap, tagged(b"spoof-1"), timeout=0.5) is None
        s = nic.dev_stats(dev)
        assert s["tx_spoofed"] == 1 and s["tx_drops"] == 1 and s["tx_packets"] == 0
        assert nic.dev_info(dev)["trusted"] is False

        r = nic.ctl_json("trust", dev, "on")
        assert r["trusted"] is True and nic.dev_info(dev)["trusted"] is True
        assert "trusted" in nic.ctl("trust", dev, "on").stdout
        drv.send(ether_frame(PEER, FAKE, payload=b"spoof-2"))
        assert sniff(tap, tagged(b"spoof-2")) is not None
        # the switch learned FAKE behind the trusted device
        tap.send(ether_frame(FAKE, PEER, payload=b"to-fake"))
        assert drv.recv(match=tagged(b"to-fake")) is not None

        assert nic.ctl_json("trust", dev, "off")["trusted"] is False
        drv.send(ether_frame(PEER, FAKE, payload=b"spoof-3"))
        assert sniff(tap, tagged(b"spoof-3"), timeout=0.5) is None
        tap.send(ether_frame(FAKE, PEER, payload=b"to-fake-2"))
        assert drv.recv(match=tagged(b"to-fake-2"), timeout=0.5) is None
        assert nic.dev_stats(dev)["tx_spoofed"] == 2
        # its own address always works; multicast sources never do
        drv.send(ether_frame(PEER, drv.mac(), payload=b"own-mac"))
        assert sniff(tap, tagged(b"own-mac")) is not None
        nic.ctl("trust", dev, "on")
        drv.send(ether_frame(PEER, b"\x03" + FAKE[1:], payload=b"mcast-src"))
        assert sniff(tap, tagged(b"mcast-src"), timeout=0.5) is None


@pytest.mark.parametrize("args,msg", [
    (["trust", "vf9", "on"], "does not exist"),
    (["trust", "nosuch", "on"], "no VF or ADI named"),
    (["trust", "0", "maybe"], "expected on or off"),
    (["trust", "0"], "expected a device and on or off"),
])
def test_trust_errors(nic, args, msg):
    r = nic.ctl(*args)
    assert r.returncode != 0 and msg in r.stderr, r.stderr


# ---- per-device statistics, as the guest sees them ----

@pytest.mark.parametrize("dev", ["vf0", "adi-twin"])
def test_stats_capability_matches_host(nic, tap, dev):
    sock = nic.sock(0) if dev == "vf0" else nic.adi_sock("twin")
    with VirtioNetVF(sock) as drv:
        mac = drv.mac()
        tap.send(ether_frame(mac, PEER, payload=b"no-buffer"))       # an rx drop
        assert wait_for(lambda: nic.dev_stats(dev)["rx_drops"] == 1)
        drv.post_rx()
        for i in range(3):
            tap.send(ether_frame(mac, PEER, payload=b"rx%d" % i + bytes(100 * i)))
            assert drv.recv(match=tagged(b"rx%d" % i)) is not None
        for i in range(5):
            drv.send(ether_frame(PEER, mac, payload=b"tx%d" % i + bytes(40 * i)))
            assert drv.wait_tx_done(1)
        drv.send(ether_frame(PEER, FAKE, payload=b"tx-spoof"))         # a tx drop
        assert drv.wait_tx_done(1)
        host = nic.dev_stats(dev)
        for guest in (drv.stats_cap(), drv.stats_cap(whole=True)):
            assert guest == {k: host[k] for k in vu.STATS}, (guest, host)
        assert host["rx_packets"] == 3 and host["tx_packets"] == 5 and host["tx_drops"] == 1
        # read-only: a guest cannot reset or forge them
        cfg = drv.c
        pos = cfg.region_read(vu.CONFIG, 0x34, 1)[0]
        while pos:
            cap = cfg.region_read(vu.CONFIG, pos, 8)
            if struct.unpack_from("<H", cap, 6)[0] == vu.STATS_MAGIC and cap[3] == 9:
                break
            pos = cap[1]
        assert pos
        cfg.region_write(vu.CONFIG, pos + 8, bytes(48))
        assert drv.stats_cap() == {k: host[k] for k in vu.STATS}
        assert cfg.region_read(vu.CONFIG, pos + 2, 1)[0] == 56       # cap_len
