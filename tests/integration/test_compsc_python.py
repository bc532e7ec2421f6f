# SPDX-License-Identifier: MIT
"""CompSC end to end without KVM (devices/compsc.md): a guest made of the
Python driver (compsc.CompscVF) on a `--no-migration` function of host A's
hdnic moves, with its memory, to a fresh `--no-migration` function of host
B's hdnic (two-host harness), the VMM's part played by compsc.CompscHost:
pre-copy over the vCPU dirty log, the write lock with a bounded wait, the
device's read-clear counters into the shared page, reset, PF-held state
(MAC, trust, QoS) replayed through B's pf.sock, counter + unlock; the
driver restores at its next access (replay, ring shift, statistics
offset, announce).  A UDP counter client talks to it throughout."""
import select
import struct
import time

import pytest

import vfio_user_client as vu
from vfio_user_client import wait_for
from hosts import COUNTER_PORT, TwoHosts, guest_ip
from compsc import (COMPSC_F_PF_REPLAYED, COMPSC_LOCK_WRITER, CompscGuest, CompscHost,
                    CompscVF, LockTimeout)
from test_hdnic_two_hosts import Client


@pytest.fixture
def hosts(tmp_path):
    h = TwoHosts(tmp_path, vfs=2, extra=["--idle-us", "300000", "--no-migration"])
    yield h
    h.close()


def function(nic, kind, name):
    if kind == "vf":
        return nic.sock(int(name)), f"vf{name}"
    r = nic.ctl("adi-add", name, "--no-migration", "--json")
    assert r.returncode == 0, r.stderr
    return nic.adi_sock(name), f"adi-{name}"


def start_guest(path, ip, **kw):
    vf = CompscVF(path, ctrl_rx=True, **kw)
    host = CompscHost(vf)
    assert vf.opt_in(host), "the VMM refused the shared page"
    vf.post_rx()
    return vf, host, CompscGuest(vf, ip)


@pytest.mark.parametrize("dst_kind", ["vf", "adi"])
def test_no_migration_function_moves_the_compsc_way(hosts, dst_kind):
    a, b = hosts.nic["a"], hosts.nic["b"]
    src, src_dev = a.sock(0), "vf0"
    dst, dst_dev = function(b, dst_kind, "1")
    assert a.dev_info(src_dev)["migration"] is False
    assert b.dev_info(dst_dev)["migration"] is False
    assert a.ctl("qos", src_dev, "--tx-rate", "50M", "--weight", "7").returncode == 0
    assert a.ctl("trust", src_dev, "on").returncode == 0
    client = Client(hosts, guest_ip(0))
    vf, host, g = start_guest(src, guest_ip(0))
    try:
        assert vf.rx_mode(promisc=False) == [vu.CTRL_OK]
        assert vf.mac_table(multicast=[bytes.fromhex("01005e000042")]) == vu.CTRL_OK
        first = [client.request(g) for _ in range(10)]
        assert [c for _, c in first] == list(range(1, 11)), first
        before = vf.stats()
        assert before["rx_packets"] >= 10

        def traffic():
            for _ in range(5):
                assert client.request(g) is not None

        src_info = a.dev_info(src_dev)
        old = host.migrate(dst, a, src_dev, b, dst_dev, between=[traffic, traffic])
        try:
            page = vf.page()
            assert page["lock"] & COMPSC_LOCK_WRITER == 0 and page["counter"] == 1
            assert page["flags"] & COMPSC_F_PF_REPLAYED
            # the PF-held state came along through B's pf.sock
            info = b.dev_info(dst_dev)
            assert info["mac"] == src_info["mac"]
            assert info["trusted"] is True and info["qos"] == src_info["qos"]
            # the next request: the driver restores first, then answers
            after = [client.request(g) for _ in range(10)]
            assert None not in after, after
            assert vf.restores == 1 and vf.announce_frames == 1
            counters = [c for _, c in client.replies]
            assert counters == list(range(1, len(counters) + 1)), client.replies
            ids = [r for r, _ in client.replies]
            assert len(ids) == len(set(ids)), "a request was answered twice"
            # the driver's filter was replayed onto B's function
            assert b.dev_info(dst_dev)["rx_mode"]["promisc"] is False
            assert b.dev_info(dst_dev)["rx_mode"]["multicast"] == 1
            # statistics continue: A's count (read or residual) + B's
            now = vf.stats()
            for k in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes"):
                assert now[k] >= before[k], k
            total_a, total_b = a.dev_stats(src_dev), b.dev_stats(dst_dev)
            assert now["tx_packets"] == total_a["tx_packets"] + total_b["tx_packets"]
            assert wait_for(lambda: vf.stats()["rx_packets"] ==
                            a.dev_stats(src_dev)["rx_packets"] +
                            b.dev_stats(dst_dev)["rx_packets"], timeout=2)
            # the ring heads restarted at 0 on B: its used index counts only B's work
            assert vf.rings[vu.TX].used_idx() == b.dev_stats(dst_dev)["tx_packets"]
            print(f"CompSC python: downtime {host.result['downtime_ms']:.1f} ms, total "
                  f"{host.result['total_ms']:.1f} ms, final pages {host.result['final_pages']}, "
                  f"rx reposted {vf.rx_reposted}, tx unsent {vf.tx_unsent}")
        finally:
            old.close()
        # A's function: reset, free for the next VM
        assert wait_for(lambda: not a.dev_info(src_dev)["client"], timeout=3)
    finally:
        client.close()
        vf.close()


