# SPDX-License-Identifier: MIT
"""`hdvm checkpoint NAME URI` and `hdvm run --standby URI --name NAME` (Remus, issue 11).

Without KVM: the CLI's refusals, and a standby that refuses a peer which is
not a checkpointing primary (a migration stream, garbage) with the reason and
exits 1 before /dev/kvm is opened.  The driver itself is proven without KVM
by tests/unit/test_checkpoint.c (fake KVM: epochs, acks, refusals, silence,
fail points) and tests/unit/test_checkpoint_hdnic.c (real hdnics: held,
released, discarded output, takeover on the standby's own VF).

With KVM (two hosts = namespaces with their own hdnic, tests/integration/
hosts.py; a client namespace): an app=counter guest on a VF protected by a
standby on host B; a client sends numbered requests all along; host A's hdvm
is killed at each named fail point; after the takeover every reply the client
ever got is still reflected (the counter goes on above the last one seen) and
never regresses.  A frozen standby (SIGSTOP) holds the output; re-protection
after a failover; protection stopped and started 10 times under traffic; a
lost standby with --on-standby-loss continue and pause."""
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from hdvmlib import GUEST, HDVM, hdvm_ctl, status
from remuslib import (COUNTER_IP, TIME_SCALE, Client, Protected, first_reply, try_status,
                      wait_until)

def run(run_dir, *args, timeout=20):
    return subprocess.run([str(HDVM), "run", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def refused(r, *needles, status=1):
    assert r.returncode == status, (r.returncode, r.stderr)
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr!r}"
    assert "/dev/kvm" not in r.stderr, "refused only after opening KVM"


# ---- without KVM: the CLI's refusals ----

def test_checkpoint_usage_refused(run_dir):
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1"), "expected NAME and URI", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "ftp:x"), "not a migration URI", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "unix:/tmp/s", "--on-standby-loss", "panic"),
            "continue or pause", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "unix:/tmp/s", "--epoch-ms", "0"),
            "--epoch-ms", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "--stop", "unix:/tmp/s"),
            "expected NAME", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "unix:/tmp/s", "--epoch-ms", "50",
                     "--epoch-phase-ms", "50"), "must be below the epoch (50 ms)", status=2)
    refused(hdvm_ctl(run_dir, "checkpoint", "vm1", "unix:/tmp/s", "--epoch-phase-ms", "x"),
            "--epoch-phase-ms", status=2)


def test_checkpoint_unknown_vm(run_dir):
    refused(hdvm_ctl(run_dir, "checkpoint", "nosuchvm", "unix:/tmp/s"), "nosuchvm")
    refused(hdvm_ctl(run_dir, "checkpoint", "nosuchvm", "--stop"), "nosuchvm")


def test_checkpoint_help_names_the_options(run_dir):
    r = hdvm_ctl(run_dir, "checkpoint", "--help")
    assert r.returncode == 0
    for opt in ("--epoch-ms", "--epoch-phase-ms", "--heartbeat-ms", "--failover-ms", "--on-standby-loss",
                "--dirty-budget", "--tls-creds", "--stop", "both sides may serve"):
        assert opt in r.stdout, opt


def test_standby_needs_a_name_and_no_machine_options(run_dir):
    refused(run(run_dir, "--standby", "unix:/tmp/s"), "--standby needs --name", status=2)
    refused(run(run_dir, "--standby", "unix:/tmp/s", "--name", "s", "--kernel", str(GUEST)),
            "cannot be combined with --standby", status=2)
    refused(run(run_dir, "--standby", "unix:/tmp/s", "--name", "s", "--incoming", "unix:/tmp/t"),
            "cannot be combined with --standby", status=2)
    refused(run(run_dir, "--standby", "file:/tmp/s", "--name", "s"), "tcp: or unix:")


