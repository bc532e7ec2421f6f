# SPDX-License-Identifier: MIT
"""Device-level QoS with real microVMs: hdguest guests on VFs/ADIs of one
hdnic whose TAP uplink lives in the test's namespace.  Flooding guests
(app=flood) share a rate-limited uplink by their weights, eight equal ones
share it fairly, and an rx-limited guest is held to its rate by policing at
hdnic while its neighbour receives everything sent to it.  Shares are
measured where the traffic really arrives (a UDP socket in the namespace,
a guest's own request counter) and checked against hdnic's counters.

This host has 2 cores and every guest's vCPU polls: each test lets the
traffic settle (warm-up) before its measured window, and each then changes
the setting live and measures again, so a device that ignored the setting
would fail (1:3 and 1:1 must both show)."""
import collections
import json
import socket
import struct
import threading
import time

import pytest

from netlib import HOST_IP, NicNet, guest_ip

# Every test here boots a guest.
pytestmark = [pytest.mark.kvm, pytest.mark.speed]

LINE = 20_000_000            # uplink line rate for the flood tests, bit/s
SINK_PORT = 5000
PAYLOAD = 1472               # flood datagram payload: full 1514-byte frames
WIRE = PAYLOAD + 42          # bytes hdnic counts per flood frame (Ethernet + IPv4 + UDP)
WARMUP, WINDOW = 1.0, 3.0    # seconds
COUNTER_PORT = 9000
SO_RCVBUFFORCE = 33          # <asm-generic/socket.h>; Python does not name it


class UdpSink(threading.Thread):
    """Counts UDP payload bytes per source address arriving at HOST_IP:port
    in the namespace: what really got through the TAP and the host stack."""

    def __init__(self, ns, port=SINK_PORT):
        super().__init__(daemon=True)
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # a deep buffer, so a test process short of CPU loses nothing
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        self.sock.bind((HOST_IP, port))
        self.sock.settimeout(0.2)
        self.bytes = collections.Counter()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                data, (ip, _) = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            self.bytes[ip] += len(data)

    def stop(self):
        self.halt.set()
        self.join(5)
        self.sock.close()


class NicStats:
    """hdnic's stats over one pf.sock connection, stamped with when they were
    read: spawning `hdnic ctl` takes long and varying time on a busy host,
    which would skew short windows."""

    def __init__(self, nic):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(str(nic.dir / "pf.sock"))
        self.f = self.s.makefile("rb")

    def read(self):
        """(time, {dev: stats entry}, uplink stats)"""
        t = time.monotonic()
        self.s.sendall(b'{"cmd": "stats"}\n')
        r = json.loads(self.f.readline())
        t = (t + time.monotonic()) / 2
        assert r.get("ok"), r
        return t, {d["dev"]: d for d in r["vfs"] + r["adis"]}, r["uplink"]

    def close(self):
        self.f.close()
        self.s.close()


@pytest.fixture
def make_net(tmp_path):
    """make_net(vfs, *hdnic_args) -> NicNet; its hdnic must exit cleanly at teardown."""
    nets = []

    def make(vfs, *extra):
        d = tmp_path / f"net{len(nets)}"
        d.mkdir()
        nets.append(NicNet(d, vfs=vfs, extra=extra))
        return nets[-1]

    yield make
    for n in nets:
        n.close_checked()


@pytest.fixture
def line(make_net):
    """hdnic with a LINE bit/s uplink and 2 VFs, a UdpSink behind the uplink."""
    net = make_net(2, "--uplink-rate", str(LINE))
    sink = UdpSink(net.ns)
    sink.start()
    yield net, sink
    sink.stop()


def start_flooders(vms, net, sink, devs):
    """One flooding guest per device (vfK / adi-NAME), guest_ip(i) for the
    i-th; returns once the sink hears from every one."""
    for i, dev in enumerate(devs):
        sock = net.nic.dir / f"{dev}.sock"
        vm = vms(cmdline=f"app=flood,dst={HOST_IP}:{SINK_PORT},size={PAYLOAD} "
                 f"ip={guest_ip(i)}/24", extra=["--vfio-user", str(sock)])
        vm.out.wait_for("flood: sending", timeout=30)
    ips = [guest_ip(i) for i in range(len(devs))]
    deadline = time.monotonic() + 10
    while not all(sink.bytes[ip] for ip in ips):
        assert time.monotonic() < deadline, f"silent flooders: {dict(sink.bytes)}"
        time.sleep(0.05)


