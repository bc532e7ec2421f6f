# SPDX-License-Identifier: MIT
"""hdnic's receive flow control and polling that yields, without KVM: Python
drivers play the guests.  A frame for a full RX ring waits (bounded, in
order) instead of being dropped after hdnic read it; when nothing can be
delivered the uplink is not read at all; a function sending to a full
function keeps its frame in its own TX ring; an idle loop spins briefly,
then yields with doorbells still suppressed, then sleeps."""
import struct
import time

import vfio_user_client as vu
from hdvmlib import HDNIC
from nichost import Hdnic
from vfio_user_client import VirtioNetVF, ether_frame, wait_for

PEER = bytes.fromhex("02aabbccdd01")        # a host behind the uplink
ETH_TEST = 0x88B5


def tagged(dst, src, tag, n):
    return ether_frame(dst, src, payload=b"%s-%04d" % (tag, n))


def seq_of(frame, tag):
    """The sequence number of a test frame with this tag, or None."""
    if len(frame) < 14 or frame[12:14] != struct.pack("!H", ETH_TEST):
        return None
    body = frame[14:]
    if not body.startswith(tag + b"-"):
        return None
    return int(body[len(tag) + 1:len(tag) + 5])


def recv_seqs(vf, tag, count, timeout=5.0):
    """Sequence numbers of the next `count` frames with tag (buffers not reposted)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        f = vf.recv(timeout=max(0.01, deadline - time.monotonic()))
        if f is None:
            break
        s = seq_of(f, tag)
        if s is not None:
            got.append(s)
    return got


def start_nic(ns, tmp_path, *extra, vfs=3):
    return Hdnic(HDNIC, tmp_path / "nic", vfs=vfs, uplink="tap:hdt0", netns=ns,
                 extra=["--idle-us", "300000", *extra])


def test_uplink_frames_wait_for_a_full_ring_in_order(ns, tmp_path):
    """vf0 posts 4 buffers and does not refill: the 6 frames beyond its ring
    wait (none dropped within the bound), vf1 receives meanwhile, and after
    the refill vf0 gets all 10 in arrival order."""
    nic = start_nic(ns, tmp_path, "--rx-wait", "8", "--rx-wait-us", "5000000")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b:
            a.post_rx(4)
            b.post_rx()
            for i in range(10):
                tap.send(tagged(a.mac(), PEER, b"fa", i))
                if i < 5:
                    tap.send(tagged(b.mac(), PEER, b"fb", i))
            assert recv_seqs(b, b"fb", 5) == list(range(5)), "vf1 held up by vf0's full ring"
            assert wait_for(lambda: nic.stats(0)["rx_waited"] == 6)
            st = nic.stats(0)
            assert st["rx_wait_drops"] == 0 and st["rx_drops"] == 0 and st["rx_waiting"] == 6
            assert st["rx_packets"] == 4
            first = recv_seqs(a, b"fa", 4)
            assert first == [0, 1, 2, 3]
            a.post_rx()                         # the refill: a doorbell store, no kick
            assert recv_seqs(a, b"fa", 6) == [4, 5, 6, 7, 8, 9]
            st = nic.stats(0)
            assert st["rx_packets"] == 10 and st["rx_drops"] == 0 and st["rx_waiting"] == 0
    finally:
        tap.close()
        nic.stop_checked()


def test_uplink_waiting_past_the_bounds_drops_and_counts(ns, tmp_path):
    """Past the count bound the excess is dropped at once; past the time bound
    the waiting frames are dropped too; both in rx_wait_drops (and rx_drops)."""
    nic = start_nic(ns, tmp_path, "--rx-wait", "8", "--rx-wait-us", "300000")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b:
            a.post_rx(2)
            b.post_rx()
            for i in range(14):                 # 2 delivered, 8 wait, 4 over the bound
                tap.send(tagged(a.mac(), PEER, b"fa", i))
            assert wait_for(lambda: nic.stats(0)["rx_waited"] == 8)
            assert nic.stats(0)["rx_wait_drops"] >= 4
            # the 8 waiting ones expire after 0.3 s
            assert wait_for(lambda: nic.stats(0)["rx_wait_drops"] == 12, timeout=5)
            st = nic.stats(0)
            assert st["rx_waiting"] == 0 and st["rx_drops"] == 12 and st["rx_packets"] == 2
            assert recv_seqs(a, b"fa", 2) == [0, 1]
            a.post_rx()
            tap.send(tagged(a.mac(), PEER, b"fa", 99))
            assert recv_seqs(a, b"fa", 1) == [99], "expired frames delivered late"
            tap.send(tagged(b.mac(), PEER, b"fb", 1))
            assert recv_seqs(b, b"fb", 1) == [1]
    finally:
        tap.close()
        nic.stop_checked()


def test_uplink_not_read_while_nothing_can_be_delivered(ns, tmp_path):
    """vf0 is the only running function and its ring is full: hdnic stops
    reading the TAP (the frames stay in the kernel), then delivers all 300
    in order as the driver refills, none dropped anywhere."""
    total = 300
    nic = start_nic(ns, tmp_path, "--rx-wait", "256", "--rx-wait-us", "10000000")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a:
            a.post_rx(4)
            for i in range(total):
                tap.send(tagged(a.mac(), PEER, b"fa", i))
            assert wait_for(lambda: nic.stats()["uplink"]["rx_paused"])
            time.sleep(0.2)
            up = nic.stats()["uplink"]
            assert up["rx_pauses"] >= 1
            # what was read: the delivered ones, the waiting ones, no more
            assert up["rx_packets"] < total, "the TAP was read although nothing could be delivered"
            got = recv_seqs(a, b"fa", 4)
            a.post_rx()                         # the whole ring, kept full from here on
            while len(got) < total:
                batch = recv_seqs(a, b"fa", min(a.QSIZE, total - len(got)))
                assert batch, f"stalled after {len(got)} frames: {nic.stats(0)}"
                got += batch
                a.post_rx(len(batch))
            assert got == list(range(total))
            st = nic.stats(0)
            assert st["rx_drops"] == 0 and st["rx_wait_drops"] == 0 and st["rx_waited"] > 0
            assert nic.stats()["uplink"]["rx_drops"] == 0
            assert wait_for(lambda: not nic.stats()["uplink"]["rx_paused"])
    finally:
        tap.close()
        nic.stop_checked()


def test_vf_to_vf_sender_waits_in_its_tx_ring(ns, tmp_path):
    """vf1's ring is full: vf0's frames for it wait in vf0's TX ring (its used
    index stops), and go, in order, once vf1 refills."""
    nic = start_nic(ns, tmp_path, "--rx-wait-us", "5000000")
    try:
        with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b:
            b.post_rx(2)
            for i in range(6):
                a.send(tagged(b.mac(), a.mac(), b"vv", i))
            assert len(a.wait_tx_done(6, timeout=1.0)) == 2, "frames completed past the full ring"
            assert a.rings[vu.TX].used_idx() == 2
            assert nic.stats(1)["rx_waited"] >= 1
            assert recv_seqs(b, b"vv", 2) == [0, 1]
            b.post_rx()
            assert recv_seqs(b, b"vv", 4) == [2, 3, 4, 5]
            assert len(a.wait_tx_done(4)) == 4
            st1, st0 = nic.stats(1), nic.stats(0)
            assert st1["rx_drops"] == 0 and st1["rx_wait_drops"] == 0 and st1["rx_packets"] == 6
            assert st0["tx_drops"] == 0 and st0["tx_packets"] == 6
    finally:
        nic.stop_checked()


def test_vf_to_vf_receiver_that_never_refills_only_stalls_its_flow(ns, tmp_path):
    """Past the wait bound vf0's frame for the stuck vf1 is dropped and counted,
    later ones for vf1 drop at once, and vf0's frames for vf2 flow."""
    nic = start_nic(ns, tmp_path, "--rx-wait-us", "200000")
    try:
        with VirtioNetVF(nic.sock(0)) as a, VirtioNetVF(nic.sock(1)) as b, \
                VirtioNetVF(nic.sock(2)) as c:
            b.post_rx(1)
            c.post_rx()
            a.send(tagged(b.mac(), a.mac(), b"vv", 0))
            a.send(tagged(b.mac(), a.mac(), b"vv", 1))      # waits, then dropped
            a.send(tagged(b.mac(), a.mac(), b"vv", 2))      # dropped at once: vf1 stuck
            a.send(tagged(c.mac(), a.mac(), b"vc", 0))
            assert recv_seqs(c, b"vc", 1, timeout=5) == [0]
            assert len(a.wait_tx_done(4)) == 4
            st1 = nic.stats(1)
            assert st1["rx_packets"] == 1 and st1["rx_wait_drops"] == 2 and st1["rx_waited"] >= 1
            assert nic.stats(0)["tx_drops"] == 2
            # it refills: lossless again
            assert recv_seqs(b, b"vv", 1) == [0]
            b.post_rx()
            a.send(tagged(b.mac(), a.mac(), b"vv", 3))
            assert recv_seqs(b, b"vv", 1) == [3]
    finally:
        nic.stop_checked()


