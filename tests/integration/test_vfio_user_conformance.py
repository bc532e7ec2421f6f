# SPDX-License-Identifier: MIT
"""vfio-user conformance of hdnic's server: spec-valid variations a client
other than hdvm may send (QEMU docs/interop/vfio-user.rst; the reference
implementation is libvfio-user).  Each row is something the spec allows and
what the spec says the server then does.  hdvm's client side has the same
table against the fake server in tests/unit/test_vfio_user_conformance.c.
"""
import errno
import json
import os
import select
import struct
import time

import pytest

import vfio_user_client as vu
from nichost import sniff
from vfio_user_client import VfioUserClient, VirtioNetVF, ether_frame, wait_for

PAGE = 4096


def memfd(size=1 << 20):
    fd = os.memfd_create("conf")
    os.ftruncate(fd, size)
    return fd


def padded(payload, argsz):
    """A request of argsz bytes: the client sends its whole buffer."""
    return payload + bytes(argsz - len(payload))


# conftest's `nic` with these options: a client must answer DMA_READ/DMA_WRITE within 1.5 s
HDNIC_EXTRA = ["--dma-timeout-ms", "1500"]


# ---- argsz is "at least": bigger buffers, the reply says what it needs ----

def region_info_whole_buffer(c):
    # the normal way to receive capabilities: argsz 64 and all 64 bytes sent
    payload, fds = c.call(vu.DEVICE_GET_REGION_INFO,
                          padded(vu.REGION_INFO_S.pack(64, 0, vu.BAR0, 0, 0, 0), 64))
    argsz, flags, index, cap_off, size, _ = vu.REGION_INFO_S.unpack_from(payload)
    assert (index, argsz, cap_off) == (vu.BAR0, 64, 32) and size == 0x4000
    assert flags & vu.REGION_F_MMAP and flags & vu.REGION_F_CAPS and len(fds) == 1
    os.close(fds[0])


def region_info_small_room(c):
    # room for the struct only: the reply's argsz says how much the caps need
    payload, fds = c.call(vu.DEVICE_GET_REGION_INFO,
                          padded(vu.REGION_INFO_S.pack(40, 0, vu.BAR0, 0, 0, 0), 40))
    argsz, flags, _i, cap_off, _s, _o = vu.REGION_INFO_S.unpack_from(payload)
    assert argsz == 64 and cap_off == 0 and fds == [] and len(payload) == 32


def irq_info_bigger(c):
    payload, _ = c.call(vu.DEVICE_GET_IRQ_INFO, padded(vu.IRQ_INFO_S.pack(64, 0, vu.MSIX, 0), 64))
    argsz, flags, index, count = vu.IRQ_INFO_S.unpack_from(payload)
    assert (argsz, index) == (16, vu.MSIX) and count >= 2 and flags & 1


def io_fds_bigger(c):
    payload, fds = c.call(vu.DEVICE_GET_REGION_IO_FDS,
                          padded(vu.IO_FDS_S.pack(1024, 0, vu.BAR0, 0), 1024))
    argsz, _flags, index, count = vu.IO_FDS_S.unpack_from(payload)
    assert index == vu.BAR0 and count >= 1 and argsz == 16 + 40 * count and fds
    for fd in fds:
        os.close(fd)


def io_fds_small_room(c):
    payload, fds = c.call(vu.DEVICE_GET_REGION_IO_FDS, vu.IO_FDS_S.pack(16, 0, vu.BAR0, 0))
    argsz, _flags, _index, count = vu.IO_FDS_S.unpack_from(payload)
    assert count >= 1 and argsz == 16 + 40 * count and fds == [] and len(payload) == 16


def device_info_kernel_size(c):
    # struct vfio_device_info is 24 bytes in today's kernel headers
    payload, _ = c.call(vu.DEVICE_GET_INFO, struct.pack("<IIIIII", 24, 0, 0, 0, 0, 0))
    argsz, _flags, nregions, _nirqs = struct.unpack_from("<IIII", payload)
    assert argsz == 16 and nregions == vu.NUM_REGIONS


def dma_map_unmap_bigger(c):
    fd = memfd(2 * PAGE)
    try:
        c.call(vu.DMA_MAP, padded(vu.DMA_MAP_S.pack(40, 3, 0, 0x200000, PAGE), 40), [fd])
        payload, _ = c.call(vu.DMA_UNMAP, padded(vu.DMA_UNMAP_S.pack(32, 0, 0x200000, PAGE), 32))
        assert vu.DMA_UNMAP_S.unpack_from(payload)[2:] == (0x200000, PAGE)
    finally:
        os.close(fd)


