# SPDX-License-Identifier: MIT
"""The paravirtual NIC (--net tap=...) with the real hdguest network apps: a namespace of
the test's own holds the TAP (10.0.0.1/24) and hdvm (run with `ip netns exec`), the
guest is 10.0.0.2/24, and real clients (iputils ping, socat) talk to it."""
import os
import re
import signal
import struct
import subprocess
import time

import pytest

from hdvmlib import GUEST, HDVM, Output, hdvm_ctl
from netlib import NsTraffic, socat
from nichost import Netns

HOST_IP = "10.0.0.1"
GUEST_IP = "10.0.0.2"
TAP = "pvtap0"


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


class NsVM:
    """`hdvm run` inside a network namespace (ip netns exec execs hdvm itself)."""

    def __init__(self, ns, run_dir, name, cmdline, net=(f"tap={TAP}",), extra=()):
        self.ns, self.run_dir, self.name = ns, str(run_dir), name
        args = [str(HDVM), "run", "--kernel", str(GUEST), "--cmdline", cmdline,
                "--mem", "64M", "--name", name, "--run-dir", self.run_dir, *extra]
        for n in net:
            args += ["--net", n]
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    def ctl(self, cmd, *args):
        return hdvm_ctl(self.run_dir, cmd, self.name, *args)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class PvNet(NsTraffic):
    """A namespace with (optionally) a pre-made TAP, and the VMs started in it."""

    def __init__(self, run_dir, precreate=True):
        self.run_dir = run_dir
        self.ns = Netns(prefix="hpv")
        self.vms = []
        if precreate:
            self.ns.exec("ip", "tuntap", "add", TAP, "mode", "tap")
            self.configure_tap()

    def tap_exists(self):
        return self.ns.exec("ip", "link", "show", TAP, check=False).returncode == 0

    def configure_tap(self):
        self.ns.exec("ip", "addr", "add", f"{HOST_IP}/24", "dev", TAP)
        self.ns.exec("ip", "link", "set", TAP, "up")

    def start(self, app, extra_cmdline="", **kw):
        vm = NsVM(self.ns, self.run_dir, f"pv{os.getpid()}-{len(self.vms)}",
                  f"app={app} ip={GUEST_IP}/24 {extra_cmdline}".strip(), **kw)
        self.vms.append(vm)
        return vm

    def close(self):
        for vm in self.vms:
            vm.kill()
        self.ns.delete()


def _pvnet(run_dir, precreate):
    n = PvNet(run_dir, precreate)
    yield n
    n.close()
    for vm in n.vms:
        err = vm.err.text()
        assert "AddressSanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def pv(run_dir):
    """Namespace with TAP pvtap0 (10.0.0.1/24, up) made before hdvm starts."""
    yield from _pvnet(run_dir, True)


@pytest.fixture
def pv_bare(run_dir):
    """Namespace without a TAP: hdvm has to create it."""
    yield from _pvnet(run_dir, False)


def up(vm, ready):
    vm.out.wait_for(r"net: .* up", timeout=30)
    vm.out.wait_for(ready, timeout=10)
    return vm


@pytest.mark.kvm
def test_ping_100_no_loss(pv):
    vm = up(pv.start("counter"), "counter: listening")
    assert "virtio-net: 00:01.0" in vm.out.text()     # found by PCI enumeration
    sent, received, out = pv.ping(GUEST_IP, count=100)
    assert (sent, received) == (100, 100), out
    assert "0% packet loss" in out
    assert "needs reset" not in vm.out.text()


@pytest.mark.kvm
def test_udp_echo_with_socat(pv):
    up(pv.start("echo"), "echo: listening on udp/7")
    for i, size in enumerate([1, 64, 512, 1400, 1472]):
        payload = bytes((i * 31 + j) % 256 for j in range(size))
        assert socat(pv.ns, GUEST_IP, 7, payload) == payload, f"size {size}"
    with pv.udp_socket() as s:
        for i in range(200):
            msg = b"pv-echo-%05d-" % i + os.urandom(48)
            s.sendto(msg, (GUEST_IP, 7))
            data, _ = s.recvfrom(2048)
            assert data == msg


@pytest.mark.kvm
def test_counter_replies_strictly_increasing(pv):
    up(pv.start("counter"), "counter: listening")
    replies = []
    with pv.udp_socket() as s:
        for rid in range(7000, 7300):
            s.sendto(struct.pack("!Q", rid), (GUEST_IP, 9000))
            data, _ = s.recvfrom(64)
            replies.append(struct.unpack("!QQ", data[:16]))
    assert [rid for rid, _ in replies] == list(range(7000, 7300))
    counters = [c for _, c in replies]
    assert all(b > a for a, b in zip(counters, counters[1:])), counters[:20]
    assert counters == list(range(1, 301))


@pytest.mark.kvm
def test_counter_bursts_answered_in_order(pv):
    """Bursts of 32 requests sent back to back: the replies come back in the
    order the requests were sent, with consecutive counters.  Many frames are
    in flight both ways at once, so a TAP path that reorders shows here (hdvm's
    reads and writes of the TAP went through io_uring, which on Linux 6.1 ran
    them on worker threads that completed them out of order)."""
    up(pv.start("counter"), "counter: listening")
    replies = pv.counter_bursts(GUEST_IP)
    assert [rid for rid, _ in replies] == [1, *range(100, 420)], replies[:40]
    assert [c for _, c in replies] == list(range(1, 322)), replies[:40]