def measure(net, sink, devs, window=WINDOW):
    """Rates in bit/s over one window: received at the sink per guest (as
    wire bytes), sent by hdnic per device, and hdnic's uplink total."""
    stats = NicStats(net.nic)

    def snap():
        t_sink, got = time.monotonic(), dict(sink.bytes)
        return (t_sink, got), stats.read()

    try:
        (ts0, got0), (tn0, dev0, up0) = snap()
        time.sleep(window)
        (ts1, got1), (tn1, dev1, up1) = snap()
    finally:
        stats.close()
    received = [(got1.get(guest_ip(i), 0) - got0.get(guest_ip(i), 0)) * WIRE / PAYLOAD * 8
                / (ts1 - ts0) for i in range(len(devs))]
    sent = [(dev1[d]["tx_bytes"] - dev0[d]["tx_bytes"]) * 8 / (tn1 - tn0) for d in devs]
    return received, sent, (up1["tx_bytes"] - up0["tx_bytes"]) * 8 / (tn1 - tn0)


def jain(xs):
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def mbit(xs):
    return " ".join(f"{x / 1e6:.2f}" for x in xs)


def check_window(received, sent, uplink):
    """The line is the bottleneck and kept busy, and the sink got what hdnic sent."""
    assert 0.9 * LINE <= uplink <= 1.05 * LINE, uplink
    assert sum(sent) >= 0.97 * uplink, (sent, uplink)          # the flooders' traffic
    for r, s in zip(received, sent):
        assert abs(r - s) <= 0.03 * s + 50_000, (received, sent)


def test_weights_1_to_3_share_the_uplink(line, vms):
    net, sink = line
    devs = ["vf0", "vf1"]
    assert net.nic.ctl_json("qos", "vf1", "--weight", "3")["qos"]["weight"] == 3
    start_flooders(vms, net, sink, devs)
    time.sleep(WARMUP)
    received, sent, uplink = measure(net, sink, devs)
    light, heavy = received
    print(f"\nweights 1:3 -> {mbit(received)} Mbit/s received (1:{heavy / light:.3f}), "
          f"hdnic {mbit(sent)}, uplink {uplink / 1e6:.2f}")
    check_window(received, sent, uplink)
    assert abs(heavy / light - 3) <= 0.3, received           # within 10% of 1:3

    # the same guests at 1:1, changed live: the share follows the weight
    net.nic.ctl_json("qos", "vf1", "--weight", "1")
    time.sleep(WARMUP)
    received, sent, uplink = measure(net, sink, devs, window=2.0)
    light, heavy = received
    print(f"weights 1:1 -> {mbit(received)} Mbit/s received (1:{heavy / light:.3f})")
    check_window(received, sent, uplink)
    assert abs(heavy / light - 1) <= 0.1, received


def test_eight_equal_flooders_are_fair(line, vms):
    net, sink = line
    names = [f"eq{i}" for i in range(8)]
    for name in names:
        net.nic.adi_add(name)
    devs = [f"adi-{n}" for n in names]
    start_flooders(vms, net, sink, devs)
    time.sleep(WARMUP)
    received, sent, uplink = measure(net, sink, devs)
    print(f"\n8 equal flooders: Jain {jain(received):.4f} received, {jain(sent):.4f} at hdnic; "
          f"Mbit/s {mbit(received)}; uplink {uplink / 1e6:.2f}")
    check_window(received, sent, uplink)
    assert jain(received) >= 0.95, received

    # one of them at weight 8: it takes 8/15 of the line and fairness is gone
    net.nic.ctl_json("qos", devs[0], "--weight", "8")
    time.sleep(WARMUP)
    received, sent, uplink = measure(net, sink, devs, window=2.0)
    share = received[0] / sum(received)
    print(f"weight 8 for one: its share {share:.3f}, Jain {jain(received):.4f}; "
          f"Mbit/s {mbit(received)}")
    check_window(received, sent, uplink)
    assert abs(share - 8 / 15) <= 0.1 * 8 / 15, received
    assert jain(received) < 0.5


class CounterLoad:
    """Sends counter requests of `frame` wire bytes from the namespace to
    each target at `bits` bit/s (paced in 10 ms ticks) and follows the
    replies: the latest counter per guest is how many requests that guest
    has received."""

    TICK = 0.01

    def __init__(self, net, targets, bits, frame):
        self.sock = net.udp_socket(timeout=0.2)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        self.targets = targets
        self.per_tick = round(bits * self.TICK / (frame * 8))
        self.payload = bytes(frame - 42 - 8)
        self.sent = collections.Counter()
        self.counter = collections.Counter()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._recv)]
        for t in self.threads:
            t.start()

    def _send(self):
        rid, nxt = 1 << 32, time.monotonic()
        while not self.halt.is_set():
            for _ in range(self.per_tick):
                for ip in self.targets:
                    rid += 1
                    self.sock.sendto(struct.pack("!Q", rid) + self.payload, (ip, COUNTER_PORT))
                    self.sent[ip] += 1
            nxt = max(nxt + self.TICK, time.monotonic() - 5 * self.TICK)  # no long catch-up bursts
            time.sleep(max(0.0, nxt - time.monotonic()))

    def _recv(self):
        while not self.halt.is_set():
            try:
                data, (ip, _) = self.sock.recvfrom(64)
            except socket.timeout:
                continue
            c = struct.unpack("!QQ", data[:16])[1]
            self.counter[ip] = max(self.counter[ip], c)

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()