def set_irqs_argsz_counts_fds(c):
    # a client may count its eventfds in argsz (as the kernel does) though they go as SCM_RIGHTS
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        flags = vu.IRQ_DATA_EVENTFD | vu.IRQ_ACTION_TRIGGER
        c.call(vu.DEVICE_SET_IRQS, vu.IRQ_SET_S.pack(20 + 4, flags, vu.MSIX, 0, 1), [efd])
    finally:
        os.close(efd)


# ---- DMA_MAP without an fd ----

def dma_map_without_fd(c):
    # valid in the spec (the server would use DMA_READ/WRITE): the region takes
    # its place in the function's address space with the usual checks
    fd = memfd(PAGE)
    try:
        c.call(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, 0x300000, 4 * PAGE))
        assert c.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, 0x302000, PAGE),
                              [fd]) == errno.EEXIST                  # overlaps it
        assert c.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, 0x300800, PAGE)) == \
            errno.EINVAL                                                # misaligned
        assert c.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 0, 0, 0x400000, PAGE)) == \
            errno.EINVAL                                                # no access at all
        payload, _ = c.call(vu.DMA_UNMAP, vu.DMA_UNMAP_S.pack(24, 0, 0x300000, 4 * PAGE))
        assert vu.DMA_UNMAP_S.unpack_from(payload)[2:] == (0x300000, 4 * PAGE)
    finally:
        os.close(fd)


# ---- migration as libvfio-user's client does it ----

def mig_data_read_padded(c):
    # a short read ends the stream; the reply is as long as asked (size tells
    # the data), the length libvfio-user's client insists on
    c.set_mig_state(vu.MIG_STOP)
    c.set_mig_state(vu.MIG_STOP_COPY)
    total = 0
    while True:
        payload, _ = c.call(vu.MIG_DATA_READ, struct.pack("<II", 8 + 1024, 1024))
        argsz, size = struct.unpack_from("<II", payload)
        assert len(payload) == 8 + 1024 and argsz == 8 + size and size <= 1024
        assert payload[8 + size:] == bytes(1024 - size)        # zero padding, no stale bytes
        total += size
        if size < 1024:
            break
    assert total > 0
    c.set_mig_state(vu.MIG_STOP)
    c.set_mig_state(vu.MIG_RUNNING)


def dirty_bitmap_u64_words(c):
    # the REPORT bitmap is whole u64 words (kernel, libvfio-user): 8 pages -> 8 bytes
    fd = memfd(8 * PAGE)
    try:
        c.dma_map(fd, 0x500000, 8 * PAGE)
        c.dma_logging_start([])
        payload, _ = c.device_feature(vu.FEATURE_GET | vu.FEAT_DMA_LOGGING_REPORT,
                                      struct.pack("<QQQ", 0x500000, 8 * PAGE, PAGE), room=24 + 8)
        assert len(payload) == 8 + 24 + 8 and payload[32:] == bytes(8)
        c.dma_logging_stop()
    finally:
        os.close(fd)


# ---- No_Reply: no reply at all, error or not ----

