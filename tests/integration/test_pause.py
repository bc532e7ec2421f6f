# SPDX-License-Identifier: MIT
"""Pause means stopped, for a VF, an ADI and the paravirtual NIC: a guest running
app=counter is paused while traffic is offered to it for a second; guest RAM (the
hdvm-ram memfd as hdvm maps it, read through /proc/PID/mem) hashes the same before
and after, the device's counters did not move and nothing was answered; resumed, the
counter answers again and continues where it stopped."""
import hashlib
import re
import time

import pytest

from netlib import NicNet, guest_ip
from test_pv_net import GUEST_IP as PV_IP, TAP as PV_TAP, PvNet, up

pytestmark = pytest.mark.kvm

TRAFFIC_S = 1.0


def guest_ram_hash(pid):
    """sha256 of every mapping of the guest RAM memfd in process pid."""
    ranges = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            if "/memfd:hdvm-ram" in line:
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                ranges.append((start, end))
    assert ranges, "no guest RAM mapping found in hdvm"
    h = hashlib.sha256()
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for start, end in ranges:
            mem.seek(start)
            left = end - start
            while left:
                chunk = mem.read(min(left, 1 << 20))
                assert chunk, "short read of guest RAM"
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()


def offer_traffic(traffic, ip, seconds=TRAFFIC_S):
    """Counter requests and pings at ip for `seconds`; returns how many were
    answered and how many counter requests were sent."""
    answered = 0
    end = time.monotonic() + seconds
    with traffic.udp_socket(timeout=0.02) as s:
        rid = 1_000_000
        while time.monotonic() < end:
            s.sendto(rid.to_bytes(8, "big"), (ip, 9000))
            rid += 1
            try:
                s.recvfrom(64)
                answered += 1
            except OSError:
                pass
    _, received, _ = traffic.ping(ip, count=3, interval="0.2")
    return answered + received, rid - 1_000_000


def counter(traffic, ip, rid):
    with traffic.udp_socket(timeout=2.0) as s:
        s.sendto(rid.to_bytes(8, "big"), (ip, 9000))
        data, _ = s.recvfrom(64)
    return int.from_bytes(data[8:16], "big")


def pause_under_traffic(pid, ctl, traffic, ip, device_counters, backlog=False):
    """backlog: the device keeps what arrives while paused (the paravirtual NIC's
    TAP queue) and the guest answers it after resume, so the counter may also
    have counted some of the requests offered while paused, never more."""
    before_pause = counter(traffic, ip, 1)
    r = ctl("pause")
    assert r.returncode == 0, r.stdout + r.stderr
    ram, devc = guest_ram_hash(pid), device_counters()
    answered, offered = offer_traffic(traffic, ip)
    assert answered == 0, "a paused VM answered"
    assert guest_ram_hash(pid) == ram, "guest RAM changed while the VM was paused"
    assert device_counters() == devc, "the device kept working while paused"
    r = ctl("resume")
    assert r.returncode == 0, r.stdout + r.stderr
    # the counter continues: only the requests it answered counted
    after = counter(traffic, ip, 2)
    if backlog:
        assert before_pause + 1 <= after <= before_pause + 1 + offered, (after, offered)
    else:
        assert after == before_pause + 1


@pytest.fixture
def net(tmp_path):
    n = NicNet(tmp_path, vfs=2)
    yield n
    n.close_checked()


def vf_counters(nic, dev):
    st = nic.dev_stats(dev)
    return {k: st[k] for k in st if re.match(r"(rx|tx)_(packets|bytes)$", k)}


def test_vf_pause_under_traffic(vms, net):
    vm = vms(cmdline=f"app=counter ip={guest_ip(0)}/24", extra=net.vf_args(0))
    vm.out.wait_for("counter: listening", timeout=30)
    pause_under_traffic(vm.proc.pid, vm.ctl, net, guest_ip(0),
                        lambda: vf_counters(net.nic, "vf0"))


def test_adi_pause_under_traffic(vms, net):
    net.nic.adi_add("p1")
    vm = vms(cmdline=f"app=counter ip={guest_ip(1)}/24",
             extra=["--vfio-user", str(net.nic.adi_sock("p1"))])
    vm.out.wait_for("counter: listening", timeout=30)
    pause_under_traffic(vm.proc.pid, vm.ctl, net, guest_ip(1),
                        lambda: vf_counters(net.nic, "adi-p1"))


@pytest.fixture
def pv(run_dir):
    n = PvNet(run_dir)
    yield n
    n.close()


def tap_counters(pv):
    """What the guest sent (the TAP's rx side), read inside the namespace."""
    r = pv.ns.exec("cat", f"/sys/class/net/{PV_TAP}/statistics/rx_packets",
                   f"/sys/class/net/{PV_TAP}/statistics/rx_bytes")
    return r.stdout.split()


def test_pv_pause_under_traffic(pv):
    vm = up(pv.start("counter"), "counter: listening")
    pause_under_traffic(vm.proc.pid, vm.ctl, pv, PV_IP, lambda: tap_counters(pv),
                        backlog=True)