def test_flow_control_off_drops_at_the_full_ring(ns, tmp_path):
    """--no-rx-flow-control: today's NIC, a frame for a full ring is dropped."""
    nic = start_nic(ns, tmp_path, "--no-rx-flow-control")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a:
            a.post_rx(2)
            for i in range(6):
                tap.send(tagged(a.mac(), PEER, b"fa", i))
            assert wait_for(lambda: nic.stats(0)["rx_drops"] == 4)
            assert nic.stats(0)["rx_waited"] == 0 and not nic.stats()["rx_flow_control"]
    finally:
        tap.close()
        nic.stop_checked()


def test_polling_yields_keeps_doorbells_suppressed_then_sleeps(ns, tmp_path):
    """After a frame the device polls for the idle time: the loop yields
    after a few empty passes, a kick meanwhile needs no notify (no exit),
    and once idle hdnic uses no CPU."""
    nic = start_nic(ns, tmp_path, "--spin-passes", "16")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a:
            y0 = nic.stats()["loop_yields"]
            a.send(tagged(PEER, a.mac(), b"tx", 0))
            assert a.wait_tx_done(1)
            kicks = nic.stats(0)["kicks"]
            a.send(tagged(PEER, a.mac(), b"tx", 1))      # within the 0.3 s window
            assert a.wait_tx_done(1)
            st = nic.stats()
            assert nic.stats(0)["kicks"] == kicks, "a kick while polling caused a notify"
            assert st["loop_yields"] > y0, "the idle loop never yielded"
            assert wait_for(lambda: not nic.vf_info(0)["polling"], timeout=3)
            time.sleep(0.2)
            c0 = nic.cpu_seconds()
            time.sleep(1.0)
            # a sanity bound, not a timing test: a spinning loop would use ~1 s
            assert nic.cpu_seconds() - c0 < 0.3
    finally:
        tap.close()
        nic.stop_checked()


