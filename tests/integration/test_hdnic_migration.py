# SPDX-License-Identifier: MIT
"""VFIO migration v2 on hdnic functions, without a VMM: the Python driver
attaches a VF or an ADI, the FSM is driven with DEVICE_FEATURE, and what a
stopped function does to its "guest memory" (the driver's memfd) is
measured: nothing.  Also the device's DMA dirty log and the STOP_COPY /
RESUMING state stream."""
import errno
import hashlib
import os
import select
import struct
import threading
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF, ether_frame, mac_bytes, wait_for
from nichost import Hdnic, sniff

BCAST = b"\xff" * 6
PEER = bytes.fromhex("02aabbccdd01")
ETH_TEST = 0x88B5
# Counters a stopped function may move: the one that counts what it refused.
MAY_MOVE = {"rx_stopped"}
# hdnic's pre-copy additions (kernel: VFIO_MIGRATION_PRE_COPY, feature MIG_DATA_SIZE;
# hdnic_vf_abi.h: HDNIC_FEATURE_PRECOPY_INFO)
MIGRATION_PRE_COPY = 1 << 2
FEAT_MIG_DATA_SIZE = 9
FEAT_PRECOPY_INFO = 0xe002


def tagged(tag):
    return lambda f: len(f) >= 14 and f[12:14] == struct.pack("!H", ETH_TEST) and tag in f


def mem_hash(vf):
    return hashlib.sha256(bytes(vf.mem)).hexdigest()


def drain_irqs(vf):
    for fd in vf.irq_fds:
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            pass


def irqs_fired(vf):
    ready, _, _ = select.select(vf.irq_fds, [], [], 0)
    return len(ready)


def function_sock(nic, kind):
    """A VF (vf0) or a freshly composed ADI, and its name in stats."""
    if kind == "vf":
        return nic.sock(0), "vf0"
    nic.adi_add("mig")
    return nic.adi_sock("mig"), "adi-mig"


def test_migration_feature_reports_what_exists(nic):
    with VfioUserClient(nic.sock(0)) as c:
        c.version()
        assert c.migration_flags() == \
            vu.MIGRATION_STOP_COPY | vu.MIGRATION_P2P | MIGRATION_PRE_COPY
        for feat, how in ((vu.FEAT_MIGRATION, vu.FEATURE_GET),
                          (vu.FEAT_MIG_DEVICE_STATE, vu.FEATURE_GET | vu.FEATURE_SET),
                          (vu.FEAT_DMA_LOGGING_START, vu.FEATURE_SET),
                          (vu.FEAT_DMA_LOGGING_STOP, vu.FEATURE_SET),
                          (vu.FEAT_DMA_LOGGING_REPORT, vu.FEATURE_GET),
                          (FEAT_MIG_DATA_SIZE, vu.FEATURE_GET),
                          (FEAT_PRECOPY_INFO, vu.FEATURE_GET)):
            c.device_feature(vu.FEATURE_PROBE | how | feat)
        # a direction the feature does not have, a feature hdnic does not have
        assert c.expect_error(vu.DEVICE_FEATURE, struct.pack(
            "<II", 16, vu.FEATURE_PROBE | vu.FEATURE_SET | vu.FEAT_MIGRATION)) == errno.EINVAL
        assert c.expect_error(vu.DEVICE_FEATURE, struct.pack(
            "<II", 16, vu.FEATURE_PROBE | vu.FEATURE_GET | 10)) == errno.EOPNOTSUPP


