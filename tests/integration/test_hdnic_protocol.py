# SPDX-License-Identifier: MIT
"""hdnic's vfio-user server against well-formed and malformed clients."""
import errno
import os
import select
import socket
import struct
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF
from nichost import Hdnic, Netns

PAGE = 4096


@pytest.fixture
def nic(tmp_path):
    ns = Netns()
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=4, uplink="tap:hdt0", netns=ns)
    yield n
    rc = n.stop()
    ns.delete()
    assert rc == 0, n.output()
    assert "AddressSanitizer" not in n.output()


@pytest.fixture
def client(nic):
    with VfioUserClient(nic.sock(0)) as c:
        c.version()
        yield c


def memfd(size=1 << 20):
    fd = os.memfd_create("t")
    os.ftruncate(fd, size)
    return fd


def still_serving(nic, vf=0):
    """hdnic is alive and a fresh client on vf can negotiate and query."""
    assert nic.alive(), nic.output()
    with VfioUserClient(nic.sock(vf)) as c:
        c.version()
        assert c.device_info()["num_regions"] == vu.NUM_REGIONS


# ---- well-formed ----

def test_version_and_device_info(nic):
    with VfioUserClient(nic.sock(0)) as c:
        major, minor, caps = c.version()
        assert (major, minor) == (0, 2)
        caps = caps["capabilities"]
        assert caps["max_msg_fds"] >= 1 and caps["max_data_xfer_size"] == 1 << 20
        assert caps["pgsizes"] & 4096 and caps["max_dma_maps"] >= 2
        info = c.device_info()
        assert info["flags"] == 3          # RESET | PCI
        assert info["num_regions"] == 9 and info["num_irqs"] == 5


def test_version_minor_is_lowered_and_caps_optional(nic):
    with VfioUserClient(nic.sock(1)) as c:
        assert c.version(caps=False, minor=7)[:2] == (0, 2)
    with VfioUserClient(nic.sock(1)) as c:
        assert c.version(caps={"capabilities": {"max_msg_fds": 2}})[2]["capabilities"][
            "max_msg_fds"] == 2


def test_region_info(client):
    bar0 = client.region_info(vu.BAR0)
    try:
        assert bar0["size"] == 4 * PAGE
        assert bar0["flags"] & (vu.REGION_F_READ | vu.REGION_F_WRITE | vu.REGION_F_MMAP)
        assert bar0["areas"] == [(2 * PAGE, PAGE)]     # the doorbell page
        assert bar0["fd"] is not None
    finally:
        os.close(bar0["fd"])
    cfg = client.region_info(vu.CONFIG)
    assert cfg["size"] == 4096 and cfg["fd"] is None and not cfg["flags"] & vu.REGION_F_MMAP
    for idx in (1, 2, 3, 4, 5, 6, 8):
        assert client.region_info(idx)["size"] == 0
    assert client.expect_error(vu.DEVICE_GET_REGION_INFO,
                               vu.REGION_INFO_S.pack(32, 0, 9, 0, 0, 0)) == errno.EINVAL


def test_region_info_two_step_has_no_fd_first(client):
    payload, fds = client.call(vu.DEVICE_GET_REGION_INFO, vu.REGION_INFO_S.pack(32, 0, 0, 0, 0, 0))
    argsz, flags, *_ = vu.REGION_INFO_S.unpack_from(payload)
    assert argsz > 32 and flags & vu.REGION_F_CAPS and fds == []


def test_io_fds_and_irq_info(client):
    subs, fds = client.region_io_fds(vu.BAR0)
    try:
        assert [(s[0], s[1]) for s in subs] == [(0x1000, 2), (0x1004, 2)]
        assert len(fds) == 2 and {s[2] for s in subs} == {0, 1}
    finally:
        for fd in fds:
            os.close(fd)
    assert client.region_io_fds(vu.CONFIG) == ([], [])
    # too little room: the server says how much it needs and sends no fds
    payload, fds = client.call(vu.DEVICE_GET_REGION_IO_FDS, vu.IO_FDS_S.pack(16, 0, 0, 0))
    assert vu.IO_FDS_S.unpack_from(payload)[0] == 16 + 2 * 40 and fds == []
    assert client.irq_info(vu.MSIX) == (1 | 8, 3)      # EVENTFD | NORESIZE, 3 vectors
    for idx in (0, 1, 3, 4):
        assert client.irq_info(idx)[1] == 0


