# SPDX-License-Identifier: MIT
"""hdnic on the two-host harness (hosts.py), offloads at the kernel's
defaults: UDP through an AF_PACKET uplink arrives with valid checksums in
both directions, and a function moves from host A's hdnic to host B's with
its guest (the Python driver and its memory) while a client talks to it."""
import errno
import select
import signal
import socket
import struct
import time

import pytest

import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF, wait_for
from hosts import (CLIENT_IP, COUNTER_PORT, TwoHosts, UdpGuest, csum16, guest_ip, move_driver,
                   udp_checksum_ok, udp_frame,
                   read_state)


@pytest.fixture
def hosts(tmp_path):
    h = TwoHosts(tmp_path, vfs=2, extra=["--idle-us", "300000"])
    yield h
    h.close()


def counter_request(sock, guest, rid, ip, timeout=2.0):
    """One request; the guest is polled until the reply arrives."""
    sock.sendto(struct.pack("!Q", rid), (ip, COUNTER_PORT))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        guest.poll(0.0, step=0.005)
        if not select.select([sock], [], [], 0)[0]:
            continue
        data = sock.recv(64)
        got = struct.unpack("!QQ", data[:16])
        if got[0] == rid:
            return got
    return None


def test_harness_keeps_default_offloads(hosts):
    """The client's veth computes no UDP checksum itself: offload is on."""
    assert hosts.tx_csum_offload("client", "cl0")


def test_udp_checksums_through_af_packet_uplink(hosts):
    """A client with default offloads sends UDP to a function on A's hdnic:
    the driver (no checksum offload negotiated) gets every frame with a
    valid checksum and answers; the reply reaches the client's socket (its
    kernel checks the checksum, so a bad one would be dropped)."""
    with VirtioNetVF(hosts.nic["a"].sock(0)) as vf, hosts.udp_socket() as s:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        replies = [counter_request(s, g, i, guest_ip(0)) for i in range(20)]
        assert g.bad_csum == 0, f"{g.bad_csum} frames arrived with a partial checksum"
        assert replies == [(i, i + 1) for i in range(20)], replies


def test_udp_checksums_through_tap_uplink(ns, nic):
    """The TAP uplink offers checksum offload to the host's stack (the
    frames arrive partial) and completes it: the host's UDP reaches the
    driver with valid checksums, and the replies reach the host's socket."""
    ns.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "hdt0")
    ns.exec("ip", "link", "set", "hdt0", "up")
    with VirtioNetVF(nic.sock(0)) as vf, ns.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        replies = [counter_request(s, g, i, guest_ip(0)) for i in range(10)]
        assert g.bad_csum == 0, f"{g.bad_csum} frames arrived with a partial checksum"
        assert replies == [(i, i + 1) for i in range(10)], replies


# ---- a function moves from host A's hdnic to host B's ----

MCAST = bytes.fromhex("01005e000042")
ETH_P_RARP = 0x8035


def function(nic, kind, name):
    """(socket path, dev name) of a VF (vf<name>) or a freshly composed ADI."""
    if kind == "vf":
        return nic.sock(int(name)), f"vf{name}"
    nic.adi_add(name)
    return nic.adi_sock(name), f"adi-{name}"


class Client:
    """The client namespace's UDP counter client, with retries (a request
    sent while the function is stopped is lost, like on a wire)."""

    def __init__(self, hosts, ip):
        self.s = hosts.udp_socket()
        self.s.setblocking(False)
        self.ip, self.next_id = ip, 1
        self.replies = []           # (id, counter) in arrival order

    def request(self, guest, timeout=3.0, retry=0.25):
        rid, self.next_id = self.next_id, self.next_id + 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.sendto(struct.pack("!Q", rid), (self.ip, COUNTER_PORT))
            until = min(deadline, time.monotonic() + retry)
            while time.monotonic() < until:
                guest.poll(0.0, step=0.003)
                while select.select([self.s], [], [], 0)[0]:
                    got = struct.unpack("!QQ", self.s.recv(64)[:16])
                    self.replies.append(got)
                if any(r[0] == rid for r in self.replies):
                    return next(r for r in self.replies if r[0] == rid)
        return None

    def close(self):
        self.s.close()


