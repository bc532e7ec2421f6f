# SPDX-License-Identifier: MIT
"""A real etcd (Debian's etcd-server) for tests: started on loopback on free
ports with its own data dir, stopped, restarted, paused; a TCP proxy a test
can cut to isolate one client from etcd; an observer that reads keys and
leases through etcd's v3 JSON gateway, independently of hdvm's C client; and
hdvm-owner processes whose stdout events are collected with their times."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from hdvmlib import BUILD

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
OWNER = BUILD / "hdvm-owner"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(Exception):
    """etcd could not bind a port free_port() had found free."""


class Etcd:
    def __init__(self, data_dir):
        assert os.path.exists(ETCD), \
            "etcd is not installed: run tools/install-deps.sh (Debian package etcd-server)"
        self.dir = data_dir
        self.proc = None
        # free_port() only says a port was free a moment ago: another process
        # (or the other of our two ports) may take it before etcd binds, so a
        # bind failure picks fresh ports, a bounded number of times
        for attempt in range(5):
            self.client_port = free_port()
            self.peer_port = free_port()
            if self.peer_port == self.client_port:
                continue
            self.url = f"http://127.0.0.1:{self.client_port}"
            try:
                self.start()
                return
            except PortTaken:
                self.log.close()
        raise AssertionError("etcd: no free pair of loopback ports in 5 tries: " +
                             self.logtext())

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        # short heartbeat/election so a single member elects itself quickly
        # after a restart; lease TTLs of 1-2 s stay above etcd's minimum
        self.log = open(self.dir / "etcd.log", "ab")
        self.log_from = self.log.tell()     # this start's part of the log
        self.proc = subprocess.Popen(
            [ETCD, "--name", "t", "--data-dir", str(self.dir / "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}",
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 20
        while time.time() < end:
            try:
                self.post("/v3/kv/range", {"key": b64("/")}, timeout=0.5)
                return
            except OSError:
                if self.proc.poll() is not None and \
                        "address already in use" in self.logtext(self.log_from):
                    raise PortTaken()
                assert self.proc.poll() is None, "etcd exited: " + self.logtext()
                time.sleep(0.05)
        raise AssertionError("etcd did not answer: " + self.logtext())

    def logtext(self, since=0):
        try:
            with open(self.dir / "etcd.log", "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")[-2000:]
        except OSError as e:
            return str(e)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def restart(self):
        self.stop()
        self.start()

    # --- the observer: etcd's own view through its gateway ---
    def post(self, path, body, timeout=2.0):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def get(self, key):
        """(value, lease) of key, or None if absent."""
        kvs = self.post("/v3/kv/range", {"key": b64(key)}).get("kvs")
        if not kvs:
            return None
        return base64.b64decode(kvs[0].get("value", "")).decode(), int(kvs[0].get("lease", 0))

    def lease_ttl(self, lease):
        """Remaining TTL in s as etcd reports it (-1 or 0 once expired)."""
        return int(self.post("/v3/lease/timetolive", {"ID": lease}).get("TTL", 0))


def b64(s):
    return base64.b64encode(s.encode()).decode()


class KeyWatch:
    """Reads a key every 20 ms; remembers when it was last seen held by a
    given lease, i.e. a wall-clock instant at which etcd said that lease was
    still alive."""

    def __init__(self, etcd, key):
        self.etcd, self.key = etcd, key
        self.seen = {}          # lease -> last wall time seen holding the key
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_flag:
            try:
                t0 = time.time()
                kv = self.etcd.get(self.key)
                if kv:
                    # t0: the read was sent then, so the key existed at or after t0
                    self.seen[kv[1]] = t0
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self):
        self.stop_flag = True
        self.t.join()


class Owner:
    """An hdvm-owner process; events() are (name, wall_s, detail)."""

    def __init__(self, urls, vm, cmd, *args, holder, ttl=2, renew_ms=300, margin_ms=800,
                 timeout_ms=400):
        self.holder = holder
        self.proc = subprocess.Popen(
            [str(OWNER), "--etcd", urls, "--vm", vm, "--id", holder, "--ttl", str(ttl),
             "--renew-ms", str(renew_ms), "--margin-ms", str(margin_ms),
             "--timeout-ms", str(timeout_ms), cmd, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            name, _, rest = line.rstrip("\n").partition(" ")
            ts, _, detail = rest.partition(" ")
            with self.cv:
                try:
                    self.lines.append((name, int(ts) / 1000.0, detail))
                except ValueError:
                    self.lines.append((name, 0.0, rest))
                self.cv.notify_all()

    def wait_event(self, *names, timeout=15.0):
        end = time.time() + timeout
        with self.cv:
            while True:
                for ev in self.lines:
                    if ev[0] in names:
                        return ev
                left = end - time.time()
                if left <= 0 or (self.proc.poll() is not None and not self.proc.stdout.readable()):
                    raise AssertionError(f"{self.holder}: no {names} in {self.lines}")
                self.cv.wait(min(left, 0.1))

    def has(self, name):
        with self.cv:
            return any(ev[0] == name for ev in self.lines)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def wait(self, timeout=15):
        return self.proc.wait(timeout)


class CutProxy:
    """TCP proxy to etcd; cut() turns it into a black hole: connections open,
    nothing forwarded, no answer ever (the worst case for a client's timeouts).
    With netns (nichost.Netns) it listens on that namespace's loopback, so a
    process there (a host's hdvm and its hdvm-owner) reaches etcd, which stays
    on this namespace's loopback, only through this proxy: one path per host,
    cut alone."""

    def __init__(self, target_port, netns=None):
        self.target = target_port
        self.lsock = netns.socket() if netns else socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.url = f"http://127.0.0.1:{self.lsock.getsockname()[1]}"
        self.cut_flag = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.socks.append(c)
            if self.cut_flag:
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            self.socks.append(u)
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pump(self, a, b):
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                try:            # pass the end on (etcd restarted: its client reconnects)
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if self.cut_flag:
                continue        # swallowed: the peer waits for an answer forever
            try:
                b.sendall(data)
            except OSError:
                return

    def cut(self):
        self.cut_flag = True

    def close(self):
        self.lsock.close()
        for s in self.socks:
            s.close()
