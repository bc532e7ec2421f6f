# SPDX-License-Identifier: MIT
"""ps/status/pause/resume/stop through the control socket; idle cost; signals; seccomp."""
import json
import signal
import time
from pathlib import Path

from hdvmlib import cpu_seconds, hdvm_ctl, status
import pytest

# Every test here boots a guest.
pytestmark = pytest.mark.kvm


def progress_lines(vm):
    return vm.out.count(r"^dirty: pass \d+")


def test_pause_stops_progress_and_resume_restarts_it(vms, run_dir):
    vm = vms(cmdline="app=dirty,mib=8")
    vm.out.wait_for(r"dirty: pass \d+", timeout=30)
    vm.out.wait_for(r"dirty: pass \d+", timeout=10, start=len(vm.out.lines))

    r = vm.ctl("pause")
    assert r.returncode == 0, r.stderr
    assert "paused" in r.stdout
    assert status(run_dir, vm.name)["state"] == "paused"
    time.sleep(0.3)                      # a line in flight may still arrive
    before = progress_lines(vm)
    cpu_before = cpu_seconds(vm.pid)
    time.sleep(2.0)
    assert progress_lines(vm) == before, "a paused guest made progress"
    assert cpu_seconds(vm.pid) - cpu_before < 0.1, "a paused guest burned CPU"

    r = vm.ctl("resume")
    assert r.returncode == 0, r.stderr
    assert status(run_dir, vm.name)["state"] == "running"
    vm.out.wait_for(r"dirty: pass \d+", timeout=10, start=len(vm.out.lines))

    # pausing twice and resuming a running VM are harmless no-ops
    assert vm.ctl("pause").returncode == 0
    assert vm.ctl("pause").returncode == 0
    assert vm.ctl("resume").returncode == 0
    assert vm.ctl("resume").returncode == 0


def test_stop_exits_cleanly_and_leaves_nothing(vms, run_dir):
    vm = vms(cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    assert (run_dir / f"{vm.name}.sock").exists()
    r = vm.ctl("stop")
    assert r.returncode == 0, r.stderr
    assert vm.wait(10) == 0
    assert list(run_dir.iterdir()) == []


def test_stop_paused_vm(vms, run_dir):
    vm = vms(cmdline="app=dirty,mib=4")
    vm.out.wait_for(r"dirty: pass")
    assert vm.ctl("pause").returncode == 0
    assert vm.ctl("stop").returncode == 0
    assert vm.wait(10) == 0
    assert list(run_dir.iterdir()) == []


def test_idle_guest_costs_no_cpu(vms):
    vm = vms(cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    time.sleep(0.5)
    before = cpu_seconds(vm.pid)
    time.sleep(5.0)
    used = cpu_seconds(vm.pid) - before
    assert used < 0.1, f"idle guest used {used:.2f} s of CPU in 5 s (limit 2%)"


def test_ps_lists_running_vms(vms, run_dir):
    a = vms(name="alpha", cmdline="app=idle")
    b = vms(name="beta", cmdline="app=idle", cpus=2)
    a.out.wait_for("idle: halting")
    b.out.wait_for("idle: halting")
    r = hdvm_ctl(run_dir, "ps")
    assert r.returncode == 0
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["alpha", "beta"]
    assert rows[0][1] == str(a.pid) and rows[1][3] == "2"
    listing = json.loads(hdvm_ctl(run_dir, "ps", "--json").stdout)
    assert {v["name"]: v["pid"] for v in listing} == {"alpha": a.pid, "beta": b.pid}


def test_status_reports_boot_metrics(vms, run_dir):
    vm = vms(cmdline="app=idle", cpus=2, mem="96M")
    vm.out.wait_for("idle: halting")
    s = status(run_dir, vm.name)
    assert s["pid"] == vm.pid and s["vcpus"] == 2 and s["memory_mib"] == 96
    assert s["state"] == "running"
    assert 0 < s["start_to_first_run_us"] <= s["start_to_marker_us"]
    r = vm.ctl("status")
    assert "start_to_marker_us" in r.stdout


def test_sigterm_stops_vm_and_cleans_up(vms, run_dir):
    vm = vms(cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    vm.proc.send_signal(signal.SIGTERM)
    assert vm.wait(10) == 128 + signal.SIGTERM
    assert list(run_dir.iterdir()) == []


def test_stale_socket_is_taken_over(vms, run_dir):
    vm = vms(name="stale", cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    vm.kill()                           # SIGKILL: socket and lock file stay behind
    assert (run_dir / "stale.sock").exists()
    assert hdvm_ctl(run_dir, "status", "stale").returncode == 1
    vm2 = vms(name="stale", cmdline="app=idle")
    vm2.out.wait_for("idle: halting")
    assert status(run_dir, "stale")["pid"] == vm2.pid


def seccomp_modes(pid):
    modes = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Seccomp:"):
                modes.append(int(line.split()[1]))
    return modes


def test_every_thread_is_seccomp_filtered(vms):
    vm = vms(cmdline="app=idle", cpus=2)
    vm.out.wait_for("idle: halting")
    time.sleep(0.2)
    modes = seccomp_modes(vm.pid)
    assert len(modes) >= 3 and all(m == 2 for m in modes), modes


def test_no_seccomp_option(vms):
    vm = vms(cmdline="app=idle", extra=["--no-seccomp"])
    vm.out.wait_for("idle: halting")
    assert set(seccomp_modes(vm.pid)) == {0}
