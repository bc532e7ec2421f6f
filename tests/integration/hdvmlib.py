# SPDX-License-Identifier: MIT
"""Helpers for integration tests: start real hdvm processes, follow their console."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HDVM_BUILD", ROOT / "build"))
HDVM = BUILD / "hdvm"
HDNIC = BUILD / "hdnic"
GUEST = BUILD / "hdguest.elf"
GUEST_BZIMAGE = BUILD / "hdguest.bzImage"
# Guest-timing deadlines stretch by it: tools/kvmlab sets 20 (TCG runs guests slowly).
TIME_SCALE = float(os.environ.get("HDVM_TIME_SCALE", "1"))


class Output:
    """Lines of one stream, collected by a thread, searchable with a timeout."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        for raw in iter(stream.readline, b""):
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def count(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines if rx.search(line))

    def wait_for(self, pattern, timeout=20.0, start=0, nth=1):
        """The nth match of pattern in lines[start:], or raise with what was seen.
        (Guest reports like app=dirty's "pass N" are rate-limited: wait for the
        nth report, not for a particular N.)"""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        nth -= 1
                        if not nth:
                            return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s; got:\n"
                        + "\n".join(self.lines[-40:]))
                self.cond.wait(left)


class VM:
    """One `hdvm run` process."""

    def __init__(self, run_dir, name, kernel=GUEST, cmdline="app=hello", mem="64M",
                 cpus=1, extra=(), env=None):
        self.run_dir = str(run_dir)
        self.name = name
        self.args = [str(HDVM), "run", "--kernel", str(kernel), "--cmdline", cmdline,
                     "--mem", mem, "--cpus", str(cpus), "--name", name,
                     "--run-dir", self.run_dir, *extra]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout=timeout)
        self.out.thread.join(5)
        self.err.thread.join(5)
        return rc

    def ctl(self, cmd, *args):
        return hdvm_ctl(self.run_dir, cmd, self.name, *args)

    def request(self, raw, timeout=5):
        """Send raw bytes on the control socket, return the reply line."""
        path = os.path.join(self.run_dir, self.name + ".sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(raw)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        return buf.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class ResumedVM:
    """`hdvm run` of a VM whose state comes from elsewhere: `how` is
    ["--incoming", URI] (a migration's destination) or ["--restore", FILE]
    (a snapshot), optionally inside network namespace ns."""

    def __init__(self, run_dir, how, name, ns=None, extra=()):
        self.run_dir, self.name = str(run_dir), name
        args = [str(HDVM), "run", *how, "--name", name, "--run-dir", self.run_dir, *extra]
        if ns:
            args = ["ip", "netns", "exec", ns.name, *args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    def ctl(self, cmd, *args):
        return hdvm_ctl(self.run_dir, cmd, self.name, *args, timeout=60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def hdvm_ctl(run_dir, cmd, *args, timeout=15):
    return subprocess.run([str(HDVM), cmd, *args, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=timeout)


def wait_running(run_dir, name, timeout=30):
    """Until `hdvm status` says running (a restored or incoming VM has built
    its devices and opened its TAP/vfio-user sockets by then)."""
    deadline = time.monotonic() + timeout
    while True:
        r = hdvm_ctl(run_dir, "status", name, "--json")
        if r.returncode == 0 and json.loads(r.stdout).get("state") == "running":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not running within {timeout}s: {r.stdout}{r.stderr}")
        time.sleep(0.05)


def status(run_dir, name):
    r = hdvm_ctl(run_dir, "status", name, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
