# SPDX-License-Identifier: MIT
"""hdnic's sockets under clients that misbehave (no KVM needed): silent and
slow management clients, a vfio-user client that connects and never completes
VERSION, a second client on a function in use, stale sockets of a killed hdnic,
a vfio-user client that floods requests and never reads its replies."""
import errno
import json
import socket
import struct
import threading
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF, ether_frame, wait_for
from nichost import Hdnic

TIMEOUT_MS = 800


@pytest.fixture
def nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=2, uplink="tap:hdt0", netns=ns, name="limnic",
              extra=["--conn-timeout", str(TIMEOUT_MS)])
    yield n
    assert n.stop() == 0, n.output()
    assert "AddressSanitizer" not in n.output()


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    return s


def closed_by_server(s, within):
    s.settimeout(within)
    try:
        return s.recv(4096) == b""
    except (socket.timeout, ConnectionResetError):
        return False


def drained_to_eof(s, within):
    """Read whatever was sent until the server closes; False on a timeout."""
    s.setblocking(True)
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
        return True
    except (socket.timeout, ConnectionResetError):
        return False


def test_silent_mgmt_clients_refused_with_reason_then_dropped(nic):
    silent = [connect(nic.dir / "pf.sock") for _ in range(8)]
    time.sleep(0.1)
    r = nic.ctl("list")
    assert r.returncode != 0
    assert "too many management clients" in r.stderr, r.stderr
    assert "Broken pipe" not in r.stderr
    # idle past the connection timeout: dropped, and the socket serves again
    assert all(closed_by_server(s, TIMEOUT_MS / 1000 * 3) for s in silent)
    assert nic.ctl("list").returncode == 0
    for s in silent:
        s.close()


def test_mgmt_reader_that_never_reads_does_not_stall_hdnic(nic):
    flood = connect(nic.dir / "pf.sock")
    flood.setblocking(False)
    req = b'{"cmd":"list"}\n'
    sent = 0
    end = time.monotonic() + 3
    while time.monotonic() < end:      # until hdnic stops taking our requests
        try:
            flood.send(req)
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)
            try:
                flood.send(req)
                sent += 1
            except BlockingIOError:
                break
    assert sent > 50
    # hdnic's loop is not blocked on the flooder's replies
    worst = 0.0
    for _ in range(5):
        t0 = time.monotonic()
        assert nic.ctl("list").returncode == 0
        worst = max(worst, time.monotonic() - t0)
    assert worst < 0.5, f"hdnic ctl list took {worst:.2f} s beside a client that never reads"
    # and a client that never takes its replies is dropped after the timeout
    assert drained_to_eof(flood, TIMEOUT_MS / 1000 * 4)
    flood.close()


def test_pending_vfio_client_dropped_so_the_vmm_can_attach(nic):
    hang = connect(nic.sock(0))
    hang.sendall(b"\x01\x00")          # two bytes of a header, then nothing
    time.sleep(0.1)
    # a client that never completes VERSION does not hold the function for good
    assert closed_by_server(hang, TIMEOUT_MS / 1000 * 3)
    with VfioUserClient(nic.sock(0)) as c:
        major, _, _ = c.version()
        assert major == 0
    hang.close()


def test_second_client_is_told_in_use(nic):
    with VfioUserClient(nic.sock(1)) as first:
        first.version()
        with VfioUserClient(nic.sock(1)) as second:
            with pytest.raises(vu.VfioUserError) as e:
                second.version()
            assert e.value.errno == errno.EBUSY
        # the first client is untouched, also past the connection timeout
        time.sleep(TIMEOUT_MS / 1000 * 1.5)
        assert first.device_info()
    assert "refusing a second client" in nic.output()


def test_stale_sockets_removed_at_start(ns, tmp_path):
    d = tmp_path / "nic"
    d.mkdir()
    stale = ["adi-web1.sock", "adi-old.sock", "vf7.sock", "pf.sock", "vf0.sock.new"]
    for name in stale:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(d / name))
        s.close()                       # the file stays, nobody listens: stale
    (d / "notes.txt").write_text("not ours\n")
    n = Hdnic(HDNIC, d, vfs=1, uplink="tap:hdt0", netns=ns, name="stalenic")
    try:
        left = sorted(p.name for p in d.iterdir())
        assert left == ["notes.txt", "pf.sock", "vf0.sock"], left
        assert "removed 5 stale sockets" in n.output()
    finally:
        assert n.stop() == 0


def test_vfio_client_that_never_reads_stalls_nobody_and_is_dropped(nic, ns):
    """A vfio-user client pipelines config-space reads and never reads a reply.
    hdnic never waits on it: while it floods, another function's traffic (a
    Python driver on vf0) and `hdnic ctl stats` answer promptly; once its
    unread replies pass the bound it is disconnected with the reason logged."""
    tap = ns.packet_socket("hdt0")
    flood = VfioUserClient(nic.sock(1))
    flood.version()
    read_cfg = vu.ACCESS_S.pack(0, 7, 256)     # VFIO_PCI_CONFIG_REGION_INDEX, 256 bytes
    batch = b"".join(vu.HDR.pack(i & 0xFFFF, vu.REGION_READ, vu.HDR.size + len(read_cfg),
                                 vu.F_TYPE_COMMAND, 0) + read_cfg for i in range(1, 257))
    done = threading.Event()
    sent = [0]

    def flooder():
        flood.sock.settimeout(20)
        try:
            while not done.is_set():
                flood.sock.sendall(batch)
                sent[0] += 256
        except OSError:
            pass                                # dropped by hdnic: EPIPE/ECONNRESET
        done.set()

    t = threading.Thread(target=flooder, daemon=True)
    try:
        with VirtioNetVF(nic.sock(0)) as a:
            a.post_rx()
            t.start()
            worst_ctl = worst_rx = 0.0
            n = 0
            end = time.monotonic() + 15
            while not done.is_set() and time.monotonic() < end:
                t0 = time.monotonic()
                assert nic.ctl("stats").returncode == 0
                worst_ctl = max(worst_ctl, time.monotonic() - t0)
                t0 = time.monotonic()
                tap.send(ether_frame(a.mac(), bytes.fromhex("02aabbccdd01"),
                                     payload=b"beside-%04d" % n))
                f = a.recv(timeout=5, repost=True)
                assert f is not None and b"beside-%04d" % n in f
                worst_rx = max(worst_rx, time.monotonic() - t0)
                n += 1
            assert done.is_set(), f"the flooder was never dropped ({sent[0]} requests sent)"
            assert worst_ctl < 0.5, f"hdnic ctl stats took {worst_ctl:.2f} s beside the flooder"
            assert worst_rx < 0.5, f"vf0's frame took {worst_rx:.2f} s beside the flooder"
            assert n >= 1
        assert "client does not read its replies" in nic.output(), nic.output()[-2000:]
        # the function is free again: a well-behaved client attaches
        with VfioUserClient(nic.sock(1)) as c:
            assert c.version()[0] == 0
    finally:
        done.set()
        t.join(5)
        flood.close()
        tap.close()