def stop_and_save(vf, ahead=b""):
    """STOP_COPY (from RUNNING, or from PRE_COPY after `ahead` was read) and
    the whole stream: what went ahead, then the rest."""
    assert vf.c.set_mig_state(vu.MIG_STOP_COPY) == vu.MIG_STOP_COPY
    return ahead + read_state(vf.c)


def pre_copy(vf):
    """PRE_COPY: the function runs on; what can go ahead is read."""
    assert vf.c.set_mig_state(vu.MIG_PRE_COPY) == vu.MIG_PRE_COPY
    return read_state(vf.c)


@pytest.mark.parametrize("src_kind,dst_kind", [("vf", "vf"), ("adi", "vf"), ("vf", "adi")])
def test_function_moves_between_hosts(hosts, src_kind, dst_kind):
    """A guest on A answers counter requests; its function is stopped and
    saved on A, its memory copied and its state resumed into a function of
    B's hdnic that sits on other queue pairs (and is an ADI where A's was a
    VF, or back).  B announces the guest's MAC at once (the client sees the
    RARP, the bridge moves), the requests continue on B with the counter
    continuing and no reply twice, the guest-visible statistics continue,
    QoS and the receive filter came along, and A's function, reset, takes a
    new client."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    b.adi_add("pad")                                 # B's functions sit elsewhere
    src, src_dev = function(a, src_kind, "0")
    dst, dst_dev = function(b, dst_kind, "1")
    assert a.dev_info(src_dev)["qps"] != b.dev_info(dst_dev)["qps"]
    assert a.ctl("qos", src_dev, "--tx-rate", "50M", "--weight", "7").returncode == 0
    sniff = hosts.ns["client"].packet_socket("cl0")
    client = Client(hosts, guest_ip(0))
    try:
        with VirtioNetVF(src, ctrl_rx=True) as vf:
            vf.post_rx()
            assert vf.mac_table(multicast=[MCAST]) == vu.CTRL_OK
            g = UdpGuest(vf, guest_ip(0))
            first = [client.request(g) for _ in range(10)]
            assert [c for _, c in first] == list(range(1, 11)), first
            src_info = a.dev_info(src_dev)

            ahead = pre_copy(vf)
            assert ahead[:4] == b"HVP1"
            assert client.request(g)[1] == 11, "PRE_COPY stopped the function"
            stats_before = vf.stats_cap()
            stream = stop_and_save(vf, ahead)
            # a request while the function is stopped: lost at A, not answered twice
            client.s.sendto(struct.pack("!Q", 999), (guest_ip(0), COUNTER_PORT))
            assert wait_for(lambda: a.dev_stats(src_dev)["rx_stopped"] >= 1, timeout=3)
            # a frame in flight: queued by the guest after the device stopped
            vf.send(udp_frame(b"\xff" * 6, vf.mac(), guest_ip(0), CLIENT_IP, 1, 2,
                              b"in-flight"))
            assert vu_sniff(sniff, lambda f: b"in-flight" in f, timeout=0.3) is None
            old = move_driver(vf, dst, stream)
            try:
                info = b.dev_info(dst_dev)
                assert info["mac"] == src_info["mac"] and info["mig_state"] == "running"
                assert info["qos"] == src_info["qos"]
                assert info["rx_mode"] == src_info["rx_mode"]
                assert info["mig_announces"] == 1 and info["mig_error"] == ""
                # the announce reached the client's wire before the guest sent anything
                rarp = vu_sniff(sniff, lambda f: f[12:14] == struct.pack("!H", ETH_P_RARP)
                                and f[6:12] == vf.mac())
                assert rarp is not None, "no announce from B"
                assert vu_sniff(sniff, lambda f: b"in-flight" in f), "the queued frame is lost"
                fdb = hosts.ns["lan"].exec("bridge", "fdb", "show", "br", "br0").stdout
                mac = src_info["mac"]
                assert any(mac in line and "pb" in line for line in fdb.splitlines()), fdb

                after = [client.request(g) for _ in range(10)]
                assert None not in after, after
                counters = [c for _, c in client.replies]
                assert counters == list(range(1, len(counters) + 1)), client.replies
                ids = [r for r, _ in client.replies]
                assert len(ids) == len(set(ids)), "a request was answered twice"
                stats_after = vf.stats_cap()
                for k, v in stats_before.items():
                    assert stats_after[k] >= v, (k, v, stats_after[k])
                assert stats_after["rx_packets"] >= stats_before["rx_packets"] + 10
                assert b.dev_stats(dst_dev)["rx_packets"] >= a.dev_stats(src_dev)["rx_packets"]
            finally:
                old.close()
        # A's function: reset by its client leaving, free for the next VM
        assert wait_for(lambda: not a.dev_info(src_dev)["client"], timeout=3)
        with VirtioNetVF(src) as nxt:
            assert a.dev_info(src_dev)["mig_state"] == "running"
            assert a.dev_info(src_dev)["state"] == "running"
            nxt.send(udp_frame(b"\xff" * 6, nxt.mac(), "10.66.0.99", CLIENT_IP, 1, 2,
                               b"next-vm"))
            assert vu_sniff(sniff, lambda f: b"next-vm" in f), "A's function does not send"
    finally:
        client.close()
        sniff.close()


def vu_sniff(sock, match, timeout=3.0):
    from nichost import sniff
    return sniff(sock, match, timeout)


def test_destination_dies_during_resuming(hosts):
    """B's hdnic is killed while the state is being written: the source
    function goes back to RUNNING and serves on, counter intact."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    client = Client(hosts, guest_ip(0))
    try:
        with VirtioNetVF(a.sock(0)) as vf:
            vf.post_rx()
            g = UdpGuest(vf, guest_ip(0))
            assert [client.request(g)[1] for _ in range(3)] == [1, 2, 3]
            stream = stop_and_save(vf)
            with VfioUserClient(b.sock(0)) as dst:
                dst.version()
                dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
                dst.set_mig_state(vu.MIG_RESUMING)
                dst.mig_data_write(stream[:len(stream) // 2])
                b.stop(signal.SIGKILL)
                with pytest.raises((OSError, vu.VfioUserError, struct.error)):
                    dst.mig_data_write(stream[len(stream) // 2:])
                    dst.set_mig_state(vu.MIG_RUNNING)
            # the source: STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING
            assert vf.c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
            assert a.dev_info("vf0")["mig_state"] == "running"
            assert [client.request(g)[1] for _ in range(3)] == [4, 5, 6]
    finally:
        client.close()


def patch(stream, off, data):
    return stream[:off] + data + stream[off + len(data):]


# offsets in a 1-pair function's state: section tag, length, version, shape, MAC, config
# space (256), 3 MSI-X entries, pba, masked, dfselect, gfselect, then driver features
VERSION_OFF = 8
FEATURES_OFF = 8 + 4 + 2 + 6 + 256 + 3 * 16 + 8 + 8 + 4 + 4


@pytest.mark.parametrize("what,expect_errno,reason", [
    ("version", errno.EPROTONOSUPPORT, "format version 99"),
    ("features", errno.EOPNOTSUPP, "does not offer"),
    ("queues", errno.EINVAL, "queue pairs"),
    ("truncated", errno.EINVAL, "truncated"),
    ("trailing", errno.EINVAL, "after the function's state"),
])
def test_incompatible_state_refused(hosts, what, expect_errno, reason):
    """A stream B cannot take is refused when RESUMING ends, with the reason
    in `ctl list` (mig_error) and the log, before anything is applied: B's
    function keeps its MAC; a reset recovers it; A's function resumes."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    with VirtioNetVF(a.sock(0)) as vf:
        vf.post_rx()
        stream = stop_and_save(vf)
        dst_path, dst_dev = b.sock(0), "vf0"
        if what == "version":
            stream = patch(stream, VERSION_OFF, struct.pack("<I", 99))
        elif what == "features":
            feats = struct.unpack_from("<Q", stream, FEATURES_OFF)[0]
            stream = patch(stream, FEATURES_OFF, struct.pack("<Q", feats | 1 << 62))
        elif what == "queues":
            b.adi_add("wide", "--queues", "2")
            dst_path, dst_dev = b.adi_sock("wide"), "adi-wide"
        elif what == "truncated":
            stream = stream[:len(stream) - 7]
        elif what == "trailing":
            stream += b"\0" * 5
        mac_before = b.dev_info(dst_dev)["mac"]
        with VfioUserClient(dst_path) as dst:
            dst.version()
            dst.dma_map(vf.memfd, vf.IOVA, vf.MEM_SIZE)
            dst.set_mig_state(vu.MIG_RESUMING)
            dst.mig_data_write(stream)
            with pytest.raises(vu.VfioUserError) as e:
                dst.set_mig_state(vu.MIG_RUNNING)
            assert e.value.errno == expect_errno
            info = b.dev_info(dst_dev)
            assert reason in info["mig_error"], info["mig_error"]
            assert info["mac"] == mac_before and info["mig_announces"] == 0
            assert reason in b.output()
            dst.reset()
            assert dst.mig_state() == vu.MIG_RUNNING
        assert vf.c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING


def test_pre_copy_finds_an_incompatible_destination_before_the_stop(hosts):
    """What PRE_COPY sends ahead is checked as soon as B has it: a function
    of another shape refuses the write with the reason while A's function
    still runs and serves; A then leaves PRE_COPY for RUNNING."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    b.adi_add("wide", "--queues", "2")
    client = Client(hosts, guest_ip(0))
    try:
        with VirtioNetVF(a.sock(0)) as vf:
            vf.post_rx()
            g = UdpGuest(vf, guest_ip(0))
            assert client.request(g)[1] == 1
            ahead = pre_copy(vf)
            with VfioUserClient(b.adi_sock("wide")) as dst:
                dst.version()
                dst.set_mig_state(vu.MIG_RESUMING)
                with pytest.raises(vu.VfioUserError) as e:
                    dst.mig_data_write(ahead)
                assert e.value.errno == errno.EINVAL
                assert "queue pairs" in b.dev_info("adi-wide")["mig_error"]
            assert a.dev_info("vf0")["mig_state"] == "pre-copy"
            assert client.request(g)[1] == 2
            assert vf.c.set_mig_state(vu.MIG_RUNNING) == vu.MIG_RUNNING
            assert client.request(g)[1] == 3
    finally:
        client.close()


def test_source_dies_after_stop_copy(hosts):
    """A's hdnic killed once the state is read: the state and the memory are
    all B needs; the guest runs on B."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    client = Client(hosts, guest_ip(0))
    try:
        with VirtioNetVF(a.sock(0)) as vf:
            vf.post_rx()
            g = UdpGuest(vf, guest_ip(0))
            assert [client.request(g)[1] for _ in range(3)] == [1, 2, 3]
            stream = stop_and_save(vf)
            a.stop(signal.SIGKILL)
            old = move_driver(vf, b.sock(0), stream)
            old.close()
            assert [client.request(g)[1] for _ in range(3)] == [4, 5, 6]
            assert b.dev_stats("vf0")["rx_packets"] >= 6
    finally:
        client.close()


def test_gso_super_frames_are_cut_into_wire_frames(hosts):
    """UDP_SEGMENT from the client (its veth passes the GSO super-frame on
    untouched): A's AF_PACKET uplink gets one 3.5 KB frame and the driver
    gets four datagrams of at most 1000 bytes, each with a valid checksum
    and its own IP header."""
    with VirtioNetVF(hosts.nic["a"].sock(0)) as vf, hosts.udp_socket() as s:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        assert counter_request(s, g, 1, guest_ip(0)) == (1, 1)     # ARP resolved
        s.setsockopt(socket.SOL_UDP, 103, 1000)                     # UDP_SEGMENT
        data = bytes(range(256)) * 14
        s.sendto(data[:3500], (guest_ip(0), 7000))
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 4 and time.monotonic() < deadline:
            f = vf.recv(timeout=0.1, repost=True)
            if f is None or f[12:14] != b"\x08\x00" or f[23] != 17:
                continue
            ihl = (f[14] & 0xF) * 4
            ip, udp = f[14:14 + ihl], f[14 + ihl:]
            assert csum16(ip) == 0xFFFF, "bad IP header checksum"
            udp = udp[:struct.unpack_from("!H", udp, 4)[0]]
            assert udp_checksum_ok(ip, udp), "bad UDP checksum"
            assert struct.unpack_from("!H", ip, 2)[0] == len(f) - 14 or len(f) == 60
            got.append(udp[8:])
        assert [len(p) for p in got] == [1000, 1000, 1000, 500]
        assert b"".join(got) == data[:3500]


def tcp_frame(dst_mac, src_mac, src_ip, dst_ip, sport, dport, seq, ack, flags, opts=b""):
    """An Ethernet/IPv4/TCP frame without payload, checksums filled in."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (5 + len(opts) // 4) << 4, flags,
                      65535, 0, 0) + opts
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", ~csum16(ip) & 0xFFFF) + ip[12:]
    c = ~csum16(ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp)) + tcp) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp


def test_tcp_stream_from_a_tso_peer_arrives_in_mss_segments(hosts):
    """A TCP client with TSO on (the veth default) sends 8 KB in one write
    to the guest: A's uplink gets a super-frame, the driver gets MSS-sized
    segments, each with valid IP and TCP checksums, consecutive sequence
    numbers, and together exactly the bytes sent."""
    with VirtioNetVF(hosts.nic["a"].sock(0)) as vf:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        t = hosts.ns["client"].socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setblocking(False)
        try:
            t.connect((guest_ip(0), 80))
        except BlockingIOError:
            pass
        # handshake: answer ARP, then the SYN with a SYN-ACK (MSS 1460)
        syn, deadline = None, time.monotonic() + 3
        while syn is None and time.monotonic() < deadline:
            f = vf.recv(timeout=0.05, repost=True)
            if f is None:
                continue
            if f[12:14] == b"\x08\x00" and f[23] == 6 and f[47] & 0x02:
                syn = f
            else:
                g.handle(f)
        assert syn, "no SYN"
        cport, cseq = struct.unpack_from("!H", syn, 34)[0], struct.unpack_from("!I", syn, 38)[0]
        g._send(tcp_frame(syn[6:12], vf.mac(), guest_ip(0), CLIENT_IP, 80, cport, 1000,
                          cseq + 1, 0x12, b"\x02\x04\x05\xb4"))
        assert wait_for(lambda: select.select([], [t], [], 0)[1], timeout=3), "no connect"
        data = bytes(range(251)) * 32                   # 8032 bytes, one write
        assert t.send(data) == len(data)
        got, deadline = {}, time.monotonic() + 3
        while sum(map(len, got.values())) < len(data) and time.monotonic() < deadline:
            f = vf.recv(timeout=0.05, repost=True)
            if f is None or f[12:14] != b"\x08\x00" or f[23] != 6:
                continue
            ip, tcp = f[14:34], f[34:14 + struct.unpack_from("!H", f, 16)[0]]
            assert csum16(ip) == 0xFFFF, "bad IP header checksum"
            pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
            assert csum16(pseudo + tcp) == 0xFFFF, "bad TCP checksum"
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                assert len(payload) <= 1460
                got[struct.unpack_from("!I", tcp, 4)[0] - cseq - 1] = payload
        t.close()
        stream = b"".join(got[k] for k in sorted(got))
        assert stream == data, (sorted(got), len(stream))
        assert len(got) >= 6


def test_ten_moves_back_and_forth(hosts):
    """One guest moved A -> B -> A ... ten times under requests: the counter
    never skips or repeats, each host answers while it has the guest, the
    guest-visible statistics only grow, and every announce is counted."""
    a, b = hosts.nic["a"], hosts.nic["b"]
    paths = [a.sock(0), b.sock(0)]
    client = Client(hosts, guest_ip(0))
    try:
        with VirtioNetVF(paths[0]) as vf:
            vf.post_rx()
            g = UdpGuest(vf, guest_ip(0))
            last_stats = vf.stats_cap()
            for move in range(10):
                assert client.request(g) is not None
                ahead = pre_copy(vf)
                stream = stop_and_save(vf, ahead)
                old = move_driver(vf, paths[(move + 1) % 2], stream)
                old.close()
                assert client.request(g) is not None, f"move {move}: no answer"
                now = vf.stats_cap()
                assert all(now[k] >= v for k, v in last_stats.items()), (move, now, last_stats)
                last_stats = now
            counters = [c for _, c in client.replies]
            assert counters == list(range(1, 21)), counters
            assert a.dev_info("vf0")["mig_announces"] == 5
            assert b.dev_info("vf0")["mig_announces"] == 5
    finally:
        client.close()
