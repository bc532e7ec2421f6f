# SPDX-License-Identifier: MIT
"""Remus with etcd deciding who serves (issue 13's partition tests), with real
guests and a real etcd: an app=counter guest on a VF of host A's hdnic,
protected by a standby on host B (tests/integration/hosts.py), a client that
sends numbered requests all along, and etcd (Debian's etcd-server) started by
the test.

Where each process runs: etcd listens on the loopback of the test's own
(root) namespace, where the observer (etcdlib.Etcd) reads it.  Each host's
hdvm runs in that host's namespace, so the checkpoint stream goes over the
A<->B link (mig0, which a test cuts), and its hdvm-owner helper reaches etcd
only through a proxy listening on that namespace's loopback
(etcdlib.CutProxy(netns=...)): one path per host, cut alone.  The client is
in the client namespace on the bridge; ReplySources sniffs the bridge's ports
to A and B, so the test sees which host each reply left from.

Client invariants everywhere: the counter never regresses (so no duplicate,
no reply from state that was lost), every reply seen before a takeover is
reflected after it (counter > last seen), and replies never come from two
places in turn.  Without KVM the module is skipped; the non-guest parts are
tests/unit/test_checkpoint_etcd.c (fake helper) and test_owner_etcd.py (the
helper against a real etcd)."""
import os
import signal
import socket
import struct
import time

import pytest

from etcdlib import CutProxy, Etcd
from hdvmlib import hdvm_ctl, status
from remuslib import (COUNTER_IP, TIME_SCALE, Client, Protected, ReplySources, first_reply,
                      try_status)

pytestmark = pytest.mark.kvm

VM = "ctr"
KEY = f"/hdvm/vm/{VM}/owner"
# lease TTL: 2 s on KVM; under tools/kvmlab (TIME_SCALE 20) 10 s, so a TCG
# stall of the helper or of etcd never fences a healthy primary
TTL = max(2, round(TIME_SCALE / 2))
FAILOVER_S = 1.0 * TIME_SCALE        # remuslib's --failover-ms


def wait_s(pred, seconds, what):
    """pred() true within seconds (not scaled: the callers' times already are)."""
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.05)


class Cluster:
    """Two hosts, etcd, a path per host to it, run dirs; protected() makes the VM."""

    def __init__(self, tmp_path, vfs=1):
        from hosts import TwoHosts
        self.tmp = tmp_path
        self.hosts = TwoHosts(tmp_path, vfs=vfs)
        self.etcd = self.p = None
        self.proxy = {}
        self.run = {h: tmp_path / f"run-{h}" for h in ("a", "b", "b2")}
        for d in self.run.values():
            d.mkdir()
        (tmp_path / "etcd").mkdir()
        self.etcd = Etcd(tmp_path / "etcd")
        self.proxy = {h: CutProxy(self.etcd.client_port, netns=self.hosts.ns[h])
                      for h in ("a", "b")}
        self.client = self.sources = None

    def protected(self, ttl=TTL):
        self.p = Protected(self.hosts, self.tmp, self.run, name=VM, in_netns=True,
                           etcd={h: self.proxy[h].url for h in ("a", "b")},
                           etcd_args=["--etcd-ttl", str(ttl)])
        return self.p

    def start_traffic(self):
        with self.hosts.udp_socket() as s:
            first_reply(s, 1 << 40)
        self.sources = ReplySources(self.hosts)
        self.client = Client(self.hosts)
        self.client.start()

    def st(self, host):
        return try_status(self.run[host], VM)

    def committed(self, host="a"):
        return self.st(host).get("committed_epoch", 0)

    def logs(self, what=""):
        return self.p.logs(what) + f"\n--- etcd:\n{self.etcd.logtext()}"

    def cut_link(self):
        """The A<->B link down; the client still reaches both over the bridge."""
        self.hosts.ns["a"].exec("ip", "link", "set", "mig0", "down")

    def close(self):
        if self.client:
            self.client.stop_flag.set()
        if self.sources:
            self.sources.stop()
        if self.p:
            self.p.close()
        for px in self.proxy.values():
            px.close()
        if self.etcd:
            self.etcd.stop()
        self.hosts.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture
def cluster2(tmp_path):
    """Host B with two VFs: room for a second standby."""
    c = Cluster(tmp_path, vfs=2)
    yield c
    c.close()