def test_driver_holding_the_lock_fails_the_migration_cleanly(hosts):
    """A driver that never leaves its read section: the VMM's bounded wait
    expires, the writer bit is cleared, nothing was stopped or reset, and
    the guest answers on A as before."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    client = Client(hosts, guest_ip(0))
    vf, host, g = start_guest(a.sock(0), guest_ip(0))
    try:
        assert [client.request(g)[1] for _ in range(3)] == [1, 2, 3]
        resets = a.dev_stats("vf0").get("resets")
        stuck = vf.section()
        stuck.__enter__()                       # a reader that never leaves
        t0 = time.monotonic()
        with pytest.raises(LockTimeout, match="held the CompSC lock for more than 500 ms"):
            host.migrate(b.sock(1), a, "vf0", b, "vf1")
        assert 0.45 < time.monotonic() - t0 < 3
        stuck.__exit__(None, None, None)
        assert vf.page()["lock"] == 0 and vf.page()["counter"] == 0
        assert a.dev_info("vf0")["client"] and a.dev_info("vf0")["device_status"] & vu.S_DRIVER_OK
        assert a.dev_stats("vf0").get("resets") == resets
        assert not b.dev_info("vf1")["client"]
        assert [client.request(g)[1] for _ in range(3)] == [4, 5, 6]
        assert vf.restores == 0
    finally:
        client.close()
        vf.close()


def test_guest_that_did_not_opt_in_is_refused(hosts):
    a, b = hosts.nic["a"], hosts.nic["b"]
    vf = CompscVF(a.sock(0))
    try:
        host = CompscHost(vf)                   # the driver never wrote the capability
        with pytest.raises(RuntimeError, match="vf0 has no VFIO migration support and its "
                                               "guest driver did not opt into CompSC"):
            host.migrate(b.sock(1), a, "vf0", b, "vf1")
        # a page without the magic is refused at opt-in
        assert host.cap_write(vf.IOVA + 0x80000 | 1) & 2
    finally:
        vf.close()


def test_failed_switch_after_the_stop_restores_on_the_source(hosts, tmp_path):
    """The destination is unusable after the source's device was reset: the
    VMM moves the counter on the source and releases the lock; the driver
    restores the same (reset) function and the guest answers on A."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    client = Client(hosts, guest_ip(0))
    vf, host, g = start_guest(a.sock(0), guest_ip(0))
    try:
        assert [client.request(g)[1] for _ in range(3)] == [1, 2, 3]
        with pytest.raises(Exception):
            host.migrate(tmp_path / "nowhere.sock", a, "vf0", b, "vf1")
        assert vf.page()["lock"] & COMPSC_LOCK_WRITER
        host.resume_here()
        assert [client.request(g)[1] for _ in range(3)] == [4, 5, 6]
        assert vf.restores == 1
    finally:
        client.close()
        vf.close()


def burst_and_migrate(hosts, dummy_write, src, dst, ip, burst=8):
    """Requests the guest's driver took off the ring but its application had
    not handled when the VM stopped (a socket queue): their pages were
    written by the device after the last pre-copy pass.  Returns (lost,
    duplicated) replies for the burst."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    client = Client(hosts, ip)
    vf, host, g = start_guest(a.sock(src), ip, dummy_write=dummy_write)
    try:
        for _ in range(20):                     # every RX buffer used at least once
            assert client.request(g) is not None
        client.replies.clear()
        ids = list(range(1000, 1000 + burst))

        def burst_into_backlog():
            g.app_batch = 0                     # the application is busy
            for rid in ids:
                client.s.sendto(struct.pack("!Q", rid), (ip, COUNTER_PORT))
            assert wait_for(lambda: (g.pass_once(), len(g.backlog) >= burst)[1], timeout=3)

        old = host.migrate(b.sock(dst), a, f"vf{src}", b, f"vf{dst}",
                           between=[burst_into_backlog])
        old.close()
        g.app_batch = None
        replies = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            g.poll(0.0, step=0.005)
            while select.select([client.s], [], [], 0)[0]:
                replies.append(struct.unpack("!QQ", client.s.recv(64)[:16]))
        got = [r for r, _ in replies]
        lost = sum(1 for rid in ids if rid not in got)
        dup = len(got) - len(set(got) & set(ids))
        return lost, dup
    finally:
        client.close()
        vf.close()


def test_dummy_write_carries_received_pages(hosts):
    """With the dummy write every request waiting in the guest's socket
    queue at the stop is answered once on B; without it those pages reach
    B stale (an older request's frame, or zeros) and the burst's requests
    are lost or an old one is answered again: CompSC §6.3's measurement."""
    assert burst_and_migrate(hosts, True, 0, 1, guest_ip(0)) == (0, 0)
    lost, dup = burst_and_migrate(hosts, False, 1, 0, guest_ip(1))
    print(f"CompSC dummy write: with it 0 of 8 lost, 0 duplicated; without it "
          f"{lost} of 8 lost, {dup} replies to stale frames")
    assert lost + dup > 0