def test_state_machine_over_the_wire(nic):
    with VfioUserClient(nic.sock(1)) as c:
        c.version()
        assert c.mig_state() == vu.MIG_RUNNING
        # RUNNING -> STOP goes through RUNNING_P2P; every hop is an arc of the table
        assert c.set_mig_state(vu.MIG_STOP) == vu.MIG_STOP
        assert c.mig_state() == vu.MIG_STOP
        assert nic.vf_info(1)["mig_state"] == "stop"
        assert c.set_mig_state(vu.MIG_RUNNING_P2P) == vu.MIG_RUNNING_P2P
        assert c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
        # targets the device does not offer, or that cannot be asked for
        for bad in (vu.MIG_ERROR, 8, 0xffffffff):
            assert c.expect_error(vu.DEVICE_FEATURE, struct.pack(
                "<IIIi", 16, vu.FEATURE_SET | vu.FEAT_MIG_DEVICE_STATE, bad, -1)) == \
                errno.EINVAL, bad
        assert c.mig_state() == vu.MIG_RUNNING
        # data outside a session is refused
        assert c.expect_error(vu.MIG_DATA_READ, struct.pack("<II", 72, 64)) == errno.EINVAL
        assert c.expect_error(vu.MIG_DATA_WRITE, struct.pack("<II", 12, 4) + b"abcd") == \
            errno.EINVAL
        # a reset is the way back from anywhere
        c.set_mig_state(vu.MIG_STOP)
        c.reset()
        assert c.mig_state() == vu.MIG_RUNNING


@pytest.mark.parametrize("kind", ["vf", "adi"])
def test_stopped_function_does_no_dma(nic, tap, kind):
    """Stopped under traffic from the uplink and from another function: its
    memory does not change by a byte, no interrupt fires, its TX ring is not
    read, its counters stay put except rx_stopped; RUNNING again and
    traffic flows, the frame queued while stopped goes out."""
    sock, dev = function_sock(nic, kind)
    with VirtioNetVF(sock) as vf, VirtioNetVF(nic.sock(1)) as other:
        vf.post_rx()
        other.post_rx()
        mac = vf.mac()
        tap.send(ether_frame(mac, PEER, payload=b"before-stop"))
        assert vf.recv(match=tagged(b"before-stop"), repost=True)

        assert vf.c.set_mig_state(vu.MIG_STOP) == vu.MIG_STOP
        # the driver queues a frame while the device is stopped (its own write)
        vf.send(ether_frame(PEER, mac, payload=b"queued-while-stopped"))
        time.sleep(0.2)
        drain_irqs(vf)
        before_hash, before = mem_hash(vf), nic.dev_stats(dev)

        offered = 0
        for i in range(40):
            tap.send(ether_frame(mac, PEER, payload=b"uplink-%02d" % i))
            offered += 1
            if i % 8 == 0:
                tap.send(ether_frame(BCAST, PEER, payload=b"uplink-bcast-%02d" % i))
                offered += 1
            time.sleep(0.02)
        for i in range(8):
            other.send(ether_frame(mac if i % 4 else BCAST, other.mac(),
                                   payload=b"peer-%02d" % i))
            offered += 1
        assert len(other.wait_tx_done(8)) == 8
        time.sleep(0.3)

        after = nic.dev_stats(dev)
        assert mem_hash(vf) == before_hash, "a stopped function wrote its guest's memory"
        assert irqs_fired(vf) == 0, "a stopped function raised an interrupt"
        moved = {k for k in before if before[k] != after[k]}
        assert moved <= MAY_MOVE, f"counters moved while stopped: {moved}"
        assert after["rx_stopped"] - before["rx_stopped"] >= offered
        assert sniff(tap, tagged(b"queued-while-stopped"), timeout=0.3) is None
        assert vf.rings[vu.TX].used_idx() == vf.rings[vu.TX].last_used

        assert vf.c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
        assert sniff(tap, tagged(b"queued-while-stopped")), "the queued frame never left"
        assert vf.wait_tx_done(1)
        tap.send(ether_frame(mac, PEER, payload=b"after-resume"))
        assert vf.recv(match=tagged(b"after-resume"), repost=True)
        other.send(ether_frame(mac, other.mac(), payload=b"peer-after"))
        assert vf.recv(match=tagged(b"peer-after"), repost=True)
        assert nic.dev_stats(dev)["rx_packets"] == before["rx_packets"] + 2


