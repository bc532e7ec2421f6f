# SPDX-License-Identifier: MIT
"""hdvm attaching hdnic VFs over vfio-user: attach, detach, reconnect, a server that
dies under a running VM, bad device specs.  Networking through the VF is covered in
test_net_*.py; these tests need no guest driver."""
import socket
import subprocess
import time

import pytest

from hdvmlib import HDNIC, HDVM, GUEST, status
from vfio_user_client import wait_for
from nichost import Hdnic

# Every test here boots a guest.
pytestmark = pytest.mark.kvm


@pytest.fixture
def nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=2, uplink="tap:hdt0", netns=ns)
    yield n
    n.stop()


def client_attached(nic, vf):
    return nic.vf_info(vf).get("client") in (True, "yes", 1)


def test_vf_attached_while_vm_runs_and_released_after(vms, nic):
    vm = vms(cmdline="app=idle", extra=["--vfio-user", str(nic.sock(0))])
    vm.out.wait_for("idle: halting")
    assert wait_for(lambda: client_attached(nic, 0), timeout=5), nic.vf_info(0)
    assert not client_attached(nic, 1)
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
    # the VF was reset and is free for the next VM
    assert wait_for(lambda: not client_attached(nic, 0), timeout=5), nic.vf_info(0)
    vm2 = vms(cmdline="app=idle", extra=["--vfio-user", str(nic.sock(0))])
    vm2.out.wait_for("idle: halting")
    assert wait_for(lambda: client_attached(nic, 0), timeout=5)
    vm2.ctl("stop")
    assert vm2.wait(10) == 0


def test_two_vfs_in_one_vm(vms, nic):
    vm = vms(cmdline="app=idle",
             extra=["--vfio-user", str(nic.sock(0)), "--vfio-user", str(nic.sock(1))])
    vm.out.wait_for("idle: halting")
    assert wait_for(lambda: client_attached(nic, 0) and client_attached(nic, 1), timeout=5)


def test_hdnic_killed_under_running_vm(vms, nic, run_dir):
    vm = vms(cmdline="app=idle", extra=["--vfio-user", str(nic.sock(0))])
    vm.out.wait_for("idle: halting")
    nic.stop(sig=9)
    vm.err.wait_for(r"server disconnected; device removed, the VM keeps running", timeout=10)
    time.sleep(0.5)
    assert vm.proc.poll() is None, "hdvm died with its device server"
    assert status(run_dir, vm.name)["state"] == "running"
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
    assert list(run_dir.iterdir()) == []


def test_same_vf_twice_is_refused(vms, nic, run_dir):
    a = vms(cmdline="app=idle", extra=["--vfio-user", str(nic.sock(0))])
    a.out.wait_for("idle: halting")
    b = vms(cmdline="app=idle", extra=["--vfio-user", str(nic.sock(0))])
    assert b.wait(20) == 1
    assert "cannot attach" in b.err.text() or "refused" in b.err.text(), b.err.text()
    assert a.proc.poll() is None
    assert status(run_dir, a.name)["state"] == "running"


def run_refused(run_dir, *args):
    r = subprocess.run([str(HDVM), "run", "--kernel", str(GUEST), "--run-dir", str(run_dir),
                        "--cmdline", "app=hello", *args],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    assert list(run_dir.iterdir()) == []
    return r.stderr


def test_missing_socket(run_dir, tmp_path):
    err = run_refused(run_dir, "--vfio-user", str(tmp_path / "nope.sock"))
    assert "nope.sock" in err and "cannot attach" in err


def test_server_that_is_not_vfio_user(run_dir, tmp_path):
    path = tmp_path / "liar.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    import threading

    def answer_garbage():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot a vfio-user server" + b"\0" * 64)
        c.close()

    t = threading.Thread(target=answer_garbage, daemon=True)
    t.start()
    err = run_refused(run_dir, "--vfio-user", str(path))
    assert "cannot attach" in err
    srv.close()


def test_kernel_vfio_without_vfio_on_host(run_dir):
    err = run_refused(run_dir, "--vfio", "0000:01:00.1")
    assert "0000:01:00.1" in err
    err = run_refused(run_dir, "--vfio", "/dev/vfio/devices/vfio0")
    assert "vfio0" in err


def test_sleeping_guest_hears_of_device_removal(vms, nic, run_dir):
    """A guest asleep in idle mode (its safety-net timer is a minute away) learns
    at once that its device was removed: hdvm raises the device's unmasked
    MSI-X vectors, the way a hot-plug slot interrupts on presence change."""
    # gone_wait=0: no waiting for the device to come back (see test_net_vf's restart test)
    vm = vms(cmdline="app=counter ip=10.66.0.11/24 gone_wait=0",
             extra=["--vfio-user", str(nic.sock(0))])
    vm.out.wait_for(r"net: idle mode on: rx msi-x vector 0x40, timer ~60 s", timeout=30)
    time.sleep(0.5)                           # asleep by now (idle after ~2 ms)
    t0 = time.monotonic()
    nic.stop(sig=9)
    vm.out.wait_for("virtio-net: device gone", timeout=8)
    assert time.monotonic() - t0 < 8
    assert vm.wait(15) == 1
    assert list(run_dir.iterdir()) == []


def test_stalled_server_times_out_and_vm_survives(vms, nic, run_dir):
    """A device server that stops answering (SIGSTOP) must not hang or kill hdvm:
    the trapped access times out, the device is removed, the VM runs on."""
    import signal
    # idle_wake=1: the sleeping guest looks at its device every second, and
    # only a guest access can find a stalled (not disconnected) server;
    # gone_wait=10 (rough-TSC seconds, >= 5.7 s up to a 3.5 GHz TSC): the guest
    # must outlast --vfio-timeout, or it powers off on the first all-ones read
    # (20 ms) before hdvm declares the device lost
    vm = vms(cmdline="app=counter ip=10.66.0.10/24 idle_wake=1 gone_wait=10",
             extra=["--vfio-user", str(nic.sock(0)), "--vfio-timeout", "3000"])
    vm.out.wait_for("counter: listening", timeout=30)
    nic.proc.send_signal(signal.SIGSTOP)
    try:
        # the guest checks its device every ~0.5 s: the read is slow (all-ones after
        # 20 ms), and the device is lost only after --vfio-timeout
        vm.err.wait_for(r"server slow to answer", timeout=20)
        vm.err.wait_for(r"device lost: .*\(Connection timed out\)", timeout=20)
        vm.err.wait_for(r"device removed, the VM keeps running", timeout=5)
        vm.out.wait_for("virtio-net: device gone", timeout=30)
        time.sleep(0.5)
        assert "seccomp" not in vm.err.text(), vm.err.text()
    finally:
        nic.proc.send_signal(signal.SIGCONT)
    # the guest app exits with status 1 when its device is gone; hdvm passes it on
    assert vm.wait(15) == 1
    assert list(run_dir.iterdir()) == []
