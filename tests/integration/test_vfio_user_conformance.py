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

import pytest

import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF, ether_frame, wait_for

PAGE = 4096


def memfd(size=1 << 20):
    fd = os.memfd_create("conf")
    os.ftruncate(fd, size)
    return fd


def padded(payload, argsz):
    """A request of argsz bytes: the client sends its whole buffer."""
    return payload + bytes(argsz - len(payload))


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


def test_fdless_memory_is_listed_and_never_reached(nic, tap):
    """A driver that puts an RX buffer into memory mapped without an fd: hdnic's
    DMA engine cannot reach it, so the function faults (NEEDS_RESET) instead of
    touching anything, and the other functions keep working."""
    with VirtioNetVF(nic.sock(0)) as vf, VirtioNetVF(nic.sock(1)) as other:
        vf.c.call(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, FDLESS_IOVA, 16 * PAGE))
        assert nic.vf_info(0)["dma_maps"] == 2
        r = vf.rings[vu.RX]
        r.set_desc(0, FDLESS_IOVA, 2048, vu.DESC_F_WRITE)
        r.publish(0)
        tap.send(ether_frame(vf.mac(), PEER, payload=b"to-fdless-rx"))
        assert wait_for(lambda: vf.status() & vu.S_NEEDS_RESET), "function not in NEEDS_RESET"
        assert nic.stats(0)["needs_reset"] == 1
        other.post_rx()
        tap.send(ether_frame(other.mac(), PEER, payload=b"to-other"))
        assert other.recv(match=lambda f: b"to-other" in f) is not None
    assert nic.alive(), nic.output()
