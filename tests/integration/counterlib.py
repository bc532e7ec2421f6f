# SPDX-License-Identifier: MIT
"""The counter guest (app=counter) moved elsewhere and still counting: what
migration, post-copy and snapshot/restore tests check with a PV NIC.

The guest answers each UDP request id on port 9000 with (id, its counter);
after the move the counter goes on where it was, so no request was lost or
answered twice by a VM that should be gone."""
import struct
import subprocess

from hdvmlib import TIME_SCALE
from test_pv_net import GUEST_IP, TAP, PvNet, up

PORT = 9000


def counter_check(s, addr, rids, first):
    """The guest's app=counter at addr, on UDP socket s: each request id in rids
    comes back with the counter's next value, first for the first of them."""
    for n, rid in enumerate(rids):
        s.sendto(struct.pack("!Q", rid), addr)
        got = struct.unpack("!QQ", s.recvfrom(64)[0][:16])
        assert got == (rid, first + n), got


class PvCounter:
    """A counter guest on a PV NIC (test_pv_net.PvNet) that has answered
    requests 1..50.  The test moves it (self.src) and sets self.dst to the VM
    that takes over; continues() checks the counter goes on there and stops
    it.  Leaving the `with` kills dst and removes the network."""

    def __init__(self, run_dir):
        self.pv = PvNet(run_dir)
        self.dst = None
        try:
            self.src = up(self.pv.start("counter", net=[f"tap={TAP},mac=52:54:00:00:08:01"]),
                          "counter: listening")
            with self.pv.udp_socket() as s:
                counter_check(s, (GUEST_IP, PORT), range(1, 51), 1)
        except BaseException:
            self.pv.close()
            raise

    @property
    def ns(self):
        return self.pv.ns

    def reachable(self, deadline=30 * TIME_SCALE):
        """Until the guest answers a ping (ICMP: its counter stays as it is).
        The host may have to ARP for the guest first: after a restore its
        neighbour entry is gone (the TAP had no reader for a while; carrier
        down flushes it), and Linux drops a datagram whose ARP stays
        unanswered for 3 probes (3 s), so a lone counter request could be
        lost before the guest ever saw it."""
        r = subprocess.run(["ip", "netns", "exec", self.ns.name, "ping", "-c", "1", "-i", "0.2",
                            "-w", str(int(deadline)), "-q", GUEST_IP],
                           capture_output=True, text=True, timeout=deadline + 10)
        assert r.returncode == 0, f"the guest never answered a ping: {r.stdout}{r.stderr}"

    def continues(self, timeout=5.0 * TIME_SCALE):
        self.reachable()
        with self.pv.udp_socket(timeout=timeout) as s:
            counter_check(s, (GUEST_IP, PORT), range(1000, 1050), 51)
        assert self.dst.ctl("stop").returncode == 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.dst:
            self.dst.kill()
        self.pv.close()
