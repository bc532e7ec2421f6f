# SPDX-License-Identifier: MIT
"""Traffic through a passed-through VF: namespace -> TAP -> hdnic switch -> VF -> hdguest,
with real clients (iputils ping, socat).  Addresses live only in the test's namespace."""
import os
import time

import pytest

from netlib import NicNet, guest_ip, socat

# Every test here boots a guest.
pytestmark = pytest.mark.kvm


@pytest.fixture
def net(tmp_path):
    n = NicNet(tmp_path, vfs=3)
    yield n
    n.close_checked()


def start_guest(vms, net, vf, app, **kw):
    vm = vms(cmdline=f"app={app} ip={guest_ip(vf)}/24", extra=net.vf_args(vf), **kw)
    vm.out.wait_for(r"net: .* up", timeout=30)
    return vm


def test_ping_100_no_loss(vms, net):
    vm = start_guest(vms, net, 0, "counter")
    vm.out.wait_for("counter: listening on udp/9000")
    sent, received, out = net.ping(guest_ip(0), count=100)
    assert (sent, received) == (100, 100), out
    st = net.nic.stats(0)
    assert st["rx_packets"] >= 100 and st["tx_packets"] >= 100
    assert "virtio-net: device needs reset" not in vm.out.text()


def test_udp_echo_with_socat(vms, net):
    vm = start_guest(vms, net, 0, "echo")
    vm.out.wait_for("echo: listening on udp/7")
    for i, size in enumerate([1, 64, 512, 1400]):
        payload = bytes((i * 31 + j) % 256 for j in range(size))
        assert socat(net.ns, guest_ip(0), 7, payload) == payload, f"size {size}"
    # many requests on one socket, payloads tagged so a mix-up would show
    with net.udp_socket() as s:
        for i in range(200):
            msg = b"echo-%05d-" % i + os.urandom(32)
            s.sendto(msg, (guest_ip(0), 7))
            data, _ = s.recvfrom(2048)
            assert data == msg


def test_counter_strictly_increasing(vms, net):
    vm = start_guest(vms, net, 0, "counter")
    vm.out.wait_for("counter: listening")
    replies = net.counter_requests(guest_ip(0), range(5000, 5300))
    assert [rid for rid, _ in replies] == list(range(5000, 5300))
    counters = [c for _, c in replies]
    assert counters == list(range(1, 301)), counters[:10]


def test_counter_bursts_answered_in_order(vms, net):
    """Bursts of 32 requests back to back through the TAP uplink, hdnic and the
    VF: replies in the order sent, counters consecutive (hdnic read and wrote
    its TAP through io_uring, whose worker threads on Linux 6.1 completed them
    out of order)."""
    vm = start_guest(vms, net, 0, "counter")
    vm.out.wait_for("counter: listening")
    replies = net.counter_bursts(guest_ip(0))
    assert [rid for rid, _ in replies] == [1, *range(100, 420)], replies[:40]
    assert [c for _, c in replies] == list(range(1, 322)), replies[:40]


def test_two_vms_switched_inside_the_nic(vms, net):
    """VM 0 floods VM 1 (found by ARP); unicast frames go VF0 -> switch -> VF1 only."""
    b = start_guest(vms, net, 1, "counter")
    b.out.wait_for("counter: listening")
    uplink_before = net.nic.stats()["uplink"]["tx_packets"]
    rx_before = net.nic.stats(1)["rx_packets"]
    a = vms(cmdline=f"app=flood,dst={guest_ip(1)}:9,size=64 ip={guest_ip(0)}/24",
            extra=net.vf_args(0))
    a.out.wait_for(r"flood: sent \d+", timeout=30)
    time.sleep(1.0)
    a.kill()
    got = net.nic.stats(1)["rx_packets"] - rx_before
    assert got > 10000, f"VF1 received only {got} frames from VF0"
    # the flood never reached the uplink: a handful of broadcasts (ARP) at most
    leaked = net.nic.stats()["uplink"]["tx_packets"] - uplink_before
    assert leaked < 50, leaked
    # VM 1 still answers on the network while its neighbour floods it
    assert net.counter_requests(guest_ip(1), [1])[0][0] == 1


@pytest.mark.parametrize("kind", ["oob", "len", "loop", "avail", "index", "other"])
def test_hostile_guest_only_breaks_its_own_vf(vms, net, kind):
    good = start_guest(vms, net, 1, "counter")
    good.out.wait_for("counter: listening")
    bad = vms(cmdline=f"app=hostile,kind={kind} ip={guest_ip(0)}/24", extra=net.vf_args(0))
    bad.out.wait_for(f"hostile: posted {kind}", timeout=30)
    bad.out.wait_for("virtio-net: device needs reset", timeout=10)
    assert net.nic.stats(0)["needs_reset"] >= 1
    assert net.nic.stats(1)["needs_reset"] == 0
    assert net.nic.alive()
    assert bad.proc.poll() is None, "hdvm died because its guest misbehaved"
    # the neighbour is undisturbed
    sent, received, out = net.ping(guest_ip(1), count=20)
    assert received == 20, out
    assert net.counter_requests(guest_ip(1), [7, 8]) == [(7, 1), (8, 2)]