def test_io_fds_shared_when_client_takes_one_fd(nic):
    with VfioUserClient(nic.sock(2)) as c:
        c.version(caps={"capabilities": {"max_msg_fds": 1}})
        subs, fds = c.region_io_fds(vu.BAR0)
        assert len(subs) == 2 and len(fds) == 1 and {s[2] for s in subs} == {0}
        os.close(fds[0])


def cfg_read(c, off, n):
    return c.region_read(vu.CONFIG, off, n)


def test_config_space(client):
    vid, did = struct.unpack("<HH", cfg_read(client, 0, 4))
    assert (vid, did) == (0x1af4, 0x1041)
    assert cfg_read(client, 0x0b, 1)[0] == 0x02            # network controller
    # walk the capability list
    caps, pos, seen = {}, cfg_read(client, 0x34, 1)[0], 0
    while pos and seen < 16:
        cap = cfg_read(client, pos, 24)
        if cap[0] == 0x09 and cap[3] == 9:    # vendor data: told apart by magic
            caps[("vendor", struct.unpack_from("<H", cap, 6)[0])] = cap
        elif cap[0] == 0x09:
            caps[("virtio", cap[3])] = cap
        else:
            caps[cap[0]] = cap
        pos, seen = cap[1], seen + 1
    for t in (1, 2, 3, 4, 5):
        assert ("virtio", t) in caps, f"virtio cap type {t} missing"
    assert ("vendor", 0x5453) in caps, "statistics capability missing"
    db = caps[("vendor", 0x4448)]
    vendor, magic, bar, ver, stride, off, length, slots = struct.unpack_from("<HHBBHIIH", db, 4)
    assert (vendor, magic, bar, stride, off, length, slots) == (0x1af4, 0x4448, 0, 64, 0x2000,
                                                                0x1000, 2)
    notify = caps[("virtio", 2)]
    assert struct.unpack_from("<I", notify, 16)[0] == 4      # notify_off_multiplier
    msix = caps[0x11]
    ctrl, table, pba = struct.unpack_from("<HII", msix, 2)
    assert ctrl & 0x7ff == 2 and table == 0x3000 and pba == 0x3800
    # BAR sizing and read-only fields
    client.write32(vu.CONFIG, 0x10, 0xFFFFFFFF)
    assert client.read32(vu.CONFIG, 0x10) == 0xFFFFC000
    client.write32(vu.CONFIG, 0x10, 0xC0000000)
    assert client.read32(vu.CONFIG, 0x10) == 0xC0000000
    client.write32(vu.CONFIG, 0, 0x12345678)
    assert client.read32(vu.CONFIG, 0) == 0x10411af4
    assert cfg_read(client, 0x100, 4) == bytes(4)          # no extended capabilities


def test_pci_cfg_access_capability(client):
    # virtio_pci_cfg_cap at 0xa0: bar 0, offset 0x200 (device config), length 4
    client.region_write(vu.CONFIG, 0xa0 + 4, b"\0")
    client.write32(vu.CONFIG, 0xa0 + 8, 0x200)
    client.write32(vu.CONFIG, 0xa0 + 12, 4)
    via_cfg = cfg_read(client, 0xa0 + 16, 4)
    assert via_cfg == client.region_read(vu.BAR0, 0x200, 4)


def test_pipelined_requests_answered_in_order(client):
    ids = [client.send(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0)) for _ in range(20)]
    for want in ids:
        rid, cmd, flags, err, payload, fds = client.recv()
        assert (rid, cmd, flags & 0xF, err) == (want, vu.DEVICE_GET_INFO, 1, 0)


