# SPDX-License-Identifier: MIT
"""Network test helpers: a namespace with hdnic and its TAP uplink, guests on VFs."""
import re
import socket
import struct
import subprocess

from hdvmlib import HDNIC
from nichost import Hdnic, Netns

HOST_IP = "10.66.0.1"


def guest_ip(i):
    return f"10.66.0.{10 + i}"


class NsTraffic:
    """Clients inside self.ns: ping and UDP sockets."""

    def ping(self, ip, count=100, interval="0.01"):
        r = self.ns.exec("ping", "-c", str(count), "-i", interval, "-W", "2", "-q", ip,
                         check=False)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        assert m, r.stdout + r.stderr
        return int(m.group(1)), int(m.group(2)), r.stdout

    def udp_socket(self, timeout=2.0):
        s = self.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        return s

    def counter_bursts(self, ip, bursts=10, size=32):
        """One counter request (ARP settles both ways), then `bursts` bursts
        of `size` requests sent back to back (ids 100...), each burst's
        replies collected before the next: [(id, counter)] in arrival order.
        Many frames are in flight both ways at once, so a path that reorders
        frames shows as ids out of order."""
        out = []
        with self.udp_socket(timeout=5) as s:
            s.sendto(struct.pack("!Q", 1), (ip, 9000))
            out.append(struct.unpack("!QQ", s.recvfrom(64)[0][:16]))
            for b in range(bursts):
                ids = range(100 + size * b, 100 + size * (b + 1))
                for rid in ids:
                    s.sendto(struct.pack("!Q", rid), (ip, 9000))
                for _ in ids:
                    out.append(struct.unpack("!QQ", s.recvfrom(64)[0][:16]))
        return out


class NicNet(NsTraffic):
    """Namespace + hdnic (TAP uplink hdt0 = HOST_IP/24) for guests on its VFs."""

    def __init__(self, tmp_path, vfs=2, extra=()):
        self.ns = Netns(prefix="hnet")
        try:
            self.nic = Hdnic(HDNIC, tmp_path / "nic", vfs=vfs, uplink="tap:hdt0",
                             netns=self.ns, extra=list(extra))
            self.ns.exec("ip", "addr", "add", f"{HOST_IP}/24", "dev", "hdt0")
            self.ns.exec("ip", "link", "set", "hdt0", "up")
        except Exception:
            self.ns.delete()
            raise

    def vf_args(self, vf):
        return ["--vfio-user", str(self.nic.sock(vf))]

    def counter_requests(self, ip, ids):
        """Send counter requests one at a time; return [(id, counter)]."""
        out = []
        with self.udp_socket() as s:
            for rid in ids:
                s.sendto(struct.pack("!Q", rid), (ip, 9000))
                data, _ = s.recvfrom(64)
                out.append(struct.unpack("!QQ", data[:16]))
        return out

    def close(self):
        rc = self.nic.stop()
        self.ns.delete()
        return rc

    def close_checked(self):
        """close(), then hdnic must have exited 0 with no sanitizer report."""
        rc = self.close()
        out = self.nic.output()
        assert rc == 0, out
        assert "AddressSanitizer" not in out and "runtime error" not in out


def socat(ns, ip, port, payload, timeout=5):
    """One UDP request/response through socat inside the namespace."""
    r = subprocess.run(["ip", "netns", "exec", ns.name, "socat", "-t", "2", "-T", "2", "-",
                        f"UDP:{ip}:{port}"], input=payload, capture_output=True,
                       timeout=timeout)
    return r.stdout