def test_running_p2p_is_quiesced_too(nic, tap):
    """hdnic cannot tell peer-to-peer DMA from memory, so RUNNING_P2P stops all DMA."""
    with VirtioNetVF(nic.sock(2)) as vf:
        vf.post_rx()
        assert vf.c.set_mig_state(vu.MIG_RUNNING_P2P) == vu.MIG_RUNNING_P2P
        drain_irqs(vf)
        h = mem_hash(vf)
        for i in range(10):
            tap.send(ether_frame(vf.mac(), PEER, payload=b"p2p-%d" % i))
        assert wait_for(lambda: nic.dev_stats("vf2")["rx_stopped"] >= 10, timeout=3)
        assert mem_hash(vf) == h and irqs_fired(vf) == 0
        vf.c.set_mig_state(vu.MIG_RUNNING)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"p2p-after"))
        assert vf.recv(match=tagged(b"p2p-after"))


def test_control_command_queued_while_stopped_runs_on_resume(nic):
    """A control-queue command the driver queues and notifies while the
    function is stopped is neither executed nor lost: it runs on RUNNING."""
    with VirtioNetVF(nic.sock(1), ctrl_rx=True) as vf:
        assert vf.rx_mode(promisc=False) == [vu.CTRL_OK]
        vf.c.set_mig_state(vu.MIG_STOP)
        kicks = nic.dev_stats("vf1")["kicks"]
        h = mem_hash(vf)
        acks = []
        t = threading.Thread(target=lambda: acks.append(
            vf.ctrl(vu.CTRL_RX, vu.CTRL_RX_PROMISC, b"\x01", timeout=5)))
        t.start()
        time.sleep(0.5)
        assert not acks and not nic.dev_info("vf1")["rx_mode"]["promisc"]
        assert nic.dev_stats("vf1")["kicks"] == kicks
        h_queued = mem_hash(vf)     # the driver's own writes only
        time.sleep(0.2)
        assert mem_hash(vf) == h_queued and h_queued != h
        vf.c.set_mig_state(vu.MIG_RUNNING)
        t.join(5)
        assert acks == [vu.CTRL_OK]
        assert nic.dev_info("vf1")["rx_mode"]["promisc"]


def test_held_config_interrupt_fires_on_resume(nic):
    """A MAC change while stopped changes config space at once, but its
    interrupt waits for RUNNING."""
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.c.set_mig_state(vu.MIG_STOP)
        drain_irqs(vf)
        assert nic.ctl("set-mac", "0", "02:00:00:00:77:01").returncode == 0
        time.sleep(0.2)
        assert irqs_fired(vf) == 0
        assert vf.mac() == mac_bytes("02:00:00:00:77:01")
        vf.c.set_mig_state(vu.MIG_RUNNING)
        assert vf.wait_irq(0), "the held config interrupt never fired"