def test_no_reply_flag(client):
    client.send(vu.REGION_WRITE, vu.ACCESS_S.pack(0x10, vu.CONFIG, 4) + b"\0\0\0\xc0",
                flags=vu.F_NO_REPLY)
    assert client.read32(vu.CONFIG, 0x10) == 0xC0000000


def test_region_write_multi(nic):
    with VfioUserClient(nic.sock(3)) as c:
        c.version(caps={"capabilities": {"max_msg_fds": 16, "write_multiple": True}})
        entry = struct.pack("<QII", 0x10, vu.CONFIG, 4) + struct.pack("<I", 0xD0000000) + bytes(4)
        payload, _ = c.call(vu.REGION_WRITE_MULTI, struct.pack("<Q", 1) + entry)
        assert struct.unpack("<Q", payload)[0] == 1
        assert c.read32(vu.CONFIG, 0x10) == 0xD0000000
    with VfioUserClient(nic.sock(3)) as c:     # not negotiated: refused
        c.version()
        assert c.expect_error(vu.REGION_WRITE_MULTI, struct.pack("<Q", 1) + entry) == \
            errno.EOPNOTSUPP


def test_dma_map_unmap(client):
    fd = memfd(4 * PAGE)
    try:
        client.dma_map(fd, 0x100000, 2 * PAGE)
        client.dma_map(fd, 0x102000, 2 * PAGE, offset=2 * PAGE)
        assert client.dma_unmap(0x100000, 2 * PAGE)[2:] == (0x100000, 2 * PAGE)
        client.dma_map(fd, 0x100000, PAGE)
        client.dma_unmap(0, 0, flags=2)            # VFIO_DMA_UNMAP_FLAG_ALL
        with pytest.raises(vu.VfioUserError) as e:
            client.dma_unmap(0x102000, 2 * PAGE)
        assert e.value.errno == errno.ENOENT
    finally:
        os.close(fd)


def test_device_feature_argsz_is_the_reply_room(client):
    """argsz is the largest reply the client takes: >= the request is fine,
    and a GET whose reply does not fit is refused."""
    for argsz in (8, 16, 4096):
        payload, _ = client.call(vu.DEVICE_FEATURE, struct.pack("<II", argsz, vu.FEATURE_PROBE |
                                                                vu.FEATURE_GET | 1))
        assert struct.unpack("<II", payload) == (argsz, vu.FEATURE_PROBE | vu.FEATURE_GET | 1)
    assert client.expect_error(vu.DEVICE_FEATURE, struct.pack("<II", 7, vu.FEATURE_PROBE | 1)) == \
        errno.EINVAL
    assert client.expect_error(vu.DEVICE_FEATURE, struct.pack("<II", 12, vu.FEATURE_GET | 1)) == \
        errno.EINVAL
    payload, _ = client.call(vu.DEVICE_FEATURE, struct.pack("<II", 16, vu.FEATURE_GET | 1))
    assert struct.unpack("<IIQ", payload) == (16, vu.FEATURE_GET | 1,
                                              vu.MIGRATION_STOP_COPY | vu.MIGRATION_P2P |
                                              4)      # PRE_COPY
    client.device_info()


def test_device_feature_flags(client):
    """Migration, MIG_DATA_SIZE and dirty logging exist (test_hdnic_migration.py); the
    rest does not."""
    for feature in (0, 3, 10, 11, 0xffff):
        with pytest.raises(vu.VfioUserError) as e:
            client.device_feature(vu.FEATURE_PROBE | vu.FEATURE_GET | feature)
        assert e.value.errno == errno.EOPNOTSUPP
    assert client.expect_error(vu.DEVICE_FEATURE, struct.pack("<II", 8, vu.FEATURE_GET |
                                                              vu.FEATURE_SET | 1)) == errno.EINVAL
    assert client.expect_error(vu.DEVICE_FEATURE, struct.pack("<II", 8, 1 << 20 | 1)) == \
        errno.EINVAL
    # no session: migration data is refused
    assert client.expect_error(vu.MIG_DATA_READ, struct.pack("<II", 8, 64)) == errno.EINVAL


