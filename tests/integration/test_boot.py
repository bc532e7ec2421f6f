# SPDX-License-Identifier: MIT
"""Booting hdguest: each entry protocol, exit codes, SMP, metrics, console routing."""
import json

import pytest

from hdvmlib import GUEST_BZIMAGE

# Every test here boots a guest.
pytestmark = pytest.mark.kvm


def test_hello_boots_and_exits_zero(vms):
    vm = vms(cmdline="app=hello")
    assert vm.wait() == 0, vm.err.text()
    assert "Hello from hdguest" in vm.out.text()
    assert "booted via linux64" in vm.out.text()


@pytest.mark.parametrize("code", [1, 42, 255])
def test_exit_code_propagates(vms, code):
    vm = vms(cmdline=f"app=hello,exit={code}")
    assert vm.wait() == code, vm.err.text()
    assert "Hello from hdguest" in vm.out.text()


def test_unknown_app_exits_2(vms):
    vm = vms(cmdline="app=nosuchapp")
    assert vm.wait() == 2
    assert "unknown app 'nosuchapp'" in vm.out.text()


def test_pvh_entry(vms):
    vm = vms(cmdline="app=hello", extra=["--boot", "pvh"])
    assert vm.wait() == 0, vm.err.text()
    assert "booted via pvh" in vm.out.text()
    assert "Hello from hdguest" in vm.out.text()


def test_bzimage_entry(vms):
    vm = vms(kernel=GUEST_BZIMAGE, cmdline="app=hello,exit=5")
    assert vm.wait() == 5, vm.err.text()
    assert "booted via linux64" in vm.out.text()
    assert "Hello from hdguest" in vm.out.text()


def test_cmdline_reaches_guest(vms):
    vm = vms(cmdline="app=hello console=ttyS0 marker=xyzzy")
    assert vm.wait() == 0
    assert "marker=xyzzy" in vm.out.text()


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_smp_reports_cpu_count(vms, cpus):
    vm = vms(cmdline="app=smp", cpus=cpus)
    assert vm.wait(timeout=60) == 0, vm.out.text() + vm.err.text()
    vm.out.wait_for(rf"smp: {cpus} cpus up \(mptable {cpus}\)", timeout=1)


def test_large_memory_above_4g_hole(vms):
    """RAM larger than the space below the MMIO hole is split around it: the
    guest's memory map has RAM from 4 GiB on, and the dirty pattern runs there
    (the app first checks every page keeps what is written: RAM, not a hole)."""
    vm = vms(cmdline="app=dirty,mib=16,high=1", mem="4G")
    vm.out.wait_for(r"dirty: area=0x100000000 mib=16", timeout=30)
    # 4 GiB = 3 GiB below the hole + 1 GiB from 4 GiB
    assert "dirty: RAM 0x100000000-0x140000000" in vm.out.text(), vm.out.text()
    assert "does not keep" not in vm.out.text()
    vm.out.wait_for(r"dirty: pass \d+", timeout=30)
    vm.kill()


def test_metrics_file(vms, tmp_path):
    path = tmp_path / "m.json"
    vm = vms(cmdline="app=hello", extra=["--metrics", str(path)])
    assert vm.wait() == 0
    m = json.loads(path.read_text())
    assert m["exit_code"] == 0
    assert 0 < m["start_to_first_run_us"] <= m["start_to_marker_us"] <= m["start_to_exit_us"]
    assert m["guest_resident_kib"] > 0
    assert m["peak_rss_kib"] > m["overhead_kib"] > 0


def test_console_to_file(vms, tmp_path):
    path = tmp_path / "console.log"
    vm = vms(cmdline="app=hello", extra=["--console", f"file:{path}"])
    assert vm.wait() == 0
    assert "Hello from hdguest" in path.read_text()
    assert "Hello from hdguest" not in vm.out.text()


def test_console_none(vms):
    vm = vms(cmdline="app=hello", extra=["--console", "none"])
    assert vm.wait() == 0
    assert vm.out.text() == ""