@pytest.mark.parametrize("kind", ["vf", "adi"])
def test_dma_dirty_log_marks_what_the_device_wrote(nic, tap, kind):
    sock, dev = function_sock(nic, kind)
    with VirtioNetVF(sock) as vf:
        vf.post_rx()
        size, iova = vf.MEM_SIZE, vf.IOVA
        # going idle writes the TX ring's event index (a device write too): be idle first
        assert wait_for(lambda: not nic.dev_info(dev)["polling"], timeout=3)
        assert vf.c.dma_logging_start([(iova, size)]) == 4096
        assert nic.dev_info(dev)["dirty_logging"]
        # nothing written yet since START
        assert vf.c.dma_logging_report(iova, size) == set()
        tap.send(ether_frame(vf.mac(), PEER, payload=b"dirty-1"))
        assert vf.recv(match=tagged(b"dirty-1"))
        rx = vf.rings[vu.RX]
        buf0 = (vf.bufs[vu.RX]) // 4096              # slot 0's buffer
        used = rx.used // 4096
        dirty = vf.c.dma_logging_report(iova, size)
        assert buf0 in dirty and used in dirty, dirty
        # only what the device wrote: no TX buffers, no descriptor tables
        assert vf.bufs[vu.TX] // 4096 not in dirty and rx.desc // 4096 not in dirty
        # REPORT cleared it
        assert vf.c.dma_logging_report(iova, size) == set()
        # a larger page size folds pages together
        tap.send(ether_frame(vf.mac(), PEER, payload=b"dirty-2"))
        assert vf.recv(match=tagged(b"dirty-2"))
        big = vf.c.dma_logging_report(iova, size, page_size=1 << 20)
        assert big == {0}
        # a stopped function dirties nothing
        vf.c.set_mig_state(vu.MIG_STOP)
        for i in range(5):
            tap.send(ether_frame(vf.mac(), PEER, payload=b"dirty-stopped"))
        assert wait_for(lambda: nic.dev_stats(dev)["rx_stopped"] >= 5, timeout=3)
        assert vf.c.dma_logging_report(iova, size) == set()
        vf.c.set_mig_state(vu.MIG_RUNNING)
        # errors: outside the logged range, a second START, bad page size
        assert vf.c.expect_error(vu.DEVICE_FEATURE, struct.pack(
            "<IIQQQ", 8 + 24 + 64, vu.FEATURE_GET | vu.FEAT_DMA_LOGGING_REPORT,
            iova + size, 4096, 4096)) == errno.EINVAL
        with pytest.raises(vu.VfioUserError) as e:
            vf.c.dma_logging_start([(iova, size)])
        assert e.value.errno == errno.EBUSY
        vf.c.dma_logging_stop()
        assert not nic.dev_info(dev)["dirty_logging"]
        with pytest.raises(vu.VfioUserError) as e:
            vf.c.dma_logging_report(iova, size)
        assert e.value.errno == errno.EINVAL
        # "everything mapped" (vfio-user num_ranges = 0)
        vf.c.dma_logging_start([])
        tap.send(ether_frame(vf.mac(), PEER, payload=b"dirty-3"))
        assert vf.recv(match=tagged(b"dirty-3"))
        assert vf.c.dma_logging_report(iova, size)
        # bad ranges
        vf.c.dma_logging_stop()
        for ranges in ([(iova + 1, 4096)], [(iova, 4096), (iova, 8192)], [(iova, 0)]):
            with pytest.raises(vu.VfioUserError) as e:
                vf.c.dma_logging_start(ranges)
            assert e.value.errno == errno.EINVAL, ranges