# ---- malformed traffic ----

def test_commands_before_version_are_refused(nic):
    with VfioUserClient(nic.sock(0)) as c:
        assert c.expect_error(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0)) == errno.EINVAL
        c.version()
        assert c.expect_error(vu.VERSION, struct.pack("<HH", 0, 2)) == errno.EINVAL  # twice
        c.device_info()


def test_bad_version(nic):
    cases = [
        (struct.pack("<HH", 1, 0), errno.EOPNOTSUPP),                  # wrong major
        (struct.pack("<HH", 0, 2) + b"{not json\0", errno.EINVAL),
        (struct.pack("<HH", 0, 2) + b'{"capabilities":3}\0', errno.EINVAL),
        (struct.pack("<HH", 0, 2) + b'{"capabilities":{}}', errno.EINVAL),  # no NUL
        (struct.pack("<HH", 0, 2) + b'{"capabilities":{"max_msg_fds":-1}}\0', errno.EINVAL),
        (struct.pack("<H", 0), errno.EINVAL),                          # short
    ]
    for payload, want in cases:
        with VfioUserClient(nic.sock(1)) as c:
            assert c.expect_error(vu.VERSION, payload) == want, payload
    still_serving(nic, 1)


def test_truncated_header_then_disconnect(nic):
    for n in (1, 8, 15):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(nic.sock(0)))
        s.sendall(vu.HDR.pack(1, vu.VERSION, 20, 0, 0)[:n])
        time.sleep(0.05)
        s.close()
    still_serving(nic)


def test_header_split_across_writes(client):
    msg = vu.HDR.pack(77, vu.DEVICE_GET_INFO, 32, 0, 0) + struct.pack("<IIII", 16, 0, 0, 0)
    for chunk in (msg[:5], msg[5:16], msg[16:20], msg[20:]):
        client.send_raw(chunk)
        time.sleep(0.02)
    rid, cmd, flags, err, payload, _ = client.recv()
    assert (rid, flags, err) == (77, 1, 0) and len(payload) == 16


@pytest.mark.parametrize("size,want", [(0xFFFFFFFF, errno.E2BIG), ((1 << 20) + 8192, errno.E2BIG),
                                       (8, errno.EINVAL), (0, errno.EINVAL)])
def test_bad_msg_size_closes_connection(nic, size, want):
    with VfioUserClient(nic.sock(0)) as c:
        c.version()
        c.send(vu.REGION_READ, b"", msg_size=size)
        rid, cmd, flags, err, payload, fds = c.recv()
        assert flags & vu.F_ERROR and err == want
        with pytest.raises((ConnectionError, OSError)):
            c.device_info()
    still_serving(nic)


def test_wrong_payload_sizes(client):
    # Too short or argsz below the struct; more than the struct is fine (argsz
    # is "at least", test_vfio_user_conformance.py).
    cases = [
        (vu.DMA_UNMAP, vu.DMA_UNMAP_S.pack(16, 0, 0, PAGE)),          # argsz too small
        (vu.DEVICE_SET_IRQS, vu.IRQ_SET_S.pack(16, vu.IRQ_DATA_NONE | vu.IRQ_ACTION_TRIGGER,
                                               2, 0, 1)),
        (vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, 0, PAGE)[:31]),
        (vu.DEVICE_GET_INFO, struct.pack("<I", 16)),
        (vu.DEVICE_GET_INFO, struct.pack("<IIII", 8, 0, 0, 0)),       # argsz too small
        (vu.DEVICE_GET_REGION_INFO, vu.REGION_INFO_S.pack(8, 0, 0, 0, 0, 0)),
        (vu.DEVICE_GET_REGION_INFO, vu.REGION_INFO_S.pack(32, 0, 0, 0, 0, 0)[:20]),
        (vu.DEVICE_GET_IRQ_INFO, vu.IRQ_INFO_S.pack(16, 0, 2, 0)[:12]),
        (vu.REGION_READ, vu.ACCESS_S.pack(0, vu.CONFIG, 4) + b"extra"),
        (vu.REGION_WRITE, vu.ACCESS_S.pack(0, vu.CONFIG, 4) + b"ab"),
        (vu.REGION_WRITE, vu.ACCESS_S.pack(0, vu.CONFIG, 2) + b"abcd"),
        (vu.DEVICE_RESET, b"\0"),
        (vu.DEVICE_FEATURE, struct.pack("<II", 4, vu.FEATURE_PROBE | 1)),  # argsz < request
    ]
    for cmd, payload in cases:
        assert client.expect_error(cmd, payload) == errno.EINVAL, (cmd, payload)
    client.device_info()


