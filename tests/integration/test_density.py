# SPDX-License-Identifier: MIT
"""Density: tools/density.py boots 50 microVMs with an ADI each of one hdnic (and
a few with VFs), every guest's counter app must answer correctly from the
tool's namespace, and tearing down must leave no process, socket, TAP or
memory behind.  Only addresses inside the tool's own namespace are used."""
import json
import os
import subprocess
import sys

import pytest

from hdvmlib import BUILD, ROOT

TOOL = ROOT / "tools" / "density.py"


def run_density(tmp_path, *args, timeout=170):
    out = tmp_path / "density.json"
    env = dict(os.environ, HDVM_BUILD=str(BUILD))
    argv = [sys.executable, str(TOOL), "--json", str(out), "--ready-timeout",
            str(timeout - 60), "--idle-window", "3", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()                   # the tool tears its VMs down on SIGTERM
        stdout, stderr = proc.communicate(timeout=60)
        raise AssertionError(f"density.py took over {timeout}s:\n{stdout}{stderr}")
    p = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    report = json.loads(out.read_text()) if out.exists() else None
    return p, report


def assert_all_good(p, r, n, mode):
    assert p.returncode == 0, p.stdout + p.stderr
    assert r["ok"] and r["errors"] == [], r["errors"]
    assert r["n"] == n and r["mode"] == mode
    assert r["launched"] == n and r["ready"] == n
    assert r["counter_checks"] == {"per_guest": 3, "bad_guests": 0}
    assert r["stop_exit_codes"] == {"0": n}
    assert r["leaks"] == []
    # the measurements are there and plausible
    assert 0 < r["attach_us"]["p50"] <= r["attach_us"]["p99"] < 1e6
    assert 0 < r["time_to_ready_ms"]["p50"] <= r["time_to_ready_ms"]["p99"]
    assert r["launch_rate_vms_per_s"] > 0
    assert 256 < r["hdvm_overhead_kib"]["p50"] < 16384
    assert r["guest_resident_kib_p50"] > 0
    assert r["hdnic_kib_per_device"] > 0
    assert r["processes_rss_mib"] * 1024 > n * r["hdvm_overhead_kib"]["p50"]
    assert "host_mem_used_mib" in r          # other work on the host moves it either way
    assert 0 <= r["idle_cpu"]["host_busy_pct"] <= 100
    assert r["idle_cpu"]["hdvm_and_hdnic_pct_of_a_core"] >= 0
    assert r["idle_cpu"]["hdvm_wakeups_per_vm_s"] >= 0
    assert 0 < r["hdvm_start_to_first_run_us"]["p50"]
    assert "answered" in p.stdout and f"{n} of {n}" in p.stdout
    # every guest announces itself, so the namespace's ARP requests go to
    # their owners only; one that overtakes its guest's announcement floods
    arp = r["hdnic_counters"]["arp"]
    assert arp["bindings"] >= n and arp["directed"] + arp["flooded"] >= n, arp
    assert arp["flooded"] <= max(1, n // 10), arp


@pytest.mark.kvm
def test_fifty_adis(tmp_path):
    p, r = run_density(tmp_path, "--n", "50", "--mode", "adi")
    assert r is not None, p.stdout + p.stderr
    assert_all_good(p, r, 50, "adi")
    print("\n" + p.stdout)


@pytest.mark.kvm
def test_vfs(tmp_path):
    p, r = run_density(tmp_path, "--n", "8", "--mode", "vf", timeout=120)
    assert r is not None, p.stdout + p.stderr
    assert_all_good(p, r, 8, "vf")


def test_bad_arguments(tmp_path):
    for args, msg in ((["--n", "0"], "expected 1.."), (["--mode", "vf", "--n", "300"], "at most 256 VFs"),
                      (["--concurrency", "0"], "must be positive"), (["--mode", "sriov"], "invalid choice")):
        p = subprocess.run([sys.executable, str(TOOL), "--json", str(tmp_path / "x.json"), *args],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 2 and msg in p.stderr, (args, p.stderr)
        assert not (tmp_path / "x.json").exists()