def no_reply_on_failure(c):
    c.send(vu.REGION_READ, vu.ACCESS_S.pack(0, 6, 4), flags=vu.F_NO_REPLY)      # absent region
    c.send(vu.DEVICE_RESET, b"junk", flags=vu.F_NO_REPLY)                        # bad length
    want = c.send(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
    rid, cmd, flags, err, _payload, _fds = c.recv()
    assert (rid, cmd, flags & (0xF | vu.F_ERROR), err) == (want, vu.DEVICE_GET_INFO, 1, 0)
    assert not select.select([c.sock], [], [], 0.1)[0], "a No_Reply message was answered"


def no_reply_on_success(c):
    c.send(vu.REGION_WRITE, vu.ACCESS_S.pack(0x10, vu.CONFIG, 4) + b"\0\0\0\xc0",
           flags=vu.F_NO_REPLY)
    assert c.read32(vu.CONFIG, 0x10) == 0xC0000000




CASES = {
    "region_info_whole_buffer": region_info_whole_buffer,
    "region_info_small_room": region_info_small_room,
    "irq_info_bigger_argsz": irq_info_bigger,
    "io_fds_bigger_argsz": io_fds_bigger,
    "io_fds_small_room": io_fds_small_room,
    "device_info_kernel_size": device_info_kernel_size,
    "dma_map_unmap_bigger_argsz": dma_map_unmap_bigger,
    "set_irqs_argsz_counts_fds": set_irqs_argsz_counts_fds,
    "dma_map_without_fd": dma_map_without_fd,
    "mig_data_read_padded": mig_data_read_padded,
    "dirty_bitmap_u64_words": dirty_bitmap_u64_words,
    "no_reply_on_failure": no_reply_on_failure,
    "no_reply_on_success": no_reply_on_success,
}


@pytest.mark.parametrize("case", list(CASES))
def test_conformance(nic, case):
    with VfioUserClient(nic.sock(0)) as c:
        c.version()
        CASES[case](c)
        assert c.device_info()["num_regions"] == vu.NUM_REGIONS    # still in sync
    assert nic.alive(), nic.output()


# ---- VERSION variations ----

def test_extra_capability_keys_ignored(nic):
    """Keys hdnic does not know (twin_socket, vendor keys, QEMU's max_bitmap_size)
    are ignored; migration.pgsize is taken; the reply names only what hdnic has."""
    caps = {"capabilities": {"max_msg_fds": 8, "max_data_xfer_size": 65536,
                             "twin_socket": {"supported": False},
                             "migration": {"pgsize": 4096, "max_bitmap_size": 1 << 20},
                             "vendor_extension": [1, 2, 3]},
            "something_else": {"a": 1}}
    with VfioUserClient(nic.sock(0)) as c:
        major, minor, reply = c.version(caps=caps)
        assert (major, minor) == (0, 2)
        r = reply["capabilities"]
        assert r["max_msg_fds"] == 8 and r["max_data_xfer_size"] == 65536
        assert r["migration"] == {"pgsize": 4096}     # hdnic migrates (vfu_feature.c)
        assert set(r) <= {"max_msg_fds", "max_data_xfer_size", "max_dma_maps", "pgsizes",
                          "write_multiple", "migration"}
        assert c.device_info()["num_regions"] == vu.NUM_REGIONS


@pytest.mark.parametrize("limit", [8, 64, 4096])
def test_transfer_exactly_at_negotiated_limit(nic, limit):
    """max_data_xfer_size bounds REGION_READ and REGION_WRITE both ways: exactly
    the limit is served, one byte more is E2BIG, and the stream stays in sync."""
    with VfioUserClient(nic.sock(0)) as c:
        c.version(caps={"capabilities": {"max_msg_fds": 16, "max_data_xfer_size": limit}})
        assert c.server_caps["capabilities"]["max_data_xfer_size"] == limit
        data = c.region_read(vu.CONFIG, 0, limit)
        assert len(data) == limit
        c.region_write(vu.CONFIG, 0, data)              # same bytes back: harmless
        assert c.expect_error(vu.REGION_READ, vu.ACCESS_S.pack(0, vu.CONFIG, limit + 1)) == \
            errno.E2BIG
        assert c.expect_error(vu.REGION_WRITE, vu.ACCESS_S.pack(0, vu.CONFIG, limit + 1) +
                              bytes(data) + b"\0") == errno.E2BIG
        assert c.device_info()["num_regions"] == vu.NUM_REGIONS


def test_server_caps_parse_with_the_shared_rules(nic):
    """hdnic's reply is valid for the parser both sides share: NUL-terminated JSON."""
    with VfioUserClient(nic.sock(0)) as c:
        c.send(vu.VERSION, struct.pack("<HH", 0, 2) + b'{"capabilities":{}}\0')
        _rid, _cmd, flags, _err, payload, _fds = c.recv()
        assert not flags & vu.F_ERROR
        assert payload.endswith(b"\0") and payload.count(b"\0", 4) == 1
        json.loads(payload[4:-1])


FDLESS_IOVA = 0x80000000
PEER = bytes.fromhex("02aabbccdd01")


def in_map(vf, command, address, count):
    return vf.IOVA <= address and address + count <= vf.IOVA + vf.MEM_SIZE


def test_fdless_tx_rx_real_frames(nic, tap):
    """Rings and buffers in memory mapped without an fd: every descriptor,
    index and frame byte goes through DMA_READ/DMA_WRITE, and real frames
    flow both ways (uplink and another function)."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf, VirtioNetVF(nic.sock(1)) as other:
        assert nic.vf_info(0)["dma_slow"] and not nic.vf_info(1)["dma_slow"]
        vf.post_rx()
        other.post_rx()
        for i in range(5):
            tap.send(ether_frame(vf.mac(), PEER, payload=b"down-%d" % i))
            assert vf.recv(match=lambda f, i=i: b"down-%d" % i in f, repost=True) is not None
        for i in range(5):
            vf.send(ether_frame(PEER, vf.mac(), payload=b"up-%d" % i))
            assert sniff(tap, lambda f, i=i: b"up-%d" % i in f), "frame never left"
        vf.send(ether_frame(other.mac(), vf.mac(), payload=b"vf-to-vf"))
        assert other.recv(match=lambda f: b"vf-to-vf" in f) is not None
        other.send(ether_frame(vf.mac(), other.mac(), payload=b"vf-from-vf"))
        assert vf.recv(match=lambda f: b"vf-from-vf" in f) is not None
        st = nic.stats(0)
        assert st["dma_msgs"] > 0 and st["dma_msg_errors"] == 0 and st["needs_reset"] == 0
        cmds = {cmd for cmd, _a, _n in vf.c.dma_log}
        assert cmds == {vu.DMA_READ, vu.DMA_WRITE}
        assert all(in_map(vf, *e) for e in vf.c.dma_log)
        assert nic.stats(1)["dma_msgs"] == 0
    assert nic.alive(), nic.output()


def test_fdless_dma_never_outside_a_map(nic, tap):
    """A descriptor naming an address outside every map: no DMA_READ/WRITE is
    sent for it (the PASID check refuses it first), the function faults."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf, VirtioNetVF(nic.sock(1)) as other:
        r = vf.rings[vu.RX]
        r.set_desc(0, 0x90000000, 2048, vu.DESC_F_WRITE)     # mapped by nobody
        r.publish(0)
        vf.ring_doorbell(vu.RX)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"to-nowhere"))
        assert wait_for(lambda: vf.status() & vu.S_NEEDS_RESET), "function not in NEEDS_RESET"
        assert nic.stats(0)["dma_faults"] >= 1
        assert vf.c.dma_log and all(in_map(vf, *e) for e in vf.c.dma_log), vf.c.dma_log
        other.post_rx()
        tap.send(ether_frame(other.mac(), PEER, payload=b"to-other"))
        assert other.recv(match=lambda f: b"to-other" in f) is not None
    assert nic.alive(), nic.output()