def test_fd_counts(client):
    fd = memfd(PAGE)
    r, w = os.pipe()
    try:
        m = vu.DMA_MAP_S.pack(32, 3, 0, 0x10000, PAGE)
        assert client.expect_error(vu.DMA_MAP, m, [fd, fd]) == errno.EINVAL       # two
        assert client.expect_error(vu.DMA_MAP, m, [r]) == errno.EINVAL            # a pipe
        assert client.expect_error(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0),
                                   [fd]) == errno.EINVAL                           # unwanted
        assert client.expect_error(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0),
                                   [fd] * 40) == errno.E2BIG                       # flood
        client.dma_map(fd, 0x10000, PAGE)                                          # still fine
    finally:
        for x in (fd, r, w):
            os.close(x)
    # the server kept none of the refused fds open
    assert len(os.listdir("/proc/self/fd")) < 64


def test_unknown_commands_and_flags(client):
    for cmd in (0, 14, 19, 200, 0xFFFF):
        assert client.expect_error(cmd, b"") == errno.ENOSYS, cmd
    assert client.expect_error(vu.DMA_READ, struct.pack("<QQ", 0, 8)) == errno.EINVAL
    # a reply to no request of hdnic's is refused without an answer (never reply to a reply)
    client.send(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0), flags=vu.F_TYPE_REPLY)
    assert not select.select([client.sock], [], [], 0.1)[0], "a reply was answered"
    assert client.expect_error(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0),
                               flags=0x100) == errno.EINVAL
    assert client.expect_error(vu.DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0),
                               error_no=5) == errno.EINVAL


def test_out_of_range_region_access(client):
    bad_reads = [
        (vu.BAR0, 0x4000, 1), (vu.BAR0, 0x3FFE, 4), (vu.BAR0, 0, 0),
        (vu.BAR0, 0xFFFFFFFFFFFFFFFF, 2), (vu.BAR0, 0xFFFFFFFFFFFFFFF0, 0x20),
        (vu.CONFIG, 4096, 1), (vu.CONFIG, 4095, 2), (1, 0, 4), (6, 0, 4), (9, 0, 4),
        (0xFFFFFFFF, 0, 4),
    ]
    for region, off, count in bad_reads:
        assert client.expect_error(vu.REGION_READ, vu.ACCESS_S.pack(off, region, count)) == \
            errno.EINVAL, (region, off, count)
        assert client.expect_error(vu.REGION_WRITE, vu.ACCESS_S.pack(off, region, count) +
                                   bytes(count)) == errno.EINVAL, (region, off, count)
    assert client.expect_error(vu.REGION_READ, vu.ACCESS_S.pack(0, vu.BAR0, (1 << 20) + 1)) == \
        errno.E2BIG
    assert len(client.region_read(vu.BAR0, 0, 0x4000)) == 0x4000      # the whole BAR is fine
    assert len(client.region_read(vu.CONFIG, 4095, 1)) == 1