def test_state_stream_saves_and_loads_back(nic, tap):
    """STOP_COPY gives the function's state, RESUMING takes it back; a corrupt
    stream fails RESUMING -> STOP into ERROR and a reset recovers."""
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.post_rx()
        c = vf.c
        c.set_mig_state(vu.MIG_STOP_COPY)
        stream = b""
        while True:
            chunk = c.mig_data_read(64)
            stream += chunk
            if len(chunk) < 64:
                break
        assert len(stream) > 256 and c.mig_data_read(64) == b""
        c.set_mig_state(vu.MIG_STOP)
        c.set_mig_state(vu.MIG_RESUMING)
        for off in range(0, len(stream), 100):
            c.mig_data_write(stream[off:off + 100])
        c.set_mig_state(vu.MIG_RUNNING)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"after-load"))
        assert vf.recv(match=tagged(b"after-load"))

        c.set_mig_state(vu.MIG_RESUMING)
        c.mig_data_write(stream[:len(stream) // 2])
        with pytest.raises(vu.VfioUserError) as e:
            c.set_mig_state(vu.MIG_STOP)
        assert e.value.errno == errno.EINVAL
        assert c.mig_state() == vu.MIG_ERROR
        with pytest.raises(vu.VfioUserError):
            c.set_mig_state(vu.MIG_RUNNING)
        c.reset()
        assert c.mig_state() == vu.MIG_RUNNING


def save_stream(c):
    """STOP_COPY's whole stream, the function left in STOP."""
    c.set_mig_state(vu.MIG_STOP_COPY)
    stream = c.mig_data_read(1 << 16)
    c.set_mig_state(vu.MIG_STOP)
    return stream


def load_stream(nic, dst, stream):
    """RESUMING -> RUNNING on dst; the errno if the state is refused (dst reset)."""
    dst.set_mig_state(vu.MIG_RESUMING)
    dst.mig_data_write(stream)
    try:
        dst.set_mig_state(vu.MIG_RUNNING)
        return 0
    except vu.VfioUserError as e:
        assert dst.mig_state() == vu.MIG_ERROR
        dst.reset()
        return e.errno


def test_state_moves_to_another_function_once_the_source_detached(nic, tap):
    """A VF's state loads into another VF of the same hdnic once the source's
    client detached after STOP_COPY: the guest's MAC goes with it (the source
    keeps showing it but no longer receives for it; the destination does).
    While the source's client is still there, the load is refused naming
    both functions.  A function whose guest left returns to its own MAC; the
    source's next client gets its MAC back once the guest left it again."""
    with VirtioNetVF(nic.sock(0)) as vf, VfioUserClient(nic.sock(1)) as dst:
        vf.post_rx()
        mac0, mac1 = nic.vf_info(0)["mac"], nic.vf_info(1)["mac"]
        stream = save_stream(vf.c)
        dst.version()
        dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
        assert load_stream(nic, dst, stream) == errno.EEXIST
        assert nic.vf_info(1)["mig_error"] == (
            f"the guest's MAC {mac0} is vf0's (its client has not detached yet): "
            "vf1 cannot take it")
        assert nic.vf_info(0)["mac_bound"]
        vf.c.close()
        assert wait_for(lambda: not nic.vf_info(0)["client"], timeout=3)
        info = nic.vf_info(0)
        assert info["mac"] == mac0 and not info["mac_bound"]
        assert load_stream(nic, dst, stream) == 0
        info = nic.vf_info(1)
        assert info["mac"] == mac0 and info["mac_bound"] and not info["mac_admin"]
        assert info["state"] == "running" and info["mig_error"] == ""
        tap.send(ether_frame(mac_bytes(mac0), PEER, payload=b"on-vf1"))
        assert vf.recv(match=tagged(b"on-vf1"))
        assert nic.stats(1)["rx_packets"] == 1 and nic.stats(0)["rx_packets"] == 0
        # vf0's next client: its MAC is vf1's now, so vf0 receives nothing for it
        with VfioUserClient(nic.sock(0)) as again:
            again.version()
            assert wait_for(lambda: nic.vf_info(0)["client"], timeout=3)
            assert not nic.vf_info(0)["mac_bound"]
        # the guest moves back: vf1 hands it away and returns to its own MAC, vf0 takes it
        stream = save_stream(dst)
        dst.close()
        assert wait_for(lambda: nic.vf_info(1)["mac"] == mac1, timeout=3)
        assert nic.vf_info(1)["mac_bound"]
        with VfioUserClient(nic.sock(0)) as back:
            back.version()
            back.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
            assert load_stream(nic, back, stream) == 0
            assert nic.vf_info(0)["mac_bound"] and nic.vf_info(0)["state"] == "running"


def test_admin_assigned_mac_stays_with_its_function(nic):
    """A MAC the admin gave a function (set-mac) is not released when a
    guest's state leaves it: loading that state elsewhere is refused naming
    both functions, and the source keeps receiving for it."""
    assert nic.ctl("set-mac", "0", "02:00:00:00:77:01").returncode == 0
    assert nic.vf_info(0)["mac_admin"]
    with VirtioNetVF(nic.sock(0)) as vf, VfioUserClient(nic.sock(1)) as dst:
        stream = save_stream(vf.c)
        vf.c.close()
        assert wait_for(lambda: not nic.vf_info(0)["client"], timeout=3)
        assert nic.vf_info(0)["mac_bound"]
        dst.version()
        dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
        assert load_stream(nic, dst, stream) == errno.EEXIST
        assert nic.vf_info(1)["mig_error"] == (
            "the guest's MAC 02:00:00:00:77:01 is vf0's (assigned by the admin): "
            "vf1 cannot take it")
        assert nic.vf_info(1)["mac"] != "02:00:00:00:77:01"


def test_function_moves_to_another_nic(ns, tmp_path):
    """The state stream of a VF loaded into a VF of a second hdnic: the
    destination continues the rings where the source stopped."""
    a = Hdnic(HDNIC, tmp_path / "a", vfs=1, uplink="tap:hdta", netns=ns, name="nica")
    b = Hdnic(HDNIC, tmp_path / "b", vfs=1, uplink="tap:hdtb", netns=ns, name="nicb")
    tap_b = ns.packet_socket("hdtb")
    try:
        with VirtioNetVF(a.sock(0)) as vf, VfioUserClient(b.sock(0)) as dst:
            vf.post_rx()
            dst.version()
            dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
            vf.c.set_mig_state(vu.MIG_STOP_COPY)
            stream = vf.c.mig_data_read(1 << 16)
            dst.set_mig_state(vu.MIG_RESUMING)
            dst.mig_data_write(stream)
            dst.set_mig_state(vu.MIG_RUNNING)
            assert b.vf_info(0)["mac"] == a.vf_info(0)["mac"]
            assert b.vf_info(0)["state"] == "running"
            ns.exec("ip", "link", "set", "hdtb", "up")
            tap_b.send(ether_frame(vf.mac(), PEER, payload=b"on-the-destination"))
            assert vf.recv(match=tagged(b"on-the-destination"))
            assert b.stats(0)["rx_packets"] == 1
    finally:
        tap_b.close()
        a.stop_checked()
        b.stop_checked()


def precopy_info(c):
    r, _ = c.device_feature(vu.FEATURE_GET | FEAT_PRECOPY_INFO, room=16)
    return struct.unpack_from("<QQ", r, 8)


def data_size(c):
    r, _ = c.device_feature(vu.FEATURE_GET | FEAT_MIG_DATA_SIZE, room=8)
    return struct.unpack_from("<Q", r, 8)[0]


def test_pre_copy_runs_then_stop_copy_completes(nic, tap):
    """PRE_COPY: the function keeps running (frames arrive) while the part
    that can go ahead is read (PRECOPY_INFO counts it down to 0); STOP_COPY
    through PRE_COPY_P2P gives the rest (MIG_DATA_SIZE says how much); the
    whole stream resumes a function of the same NIC; STOP_COPY -> PRE_COPY
    is refused; PRE_COPY -> RUNNING ends the session."""
    with VirtioNetVF(nic.sock(0)) as vf, VfioUserClient(nic.sock(1)) as dst:
        vf.post_rx()
        c = vf.c
        with pytest.raises(vu.VfioUserError) as e:
            precopy_info(c)
        assert e.value.errno == errno.EINVAL
        assert c.set_mig_state(vu.MIG_PRE_COPY) == vu.MIG_PRE_COPY
        assert nic.vf_info(0)["mig_state"] == "pre-copy"
        initial, dirty = precopy_info(c)
        assert initial > 0 and dirty == 0
        tap.send(ether_frame(vf.mac(), PEER, payload=b"during-precopy"))
        assert vf.recv(match=tagged(b"during-precopy"), repost=True), "PRE_COPY stopped RX"
        ahead = c.mig_data_read(4096)
        assert len(ahead) == initial and precopy_info(c) == (0, 0)
        # back to RUNNING: the session ends; again, and on to STOP_COPY
        assert c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
        assert c.set_mig_state(vu.MIG_PRE_COPY) == vu.MIG_PRE_COPY
        ahead = c.mig_data_read(4096)
        assert c.set_mig_state(vu.MIG_PRE_COPY_P2P) == vu.MIG_PRE_COPY_P2P
        assert precopy_info(c) == (0, 0)
        assert c.set_mig_state(vu.MIG_STOP_COPY) == vu.MIG_STOP_COPY
        rest_size = data_size(c)
        rest = c.mig_data_read(1 << 16)
        assert len(rest) == rest_size > 256
        with pytest.raises(vu.VfioUserError) as e:
            c.set_mig_state(vu.MIG_PRE_COPY)
        assert e.value.errno == errno.EINVAL
        # the other function takes ahead + rest
        dst.version()
        dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
        c.set_mig_state(vu.MIG_STOP)
        c.reset()
        mac = nic.vf_info(0)["mac"]
        c.close()       # the source's client goes: its MAC goes with the guest
        assert wait_for(lambda: not nic.vf_info(0)["client"], timeout=3)
        dst.set_mig_state(vu.MIG_RESUMING)
        dst.mig_data_write(ahead + rest)
        assert dst.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
        assert nic.vf_info(1)["mac"] == mac and nic.vf_info(1)["mig_announces"] == 1