def test_fdless_client_never_answers(nic, tap):
    """A client that stops answering DMA_READ stalls only its own function:
    another function of the same hdnic forwards meanwhile, and at the deadline
    the silent one is in NEEDS_RESET with the reason counted and logged."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf, VirtioNetVF(nic.sock(1)) as other:
        other.post_rx()
        vf.c.dma_serve = False
        asked = len(vf.c.dma_log)
        vf.send(ether_frame(PEER, vf.mac(), payload=b"never-read"))
        assert wait_for(lambda: len(vf.c.dma_log) > asked, timeout=2), "no DMA_READ sent"
        t0 = time.monotonic()
        for i in range(20):                       # while vf0's request waits
            tap.send(ether_frame(other.mac(), PEER, payload=b"meanwhile-%d" % i))
            assert other.recv(match=lambda f, i=i: b"meanwhile-%d" % i in f,
                              repost=True) is not None
            other.send(ether_frame(PEER, other.mac(), payload=b"out-%d" % i))
            assert sniff(tap, lambda f, i=i: b"out-%d" % i in f)
        during = time.monotonic() - t0
        stalled = not (vf.status() & vu.S_NEEDS_RESET)
        assert wait_for(lambda: vf.status() & vu.S_NEEDS_RESET, timeout=5)
        assert stalled or during > 1.0, "the other function's traffic was not during the wait"
        st = nic.stats(0)
        assert st["dma_msg_errors"] == 1 and st["needs_reset"] == 1
        assert "no reply within 1500 ms" in nic.vf_info(0)["dma_slow_error"]
        assert "no reply within 1500 ms" in nic.output()
        tap.send(ether_frame(other.mac(), PEER, payload=b"after"))
        assert other.recv(match=lambda f: b"after" in f) is not None
    assert nic.alive(), nic.output()


def _bad_size(msg_id, command, payload):
    address, count = vu.DMA_RW_S.unpack_from(payload)
    body = payload[:16] + bytes(count + 1 if command == vu.DMA_READ else 0)
    return vu.HDR.pack(msg_id, command, vu.HDR.size + len(body), vu.F_TYPE_REPLY, 0) + body


def _wrong_address(msg_id, command, payload):
    address, count = vu.DMA_RW_S.unpack_from(payload)
    body = vu.DMA_RW_S.pack(address + 4096, count) + \
        (bytes(count) if command == vu.DMA_READ else b"")
    return vu.HDR.pack(msg_id, command, vu.HDR.size + len(body), vu.F_TYPE_REPLY, 0) + body


@pytest.mark.parametrize("hook", [_bad_size, _wrong_address], ids=["wrong_size", "wrong_address"])
def test_fdless_malformed_reply_refused(nic, tap, hook):
    """A reply that does not match its request (size, address) is refused: the
    function stops with "malformed reply", hdnic and the others go on."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf, VirtioNetVF(nic.sock(1)) as other:
        vf.c.dma_reply_hook = hook
        vf.send(ether_frame(PEER, vf.mac(), payload=b"bad-reply"))
        assert wait_for(lambda: vf.status() & vu.S_NEEDS_RESET), "function not in NEEDS_RESET"
        assert "malformed reply" in nic.vf_info(0)["dma_slow_error"]
        assert nic.stats(0)["dma_msg_errors"] == 1
        other.post_rx()
        tap.send(ether_frame(other.mac(), PEER, payload=b"still-here"))
        assert other.recv(match=lambda f: b"still-here" in f) is not None
    assert nic.alive(), nic.output()