def protect_and_run(c, *opts):
    p = c.protected()
    p.start_standby("b")
    c.start_traffic()
    r = p.protect("a", *opts)
    # the failover time the lease implies is printed
    assert f"lease TTL {TTL} s" in r.stdout and "takes over within" in r.stdout, r.stdout
    st = c.st("a")
    assert st["role"] == "primary" and st["owner_key"] == "held", st
    assert st["failover_arbiter"].startswith("etcd"), st
    assert c.etcd.get(KEY), "no owner key in etcd"
    assert c.st("b")["failover_arbiter"].startswith("etcd")
    base = c.committed()
    wait_s(lambda: c.committed() >= base + 5, 20 * TIME_SCALE, "no epochs committed")
    return p


def sniff_bridge(c, seconds=3.0):
    """Diagnostics: frames on the bridge's ports while requests go out."""
    import select
    lan = c.hosts.ns["lan"]
    socks = {lan.packet_socket(p): p for p in ("pa", "pb", "pclient")}
    out = []
    with c.hosts.udp_socket() as s:
        end = time.monotonic() + seconds
        s.sendto(struct.pack("!Q", 77), (COUNTER_IP, 9000))
        while time.monotonic() < end and len(out) < 40:
            for k in select.select(list(socks), [], [], 0.2)[0]:
                f, addr = k.recvfrom(2048)
                out.append(f"{socks[k]} {'out' if addr[2] == 4 else 'in'} "
                           f"dst {f[0:6].hex()} src {f[6:12].hex()} type {f[12:14].hex()} "
                           f"{f[14:60].hex()}")
    snmp = c.hosts.ns["client"].exec("cat", "/proc/net/snmp").stdout
    for k in socks:
        k.close()
    return "\n".join(out) + "\n" + snmp


def no_replies_for(c, seconds, what):
    t = time.monotonic()
    time.sleep(seconds)
    late = c.client.replies_after(t)
    assert not late, f"{what}: {late[:3]}"


def test_primary_killed_standby_takes_the_key_and_serves_then_reprotects(cluster):
    c = cluster
    p = protect_and_run(c)
    lease_a = c.etcd.get(KEY)[1]
    p.primary.kill()
    p.primary.wait(10)
    t_kill = time.monotonic()
    seen = max(r[1] for r in c.client.replies)
    wait_s(lambda: c.client.replies_after(t_kill + 0.05), TTL + 10 * TIME_SCALE,
           lambda: c.logs("host B never answered"))
    st = c.st("b")
    assert st["role"] == "unprotected" and st["state"] == "running", st
    assert st["took_over_from_epoch"] >= 1 and st["owner_key"] == "held", st
    holder, lease_b = c.etcd.get(KEY)
    assert lease_b != lease_a
    # B runs unprotected with the key; protect it back to a fresh standby on
    # host A with --etcd: the key B took over with is the one it protects with
    b_vm = p.standby
    p.primary = None
    p.start_standby("a")
    r = p.protect("b")
    assert "lease TTL" in r.stdout, r.stdout
    st = c.st("b")
    assert st["role"] == "primary" and st["owner_key"] == "held", st
    assert c.etcd.get(KEY) == (holder, lease_b)
    wait_s(lambda: int(c.etcd.get(f"/hdvm/vm/{VM}/epoch")[0]) > st["took_over_from_epoch"],
           10 * TIME_SCALE, "the new standby's epochs never reached etcd")
    assert c.etcd.get(f"/hdvm/vm/{VM}/stale") is None       # A's standby is current
    b_vm.kill()
    b_vm.wait(10)
    t2 = time.monotonic()
    wait_s(lambda: c.client.replies_after(t2 + 0.05), TTL + 10 * TIME_SCALE,
           lambda: c.logs("host A never answered again"))
    c.client.stop()
    assert c.client.check() > seen
    c.sources.stop()
    assert c.sources.order() == ["a", "b", "a"], c.sources.order()


def test_link_cut_exactly_one_side_serves(cluster):
    c = cluster
    protect_and_run(c)
    c.cut_link()
    t_cut = time.monotonic()
    # B's primary is silent: it asks etcd, which says A went on without it
    wait_s(lambda: c.st("b").get("role") == "lost", FAILOVER_S + TTL + 10 * TIME_SCALE,
           lambda: c.logs("the standby never gave up"))
    st_b = c.st("b")
    assert "stale" in st_b["lost"] and "without its standby" in st_b["lost"], st_b
    st_a = c.st("a")
    assert st_a["role"] == "unprotected" and st_a["state"] == "running", st_a
    assert st_a["owner_key"] == "held"
    wait_s(lambda: c.client.replies_after(t_cut + FAILOVER_S), 10 * TIME_SCALE,
           "A does not serve on")
    time.sleep(1.0 * TIME_SCALE)
    c.client.stop()
    c.client.check()
    c.sources.stop()
    assert c.sources.order() == ["a"], c.sources.order()
    assert c.etcd.get(KEY) and "without its standby" in c.etcd.get(f"/hdvm/vm/{VM}/stale")[0]