@pytest.mark.kvm
def test_given_mac_reaches_the_guest(pv):
    vm = pv.start("echo", net=[f"tap={TAP},mac=52:54:00:12:34:56"])
    vm.out.wait_for(r"virtio-net: 00:01.0 mac 52:54:00:12:34:56", timeout=30)
    up(vm, "echo: listening")
    assert socat(pv.ns, GUEST_IP, 7, b"mac") == b"mac"
    neigh = pv.ns.exec("ip", "neigh", "show", GUEST_IP).stdout
    assert "52:54:00:12:34:56" in neigh, neigh


@pytest.mark.kvm
def test_pause_holds_traffic_and_resume_restarts_it(pv):
    vm = up(pv.start("counter"), "counter: listening")
    assert vm.ctl("pause").returncode == 0
    sent, received, _ = pv.ping(GUEST_IP, count=5, interval="0.2")
    assert received == 0, "a paused VM answered"
    assert vm.ctl("resume").returncode == 0
    sent, received, out = pv.ping(GUEST_IP, count=50)
    assert received == 50, out


@pytest.mark.kvm
def test_io_thread_sleeps_and_is_filtered(pv):
    vm = up(pv.start("counter"), "counter: listening")
    pid = vm.proc.pid
    tasks = {t: open(f"/proc/{pid}/task/{t}/comm").read().strip()
             for t in os.listdir(f"/proc/{pid}/task")}
    io = [t for t, name in tasks.items() if name == "net0-io"]
    assert len(io) == 1, tasks
    status = open(f"/proc/{pid}/task/{io[0]}/status").read()
    assert re.search(r"^Seccomp:\s+2$", status, re.M), "I/O thread runs unfiltered"

    def cpu():
        f = open(f"/proc/{pid}/task/{io[0]}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    before = cpu()
    time.sleep(2.0)
    assert cpu() - before < 0.1, "the I/O thread spins while nothing happens"


@pytest.mark.kvm
def test_hdvm_creates_and_deletes_the_tap(pv_bare):
    n = pv_bare
    assert not n.tap_exists()
    vm = n.start("echo")
    assert wait_until(n.tap_exists, 20), "hdvm did not create the TAP"
    n.configure_tap()
    up(vm, "echo: listening")
    assert socat(n.ns, GUEST_IP, 7, b"created") == b"created"
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
    assert wait_until(lambda: not n.tap_exists(), 10), "the TAP hdvm created is left"


@pytest.mark.kvm
def test_preexisting_tap_is_left_alone(pv):
    vm = up(pv.start("echo"), "echo: listening")
    assert socat(pv.ns, GUEST_IP, 7, b"x") == b"x"
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
    assert pv.tap_exists()
    addr = pv.ns.exec("ip", "addr", "show", TAP).stdout
    assert f"{HOST_IP}/24" in addr, addr


@pytest.mark.kvm
@pytest.mark.parametrize("kind", ["oob", "len", "loop", "avail", "index", "other"])
def test_hostile_guest_gets_needs_reset_and_hdvm_survives(pv, kind):
    vm = pv.start("hostile", extra_cmdline=f"kind={kind}")
    vm.out.wait_for(f"hostile: posted {kind}", timeout=30)
    vm.out.wait_for("virtio-net: device needs reset", timeout=10)
    vm.err.wait_for(r"virtio-net net0: the guest driver broke queue 1", timeout=5)
    assert vm.proc.poll() is None, "hdvm died because its guest misbehaved"
    # still a working VMM: it answers its control socket and stops cleanly
    assert vm.ctl("status").returncode == 0
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0


@pytest.mark.kvm
def test_two_nics_on_the_bus(pv):
    pv.ns.exec("ip", "tuntap", "add", "pvtap1", "mode", "tap")
    vm = pv.start("echo", net=[f"tap={TAP}", "tap=pvtap1"])
    vm.out.wait_for(r"pci: 00:01.0 1af4:1041", timeout=30)
    vm.out.wait_for(r"pci: 00:02.0 1af4:1041", timeout=5)
    up(vm, "echo: listening")
    assert socat(pv.ns, GUEST_IP, 7, b"two") == b"two"


@pytest.mark.parametrize("value,needle", [
    ("tap=x,mac=01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast address"),
    ("tap=x,mac=02:00:00:00:00", "'02:00:00:00:00' is not a MAC address"),
    ("tap=bad/name", "'bad/name' is not a usable interface name"),
    ("mac=02:00:00:00:00:01", "tap=IFNAME is required"),
    ("tap=x,color=red", "unknown key 'color'"),
])
def test_bad_net_option_is_refused(run_dir, value, needle):
    r = subprocess.run([str(HDVM), "run", "--kernel", str(GUEST), "--name", f"bad{os.getpid()}",
                        "--run-dir", str(run_dir), "--net", value],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert "Hello" not in r.stdout


@pytest.mark.kvm
def test_tap_in_use_is_refused(pv):
    """A TAP another process holds: a clear error, no VM."""
    first = up(pv.start("echo"), "echo: listening")
    second = NsVM(pv.ns, pv.run_dir, f"pv{os.getpid()}-dup", "app=echo ip=10.0.0.3/24")
    pv.vms.append(second)
    assert second.wait(30) != 0
    second.err.thread.join(5)
    assert f"--net tap={TAP}: it is already in use by another process" in second.err.text()
    assert first.proc.poll() is None


@pytest.mark.kvm
def test_tap_removed_underneath(pv):
    """The TAP disappears while the VM runs: receive stops with a message, hdvm carries on."""
    vm = up(pv.start("echo"), "echo: listening")
    assert socat(pv.ns, GUEST_IP, 7, b"before") == b"before"
    pv.ns.exec("ip", "link", "del", TAP)
    vm.err.wait_for(rf"reading TAP {TAP} failed .*: receive stopped", timeout=10)
    assert vm.proc.poll() is None
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
