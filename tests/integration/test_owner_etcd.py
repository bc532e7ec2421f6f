# SPDX-License-Identifier: MIT
"""Failover ownership against a real etcd (issue 13): hdvm-owner processes play
primary and standby(s); the test's own etcd observer says what etcd saw.  No
KVM needed: ownership decides who may release output, whatever the VM is."""
import signal
import subprocess
import time

import pytest

from etcdlib import OWNER, Etcd, KeyWatch, Owner, CutProxy

VM = "vm1"
KEY = f"/hdvm/vm/{VM}/owner"
TTL = 2                  # s; renew 300 ms, margin 800 ms: fence 1.2 s after a renewal


@pytest.fixture
def etcd(tmp_path):
    e = Etcd(tmp_path)
    yield e
    e.stop()


@pytest.fixture
def owners():
    started = []

    def start(*a, **kw):
        o = Owner(*a, **kw)
        started.append(o)
        return o

    yield start
    for o in started:
        o.kill()


def test_primary_holds_and_renews_past_its_ttl(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "3", holder="A")
    _, _, detail = a.wait_event("acquired")
    assert "ttl=2" in detail
    # the failover time the settings imply is printed at start
    timing = a.wait_event("timing")[2]
    assert "fences 1200 ms after its last renewal" in timing and "~2500 ms" in timing
    value, lease = etcd.get(KEY)
    assert value == "A" and lease
    time.sleep(3 * TTL)                   # three TTLs: only renewals keep it
    assert etcd.get(KEY) == ("A", lease)
    assert etcd.lease_ttl(lease) >= 1
    assert etcd.get(f"/hdvm/vm/{VM}/epoch")[0] == "3"
    assert not a.has("fenced")
    a.send("release")
    assert a.wait() == 0
    assert etcd.get(KEY) is None
    # a clean release leaves a record no standby activates from on its own
    assert "released" in etcd.get(f"/hdvm/vm/{VM}/stale")[0]


def test_holder_whose_vmm_died_gives_the_key_up_without_a_stale_mark(etcd, owners):
    # hdvm holds the helper's stdin: a SIGKILLed hdvm closes it
    a = owners(etcd.url, VM, "hold", "--epoch", "4", holder="A")
    a.wait_event("acquired")
    a.wait_event("current")
    a.proc.stdin.close()
    assert a.wait() == 0 and a.has("abandoned")
    assert etcd.get(KEY) is None                        # revoked: no TTL to wait
    assert etcd.get(f"/hdvm/vm/{VM}/stale") is None     # its standby is current
    b = owners(etcd.url, VM, "takeover", "--epoch", "4", "--poll-ms", "20", holder="B")
    b.wait_event("active", timeout=3)


def test_paused_primary_that_gave_up_its_key_cannot_take_it_back_from_the_standby(
        etcd, owners):
    # --on-standby-loss pause with --etcd: hdvm closes the helper's stdin (abandon)
    a = owners(etcd.url, VM, "hold", "--epoch", "5", holder="A")
    a.wait_event("acquired")
    a.send("current 7")
    a.wait_event("current")
    a.proc.stdin.close()
    assert a.wait() == 0 and a.has("abandoned")
    assert etcd.get(f"/hdvm/vm/{VM}/stale") is None
    assert etcd.get(f"/hdvm/vm/{VM}/epoch")[0] == "7"
    assert etcd.get(KEY) is None                        # revoked: no TTL to wait
    # the standby, current at 7, takes the key at once
    b = owners(etcd.url, VM, "takeover", "--epoch", "7", "--poll-ms", "20", holder="B")
    b.wait_event("active", timeout=3)
    # `hdvm resume` on A asks for the key again: refused while B holds it
    a2 = owners(etcd.url, VM, "hold", "--epoch", "9", holder="A")
    assert a2.wait() == 2
    assert "held by B" in a2.wait_event("busy")[2]
    assert etcd.get(KEY)[0] == "B"