def test_sleeping_guest_keeps_asking_arp_for_a_held_reply(vms, net):
    """A guest in idle mode whose reply waits for ARP keeps polling and
    retrying (every ~0.5 s) instead of sleeping until its safety-net timer
    (60 s), and the reply goes out once the address answers.  Three asks are
    waited for, 2.5 s at most, and the third is answered at once from here
    (the guest gives a held reply up after 3 s of asking: turning the
    namespace's ARP back on with `ip` took too long of that under TCG)."""
    import socket
    import struct
    ip = guest_ip(0)
    vm = start_guest(vms, net, 0, "counter")
    vm.out.wait_for("net: idle mode on", timeout=30)
    mac = net.nic.vf_info(0)["mac"]
    # the namespace stops answering ARP; it reaches the guest by a static entry
    net.ns.exec("ip", "link", "set", "hdt0", "arp", "off")
    net.ns.exec("ip", "neigh", "replace", ip, "lladdr", mac, "dev", "hdt0", "nud", "permanent")
    tap = net.ns.packet_socket("hdt0")
    host = socket.inet_aton("10.66.0.1")
    asks = []
    with net.udp_socket(timeout=8) as s:
        s.sendto(struct.pack("!Q", 77), (ip, 9000))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5 and len(asks) < 3:
            try:
                f = tap.recv(2048)
            except (socket.timeout, BlockingIOError):
                continue
            if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == host:
                asks.append(time.monotonic() - t0)
                gmac = f[6:12]
        assert len(asks) >= 3, f"ARP requests for the host at {asks}: the guest went to sleep"
        hmac = tap.getsockname()[4]
        tap.send(gmac + hmac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
                 + hmac + host + gmac + socket.inet_aton(ip) + bytes(18))  # ARP reply, padded
        data, _ = s.recvfrom(64)
    tap.close()
    rid, counter = struct.unpack("!QQ", data[:16])
    assert rid == 77 and counter >= 1


def test_hdnic_restart_under_traffic_guest_carries_on(vms, net):
    """kill -9 hdnic while its guest is busy, start it again on the same directory:
    hdvm re-attaches the VF, the guest finds a reset function, re-initialises its
    driver and answers again -- the same VM, its app state intact."""
    import struct
    from hdvmlib import HDNIC
    from netlib import HOST_IP
    from nichost import Hdnic
    from vfio_user_client import wait_for

    vm = start_guest(vms, net, 0, "counter")
    vm.out.wait_for("counter: listening")
    assert net.counter_requests(guest_ip(0), [1, 2]) == [(1, 1), (2, 2)]
    with net.udp_socket(timeout=0.2) as s:      # requests in flight when it dies
        for i in range(50):
            s.sendto(struct.pack("!Q", 100 + i), (guest_ip(0), 9000))
    net.nic.stop(sig=9)
    vm.err.wait_for("device removed, the VM keeps running", timeout=10)
    net.nic = Hdnic(HDNIC, net.nic.dir, vfs=3, uplink="tap:hdt0", netns=net.ns)
    assert wait_for(lambda: net.nic.ctl("list").returncode == 0, timeout=10)
    assert "stale sockets" in net.nic.output()
    net.ns.exec("ip", "addr", "add", f"{HOST_IP}/24", "dev", "hdt0")
    net.ns.exec("ip", "link", "set", "hdt0", "up")
    vm.err.wait_for("re-attached", timeout=10)
    vm.out.wait_for("virtio-net: device reset by the host, re-initialising", timeout=15)

    def answers():
        try:
            return net.counter_requests(guest_ip(0), [7])
        except OSError:
            return None
    assert wait_for(answers, timeout=15)
    (rid, counter), = net.counter_requests(guest_ip(0), [8])
    assert rid == 8 and counter > 3             # the app kept its state: not restarted
    assert vm.proc.poll() is None
    assert "device gone" not in vm.out.text()


def test_hdnic_stopped_past_the_timeout_guest_carries_on(vms, net):
    """hdnic SIGSTOPped for 10 s with the default 5 s --vfio-timeout: hdvm declares
    the device lost; after SIGCONT the same hdnic (same socket file) is re-attached,
    the guest finds a reset function, re-initialises and answers again -- the same
    VM, its app state intact, no 'device gone'."""
    import signal
    from vfio_user_client import wait_for

    # idle_wake=1: the sleeping guest looks at its device every second, and only
    # a guest access can find a stalled (not disconnected) server
    vm = vms(cmdline=f"app=counter ip={guest_ip(0)}/24 idle_wake=1", extra=net.vf_args(0))
    vm.out.wait_for("counter: listening", timeout=30)
    assert net.counter_requests(guest_ip(0), [1, 2]) == [(1, 1), (2, 2)]
    t0 = time.monotonic()
    net.nic.proc.send_signal(signal.SIGSTOP)
    try:
        vm.err.wait_for(r"device lost: .*\(Connection timed out\)", timeout=20)
        time.sleep(max(0.0, 10 - (time.monotonic() - t0)))
    finally:
        net.nic.proc.send_signal(signal.SIGCONT)
    vm.err.wait_for("its server answers again after a stall", timeout=10)
    vm.err.wait_for("re-attached", timeout=10)
    vm.out.wait_for("virtio-net: device reset by the host, re-initialising", timeout=15)

    def answers():
        try:
            return net.counter_requests(guest_ip(0), [7])
        except OSError:
            return None
    assert wait_for(answers, timeout=15)
    (rid, counter), = net.counter_requests(guest_ip(0), [8])
    assert rid == 8 and counter > 3             # the app kept its state: not restarted
    assert vm.proc.poll() is None
    assert "device gone" not in vm.out.text()