def test_fdless_unknown_reply_id_refused(nic, tap):
    """A reply to an id hdnic never used is refused and counted; the stream
    stays in sync and the function keeps working with the real replies."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf:
        def also_unknown(msg_id, command, payload):
            body = payload[:16] + (bytes(vu.DMA_RW_S.unpack_from(payload)[1])
                                   if command == vu.DMA_READ else b"")
            vf.c.send_raw(vu.HDR.pack(msg_id ^ 0x8000, command, vu.HDR.size + len(body),
                                      vu.F_TYPE_REPLY, 0) + body)
            return None                             # then the real answer
        before = nic.stats(0)["proto_errors"]
        vf.c.dma_reply_hook = also_unknown
        vf.post_rx()
        tap.send(ether_frame(vf.mac(), PEER, payload=b"despite-junk"))
        assert vf.recv(match=lambda f: b"despite-junk" in f) is not None
        assert nic.stats(0)["proto_errors"] > before
        assert not vf.status() & vu.S_NEEDS_RESET
        assert vf.c.device_info()["num_regions"] == vu.NUM_REGIONS
    assert nic.alive(), nic.output()


def test_fdless_dma_write_is_dirty_logged(nic, tap):
    """DMA logging covers what hdnic wrote with DMA_WRITE: the RX buffer's page."""
    with VirtioNetVF(nic.sock(0), nofd=True) as vf:
        vf.c.dma_logging_start([])
        vf.post_rx(1)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"dirty-me"))
        assert vf.recv(match=lambda f: b"dirty-me" in f) is not None
        dirty = vf.c.dma_logging_report(vf.IOVA, vf.MEM_SIZE)
        assert vf.bufs[vu.RX] // PAGE in dirty, f"RX buffer page not dirty: {sorted(dirty)}"
        vf.c.dma_logging_stop()


def test_fdless_requests_held_to_the_clients_transfer_limit(nic, tap):
    """max_data_xfer_size bounds hdnic's DMA_READ/DMA_WRITE too: with 64 bytes,
    rings and frames go in 64-byte pieces, and frames still flow both ways."""
    caps = {"capabilities": {"max_msg_fds": 16, "max_data_xfer_size": 64}}
    with VirtioNetVF(nic.sock(0), nofd=True, caps=caps) as vf:
        vf.post_rx()
        tap.send(ether_frame(vf.mac(), PEER, payload=b"in-pieces-down"))
        assert vf.recv(match=lambda f: b"in-pieces-down" in f) is not None
        vf.send(ether_frame(PEER, vf.mac(), payload=b"in-pieces-up"))
        assert sniff(tap, lambda f: b"in-pieces-up" in f)
        counts = [n for _c, _a, n in vf.c.dma_log]
        assert max(counts) == 64 and min(counts) >= 1
        assert nic.stats(0)["dma_msg_errors"] == 0


