# SPDX-License-Identifier: MIT
"""The test harness around hdnic: network namespaces (and sockets created
inside them) and hdnic processes with their management commands."""
import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from vfio_user_client import wait_for

CLONE_NEWNET = 0x40000000


def run(*cmd, check=True):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=30)


class Netns:
    """A network namespace that exists for the life of the object."""

    _count = 0

    def __init__(self, prefix="hdn"):
        Netns._count += 1
        self.name = f"{prefix}{os.getpid()}x{Netns._count}"
        run("ip", "netns", "add", self.name)
        self.exec("ip", "link", "set", "lo", "up")
        # No IPv6 autoconfiguration chatter on the interfaces tests create.
        for key in ("all", "default"):
            self.exec("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", check=False)

    def exec(self, *cmd, check=True):
        return run("ip", "netns", "exec", self.name, *cmd, check=check)

    def socket(self, *args):
        """A socket created inside the namespace (setns in a helper thread)."""
        libc = ctypes.CDLL(None, use_errno=True)
        out = {}

        def make():
            fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    out["err"] = ctypes.get_errno()
                else:
                    out["sock"] = socket.socket(*args)
            finally:
                os.close(fd)

        t = threading.Thread(target=make)
        t.start()
        t.join()
        if "err" in out:
            raise OSError(out["err"], "setns")
        return out["sock"]

    def packet_socket(self, ifname):
        """AF_PACKET socket bound to ifname inside the namespace."""
        s = self.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind((ifname, 0))
        s.settimeout(0.2)
        return s

    def delete(self):
        run("ip", "netns", "del", self.name, check=False)


def sniff(sock, match, timeout=5.0):
    """First frame on sock for which match(frame) is true, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            continue
        if match(frame):
            return frame
    return None


class Hdnic:
    """One hdnic process (optionally inside a netns), stopped at teardown."""

    def __init__(self, binary, directory, vfs=4, uplink="tap:hdt0", netns=None,
                 name="nictest", extra=()):
        self.binary, self.dir, self.vfs = str(binary), Path(directory), vfs
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        cmd = [self.binary, "--dir", str(self.dir), "--vfs", str(vfs), "--uplink", uplink,
               "--name", name, *extra]
        if netns:
            cmd = ["ip", "netns", "exec", netns.name] + cmd
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        want = [self.dir / "pf.sock"] + [self.dir / f"vf{i}.sock" for i in range(vfs)]
        if not wait_for(lambda: all(p.exists() for p in want) or self.proc.poll() is not None,
                        timeout=10):
            self.stop()
            raise RuntimeError(f"hdnic did not come up: {self.output()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"hdnic exited {self.proc.returncode}: {self.output()}")

    def sock(self, vf):
        return self.dir / f"vf{vf}.sock"

    def adi_sock(self, name):
        return self.dir / f"adi-{name}.sock"

    def adi_add(self, name, *args):
        """Create an ADI (ctl adi-add NAME ARGS...) and return its JSON entry."""
        return self.ctl_json("adi-add", name, *args)

    def dev_stats(self, dev):
        """The stats entry of a device by name (vf3, adi-NAME)."""
        s = self.ctl_json("stats")
        return next(d for d in s["vfs"] + s["adis"] if d["dev"] == dev)

    def dev_info(self, dev):
        r = self.ctl_json("list")
        return next(d for d in r["vfs"] + r["adis"] if d["dev"] == dev)

    def status_field(self, key):
        """A field of /proc/PID/status (VmRSS, Threads...) as an int."""
        for line in Path(f"/proc/{self.main_pid()}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def ctl(self, *args, check=False):
        return subprocess.run([self.binary, "ctl", str(self.dir), *args], capture_output=True,
                              text=True, timeout=20, check=check)

    def ctl_json(self, *args):
        r = self.ctl(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def stats(self, vf=None):
        s = self.ctl_json("stats")
        return s if vf is None else s["vfs"][vf]

    def vf_info(self, vf):
        return self.ctl_json("list")["vfs"][vf]

    def cpu_seconds(self):
        pid = self.main_pid()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def main_pid(self):
        # `ip netns exec` execs the command, so the pid is hdnic's own.
        return self.proc.pid

    def stop_checked(self):
        """Stop with SIGTERM and assert a clean exit with no sanitizer report."""
        rc = self.stop()
        out = self.output()
        assert rc == 0, out
        assert "AddressSanitizer" not in out and "runtime error" not in out

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(10)     # bounded too: say where it is stuck
                except subprocess.TimeoutExpired:
                    pid = self.proc.pid
                    where = {f: Path(f"/proc/{pid}/{f}").read_text(errors="replace")
                             for f in ("wchan", "stack") if Path(f"/proc/{pid}/{f}").exists()}
                    raise RuntimeError(f"hdnic {pid} survives SIGKILL: {where}")
        self.log.close()
        return self.proc.returncode
