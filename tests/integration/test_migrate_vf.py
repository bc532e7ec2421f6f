# SPDX-License-Identifier: MIT
"""Live migration of a counter microVM with its passthrough function (issue 10;
needs /dev/kvm).  hdguest's counter app on a VF or ADI of host A's hdnic
moves with `hdvm migrate` over tcp: to a VF or ADI of host B's, while a
client keeps asking: the function's PRE_COPY data travels alongside RAM
(device_precopy_bytes in the report), replies are missing only within the
downtime, none is answered twice, the counter strictly increases, the
guest-visible statistics continue.  Ten ping-pong migrations A -> B -> A ...
keep all of it.  Without KVM the same paths are proven by
tests/unit/test_vfio_pci_hdnic.c (real hdnic) and test_migrate_precopy.c."""
import json
import subprocess
import time

import pytest

from hdvmlib import GUEST, HDVM, Output, hdvm_ctl, status
from test_checkpoint import COUNTER_IP, TIME_SCALE, Client, wait_until
from test_checkpoint import run_dirs, two_hosts  # noqa: F401 (fixtures: TwoHosts, vfs=1)

pytestmark = pytest.mark.kvm


@pytest.fixture
def hosts(two_hosts):
    return two_hosts


def function(hosts, host, kind):
    """The socket of host's VF 0, or of a fresh ADI."""
    if kind == "vf":
        return str(hosts.nic[host].sock(0))
    name = f"m{int(time.monotonic() * 1000) % 100000}"
    hosts.nic[host].adi_add(name)
    return str(hosts.nic[host].dir / f"adi-{name}.sock")