def test_second_primary_is_refused_while_the_key_is_held(etcd, owners):
    a = owners(etcd.url, VM, "hold", holder="A")
    a.wait_event("acquired")
    b = owners(etcd.url, VM, "hold", holder="B")
    assert b.wait() == 2
    assert "held by A" in b.wait_event("busy")[2]


def test_primary_killed_standby_takes_over_after_the_lease_expires(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "5", holder="A")
    a.wait_event("acquired")
    lease_a = etcd.get(KEY)[1]
    watch = KeyWatch(etcd, KEY)
    b = owners(etcd.url, VM, "takeover", "--epoch", "5", "--poll-ms", "20", holder="B")
    time.sleep(1.0)
    assert not b.has("active"), "the standby activated while the primary held the key"
    a.proc.send_signal(signal.SIGKILL)
    t_kill = time.time()
    a.wait()
    _, t_active, _ = b.wait_event("active", timeout=TTL + 5)
    # the standby activated only once etcd no longer held A's lease
    assert t_active > watch.seen[lease_a]
    assert t_active - t_kill > TTL - 0.3 - 0.1    # at most one renew interval early
    print(f"failover: standby active {t_active - t_kill:.3f} s after the primary's kill "
          f"(TTL {TTL} s)")
    value, lease_b = etcd.get(KEY)
    assert value == "B" and lease_b != lease_a
    # ...and serves: it keeps the key past its own TTL
    time.sleep(2 * TTL)
    assert etcd.get(KEY) == ("B", lease_b)
    assert not b.has("fenced")
    watch.stop()


def test_standby_whose_checkpoint_was_marked_stale_is_refused_at_once(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "5", holder="A")
    a.wait_event("acquired")
    a.send("stale 5")                      # A goes on without its standby
    a.wait_event("stale")
    lease_a = etcd.get(KEY)[1]
    # refused while A still holds the key: no waiting for a lease that may
    # never expire (A serves on), and no activating once it does
    b = owners(etcd.url, VM, "takeover", "--epoch", "5", "--poll-ms", "20", holder="B")
    assert b.wait(TTL + 5) == 4
    _, _, why = b.wait_event("refused")
    assert "stale" in why and "without its standby" in why
    assert etcd.get(KEY) == ("A", lease_a)
    a.proc.send_signal(signal.SIGKILL)
    a.wait()
    time.sleep(TTL + 1)
    assert etcd.get(KEY) is None                    # A's lease expired
    # ...nor once A's lease expired: nobody serves, safety first
    b2 = owners(etcd.url, VM, "takeover", "--epoch", "5", "--poll-ms", "20", holder="B1")
    assert b2.wait(TTL + 5) == 4
    assert "stale" in b2.wait_event("refused")[2]
    assert etcd.get(KEY) is None
    st = subprocess.run([str(OWNER), "--etcd", etcd.url, "--vm", VM, "status"],
                        capture_output=True, text=True, check=True).stdout
    assert f"{KEY}: (absent)" in st and "5 primary went on without its standby (A)" in st
    # the operator restarts it from the stale checkpoint, deliberately
    c = owners(etcd.url, VM, "takeover", "--epoch", "5", "--restart-from-stale", holder="B2")
    assert "operator restart" in c.wait_event("active")[2]
    assert etcd.get(KEY)[0] == "B2"


def test_standby_behind_the_committed_epoch_is_refused(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "9", holder="A")
    a.wait_event("current")
    a.kill()
    b = owners(etcd.url, VM, "takeover", "--epoch", "7", "--poll-ms", "20", holder="B")
    assert b.wait(TTL + 5) == 4
    assert "holds epoch 7 but epoch 9 was committed" in b.wait_event("refused")[2]
    assert etcd.get(KEY) is None


