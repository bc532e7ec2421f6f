# SPDX-License-Identifier: MIT
"""Many protected counter microVMs on two hosts (tests/integration/hosts.py),
for test_protect.py and tools/bench_protect.py: host A runs N app=counter
guests, each on its own ADI of A's hdnic; tools/protect gives each a standby
on an ADI of B's hdnic; a client in the client namespace sends numbered
requests round-robin over all of them and keeps every reply per VM.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from hdvmlib import GUEST, HDNIC, HDVM, ROOT, Output, hdvm_ctl

TIME_SCALE = float(os.environ.get("HDVM_TIME_SCALE", "1"))
PROTECT = ROOT / "tools" / "protect"
COUNTER_PORT = 9000


def vm_name(i):
    return f"pv{i:03d}"


def vm_ip(i):
    """Guests on 10.66.0.0/16 (the client gets 10.66.0.2/16 besides its /24)."""
    return f"10.66.{1 + i // 200}.{10 + i % 200}"


class RoundRobinClient(threading.Thread):
    """One request outstanding per VM at most; the next VM's request every
    `interval` s.  replies[i]: (rid, counter, t_sent, t_reply) in arrival order."""

    def __init__(self, hosts, n, interval=0.002):
        super().__init__(daemon=True)
        self.n, self.interval = n, interval
        self.sock = hosts.udp_socket(timeout=interval)
        self.ip_index = {vm_ip(i): i for i in range(n)}
        self.replies = [[] for _ in range(n)]
        self.sent = {}                  # rid -> (vm, t)
        self.stop_flag = threading.Event()
        self.rid = 0

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            self.rid += 1
            now = time.monotonic()
            self.sent[self.rid] = (i, now)
            try:
                self.sock.sendto(struct.pack("!Q", self.rid), (vm_ip(i), COUNTER_PORT))
            except OSError:             # no ARP answer yet (EHOSTUNREACH): next one
                pass
            i = (i + 1) % self.n
            t_end = now + self.interval
            while time.monotonic() < t_end:
                try:
                    data, src = self.sock.recvfrom(64)
                except (socket.timeout, BlockingIOError):
                    continue
                rid, counter = struct.unpack("!QQ", data[:16])
                vm = self.ip_index.get(src[0])
                sent = self.sent.get(rid)
                if vm is None or sent is None or sent[0] != vm:
                    continue
                self.replies[vm].append((rid, counter, sent[1], time.monotonic()))

    def stop(self):
        self.stop_flag.set()
        self.join(10)
        self.sock.close()

    def latencies_ms(self, t0=0.0, t1=float("inf")):
        return [(r[3] - r[2]) * 1000 for rs in self.replies for r in rs if t0 <= r[2] <= t1]

    def last_counter(self, vm, before=float("inf")):
        return max((r[1] for r in self.replies[vm] if r[3] < before), default=0)

    def first_reply_after(self, vm, t):
        return min((r[3] for r in self.replies[vm] if r[3] > t), default=None)

    def around(self, vm, t_kill, n=6):
        """The replies of vm near the kill and near a regression, for a failure message."""
        rs = self.replies[vm]
        idx = set(range(max(0, len(rs) - n), len(rs)))
        for k, r in enumerate(rs):
            if abs(r[3] - t_kill) < 0.5 or (k and r[1] <= rs[k - 1][1]):
                idx.update(range(max(0, k - n), min(len(rs), k + n)))
        return "\n".join(f"  rid {rs[k][0]} counter {rs[k][1]} sent {rs[k][2] - t_kill:+.3f} "
                         f"reply {rs[k][3] - t_kill:+.3f}" for k in sorted(idx))

    def violations(self):
        """Per VM, the counter must go up with every reply (a reply from state
        that was lost would repeat or go back); returns the broken ones."""
        bad = []
        for vm, rs in enumerate(self.replies):
            last, seen = 0, set()
            for rid, counter, _, _ in rs:
                if counter <= last:
                    again = " (a repeat of a reply received before)" if (rid, counter) in seen \
                        else ""
                    bad.append(f"{vm_name(vm)}: counter {counter} after {last} "
                               f"(request {rid}){again}")
                    break
                last = counter
                seen.add((rid, counter))
        return bad


class Fleet:
    """N counter VMs on host A of `hosts` (TwoHosts with vfs=0 and --qps >= N),
    each on ADI NAME of A's hdnic; run dirs tmp/run-a, tmp/run-b."""

    def __init__(self, hosts, tmp, n, mem="32M"):
        self.hosts, self.tmp, self.n, self.mem = hosts, Path(tmp), n, mem
        self.run = {h: self.tmp / f"run-{h}" for h in ("a", "b")}
        for d in self.run.values():
            d.mkdir(exist_ok=True)
        self.procs = []
        hosts.ns["client"].exec("ip", "addr", "add", "10.66.0.2/16", "dev", "cl0")

    def start(self, timeout=120):
        nic = self.hosts.nic["a"]
        for i in range(self.n):
            name = vm_name(i)
            nic.adi_add(name, "--mac", f"02:50:52:00:{i // 256:02x}:{i % 256:02x}")
            p = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts.ns["a"].name, str(HDVM), "run",
                 "--kernel", str(GUEST), "--cmdline", f"app=counter ip={vm_ip(i)}/16",
                 "--mem", self.mem, "--name", name, "--run-dir", str(self.run["a"]),
                 "--vfio-user", str(nic.dir / f"adi-{name}.sock")],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.procs.append((p, Output(p.stdout), Output(p.stderr)))
        for p, out, err in self.procs:
            out.wait_for(r"counter: listening", timeout=timeout * TIME_SCALE)

    def protect(self, *opts, reverse=False, timeout=600):
        """tools/protect over the fleet; (returncode, report, stderr)."""
        from hosts import MIG_IP
        argv = [sys.executable, str(PROTECT), "--a-run-dir", str(self.run["a"]),
                "--b-run-dir", str(self.run["b"]), "--json", "--hdvm", str(HDVM),
                "--hdnic", str(HDNIC), "--timeout", str(int(60 * TIME_SCALE))]
        if reverse:
            argv += ["--reverse", "--a-hdnic", str(self.hosts.nic["a"].dir),
                     "--netns-a", self.hosts.ns["a"].name, "--a-host", MIG_IP["a"]]
        else:
            argv += ["--b-hdnic", str(self.hosts.nic["b"].dir),
                     "--netns-b", self.hosts.ns["b"].name, "--b-host", MIG_IP["b"]]
        r = subprocess.run(argv + list(opts), capture_output=True, text=True,
                           timeout=timeout * TIME_SCALE)
        lines = r.stdout.strip().splitlines()
        return r.returncode, (json.loads(lines[-1]) if lines else {}), r.stderr

    def status(self, host, i):
        r = hdvm_ctl(self.run[host], "status", vm_name(i), "--json")
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def statuses(self, host):
        """Every VM's `hdvm status` by name, in one `hdvm ps --json`."""
        r = hdvm_ctl(self.run[host], "ps", "--json", timeout=60)
        got = {v["name"]: v for v in json.loads(r.stdout or "[]")}
        for name, v in got.items():     # ps gives each VM 1 s; a busy one gets 15
            if v.get("state") == "unresponsive":
                st = hdvm_ctl(self.run[host], "status", name, "--json")
                if st.returncode == 0:
                    got[name] = json.loads(st.stdout)
        return got

    def pids(self, host):
        """The hdvm processes of a host: VMs and standbys, from `hdvm ps`."""
        r = hdvm_ctl(self.run[host], "ps", "--json", timeout=30)
        return [v["pid"] for v in json.loads(r.stdout or "[]") if v.get("pid")]

    def a_log(self, i, word, n=8):
        """The last n lines of VM i's hdvm on A (stdout and stderr) that hold word."""
        _, out, err = self.procs[i]
        lines = [ln for ln in (out.text() + "\n" + err.text()).splitlines() if word in ln]
        return "\n".join(f"  A: {ln}" for ln in lines[-n:])

    def kill_host_a(self):
        """Host A dies: every hdvm of A and A's hdnic, SIGKILL, all at once."""
        pids = self.pids("a") + [p.pid for p, _, _ in self.procs]
        for pid in set(pids):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.hosts.nic["a"].proc.kill()
        t = time.monotonic()
        for p, _, _ in self.procs:
            p.wait(30)
        self.hosts.nic["a"].proc.wait(30)
        return t

    def stop_all(self):
        for host in ("a", "b"):
            for pid in self.pids(host) if self.run[host].exists() else []:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        for p, _, _ in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