def test_fdless_beside_fd_memory(nic, tap):
    """A function with both: rings and buffers in its memfd, one more region
    without an fd.  It goes on the slow path (its rings are copied, so a
    buffer could be in either), frames flow; then the client truncates its
    memfd under the rings: refused (SIGBUS caught), NEEDS_RESET, hdnic alive."""
    with VirtioNetVF(nic.sock(0)) as vf, VirtioNetVF(nic.sock(1)) as other:
        vf.c.dma_map_nofd(FDLESS_IOVA, 16 * PAGE)
        assert nic.vf_info(0)["dma_slow"]
        vf.post_rx()
        tap.send(ether_frame(vf.mac(), PEER, payload=b"mixed-down"))
        assert vf.recv(match=lambda f: b"mixed-down" in f, repost=True) is not None
        vf.send(ether_frame(PEER, vf.mac(), payload=b"mixed-up"))
        assert sniff(tap, lambda f: b"mixed-up" in f)
        vf.send(ether_frame(PEER, vf.mac(), payload=b"after-truncate"), kick=False)
        os.ftruncate(vf.memfd, 0)           # (our own memory is gone too: touch nothing)
        vf.notify(vu.TX)
        assert wait_for(lambda: vf.status() & vu.S_NEEDS_RESET), "function not in NEEDS_RESET"
        other.post_rx()
        tap.send(ether_frame(other.mac(), PEER, payload=b"other-fine"))
        assert other.recv(match=lambda f: b"other-fine" in f) is not None
    assert nic.alive(), nic.output()


def test_fdless_write_reply_with_the_specs_4_byte_count(nic, tap):
    """The spec's table gives DMA_WRITE's reply a 4-byte count (12 bytes in all),
    libvfio-user sends 8: hdnic takes either."""
    def spec_layout(msg_id, command, payload):
        if command != vu.DMA_WRITE:
            return None
        address, count = vu.DMA_RW_S.unpack_from(payload)
        mem, off = vf.c._dma_target(address, count)         # the write itself, as usual
        mem[off:off + count] = payload[16:]
        body = struct.pack("<QI", address, count)
        return vu.HDR.pack(msg_id, command, vu.HDR.size + len(body), vu.F_TYPE_REPLY, 0) + body
    with VirtioNetVF(nic.sock(0), nofd=True) as vf:
        vf.c.dma_reply_hook = spec_layout
        vf.post_rx()
        tap.send(ether_frame(vf.mac(), PEER, payload=b"short-count"))
        assert vf.recv(match=lambda f: b"short-count" in f) is not None
        assert not vf.status() & vu.S_NEEDS_RESET
        assert nic.stats(0)["dma_msg_errors"] == 0


def _tx_rate(vf, tap, frames=256, batch=8):
    t0 = time.monotonic()
    for n in range(0, frames, batch):
        for i in range(batch):
            vf.send(ether_frame(PEER, vf.mac(), payload=b"rate-%d" % (n + i)))
        assert len(vf.wait_tx_done(batch)) == batch
    return frames / (time.monotonic() - t0)


def _rx_rate(vf, tap, frames=256, batch=8):
    vf.post_rx()
    t0 = time.monotonic()
    for n in range(0, frames, batch):
        for i in range(batch):
            tap.send(ether_frame(vf.mac(), PEER, payload=b"rate-%d" % (n + i)))
        for i in range(batch):
            assert vf.recv(match=lambda f: b"rate-" in f, repost=True) is not None
    return frames / (time.monotonic() - t0)


def test_fdless_cost_side_by_side(nic, tap):
    """What the message path costs: the same Python driver on the fd path and on
    the slow path, 256 frames each way in batches of 8 (numbers printed; the
    README quotes them).  Only correctness is asserted."""
    rates = {}
    for name, nofd in (("fd", False), ("nofd", True)):
        with VirtioNetVF(nic.sock(0), nofd=nofd) as vf:
            rates[name] = (_tx_rate(vf, tap), _rx_rate(vf, tap))
            msgs = nic.stats(0)["dma_msgs"]
            assert (msgs > 0) == nofd
            if nofd:
                rates["msgs_per_frame"] = msgs / 512
    print(f"\nfd path:   TX {rates['fd'][0]:.0f} frames/s, RX {rates['fd'][1]:.0f} frames/s"
          f"\nslow path: TX {rates['nofd'][0]:.0f} frames/s, RX {rates['nofd'][1]:.0f} frames/s"
          f" ({rates['msgs_per_frame']:.1f} DMA_READ/WRITE per frame)")
