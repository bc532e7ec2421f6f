# SPDX-License-Identifier: MIT
"""hdnic functions that cannot migrate (`--no-migration` per NIC, `adi-add
--no-migration` per ADI), like the SR-IOV VFs in service without a VFIO
migration driver: no migration capability in VERSION, every migration and
DMA-logging feature refused as the kernel refuses it (ENOTTY), MIG_DATA_*
refused (EINVAL), and their hidden state cannot be written back: ring heads
restart at 0, guest-visible statistics are read-only and read-clear, the MAC
is the PF's (pf.sock only).  Driven by the Python vfio-user client."""
import errno
import struct

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import (VfioUserClient, VfioUserError, VirtioNetVF, ether_frame,
                              mac_bytes, wait_for)
from nichost import Hdnic, sniff

BCAST = b"\xff" * 6
FEAT_MIG_DATA_SIZE = 9
FEAT_PRECOPY_INFO = 0xe002


@pytest.fixture
def nomig_nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=2, uplink="tap:hdt0", netns=ns,
              extra=["--idle-us", "300000", "--no-migration"])
    yield n
    n.stop_checked()


def feature_errno(c, flags, data=b"", room=8):
    with pytest.raises(VfioUserError) as e:
        c.device_feature(flags, data, room=room)
    return e.value.errno


def assert_cannot_migrate(path):
    """Everything a VMM would use to migrate the function is refused."""
    with VfioUserClient(path) as c:
        _maj, _min, caps = c.version()
        assert "migration" not in caps.get("capabilities", {}), caps
        get, setf, probe = vu.FEATURE_GET, vu.FEATURE_SET, vu.FEATURE_PROBE
        for flags, data in [
                (get | vu.FEAT_MIGRATION, b""),
                (probe | get | vu.FEAT_MIGRATION, b""),
                (get | vu.FEAT_MIG_DEVICE_STATE, b""),
                (setf | vu.FEAT_MIG_DEVICE_STATE, struct.pack("<Ii", vu.MIG_STOP_COPY, -1)),
                (setf | vu.FEAT_DMA_LOGGING_START, struct.pack("<QII", 4096, 0, 0)),
                (probe | setf | vu.FEAT_DMA_LOGGING_START, b""),
                (setf | vu.FEAT_DMA_LOGGING_STOP, b""),
                (get | vu.FEAT_DMA_LOGGING_REPORT, struct.pack("<QQQ", 0, 4096, 4096)),
                (get | FEAT_MIG_DATA_SIZE, b""),
                (get | FEAT_PRECOPY_INFO, b"")]:
            assert feature_errno(c, flags, data, room=64) == errno.ENOTTY, hex(flags)
        assert c.expect_error(vu.MIG_DATA_READ, struct.pack("<II", 8 + 64, 64)) == errno.EINVAL
        assert c.expect_error(vu.MIG_DATA_WRITE,
                              struct.pack("<II", 8 + 4, 4) + b"HVF1") == errno.EINVAL
        # not a migration feature: the output commit stays available
        c.device_feature(get | vu.FEAT_OUTPUT_COMMIT, room=vu.OUTPUT_STATUS_S.size)


def test_no_migration_vf_refuses_every_migration_feature(nomig_nic):
    assert_cannot_migrate(nomig_nic.sock(0))
    info = nomig_nic.vf_info(0)
    assert info["migration"] is False
    # and it still works as a NIC
    with VirtioNetVF(nomig_nic.sock(1)) as vf:
        vf.send(ether_frame(BCAST, vf.mac()))
        assert vf.wait_tx_done(1)


def test_no_migration_adi_next_to_migratable_ones(nic):
    """adi-add --no-migration makes that ADI alone unable to migrate."""
    r = nic.ctl("adi-add", "old", "--no-migration", "--json")
    assert r.returncode == 0, r.stderr
    nic.adi_add("new")
    assert nic.dev_info("adi-old")["migration"] is False
    assert nic.dev_info("adi-new")["migration"] is True
    assert nic.vf_info(0)["migration"] is True
    assert_cannot_migrate(nic.adi_sock("old"))
    with VfioUserClient(nic.adi_sock("new")) as c:
        assert "migration" in c.version()[2]["capabilities"]
        assert c.migration_flags() & vu.MIGRATION_STOP_COPY
    # a malformed flag over pf.sock is refused with the reason
    r = nic.ctl("adi-add", "x", "--no-migration", "yes")
    assert r.returncode != 0


