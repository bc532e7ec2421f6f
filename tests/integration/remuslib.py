# SPDX-License-Identifier: MIT
"""A Remus-protected counter guest on two hosts (tests/integration/hosts.py),
for the kvm tests of test_checkpoint.py and for tools/ (demo-failover,
bench-remus): host A runs the app=counter guest on its VF 0, host B a standby
on its own VF 0; a client in the client namespace sends numbered requests.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from hdvmlib import GUEST, HDVM, TIME_SCALE, Output, hdvm_ctl
from hosts import MIG_IP, TwoHosts

COUNTER_IP = "10.66.0.10"


class Client(threading.Thread):
    """Numbered counter requests all along; every reply kept (rid, counter, t)."""

    def __init__(self, hosts, interval=0.005):
        super().__init__(daemon=True)
        self.sock = hosts.udp_socket(timeout=interval)
        self.interval = interval
        self.replies, self.stop_flag, self.rid = [], threading.Event(), 0
        self.sent = {}                  # rid -> send time (latency = reply time - it)
        self.errors = 0                 # sends/receives the kernel failed (ARP gave up)

    def run(self):
        while not self.stop_flag.is_set():
            self.rid += 1
            self.sent[self.rid] = time.monotonic()
            try:
                self.sock.sendto(struct.pack("!Q", self.rid), (COUNTER_IP, 9000))
            except OSError:     # EHOSTUNREACH while ARP failed (a switchover): go on asking
                self.errors += 1
            t_end = time.monotonic() + self.interval
            while time.monotonic() < t_end:
                try:
                    data = self.sock.recv(64)
                except (socket.timeout, BlockingIOError):
                    continue
                except OSError:     # the same error, reported on the next call
                    self.errors += 1
                    continue
                rid, counter = struct.unpack("!QQ", data[:16])
                self.replies.append((rid, counter, time.monotonic()))

    def stop(self):
        self.stop_flag.set()
        self.join(5)
        self.sock.close()

    def replies_after(self, t):
        return [r for r in self.replies if r[2] > t]

    def first_reply_after(self, t, timeout, what):
        """When the first reply after t came (waited for, timeout seconds, scaled)."""
        wait_until(lambda: self.replies_after(t), timeout, what)
        return min(r[2] for r in self.replies_after(t))

    def check(self):
        """The invariants: the counter never regresses and each reply is one request's."""
        last = 0
        for rid, counter, _ in self.replies:
            assert counter > last, f"counter went back: {counter} after {last} (request {rid})"
            last = counter
        return last


def two_hosts(prefix, vfs=1):
    """For the tools: a fresh directory, run directories a and b in it, and
    TwoHosts on it with vfs VFs each."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    run_dirs = {h: tmp / f"run-{h}" for h in ("a", "b")}
    for d in run_dirs.values():
        d.mkdir()
    return tmp, run_dirs, TwoHosts(tmp, vfs=vfs)


def try_status(run_dir, name):
    """status --json, or {} while the VM is not (yet) there."""
    r = hdvm_ctl(run_dir, "status", name, "--json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def first_reply(s, rid, timeout=10):
    """Send request rid until its reply comes (the first one waits for ARP)."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    s.settimeout(0.2 * TIME_SCALE)
    while True:
        s.sendto(struct.pack("!Q", rid), (COUNTER_IP, 9000))
        try:
            got = struct.unpack("!QQ", s.recv(64)[:16])
            if got[0] == rid:
                return got
        except socket.timeout:
            assert time.monotonic() < deadline, f"no reply to request {rid}"


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout * TIME_SCALE
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