def test_rx_limit_is_policed_at_the_device(make_net, vms):
    """The rx-limited guest gets 4 Mbit/s of the 12 offered to it; hdnic
    drops the rest before DMA (rx_policed) and the guest receives every
    frame hdnic put into its ring; its neighbour, offered the same 12, gets
    all of it.  Lifting the limit live lets the guest have everything."""
    frame, offered, limit = 1000, 12_000_000, 4_000_000
    net = make_net(2)
    assert net.nic.ctl_json("qos", "vf0", "--rx-rate", "4M")["qos"]["rx_rate"] == limit
    lim, free = guest_ip(0), guest_ip(1)
    for vf, ip in ((0, lim), (1, free)):
        vm = vms(cmdline=f"app=counter ip={ip}/24", extra=net.vf_args(vf))
        vm.out.wait_for("counter: listening", timeout=30)
        assert net.counter_requests(ip, [1]) == [(1, 1)]    # also resolves its address

    stats = NicStats(net.nic)

    def snap(load):
        """(time, sent, counters) as the namespace sees them, (time, lim stats) at hdnic."""
        ours = (time.monotonic(), dict(load.sent), dict(load.counter))
        t, devs, _ = stats.read()
        return ours, (t, devs["vf0"])

    load = CounterLoad(net, [lim, free], offered, frame)
    try:
        time.sleep(WARMUP)
        (t0, sent0, ctr0), (n0, lim0) = snap(load)
        time.sleep(WINDOW)
        (t1, sent1, ctr1), (n1, lim1) = snap(load)
        # lift the limit: the same guest now takes all that is offered
        net.nic.ctl_json("qos", "vf0", "--rx-rate", "0")
        time.sleep(0.5)
        (t2, _, ctr2), (_, lim2) = snap(load)
        time.sleep(1.5)
        (t3, _, ctr3), (_, lim3) = snap(load)
    finally:
        load.stop()
        stats.close()
    time.sleep(0.3)                                         # in-flight requests land
    final = net.nic.stats()
    # the guests' own count of requests received (this last one included)
    got = {ip: net.counter_requests(ip, [2])[0][1] for ip in (lim, free)}
    final_lim, final_free = final["vfs"][0], final["vfs"][1]

    def per_s(a, b, key, t):            # a stats counter of hdnic, per second
        return (b[key] - a[key]) / t

    at_nic = per_s(lim0, lim1, "rx_bytes", n1 - n0) * 8
    at_guest = (ctr1[lim] - ctr0[lim]) * frame * 8 / (t1 - t0)
    offered_lim = (sent1[lim] - sent0[lim]) / (t1 - t0)
    policed = per_s(lim0, lim1, "rx_policed", n1 - n0)
    delivered = per_s(lim0, lim1, "rx_packets", n1 - n0)
    free_rate = (ctr1[free] - ctr0[free]) * frame * 8 / (t1 - t0)
    lifted = (ctr3[lim] - ctr2[lim]) * frame * 8 / (t3 - t2)
    print(f"\nrx-rate 4M: limited guest {at_guest / 1e6:.2f} Mbit/s received "
          f"({at_nic / 1e6:.2f} at hdnic), {policed:.0f} of {offered_lim:.0f} frames/s policed "
          f"at hdnic; frames in its ring not its requests: {final_lim['rx_packets'] - got[lim]}; "
          f"neighbour {free_rate / 1e6:.2f} Mbit/s, got {got[free] - 2} of {load.sent[free]}; "
          f"limit lifted: {lifted / 1e6:.2f} Mbit/s")

    assert abs(at_nic - limit) <= 0.1 * limit
    assert abs(at_guest - limit) <= 0.1 * limit
    # the excess is dropped and counted at hdnic ...
    assert policed >= 0.5 * offered_lim
    assert abs(policed + delivered - offered_lim) <= 0.05 * offered_lim
    assert final_lim["rx_drops"] == final_lim["rx_policed"]   # no drop for a full ring
    # ... and the guest saw every frame hdnic put into its ring: only a few
    # ARP frames of the rx_packets were not its requests
    assert 0 <= final_lim["rx_packets"] - got[lim] <= 8, (final_lim, got)
    # the neighbour gets everything offered to it
    assert got[free] - 2 >= 0.98 * load.sent[free], (got, load.sent)
    assert 0 <= final_free["rx_packets"] - got[free] <= 8, (final_free, got)
    assert final_free["rx_policed"] == 0
    # without the limit the same guest takes what it is offered, and no more is policed
    assert lifted >= 0.9 * offered, lifted
    assert lim3["rx_policed"] - lim2["rx_policed"] == 0
