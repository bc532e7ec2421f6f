# SPDX-License-Identifier: MIT
"""tools/protect (issue 13, protection at density): every microVM of host A
gets a standby on a fresh ADI of host B's hdnic and `hdvm checkpoint` with
staggered epochs.

Without KVM: its refusals -- no VM to protect; B's hdnic with fewer free queue
pairs than VMs (the VMs here are stand-ins answering `hdvm ps` on their
control sockets) -- clear message, exit 1, nothing started on B.

With KVM (tests/integration/hosts.py: namespaces A, B, client): 4 counter
guests on ADIs of A; tools/protect protects all on B; a client sends
requests round-robin; host A (every hdvm and its hdnic) is SIGKILLed; every
VM answers from B, its counter above the last reply seen before the kill and
never going back.  Then --reverse protects B's VMs on a fresh A.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from hdvmlib import HDNIC, HDVM
from nichost import Hdnic
from protectlib import PROTECT, TIME_SCALE, Fleet, RoundRobinClient, vm_name


def protect_cli(*args, timeout=60):
    return subprocess.run([sys.executable, str(PROTECT), "--hdvm", str(HDVM),
                           "--hdnic", str(HDNIC), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


class FakeVMs:
    """Control sockets that answer `status` like running, unprotected VMs (no
    guest needed): what tools/protect enumerates through `hdvm ps`."""

    def __init__(self, run_dir, names):
        self.socks, self.stop = [], threading.Event()
        for name in names:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(run_dir / f"{name}.sock"))
            s.listen(8)
            s.settimeout(0.1)
            self.socks.append(s)
            threading.Thread(target=self.serve, args=(s, name), daemon=True).start()

    def serve(self, s, name):
        while not self.stop.is_set():
            try:
                c, _ = s.accept()
            except (socket.timeout, OSError):
                continue
            with c:
                c.recv(4096)
                c.sendall(json.dumps({"ok": True, "name": name, "pid": os.getpid(),
                                      "state": "running", "role": "unprotected"}).encode()
                          + b"\n")

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()


def test_protect_refuses_when_there_is_no_vm(tmp_path):
    for d in ("a", "b", "nic"):
        (tmp_path / d).mkdir()
    r = protect_cli("--a-run-dir", tmp_path / "a", "--b-run-dir", tmp_path / "b",
                    "--b-hdnic", tmp_path / "nic")
    assert r.returncode == 1, r
    assert "no unprotected running VM in" in r.stderr and str(tmp_path / "a") in r.stderr
    assert list((tmp_path / "b").iterdir()) == []


def test_protect_refuses_when_b_has_too_few_free_adis(tmp_path, ns):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run_a.mkdir()
    run_b.mkdir()
    nic = Hdnic(HDNIC, tmp_path / "nicb", vfs=0, uplink="tap:hdt0", netns=ns, name="nicb",
                extra=["--qps", "2"])
    vms = FakeVMs(run_a, [f"vm{i}" for i in range(3)])
    try:
        ps = subprocess.run([str(HDVM), "ps", "--json", "--run-dir", str(run_a)],
                            capture_output=True, text=True, timeout=30)
        assert len(json.loads(ps.stdout)) == 3, ps        # the stand-ins count as VMs
        r = protect_cli("--a-run-dir", run_a, "--b-run-dir", run_b, "--b-hdnic", nic.dir,
                        "--netns-b", ns.name)
        assert r.returncode == 1, r
        assert "has 2 free queue pairs for 3 VMs" in r.stderr, r.stderr
        assert "--qps" in r.stderr                         # what to do about it
        # nothing was started or allocated on B
        assert list(run_b.iterdir()) == []
        assert nic.ctl_json("list")["adis"] == []
        # --only within the limit passes that check (and then fails on the stand-ins)
        r = protect_cli("--a-run-dir", run_a, "--b-run-dir", run_b, "--b-hdnic", nic.dir,
                        "--netns-b", ns.name, "--only", "vm0", "--timeout", "5")
        assert "free queue pairs" not in r.stderr
        assert r.returncode == 1 and "vm0 NOT protected" in r.stderr, r.stderr
        assert nic.ctl_json("list")["adis"] == []          # its ADI removed again
    finally:
        vms.close()
        nic.stop()


def test_protect_usage(tmp_path):
    r = protect_cli("--a-run-dir", tmp_path, "--b-run-dir", tmp_path)
    assert r.returncode == 2 and "--b-hdnic is required" in r.stderr
    r = protect_cli("--a-run-dir", tmp_path, "--b-run-dir", tmp_path, "--reverse")
    assert r.returncode == 2 and "--reverse needs --a-hdnic" in r.stderr
    r = protect_cli("--help")
    assert r.returncode == 0
    for word in ("--epoch-ms", "--heartbeat-ms", "--failover-ms", "--etcd", "--reverse",
                 "--no-stagger", "One standby process per VM"):
        assert word in r.stdout, word


N = 4


@pytest.mark.kvm
def test_protect_all_then_host_a_dies(tmp_path):
    from hosts import TwoHosts
    h = TwoHosts(tmp_path, vfs=0, extra=["--qps", str(N * 2 + 4)])
    fleet = Fleet(h, tmp_path, N)
    client = None
    try:
        fleet.start()
        rc, rep, err = fleet.protect("--epoch-ms", "50", "--heartbeat-ms", "10",
                                     "--failover-ms", str(int(1000 * TIME_SCALE)))
        assert rc == 0 and rep["protected"] == N, (rep, err)
        # each VM: primary on A, standby on B, on a phase of its own
        phases = set()
        for i in range(N):
            a, b = fleet.status("a", i), fleet.status("b", i)
            assert a["role"] == "primary" and a["committed_epoch"] >= 1, a
            assert b["role"] == "standby", b
            phases.add(a["epoch_phase_ms"])
        assert phases == {0, 12, 25, 37}, phases
        adis = {d["dev"] for d in h.nic["b"].ctl_json("list")["adis"]}
        assert {f"adi-prot-{vm_name(i)}" for i in range(N)} <= adis
        # tools/protect again: nothing left to protect
        rc2, rep2, err2 = fleet.protect()
        assert rc2 == 1 and "protected already" in err2, err2

        client = RoundRobinClient(h, N)
        client.start()
        deadline = time.monotonic() + 30 * TIME_SCALE
        while not all(client.replies[i] for i in range(N)):
            assert time.monotonic() < deadline, "not every VM answered while protected"
            time.sleep(0.05)
        time.sleep(0.5 * TIME_SCALE)
        # output really is held on A (the replies so far left after their commits)
        eg = {d["dev"]: d for d in h.nic["a"].ctl_json("stats")["adis"]}
        for i in range(N):
            d = eg[f"adi-{vm_name(i)}"]
            assert d["egress_holding"] and d["egress_held_total"] > 0, d
        before = [fleet.status("a", i) for i in range(N)]
        t_kill = fleet.kill_host_a()
        seen = [client.last_counter(i, before=t_kill) for i in range(N)]
        deadline = time.monotonic() + 60 * TIME_SCALE
        while not all(client.first_reply_after(i, t_kill + 0.01) for i in range(N)):
            assert time.monotonic() < deadline, (
                "not every VM answered from B: " +
                str([vm_name(i) for i in range(N) if not client.first_reply_after(i, t_kill)]))
            time.sleep(0.05)
        time.sleep(0.3 * TIME_SCALE)
        client.stop()
        bad = client.violations()
        if bad:
            logs = "\n".join(f"--- {vm_name(i)}: A committed {before[i].get('committed_epoch')}"
                             f" (role {before[i].get('role')} {before[i].get('why', '')!r})"
                             f", B took over from {fleet.status('b', i).get('took_over_from_epoch')}"
                             f"\n{client.around(i, t_kill)}\n{fleet.a_log(i, 'checkpoint')}"
                             for i in range(N))
            raise AssertionError(f"{bad}\n{logs}")
        for i in range(N):
            assert client.last_counter(i) > seen[i], vm_name(i)
            st = fleet.status("b", i)
            assert st["role"] == "unprotected" and st["state"] == "running", st

        # re-protect: B's VMs back onto a fresh host A
        h.start_nic("a", tmp_path / "nica2", vfs=0, extra=["--qps", str(N * 2 + 4)])
        rc, rep, err = fleet.protect("--epoch-ms", "50", "--failover-ms",
                                     str(int(1000 * TIME_SCALE)), reverse=True)
        assert rc == 0 and rep["protected"] == N and rep["direction"] == "B -> A", (rep, err)
        for i in range(N):
            assert fleet.status("b", i)["role"] == "primary"
            assert fleet.status("a", i)["role"] == "standby"
    finally:
        if client and client.is_alive():
            client.stop()
        fleet.stop_all()
        h.close()
