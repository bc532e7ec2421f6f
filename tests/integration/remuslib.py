# SPDX-License-Identifier: MIT
"""A Remus-protected counter guest on two hosts (tests/integration/hosts.py),
for the kvm tests of test_checkpoint.py and for tools/ (demo-failover,
bench-remus): host A runs the app=counter guest on its VF 0, host B a standby
on its own VF 0; a client in the client namespace sends numbered requests.
"""
import json
import os
import socket
import struct
import subprocess
import threading
import time

from hdvmlib import GUEST, HDVM, Output, hdvm_ctl

TIME_SCALE = float(os.environ.get("HDVM_TIME_SCALE", "1"))

COUNTER_IP = "10.66.0.10"


class Client(threading.Thread):
    """Numbered counter requests all along; every reply kept (rid, counter, t)."""

    def __init__(self, hosts, interval=0.005):
        super().__init__(daemon=True)
        self.sock = hosts.udp_socket(timeout=interval)
        self.interval = interval
        self.replies, self.stop_flag, self.rid = [], threading.Event(), 0
        self.sent = {}                  # rid -> send time (latency = reply time - it)

    def run(self):
        while not self.stop_flag.is_set():
            self.rid += 1
            self.sent[self.rid] = time.monotonic()
            self.sock.sendto(struct.pack("!Q", self.rid), (COUNTER_IP, 9000))
            t_end = time.monotonic() + self.interval
            while time.monotonic() < t_end:
                try:
                    data = self.sock.recv(64)
                except (socket.timeout, BlockingIOError):
                    continue
                rid, counter = struct.unpack("!QQ", data[:16])
                self.replies.append((rid, counter, time.monotonic()))

    def stop(self):
        self.stop_flag.set()
        self.join(5)
        self.sock.close()

    def replies_after(self, t):
        return [r for r in self.replies if r[2] > t]

    def check(self):
        """The invariants: the counter never regresses and each reply is one request's."""
        last = 0
        for rid, counter, _ in self.replies:
            assert counter > last, f"counter went back: {counter} after {last} (request {rid})"
            last = counter
        return last


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


class Protected:
    """Host A: the counter VM on VF 0; host B: its standby on VF 0 of B's hdnic."""

    def __init__(self, hosts, tmp_path, run_dirs, name="ctr", env_a=None):
        self.hosts, self.tmp, self.name = hosts, tmp_path, name
        self.run = run_dirs
        self.uri = f"unix:{tmp_path}/ckpt-{name}.sock"
        self.primary = subprocess.Popen(
            [str(HDVM), "run", "--kernel", str(GUEST), "--cmdline",
             f"app=counter ip={COUNTER_IP}/24", "--mem", "32M", "--name", name,
             "--run-dir", str(run_dirs["a"]), "--console", "stdio",
             "--vfio-user", str(hosts.nic["a"].sock(0))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env_a)
        self.err_a = Output(self.primary.stderr)
        self.out_a = Output(self.primary.stdout)
        self.out_a.wait_for("counter: listening", timeout=30 * TIME_SCALE)
        wait_until(lambda: try_status(run_dirs["a"], name).get("state") == "running", 20,
                   "primary up")
        self.standby = None

    def start_standby(self, host="b"):
        self.standby = subprocess.Popen(
            [str(HDVM), "run", "--standby", self.uri, "--name", self.name,
             "--run-dir", str(self.run[host]), "--console", "none",
             "--vfio-user", str(self.hosts.nic[host].sock(0))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err_b = Output(self.standby.stderr)
        time.sleep(0.3)

    def protect(self, host="a", *opts):
        r = hdvm_ctl(self.run[host], "checkpoint", self.name, self.uri, "--epoch-ms", "20",
                     "--heartbeat-ms", "10", "--failover-ms", str(int(1000 * TIME_SCALE)),
                     *opts, timeout=60)
        assert r.returncode == 0, self.logs(r.stderr)
        return r

    def logs(self, what=""):
        return (f"{what}\n--- host A hdvm:\n{self.err_a.text()}\n--- host B hdvm:\n"
                + (self.err_b.text() if self.standby else ""))

    def close(self):
        for p in (self.primary, self.standby):
            if p and p.poll() is None:
                p.kill()
                p.wait(10)