def standby_proc(run_dir, uri, name, *extra, env=None):
    return subprocess.Popen([str(HDVM), "run", "--run-dir", str(run_dir), "--standby", uri,
                             "--name", name, *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def connect_unix(path, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            assert time.monotonic() < deadline, "the standby never listened"
            time.sleep(0.05)


def test_waiting_standby_answers_status_ps_and_stop(run_dir, tmp_path):
    path = str(tmp_path / "standby.sock")
    p = standby_proc(run_dir, f"unix:{path}", "s2")
    try:
        deadline = time.monotonic() + 10
        while not (run_dir / "s2.sock").exists():
            assert time.monotonic() < deadline, "no control socket"
            time.sleep(0.05)
        st = status(run_dir, "s2")
        assert st["role"] == "standby" and st["state"] == "waiting", st
        ps = hdvm_ctl(run_dir, "ps")
        assert ps.returncode == 0
        line = [ln for ln in ps.stdout.splitlines() if ln.startswith("s2 ")][0]
        assert line.split()[2] == "waiting" and line.split()[-1] == "standby", ps.stdout
        assert hdvm_ctl(run_dir, "stop", "s2").returncode == 0
        assert p.wait(10) == 0
        assert not (run_dir / "s2.sock").exists()
        assert not os.path.exists(path)          # the listening socket is gone too
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("data,needle", [
    (b"GARBAGE!" * 4, "bad magic"),
    # a migration stream: header, then a manifest that is no device tree
    (b"HDVMSNAP" + struct.pack("<II", 2, 0), "truncated"),
])
def test_standby_refuses_a_peer_that_is_no_primary(run_dir, tmp_path, data, needle):
    path = str(tmp_path / "standby.sock")
    p = standby_proc(run_dir, f"unix:{path}", "s1")
    try:
        with connect_unix(path) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            assert p.wait(10) == 1
        err = p.stderr.read()
        assert needle in err and "/dev/kvm" not in err, err
        assert not (run_dir / "s1.sock").exists()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- with KVM: a protected counter guest on a VF, two hosts ----

@pytest.fixture
def two_hosts(tmp_path):
    from hosts import TwoHosts
    h = TwoHosts(tmp_path, vfs=1)
    yield h
    h.close()


@pytest.fixture
def run_dirs(tmp_path):
    d = {h: tmp_path / f"run-{h}" for h in ("a", "b")}
    for p in d.values():
        p.mkdir()
    return d


FAIL_POINTS = ["after-pause", "harvest", "stop-copy", "send", "after-ack-before-release",
               "release"]


@pytest.mark.kvm
@pytest.mark.parametrize("point", FAIL_POINTS + ["random"])
def test_counter_survives_primary_killed_at_each_fail_point(two_hosts, tmp_path, run_dirs,
                                                            point):
    import random
    env = dict(os.environ)
    if point != "random":
        env["HDVM_FAILPOINT"] = f"{point}:{random.randint(30, 60)}"
    p = Protected(two_hosts, tmp_path, run_dirs, env_a=env)
    c = Client(two_hosts)
    try:
        p.start_standby()
        with two_hosts.udp_socket() as s:
            first_reply(s, 1 << 40)
        c.start()
        p.protect()
        assert status(run_dirs["a"], "ctr")["role"] == "primary"
        assert status(run_dirs["b"], "ctr")["role"] == "standby"
        if point == "random":
            time.sleep(random.uniform(0.5, 2.0) * TIME_SCALE)
            p.primary.kill()
        assert p.primary.wait(30 * TIME_SCALE) != 0          # SIGKILLed itself or by us
        t_kill = time.monotonic()
        seen_before = max((r[1] for r in c.replies), default=0)
        wait_until(lambda: c.replies_after(t_kill + 0.05), 10, "no reply from host B")
        time.sleep(0.5)
        c.stop()
        last = c.check()
        assert last > seen_before
        st = status(run_dirs["b"], "ctr")
        assert st["role"] == "unprotected" and st["state"] == "running", st
        assert st["took_over_from_epoch"] >= 1
    finally:
        c.stop_flag.set()
        p.close()


@pytest.mark.kvm
def test_frozen_standby_holds_output(two_hosts, tmp_path, run_dirs):
    p = Protected(two_hosts, tmp_path, run_dirs)
    try:
        p.start_standby()
        r = hdvm_ctl(run_dirs["a"], "checkpoint", "ctr", p.uri, "--failover-ms", "60000",
                     "--heartbeat-ms", "10", timeout=60)
        assert r.returncode == 0, p.logs(r.stderr)
        with two_hosts.udp_socket(timeout=0.5) as s:
            first_reply(s, 1)
            os.kill(p.standby.pid, signal.SIGSTOP)
            time.sleep(0.1)
            for rid in range(2, 12):
                s.sendto(struct.pack("!Q", rid), (COUNTER_IP, 9000))
            s.settimeout(min(1.0 * TIME_SCALE, 10.0))      # well within the failover time
            try:                     # held: nothing leaves host A's NIC
                leaked = struct.unpack("!QQ", s.recv(64)[:16])
            except socket.timeout:
                leaked = None
            assert leaked is None, (leaked, p.logs())
            assert status(run_dirs["a"], "ctr")["role"] == "primary"
            os.kill(p.standby.pid, signal.SIGCONT)
            s.settimeout(5 * TIME_SCALE)
            got = [struct.unpack("!QQ", s.recv(64)[:16]) for _ in range(10)]
        assert [g[0] for g in got] == list(range(2, 12)), got       # in order
        assert [g[1] for g in got] == sorted(g[1] for g in got)
    finally:
        p.close()


@pytest.mark.kvm
@pytest.mark.parametrize("policy", ["continue", "pause"])
def test_standby_lost(two_hosts, tmp_path, run_dirs, policy):
    p = Protected(two_hosts, tmp_path, run_dirs)
    try:
        p.start_standby()
        p.protect("a", "--on-standby-loss", policy)
        p.standby.kill()
        p.standby.wait(10)
        wait_until(lambda: try_status(run_dirs["a"], "ctr").get("role") == "unprotected", 10,
                   "the primary never noticed")
        st = status(run_dirs["a"], "ctr")
        with two_hosts.udp_socket(timeout=1.0 * TIME_SCALE) as s:
            if policy == "continue":
                assert st["state"] == "running"
                first_reply(s, 7)
            else:
                s.sendto(struct.pack("!Q", 7), (COUNTER_IP, 9000))
                assert st["state"] == "paused" and st.get("output_held")
                with pytest.raises(socket.timeout):
                    s.recv(64)
    finally:
        p.close()


@pytest.mark.kvm
def test_reprotection_after_failover(two_hosts, tmp_path, run_dirs):
    p = Protected(two_hosts, tmp_path, run_dirs)
    c = Client(two_hosts)
    try:
        p.start_standby()
        c.start()
        p.protect()
        time.sleep(0.5)
        p.primary.kill()
        p.primary.wait(10)
        t1 = time.monotonic()
        wait_until(lambda: c.replies_after(t1 + 0.05), 10, "B never answered")
        # B runs unprotected; protect it back to a fresh standby on host A
        b_vm, p.primary = p.standby, None
        p.uri = f"unix:{tmp_path}/ckpt-back.sock"
        p.start_standby("a")
        p.protect("b")
        assert status(run_dirs["b"], "ctr")["role"] == "primary"
        time.sleep(0.5)
        b_vm.kill()
        b_vm.wait(10)
        t2 = time.monotonic()
        try:
            wait_until(lambda: c.replies_after(t2 + 0.05), 10, "A never answered again")
        except AssertionError as e:
            raise AssertionError(p.logs(str(e))) from None
        c.stop()
        c.check()
    finally:
        c.stop_flag.set()
        p.close()


@pytest.mark.kvm
def test_protection_stopped_and_started_ten_times_under_traffic(two_hosts, tmp_path, run_dirs):
    p = Protected(two_hosts, tmp_path, run_dirs)
    c = Client(two_hosts)
    try:
        c.start()
        for i in range(10):
            p.uri = f"unix:{tmp_path}/ckpt-{i}.sock"
            p.start_standby()
            p.protect()
            time.sleep(0.2)
            r = hdvm_ctl(run_dirs["a"], "checkpoint", "ctr", "--stop", timeout=30)
            assert r.returncode == 0, r.stderr
            assert p.standby.wait(10) == 0          # told: it ends without running the VM
            assert status(run_dirs["a"], "ctr")["role"] == "unprotected"
        t = time.monotonic()
        wait_until(lambda: c.replies_after(t), 5, "no reply after the last stop")
        c.stop()
        c.check()
    finally:
        c.stop_flag.set()
        p.close()


@pytest.mark.kvm
def test_primary_nic_dies_standby_takes_over(two_hosts, tmp_path, run_dirs):
    """Host A's hdnic alone is SIGKILLed under a protected VM: that is host A
    failing.  The primary stops (hdvm exits 1 saying its NIC failed, nothing
    released), the standby takes over and the client's counter goes on above
    every reply it saw, never regressing."""
    p = Protected(two_hosts, tmp_path, run_dirs)
    c = Client(two_hosts)
    try:
        p.start_standby()
        c.start()
        p.protect()
        wait_until(lambda: len(c.replies) > 20, 20, "no reply while protected")
        two_hosts.nic["a"].stop(signal.SIGKILL)
        t_kill = time.monotonic()
        assert p.primary.wait(30 * TIME_SCALE) == 1, p.logs("the primary ran on")
        assert "this host's NIC failed; VM stopped, the standby takes over" in \
            p.err_a.text(), p.logs()
        seen_before = max((r[1] for r in c.replies), default=0)
        wait_until(lambda: c.replies_after(t_kill + 0.05), 10, "no reply from host B")
        time.sleep(0.5)
        c.stop()
        assert c.check() > seen_before
        st = status(run_dirs["b"], "ctr")
        assert st["role"] == "unprotected" and st["state"] == "running", st
    finally:
        c.stop_flag.set()
        p.close()


@pytest.mark.kvm
def test_counter_survives_primary_killed_on_adis(two_hosts, tmp_path, run_dirs):
    """The same guarantee with HD-IOV ADIs on both hosts (the primary on an ADI of
    A's hdnic, the standby on an ADI of B's): host A's hdvm killed at a random
    moment, B takes over on its ADI, the counter never regresses."""
    import random
    for h in ("a", "b"):
        two_hosts.nic[h].adi_add("prot")
    p = Protected(two_hosts, tmp_path, run_dirs, sock_a=two_hosts.nic["a"].adi_sock("prot"))
    c = Client(two_hosts)
    try:
        p.start_standby("b", sock=two_hosts.nic["b"].adi_sock("prot"))
        c.start()
        p.protect()
        time.sleep(random.uniform(0.5, 2.0) * TIME_SCALE)
        seen_before = max((r[1] for r in c.replies), default=0)
        p.primary.kill()
        p.primary.wait(10)
        t_kill = time.monotonic()
        wait_until(lambda: c.replies_after(t_kill + 0.05), 10, "no reply from host B")
        time.sleep(0.5)
        c.stop()
        assert c.check() > seen_before
        assert two_hosts.nic["b"].dev_info("adi-prot")["mig_state"] == "running"
        assert status(run_dirs["b"], "ctr")["role"] == "unprotected"
    finally:
        c.stop_flag.set()
        p.close()


@pytest.mark.kvm
def test_standby_killed_while_applying_primary_continues(two_hosts, tmp_path, run_dirs):
    """The standby SIGKILLs itself while applying checkpoint 20
    (HDVM_FAILPOINT=standby-apply:20): the primary, --on-standby-loss continue,
    runs on unprotected, its held output released, the counter never regressing."""
    env = dict(os.environ, HDVM_FAILPOINT="standby-apply:20")
    p = Protected(two_hosts, tmp_path, run_dirs)
    c = Client(two_hosts)
    try:
        p.start_standby(env=env)
        c.start()
        p.protect("a", "--on-standby-loss", "continue")
        assert p.standby.wait(60 * TIME_SCALE) == -signal.SIGKILL, p.logs()
        assert "fail point standby-apply at epoch 20" in p.err_b.text(), p.logs()
        wait_until(lambda: try_status(run_dirs["a"], "ctr").get("role") == "unprotected", 10,
                   "the primary never noticed")
        assert status(run_dirs["a"], "ctr")["state"] == "running"
        t = time.monotonic()
        wait_until(lambda: c.replies_after(t + 0.05), 10, "A does not answer unprotected")
        c.stop()
        c.check()
    finally:
        c.stop_flag.set()
        p.close()