def test_waiting_frames_of_a_stopped_or_deleted_function_are_dropped(ns, tmp_path):
    """A function quiesced by the migration FSM does no DMA: its waiting frames
    are dropped as rx_stopped, not delivered on RUNNING; an ADI deleted with
    frames waiting takes them with it (the NIC keeps working, nothing leaks)."""
    nic = start_nic(ns, tmp_path, "--rx-wait-us", "10000000")
    tap = ns.packet_socket("hdt0")
    try:
        with VirtioNetVF(nic.sock(0)) as a:
            a.post_rx(1)
            for i in range(4):
                tap.send(tagged(a.mac(), PEER, b"fa", i))
            assert wait_for(lambda: nic.stats(0)["rx_waiting"] == 3)
            a.c.set_mig_state(vu.MIG_STOP)
            assert wait_for(lambda: nic.stats(0)["rx_waiting"] == 0)
            st = nic.stats(0)
            assert st["rx_stopped"] == 3 and st["rx_wait_drops"] == 0
            a.c.set_mig_state(vu.MIG_RUNNING)
            assert recv_seqs(a, b"fa", 1) == [0]
            a.post_rx()
            assert recv_seqs(a, b"fa", 1, timeout=0.5) == [], "a stopped function's frame came late"
        nic.adi_add("fc1")
        with VirtioNetVF(nic.adi_sock("fc1")) as d:
            d.post_rx(1)
            for i in range(4):
                tap.send(tagged(d.mac(), PEER, b"fd", i))
            assert wait_for(lambda: nic.dev_stats("adi-fc1")["rx_waiting"] == 3)
            assert nic.ctl("adi-del", "fc1").returncode == 0
        with VirtioNetVF(nic.sock(1)) as b:
            b.post_rx()
            tap.send(tagged(b.mac(), PEER, b"fb", 0))
            assert recv_seqs(b, b"fb", 1) == [0]
    finally:
        tap.close()
        nic.stop_checked()