class ReplySources(threading.Thread):
    """Where each counter reply came from: frames from COUNTER_IP:9000 that
    host A's or host B's uplink put on the bridge (sniffed on the bridge's
    ports pa and pb in the lan namespace), as (host, t, rid, counter)."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.socks = {hosts.ns["lan"].packet_socket(f"p{h}"): h for h in ("a", "b")}
        self.ip = socket.inet_aton(COUNTER_IP)
        self.seen, self.stop_flag = [], threading.Event()
        self.start()

    def run(self):
        while not self.stop_flag.is_set():
            ready, _, _ = select.select(list(self.socks), [], [], 0.1)
            for s in ready:
                try:
                    f, addr = s.recvfrom(2048)
                except OSError:
                    continue
                if addr[2] == socket.PACKET_OUTGOING or len(f) < 58:
                    continue        # the bridge sending to the host, or no reply
                ihl = (f[14] & 0xF) * 4
                if f[12:14] != b"\x08\x00" or f[23] != 17 or f[26:30] != self.ip:
                    continue
                udp = f[14 + ihl:]
                if struct.unpack_from("!H", udp)[0] != 9000 or len(udp) < 24:
                    continue
                rid, counter = struct.unpack_from("!QQ", udp, 8)
                self.seen.append((self.socks[s], time.monotonic(), rid, counter))

    def stop(self):
        self.stop_flag.set()
        self.join(5)
        for s in self.socks:
            s.close()

    def hosts_after(self, t):
        return {h for h, ts, _, _ in self.seen if ts > t}

    def order(self):
        """The hosts replies came from, in turn: ["a", "b"] is A, then (after
        a takeover) only B; ["a", "b", "a"] would be two places serving."""
        order = []
        for h, _, _, _ in self.seen:
            if not order or order[-1] != h:
                order.append(h)
        return order


class Protected:
    """Host A: the counter VM on VF 0; host B: its standby on VF 0 of B's hdnic.
    in_netns: each host's hdvm runs in its namespace and the checkpoint stream
    goes over the A<->B link (tcp: on mig0, which a test can cut); etcd:
    {host: URL} gives each side --etcd (its own path to etcd), etcd_args the
    lease options."""

    def __init__(self, hosts, tmp_path, run_dirs, name="ctr", env_a=None, in_netns=False,
                 etcd=None, etcd_args=(), sock_a=None):
        self.hosts, self.tmp, self.name = hosts, tmp_path, name
        self.run = run_dirs
        self.in_netns, self.etcd, self.etcd_args = in_netns, etcd or {}, list(etcd_args)
        self.port = 7100
        self.standbys = []
        self.uri = f"unix:{tmp_path}/ckpt-{name}.sock"
        self.primary = subprocess.Popen(
            self.netns_cmd("a") + [str(HDVM), "run", "--kernel", str(GUEST), "--cmdline",
             f"app=counter ip={COUNTER_IP}/24", "--mem", "32M", "--name", name,
             "--run-dir", str(run_dirs["a"]), "--console", "stdio",
             "--vfio-user", str(sock_a or hosts.nic["a"].sock(0))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env_a)
        self.err_a = Output(self.primary.stderr)
        self.out_a = Output(self.primary.stdout)
        self.out_a.wait_for("counter: listening", timeout=30 * TIME_SCALE)
        wait_until(lambda: try_status(run_dirs["a"], name).get("state") == "running", 20,
                   "primary up")
        self.standby = None

    def netns_cmd(self, host):
        return ["ip", "netns", "exec", self.hosts.ns[host].name] if self.in_netns else []

    def etcd_opts(self, host):
        return ["--etcd", self.etcd[host], *self.etcd_args] if self.etcd else []

    def start_standby(self, host="b", vf=0, run_dir=None, sock=None, env=None):
        """A standby on host (its VF vf, or the function at sock: an ADI; its run
        dir); in_netns: listening on host's end of the A<->B link."""
        run_dir = run_dir or self.run[host]
        if self.in_netns:
            self.port += 1
            self.uri = f"tcp:{MIG_IP[host]}:{self.port}"
        self.standby = subprocess.Popen(
            self.netns_cmd(host) + [
                str(HDVM), "run", "--standby", self.uri, "--name", self.name,
                "--run-dir", str(run_dir), "--console", "none",
                "--vfio-user", str(sock or self.hosts.nic[host].sock(vf)),
                *self.etcd_opts(host)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.err_b = Output(self.standby.stderr)
        self.standbys.append((f"{host}:{run_dir.name}", self.standby, self.err_b))
        time.sleep(0.3)
        if self.in_netns:       # listening once its control socket answers
            wait_until(lambda: try_status(run_dir, self.name).get("role") == "standby", 20,
                       self.logs("the standby never listened"))
        return self.standby

    def protect(self, host="a", *opts):
        r = hdvm_ctl(self.run[host], "checkpoint", self.name, self.uri, "--epoch-ms", "20",
                     "--heartbeat-ms", "10", "--failover-ms", str(int(1000 * TIME_SCALE)),
                     *self.etcd_opts(host), *opts, timeout=60 * TIME_SCALE)
        assert r.returncode == 0, self.logs(r.stderr)
        return r

    def logs(self, what=""):
        return (f"{what}\n--- host A hdvm:\n{self.err_a.text()}\n" +
                "".join(f"--- standby {w}:\n{err.text()}\n" for w, _, err in self.standbys))

    def close(self):
        for p in [self.primary] + [s[1] for s in self.standbys]:
            if p and p.poll() is None:
                if p.returncode is None:
                    os.kill(p.pid, signal.SIGCONT)      # a frozen one dies too
                p.kill()
                p.wait(10)