def test_link_cut_with_pause_the_primary_hands_over_and_the_standby_serves(cluster):
    # --on-standby-loss pause: A pauses, drops what it holds and gives its key
    # up (no stale mark); B, current to every frame A released, takes over
    c = cluster
    protect_and_run(c, "--on-standby-loss", "pause")
    seen = max(r[1] for r in c.client.replies)
    c.cut_link()
    t_cut = time.monotonic()
    wait_s(lambda: "given up" in c.st("a").get("owner_key", ""),
           FAILOVER_S + 10 * TIME_SCALE, lambda: c.logs("A never gave its key up"))
    st_a = c.st("a")
    assert st_a["state"] == "paused" and st_a.get("output_discarded"), st_a
    assert "gave up ownership so the standby can take over" in st_a["protection_ended"], st_a
    wait_s(lambda: c.client.replies_after(t_cut + 0.05) and
           c.st("b").get("role") == "unprotected", FAILOVER_S + TTL + 10 * TIME_SCALE,
           lambda: c.logs("B never took over"))
    st_b = c.st("b")
    assert st_b["state"] == "running" and st_b["owner_key"] == "held", st_b
    # A never runs again while B holds the key
    r = hdvm_ctl(c.run["a"], "resume", VM)
    assert r.returncode != 0 and "cannot take it back" in r.stderr, r.stderr
    assert c.st("a")["state"] == "paused"
    time.sleep(0.5 * TIME_SCALE)
    c.client.stop()
    assert c.client.check() > seen
    c.sources.stop()
    assert c.sources.order() == ["a", "b"], c.sources.order()


def test_primary_cut_from_etcd_fences_and_the_standby_takes_over(cluster):
    c = cluster
    p = protect_and_run(c)
    seen = max(r[1] for r in c.client.replies)
    c.proxy["a"].cut()
    t_cut = time.monotonic()
    wait_s(lambda: c.st("a").get("fenced"), TTL + 5 * TIME_SCALE,
           lambda: c.logs("A never fenced itself"))
    st_a = c.st("a")
    assert st_a["state"] == "paused" and "fenced" in st_a["lost"], st_a
    wait_s(lambda: c.client.replies_after(t_cut + 0.05) and
           c.st("b").get("role") == "unprotected", 2 * TTL + 10 * TIME_SCALE,
           lambda: c.logs("B never took over"))
    # what A holds never leaves, and it does not run again
    r = hdvm_ctl(c.run["a"], "resume", VM)
    assert r.returncode != 0 and "fenced" in r.stderr, r.stderr
    r = hdvm_ctl(c.run["a"], "checkpoint", VM, "--stop")
    assert r.returncode != 0 and "fenced" in r.stderr, r.stderr
    time.sleep(0.5 * TIME_SCALE)
    c.client.stop()
    assert c.client.check() > seen
    c.sources.stop()
    assert c.sources.order() == ["a", "b"], c.sources.order()
    assert p.primary.poll() is None          # fenced, paused: not dead


def test_cut_from_standby_then_from_etcd_is_lost_until_a_deliberate_restart(cluster):
    c = cluster
    protect_and_run(c, "--on-standby-loss", "continue")
    c.cut_link()
    t_cut = time.monotonic()
    wait_s(lambda: c.st("b").get("role") == "lost", FAILOVER_S + TTL + 10 * TIME_SCALE,
           lambda: c.logs("the standby never gave up"))
    wait_s(lambda: c.client.replies_after(t_cut + FAILOVER_S), 10 * TIME_SCALE,
           "A does not serve on unprotected")
    assert c.st("a")["role"] == "unprotected"
    c.proxy["a"].cut()                       # and now A cannot reach etcd either
    wait_s(lambda: c.st("a").get("fenced"), TTL + 5 * TIME_SCALE,
           lambda: c.logs("A never fenced itself"))
    # A paused itself; B refuses its stale checkpoint even once A's lease expired
    no_replies_for(c, TTL + 2 * TIME_SCALE, "a reply after the fence")
    assert c.etcd.get(KEY) is None
    st_a, st_b = c.st("a"), c.st("b")
    assert st_a["state"] == "paused" and "fenced" in st_a["lost"], st_a
    assert st_b["role"] == "lost" and "stale" in st_b["lost"], st_b
    c.client.stop()
    last = c.client.check()                  # it never regressed
    r = hdvm_ctl(c.run["b"], "takeover", VM, timeout=60 * TIME_SCALE)
    assert r.returncode == 1 and "stale" in r.stderr, (r.stdout, r.stderr)
    # the operator's deliberate restart from the stale checkpoint
    r = hdvm_ctl(c.run["b"], "takeover", VM, "--restart-from-stale", timeout=60 * TIME_SCALE)
    assert r.returncode == 0, c.logs(r.stderr)
    assert "stale checkpoint (deliberately)" in r.stdout
    st_b = c.st("b")
    assert st_b["role"] == "unprotected" and st_b["state"] == "running", st_b
    # The client's ARP entry for the guest failed while nobody served: it
    # asks again, and host B's hdnic must not keep the request "behind the
    # uplink", where the guest lived while A served (arp_dir.c).
    try:
        with c.hosts.udp_socket() as s:
            _, counter = first_reply(s, 1 << 41, timeout=3)
    except AssertionError as e:
        raise AssertionError(c.logs(str(e)) + f"\n--- host B's VF 0: {c.hosts.nic['b'].stats(0)}"
                             f"\n--- on the bridge:\n{sniff_bridge(c)}") from e
    # what A served unprotected is gone: that is why only an operator does this
    assert counter <= last, (counter, last)