def test_primary_cut_from_etcd_fences_before_its_lease_expires(etcd, owners):
    proxy = CutProxy(etcd.client_port)
    try:
        a = owners(proxy.url, VM, "hold", "--epoch", "4", holder="A")
        a.wait_event("acquired")
        lease_a = etcd.get(KEY)[1]
        watch = KeyWatch(etcd, KEY)
        b = owners(etcd.url, VM, "takeover", "--epoch", "4", "--poll-ms", "20", holder="B")
        time.sleep(0.5)
        proxy.cut()                         # A's requests now hang, unanswered
        _, t_fence, why = a.wait_event("fenced", timeout=TTL + 3)
        assert "renewed" in why or "unreachable" in why
        _, t_active, _ = b.wait_event("active", timeout=TTL + 5)
        watch.stop()
        # the ordering that matters: A stopped releasing output while etcd
        # still held A's lease, and B began only after etcd dropped it
        assert t_fence < watch.seen[lease_a] < t_active
        print(f"cut: fenced {watch.seen[lease_a] - t_fence:.3f} s before etcd last showed "
              f"the lease; standby active {t_active - t_fence:.3f} s after the fence")
        assert a.wait(5) == 3
        assert etcd.get(KEY)[0] == "B"
    finally:
        proxy.close()


def test_etcd_restart_mid_run_keeps_the_owner(etcd, owners):
    # TTL 6 s, margin 1.5 s: 4.5 s for etcd to come back
    a = owners(etcd.url, VM, "hold", holder="A", ttl=6, renew_ms=300, margin_ms=1500,
               timeout_ms=300)
    a.wait_event("acquired")
    lease = etcd.get(KEY)[1]
    etcd.restart()
    time.sleep(2.0)
    a.send("status")
    _, _, st = a.wait_event("status")
    assert st.startswith("primary:"), st
    assert etcd.get(KEY) == ("A", lease)
    assert not a.has("fenced")


def test_two_standbys_racing_exactly_one_wins(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "2", holder="A")
    a.wait_event("acquired")
    standbys = [owners(etcd.url, VM, "takeover", "--epoch", "2", "--poll-ms", "5",
                       "--wait-ms", str((TTL + 3) * 1000), holder=h) for h in ("B", "C")]
    time.sleep(0.3)
    a.kill()
    time.sleep(TTL + 4)
    active = [s for s in standbys if s.has("active")]
    assert len(active) == 1, [s.lines for s in standbys]
    loser = standbys[1] if active[0] is standbys[0] else standbys[0]
    # lost the txn (5), or saw the winner's key with its "taken over" stale mark:
    # refused for good (4) -- its checkpoint is no longer the one that serves
    rc = loser.wait(5)
    assert rc in (4, 5), (rc, loser.lines)
    if rc == 4:
        assert "taken over" in loser.wait_event("refused")[2]
    assert etcd.get(KEY)[0] == active[0].holder


def test_endpoint_list_fails_over_to_a_live_member(etcd, owners):
    dead = f"http://127.0.0.1:{__import__('etcdlib').free_port()}"
    a = owners(f"{dead},{etcd.url}", VM, "hold", holder="A")
    a.wait_event("acquired")
    time.sleep(TTL + 1)
    assert etcd.get(KEY)[0] == "A" and not a.has("fenced")


def test_primary_fences_when_etcd_hangs_and_a_standby_follows_after_expiry(etcd, owners):
    a = owners(etcd.url, VM, "hold", "--epoch", "6", holder="A")
    a.wait_event("current")
    etcd.proc.send_signal(signal.SIGSTOP)   # every request now hangs
    t_stop = time.time()
    try:
        _, t_fence, _ = a.wait_event("fenced", timeout=TTL + 3)
    finally:
        etcd.proc.send_signal(signal.SIGCONT)
    # within TTL - margin (1.2 s) of the last renewal, which was before the stop
    assert t_fence - t_stop <= 1.2 + 0.2
    assert a.wait(5) == 3
    b = owners(etcd.url, VM, "takeover", "--epoch", "6", "--poll-ms", "20", holder="B")
    b.wait_event("active", timeout=TTL + 5)
    assert etcd.get(KEY)[0] == "B"