def test_dma_map_validation(client):
    fd = memfd(16 * PAGE)
    try:
        client.dma_map(fd, 0x100000, 8 * PAGE)
        cases = [
            (0x104000, 8 * PAGE, 0, errno.EEXIST),                 # overlaps the end
            (0x0FF000, 2 * PAGE, 0, errno.EEXIST),                 # overlaps the start
            (0x0FF000, 16 * PAGE, 0, errno.EEXIST),                # covers it
            (0x200001, PAGE, 0, errno.EINVAL),                     # unaligned iova
            (0x200000, PAGE + 1, 0, errno.EINVAL),                 # unaligned size
            (0x200000, PAGE, 1, errno.EINVAL),                     # unaligned offset
            (0x200000, 0, 0, errno.EINVAL),                        # empty
            (0x200000, 17 * PAGE, 0, errno.EINVAL),                # past the end of the fd
            (0x200000, PAGE, 16 * PAGE, errno.EINVAL),             # offset past the end
            (0xFFFFFFFFFFFFF000, 2 * PAGE, 0, errno.EOVERFLOW),    # wraps
        ]
        for iova, size, off, want in cases:
            err = client.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, off, iova, size), [fd])
            assert err == want, (hex(iova), size, off, err)
        assert client.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3 | 8, 0, 0x300000, PAGE),
                                   [fd]) == errno.EINVAL           # unknown flag
        assert client.expect_error(vu.DMA_UNMAP, vu.DMA_UNMAP_S.pack(24, 0, 0x100000, PAGE)) == \
            errno.ENOENT                                            # not an exact match
        assert client.expect_error(vu.DMA_UNMAP, vu.DMA_UNMAP_S.pack(24, 1, 0x100000,
                                                                     8 * PAGE)) == errno.EINVAL
    finally:
        os.close(fd)


def test_dma_map_limit(client):
    fd = memfd(PAGE)
    try:
        limit = client.server_caps["capabilities"]["max_dma_maps"]
        for i in range(limit):
            client.dma_map(fd, 0x100000 + 2 * i * PAGE, PAGE)
        assert client.expect_error(vu.DMA_MAP, vu.DMA_MAP_S.pack(32, 3, 0, 0x80000000, PAGE),
                                   [fd]) == errno.ENOSPC
    finally:
        os.close(fd)


def test_set_irqs_validation(client):
    efd = os.eventfd(0)
    r, w = os.pipe()
    trig = vu.IRQ_DATA_EVENTFD | vu.IRQ_ACTION_TRIGGER
    try:
        def err(flags, index, start, count, fds=(), data=b""):
            return client.expect_error(vu.DEVICE_SET_IRQS, vu.IRQ_SET_S.pack(
                20 + len(data), flags, index, start, count) + data, list(fds))

        assert err(trig, vu.MSIX, 2, 2, [efd, efd]) == errno.EINVAL       # past the table
        assert err(trig, vu.MSIX, 0, 2, [efd]) == errno.EINVAL            # too few fds
        assert err(trig, vu.MSIX, 0, 1, [efd, efd]) == errno.EINVAL       # too many
        assert err(trig, vu.MSIX, 0, 1, [r]) == errno.EINVAL              # not an eventfd
        assert err(trig, 0, 0, 1, [efd]) == errno.EINVAL                  # no INTx on a VF
        assert err(trig, 5, 0, 0) == errno.EINVAL                         # no such index
        assert err(vu.IRQ_DATA_NONE | vu.IRQ_DATA_BOOL | vu.IRQ_ACTION_TRIGGER, vu.MSIX, 0,
                   1) == errno.EINVAL                                     # two data types
        assert err(vu.IRQ_DATA_EVENTFD | vu.IRQ_ACTION_MASK, vu.MSIX, 0, 1, [efd]) == errno.EINVAL
        assert err(vu.IRQ_DATA_BOOL | vu.IRQ_ACTION_TRIGGER, vu.MSIX, 0, 2,
                   data=b"\1") == errno.EINVAL                            # short bool data
        client.set_irqs(vu.MSIX, trig, 0, 1, [efd])
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_NONE | vu.IRQ_ACTION_TRIGGER, 0, 1)
        assert os.eventfd_read(efd) == 1                                  # software trigger
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_NONE | vu.IRQ_ACTION_MASK, 0, 1)
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_BOOL | vu.IRQ_ACTION_TRIGGER, 0, 1, data=b"\1")
        pba = client.region_read(vu.BAR0, 0x3800, 8)
        assert pba[0] & 1                                                 # pending while masked
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_NONE | vu.IRQ_ACTION_UNMASK, 0, 1)
        assert os.eventfd_read(efd) == 1                                  # delivered on unmask
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_NONE | vu.IRQ_ACTION_TRIGGER, 0, 0)  # disable all
    finally:
        for x in (efd, r, w):
            os.close(x)