def test_etcd_restarted_mid_run_protection_goes_on(cluster):
    c = cluster
    p = protect_and_run(c)
    owner = c.etcd.get(KEY)
    c.etcd.restart()
    before = c.committed()
    wait_s(lambda: c.committed() >= before + 20, 20 * TIME_SCALE,
           lambda: c.logs("epochs stopped committing"))
    time.sleep(TTL)                           # past a whole TTL after the restart
    st_a = c.st("a")
    assert st_a["role"] == "primary" and not st_a.get("fenced"), st_a
    assert c.committed() > before + 20
    assert c.st("b")["role"] == "standby"
    assert c.etcd.get(KEY) == owner           # the same lease: no takeover
    c.client.stop()
    c.client.check()
    c.sources.stop()
    assert c.sources.order() == ["a"]
    assert p.primary.poll() is None


def test_stale_standby_that_comes_back_is_refused(cluster2):
    c = cluster2
    p = protect_and_run(c)
    b1 = p.standby
    os.kill(b1.pid, signal.SIGSTOP)           # B1 misses what follows
    wait_s(lambda: c.st("a").get("role") == "unprotected", FAILOVER_S + 10 * TIME_SCALE,
           "A never gave its standby up")
    # A is protected again, by B2, which acknowledges newer epochs
    p.start_standby("b", vf=1, run_dir=c.run["b2"])
    p.protect("a")
    b2 = p.standby
    committed = c.committed()
    wait_s(lambda: int(c.etcd.get(f"/hdvm/vm/{VM}/epoch")[0]) >= committed, 10 * TIME_SCALE,
           "B2's epochs never reached etcd")
    assert c.etcd.get(f"/hdvm/vm/{VM}/stale") is None
    # A dies, B2 cannot act (frozen, then killed); B1 comes back
    os.kill(b2.pid, signal.SIGSTOP)
    p.primary.kill()
    p.primary.wait(10)
    b2.kill()
    b2.wait(10)
    t_dead = time.monotonic()
    os.kill(b1.pid, signal.SIGCONT)
    wait_s(lambda: c.st("b").get("role") == "lost", TTL + 10 * TIME_SCALE,
           lambda: c.logs("B1 never asked etcd"))
    st = c.st("b")
    assert "but epoch" in st["lost"] and "was committed" in st["lost"], st
    assert st["epoch"] < committed
    no_replies_for(c, 1.0 * TIME_SCALE, "B1 served")
    assert c.etcd.get(KEY) is None
    c.client.stop()
    c.client.check()
    c.sources.stop()
    assert c.sources.hosts_after(t_dead) == set()


def test_status_without_etcd_says_split_brain_is_possible(tmp_path):
    from hosts import TwoHosts
    hosts = TwoHosts(tmp_path, vfs=1)
    run = {h: tmp_path / f"run-{h}" for h in ("a", "b")}
    for d in run.values():
        d.mkdir()
    p = Protected(hosts, tmp_path, run)
    try:
        p.start_standby()
        r = p.protect()
        assert "split brain is possible" in r.stdout, r.stdout
        assert "split brain is possible" in status(run["a"], VM)["failover_arbiter"]
        assert "split brain is possible" in status(run["b"], VM)["failover_arbiter"]
    finally:
        p.close()
        hosts.close()