def start_vm(run_dir, sock):
    proc = subprocess.Popen(
        [str(HDVM), "run", "--kernel", str(GUEST), "--cmdline",
         f"app=counter ip={COUNTER_IP}/24", "--mem", "64M", "--name", "ctr",
         "--run-dir", str(run_dir), "--vfio-user", sock],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Output(proc.stdout)
    out.wait_for(r"counter: listening", timeout=60 * TIME_SCALE)
    return proc


def incoming(run_dir, uri, sock):
    proc = subprocess.Popen(
        [str(HDVM), "run", "--incoming", uri, "--name", "ctr", "--run-dir", str(run_dir),
         "--vfio-user", sock], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    seen = ""
    while "waiting for a migration" not in seen:
        line = proc.stderr.readline()
        assert line, "the destination exited: " + seen
        seen += line
    return proc


def migrate(run_dir, uri):
    r = hdvm_ctl(run_dir, "migrate", "ctr", uri, "--json", "--downtime-ms", "50",
                 timeout=120 * TIME_SCALE)
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and rep["success"], (rep, r.stderr)
    return rep


def kill(*procs):
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait(10)


def check_gap(client, t0, rep, slack_ms=250):
    times = [t for _, _, t in client.replies if t > t0]
    gap = max((b - a for a, b in zip(times, times[1:])), default=0)
    assert gap * 1000 <= rep["downtime_ms"] + slack_ms * TIME_SCALE, (gap, rep)
    return gap


@pytest.mark.parametrize("src_kind,dst_kind", [("vf", "vf"), ("adi", "vf"), ("vf", "adi")])
def test_counter_moves_with_its_function(hosts, run_dirs, src_kind, dst_kind):
    src = start_vm(run_dirs["a"], function(hosts, "a", src_kind))
    client = Client(hosts)
    dst = None
    try:
        client.start()
        wait_until(lambda: len(client.replies) > 50, 20 * TIME_SCALE, "counter answers on A")
        uri = "tcp:127.0.0.1:47123"
        dst = incoming(run_dirs["b"], uri, function(hosts, "b", dst_kind))
        t0 = time.monotonic()
        rep = migrate(run_dirs["a"], uri)
        assert src.wait(20) == 0
        assert rep["device_precopy_bytes"] > 0, "the function's PRE_COPY data did not travel"
        n = len(client.replies)
        wait_until(lambda: len(client.replies) > n + 50, 20 * TIME_SCALE, "answers on B")
        client.stop()
        client.check()                              # strictly increasing
        rids = [rid for rid, _, _ in client.replies]
        assert len(rids) == len(set(rids)), "a request was answered twice"
        gap = check_gap(client, t0, rep)
        print(f"{src_kind}->{dst_kind}: downtime {rep['downtime_ms']} ms, reply gap "
              f"{gap * 1000:.1f} ms, device pre-copy {rep['device_precopy_bytes']} B")
        assert status(run_dirs["b"], "ctr")["state"] == "running"
        assert hdvm_ctl(run_dirs["b"], "stop", "ctr").returncode == 0
    finally:
        if client.is_alive():
            client.stop()
        kill(src, dst)


def test_ten_ping_pong_migrations(hosts, run_dirs):
    procs = {"a": start_vm(run_dirs["a"], function(hosts, "a", "vf")), "b": None}
    client = Client(hosts)
    try:
        client.start()
        wait_until(lambda: len(client.replies) > 20, 20 * TIME_SCALE, "counter answers")
        here, there = "a", "b"
        for i in range(10):
            uri = f"tcp:127.0.0.1:{47200 + i}"
            procs[there] = incoming(run_dirs[there], uri, function(hosts, there, "vf"))
            t0 = time.monotonic()
            rep = migrate(run_dirs[here], uri)
            assert procs[here].wait(20) == 0
            n = len(client.replies)
            wait_until(lambda: len(client.replies) > n + 20, 20 * TIME_SCALE,
                       f"answers after migration {i + 1}")
            # ten in a row: the worst of ten gets more of the client's pacing slack
            check_gap(client, t0, rep, slack_ms=500)
            here, there = there, here
        client.stop()
        client.check()
        rids = [rid for rid, _, _ in client.replies]
        assert len(rids) == len(set(rids)), "a request was answered twice"
        assert hdvm_ctl(run_dirs[here], "stop", "ctr").returncode == 0
    finally:
        if client.is_alive():
            client.stop()
        kill(*procs.values())


def test_destination_killed_mid_stream_source_runs_on(hosts, run_dirs):
    """The destination dies during pre-copy: `hdvm migrate` fails saying so, the
    VM runs on A with its VF RUNNING again (out of PRE_COPY), the counter goes on."""
    src = start_vm(run_dirs["a"], function(hosts, "a", "vf"))
    client = Client(hosts)
    dst = None
    try:
        client.start()
        wait_until(lambda: len(client.replies) > 20, 20 * TIME_SCALE, "counter answers on A")
        uri = "tcp:127.0.0.1:47300"
        dst = incoming(run_dirs["b"], uri, function(hosts, "b", "vf"))
        # a slow link keeps it in pre-copy long enough to kill the destination there
        mig = subprocess.Popen([str(HDVM), "migrate", "ctr", uri, "--max-bandwidth", "64K",
                                "--run-dir", str(run_dirs["a"])], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        wait_until(lambda: hosts.nic["a"].dev_info("vf0")["mig_state"] == "pre-copy",
                   30 * TIME_SCALE, "A's VF in PRE_COPY")
        dst.kill()
        out, err = mig.communicate(timeout=60 * TIME_SCALE)
        assert mig.returncode == 1 and "the VM runs on" in err, err
        assert hosts.nic["a"].dev_info("vf0")["mig_state"] == "running"
        assert status(run_dirs["a"], "ctr")["state"] == "running"
        n = len(client.replies)
        wait_until(lambda: len(client.replies) > n + 20, 20 * TIME_SCALE, "A answers on")
        client.stop()
        client.check()
    finally:
        if client.is_alive():
            client.stop()
        kill(src, dst)


def test_cancel_keeps_the_source_and_frees_the_destination(hosts, run_dirs):
    """`hdvm migrate NAME --cancel` during pre-copy: the source runs on with its VF
    RUNNING; the destination exits 1 naming the cancel and its VF is free."""
    src = start_vm(run_dirs["a"], function(hosts, "a", "vf"))
    dst = None
    try:
        uri = "tcp:127.0.0.1:47301"
        dst = incoming(run_dirs["b"], uri, function(hosts, "b", "vf"))
        mig = subprocess.Popen([str(HDVM), "migrate", "ctr", uri, "--max-bandwidth", "64K",
                                "--run-dir", str(run_dirs["a"])], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        wait_until(lambda: hosts.nic["a"].dev_info("vf0")["mig_state"] == "pre-copy",
                   30 * TIME_SCALE, "A's VF in PRE_COPY")
        r = hdvm_ctl(run_dirs["a"], "migrate", "ctr", "--cancel")
        assert r.returncode == 0, r.stderr
        _, err = mig.communicate(timeout=60 * TIME_SCALE)
        assert mig.returncode == 1 and "cancelled by the user" in err, err
        assert dst.wait(30 * TIME_SCALE) == 1
        derr = dst.stderr.read()
        assert "the source stopped the migration: cancelled by the user" in derr, derr
        assert hosts.nic["a"].dev_info("vf0")["mig_state"] == "running"
        assert status(run_dirs["a"], "ctr")["state"] == "running"
        wait_until(lambda: hosts.nic["b"].dev_info("vf0")["client"] is False,
                   10 * TIME_SCALE, "B's VF released")
        assert hosts.nic["b"].dev_info("vf0")["mig_state"] == "running"
    finally:
        kill(src, dst)