def eventfd_signalled(efd, timeout=2.0):
    """The eventfd's counter once it is non-zero (read and cleared), or 0 after timeout."""
    r, _, _ = select.select([efd], [], [], timeout)
    return os.eventfd_read(efd) if r else 0


def test_hostile_eventfd_counter_does_not_stall(client, nic):
    """A client pushes its interrupt eventfd's counter to the limit, so hdnic's
    next signal cannot complete: hdnic keeps serving everyone (this client
    too), and the interrupt is delayed, not lost -- it arrives as soon as the
    client drains the counter, and the vector keeps working after that."""
    trigger = vu.IRQ_DATA_NONE | vu.IRQ_ACTION_TRIGGER
    efd = os.eventfd(0)
    try:
        client.set_irqs(vu.MSIX, vu.IRQ_DATA_EVENTFD | vu.IRQ_ACTION_TRIGGER, 0, 1, [efd])
        client.set_irqs(vu.MSIX, trigger, 0, 1)
        assert eventfd_signalled(efd) == 1                   # the vector works
        os.eventfd_write(efd, 0xFFFFFFFFFFFFFFFE)            # the next signal would block
        irqs = nic.stats(0)["irqs"]
        client.set_irqs(vu.MSIX, trigger, 0, 1)
        assert vu.wait_for(lambda: nic.stats(0)["irqs"] == irqs + 1), "hdnic never signalled"
        client.device_info()                                 # not stalled for this client
        still_serving(nic, 1)                                # nor for the others
        assert os.eventfd_read(efd) == 0xFFFFFFFFFFFFFFFE    # drained: the signal lands
        assert eventfd_signalled(efd) == 1, "the interrupt was lost"
        client.set_irqs(vu.MSIX, trigger, 0, 1)
        assert eventfd_signalled(efd) == 1
        still_serving(nic, 2)
    finally:
        os.close(efd)


# ---- connection lifecycle ----

def test_second_client_is_refused(nic):
    with VfioUserClient(nic.sock(0)) as first:
        first.version()
        with VfioUserClient(nic.sock(0)) as second:
            with pytest.raises(vu.VfioUserError) as e:
                second.version()            # told why: the function is in use
            assert e.value.errno == errno.EBUSY
        first.device_info()


def test_disconnect_leaves_vf_reset(nic):
    with VirtioNetVF(nic.sock(0)) as drv:
        assert drv.status() & vu.S_DRIVER_OK
        drv.c.write32(vu.CONFIG, 0x10, 0xC0001000)
        assert nic.vf_info(0)["state"] == "running"
        assert nic.vf_info(0)["dma_maps"] == 1
    assert vu.wait_for(lambda: nic.vf_info(0)["state"] == "no-client")
    assert nic.vf_info(0)["dma_maps"] == 0
    with VfioUserClient(nic.sock(0)) as c:
        c.version()
        assert c.region_read(vu.BAR0, vu.STATUS, 1) == b"\0"
        assert c.read32(vu.CONFIG, 0x10) == 0
    # and a full driver works again on the same VF
    with VirtioNetVF(nic.sock(0)) as drv:
        assert drv.status() & vu.S_DRIVER_OK
    assert nic.stats(0)["connects"] >= 3


def test_errors_are_counted_and_server_survives(nic):
    with VfioUserClient(nic.sock(2)) as c:
        c.version()
        for cmd in (0, 99, 14):
            c.expect_error(cmd)
    assert nic.stats(2)["proto_errors"] >= 3
    for vf in range(4):
        still_serving(nic, vf)