def test_statistics_are_read_clear(nomig_nic, ns):
    """Each read returns what the function counted since the previous read
    (and clears it); hdnic's own `stats` keep the totals."""
    tap = ns.packet_socket("hdt0")
    with VirtioNetVF(nomig_nic.sock(0)) as vf:
        for _ in range(5):
            vf.send(ether_frame(BCAST, vf.mac(), payload=b"rc"))
        assert len(vf.wait_tx_done(5)) == 5
        first = vf.stats_cap()
        assert first["tx_packets"] == 5, first
        again = vf.stats_cap()
        assert again["tx_packets"] == 0 and again["tx_bytes"] == 0, again
        for _ in range(3):
            vf.send(ether_frame(BCAST, vf.mac(), payload=b"rc"))
        assert len(vf.wait_tx_done(3)) == 3
        whole = vf.stats_cap(whole=True)         # one read of the block clears too
        assert whole["tx_packets"] == 3, whole
        assert vf.stats_cap()["tx_packets"] == 0
        assert nomig_nic.dev_stats("vf0")["tx_packets"] == 8
    tap.close()


def test_migratable_function_statistics_are_not_read_clear(nic):
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.send(ether_frame(BCAST, vf.mac()))
        assert vf.wait_tx_done(1)
        assert vf.stats_cap()["tx_packets"] == 1
        assert vf.stats_cap()["tx_packets"] == 1


def test_ring_heads_restart_at_zero(nomig_nic, tap=None):
    """A queue's head is the device's: after traffic, re-enabling the queue
    (reset, set up again) is the only way to move it, and it starts at 0;
    the driver cannot hand the device another position."""
    with VirtioNetVF(nomig_nic.sock(0)) as vf:
        for _ in range(7):
            vf.send(ether_frame(BCAST, vf.mac()))
        assert len(vf.wait_tx_done(7)) == 7
        assert vf.rings[vu.TX].used_idx() == 7
        vf.init_device()                          # reset: rings from index 0 again
        vf.send(ether_frame(BCAST, vf.mac()))
        assert len(vf.wait_tx_done(1)) == 1
        assert vf.rings[vu.TX].used_idx() == 1
        # a driver that kept its old index (7) after the reset is "ahead" of
        # the device by 7 entries the device never saw: it sends them all
        vf.init_device()
        tx = vf.rings[vu.TX]
        for i in range(7):
            tx.set_desc(i, vf.IOVA + vf.tx_buf, vu.NET_HDR_LEN + 60)
        vf.mem[vf.tx_buf:vf.tx_buf + vu.NET_HDR_LEN + 60] = (
            bytes(vu.NET_HDR_LEN) + ether_frame(BCAST, vf.mac()))
        tx.publish_many(range(7))
        vf.kick(vu.TX)
        assert wait_for(lambda: tx.used_idx() == 7), tx.used_idx()


def test_mac_is_held_by_the_pf(nomig_nic):
    """The guest cannot write its MAC (device config is read-only); the PF
    sets it through pf.sock, and the function shows it."""
    with VirtioNetVF(nomig_nic.sock(0)) as vf:
        before = vf.mac()
        vf.c.region_write(vu.BAR0, vu.DEVCFG_OFF, b"\x02\x11\x22\x33\x44\x55")
        assert vf.mac() == before
    r = nomig_nic.ctl("set-mac", "vf0", "02:11:22:33:44:55")
    assert r.returncode == 0, r.stderr
    with VirtioNetVF(nomig_nic.sock(0)) as vf:
        assert vf.mac() == mac_bytes("02:11:22:33:44:55")
    assert nomig_nic.ctl("trust", "vf0", "on").returncode == 0
    assert nomig_nic.ctl("qos", "vf0", "--tx-rate", "10M").returncode == 0
    info = nomig_nic.vf_info(0)
    assert info["trusted"] is True and info["qos"]["tx_rate"] == 10_000_000
