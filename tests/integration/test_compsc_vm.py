# SPDX-License-Identifier: MIT
"""CompSC with a real guest (needs /dev/kvm; the protocol itself is proven
without KVM by test_compsc_python.py and tests/unit/test_vfio_compsc.c):
hdguest's counter app on a `--no-migration` VF of host A's hdnic moves with
`hdvm migrate` to a `--no-migration` VF of host B's; hdguest's driver opts
into CompSC, hdvm takes the write lock, resets A's function, replays the
PF-held state on B, and the driver restores B's function.  The issue's
tests: counter continuing with losses only within the downtime and no
duplicates, statistics continuous; a driver holding the read lock makes
the migration fail cleanly; a guest that did not opt in is refused with a
message naming the device."""
import json
import re
import subprocess
import time

import pytest

from hdvmlib import GUEST, HDVM, Output, hdvm_ctl, status
from test_migrate import free_port
from test_checkpoint import COUNTER_IP, TIME_SCALE, Client, run_dirs, wait_until  # noqa: F401

pytestmark = pytest.mark.kvm


@pytest.fixture
def hosts(tmp_path):
    from hosts import TwoHosts
    h = TwoHosts(tmp_path, vfs=1, extra=["--no-migration"])
    yield h
    h.close()


def start_vm(hosts, run_dirs, name, extra_cmdline=""):
    proc = subprocess.Popen(
        [str(HDVM), "run", "--kernel", str(GUEST), "--cmdline",
         f"app=counter ip={COUNTER_IP}/24 {extra_cmdline}".strip(), "--mem", "32M",
         "--name", name, "--run-dir", str(run_dirs["a"]),
         "--vfio-user", str(hosts.nic["a"].sock(0))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = Output(proc.stdout), Output(proc.stderr)
    out.wait_for(r"counter: listening", timeout=30)
    return proc, out, err


def incoming(hosts, run_dirs, uri, name):
    proc = subprocess.Popen(
        [str(HDVM), "run", "--incoming", uri, "--name", name, "--run-dir", str(run_dirs["b"]),
         "--vfio-user", str(hosts.nic["b"].sock(0))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    return proc, Output(proc.stdout), Output(proc.stderr)


def kill(*procs):
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait(10)


def test_counter_moves_the_compsc_way(hosts, run_dirs, tmp_path):
    src, out, _err = start_vm(hosts, run_dirs, "ctr")
    assert "CompSC on" in out.text()
    client = Client(hosts)
    dst = None
    try:
        client.start()
        wait_until(lambda: len(client.replies) > 50, 20, "counter answers on A")
        # tcp: (RAM copied), not unix:, whose destination adopts the source's memfd after
        # its passthrough device DMA-mapped its own (the device would see stale RAM)
        uri = f"tcp:127.0.0.1:{free_port()}"
        dst, dout, derr = incoming(hosts, run_dirs, uri, "ctr")
        t0 = time.monotonic()
        r = hdvm_ctl(run_dirs["a"], "migrate", "ctr", uri, "--json", timeout=120)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        assert src.wait(20) == 0
        m = dout.wait_for(r"CompSC: device reset by a migration \(counter 1\), restored; "
                          r"device rx_packets (\d+) tx_packets (\d+)", timeout=20)
        n = len(client.replies)
        try:
            wait_until(lambda: len(client.replies) > n + 50, 20, "counter answers on B")
        except AssertionError:
            print("destination console:\n", dout.text()[-3000:], "\nstderr:\n", derr.text(),
                  "\nB vf0:", hosts.nic["b"].dev_info("vf0"), hosts.nic["b"].dev_stats("vf0"))
            raise
        client.stop()
        last = client.check()                       # strictly increasing
        rids = [rid for rid, _, _ in client.replies]
        assert len(rids) == len(set(rids)), "a request was answered twice"
        # replies missing only within the downtime, plus what CompSC adds after it: the
        # driver's restore (register writes, each a trap) and its announce
        times = [t for _, _, t in client.replies if t > t0]
        gap = max(b - a for a, b in zip(times, times[1:]))
        assert gap * 1000 <= rep["downtime_ms"] + 500 * TIME_SCALE, (gap, rep)
        # statistics continuous: the old device's count came along (hdvm's residual)
        a = hosts.nic["a"].dev_stats("vf0")
        assert int(m.group(1)) == a["rx_packets"] and int(m.group(2)) == a["tx_packets"]
        assert hosts.nic["b"].dev_info("vf0")["mac"] == hosts.nic["a"].dev_info("vf0")["mac"]
        print(f"CompSC VM: downtime {rep['downtime_ms']} ms, reply gap {gap * 1000:.1f} ms, "
              f"counter {last}")
        assert hdvm_ctl(run_dirs["b"], "stop", "ctr").returncode == 0
    finally:
        if client.is_alive():
            client.stop()
        kill(src, dst)


def test_driver_holding_the_lock_fails_the_migration_cleanly(hosts, run_dirs, tmp_path):
    src, out, _err = start_vm(hosts, run_dirs, "stuck", "compsc_stuck=1")
    dst = None
    try:
        uri = f"unix:{tmp_path}/mig.sock"
        dst, _, _ = incoming(hosts, run_dirs, uri, "stuck")
        r = hdvm_ctl(run_dirs["a"], "migrate", "stuck", uri, timeout=120)
        assert r.returncode != 0
        assert "held the CompSC lock for more than 500 ms" in r.stderr, r.stderr
        assert status(run_dirs["a"], "stuck")["state"] == "running"
        client = Client(hosts)
        client.start()
        wait_until(lambda: len(client.replies) > 20, 20, "the source answers on")
        client.stop()
        assert hosts.nic["a"].dev_info("vf0")["device_status"] & 4, "A's device was reset"
    finally:
        kill(src, dst)


def test_guest_that_did_not_opt_in_is_refused(hosts, run_dirs, tmp_path):
    src, out, _err = start_vm(hosts, run_dirs, "plain", "compsc=0")
    assert "CompSC offered, not used" in out.text()
    uri = f"unix:{tmp_path}/mig.sock"
    dst, _, _ = incoming(hosts, run_dirs, uri, "plain")
    try:
        r = hdvm_ctl(run_dirs["a"], "migrate", "plain", uri, timeout=60)
        assert r.returncode != 0
        assert re.search(r"device vfio0 \(vfio-pci\) cannot migrate: .*has no VFIO migration "
                         r"support and its guest driver did not opt into CompSC", r.stderr), \
            r.stderr
        assert status(run_dirs["a"], "plain")["state"] == "running"
    finally:
        kill(src, dst)
