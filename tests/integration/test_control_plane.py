# SPDX-License-Identifier: MIT
"""hdvm's control plane seen from the command line, without a VM (no KVM needed):
`hdvm ps`/`status` against control sockets whose server never answers, and runs
refused before anything is created (--metrics, a too-long run directory).
The server side is unit-tested on the real event loop (tests/unit/test_control.c)."""
import json
import socket
import subprocess
import time

from hdvmlib import GUEST, HDVM, hdvm_ctl


def run(run_dir, *args, timeout=20):
    return subprocess.run([str(HDVM), "run", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def silent_vm(run_dir, name):
    """A control socket whose VM never answers (SIGSTOPped, wedged)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(run_dir / f"{name}.sock"))
    s.listen(8)
    return s


def test_ps_lists_unresponsive_vms_in_parallel(run_dir):
    stopped = [silent_vm(run_dir, "stopped1"), silent_vm(run_dir, "stopped2")]
    stale = silent_vm(run_dir, "gone")
    stale.close()                       # a socket file nobody listens on
    t0 = time.monotonic()
    r = hdvm_ctl(run_dir, "ps")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(rows) == {"stopped1", "stopped2"}, r.stdout
    assert all("unresponsive" in rows[n] for n in rows), r.stdout
    assert took < 3.0, f"hdvm ps took {took:.1f} s: VMs queried one after another?"

    r = hdvm_ctl(run_dir, "ps", "--json")
    listed = {v["name"]: v for v in json.loads(r.stdout)}
    assert listed["stopped1"]["state"] == "unresponsive"
    for s in stopped:
        s.close()


def test_status_of_silent_vm_says_so(run_dir):
    s = silent_vm(run_dir, "quiet")
    r = hdvm_ctl(run_dir, "status", "quiet", timeout=30)
    assert r.returncode == 1
    assert "did not answer" in r.stderr, r.stderr
    s.close()


def test_busy_control_socket_reason_is_shown(run_dir):
    """A server that refuses (here: a fake one) is quoted, not 'Broken pipe'."""
    s = silent_vm(run_dir, "busy")
    conn = None

    def refuse():
        nonlocal conn
        conn, _ = s.accept()
        conn.sendall(b'{"ok":false,"error":"too many control connections (16 busy)"}\n')
        conn.close()

    import threading
    t = threading.Thread(target=refuse)
    t.start()
    r = hdvm_ctl(run_dir, "status", "busy")
    t.join()
    assert r.returncode == 1
    assert "too many control connections" in r.stderr, r.stderr
    s.close()


def test_unwritable_metrics_refused_before_anything(run_dir, tmp_path):
    r = run(run_dir, "--kernel", str(GUEST), "--metrics", str(tmp_path / "no" / "m.json"))
    assert r.returncode == 1
    assert "--metrics" in r.stderr and "No such file" in r.stderr, r.stderr
    assert list(run_dir.iterdir()) == []
    assert not list(tmp_path.glob("no*"))


def test_run_dir_too_long_creates_nothing(tmp_path):
    d = tmp_path / ("x" * 120)
    r = run(d, "--kernel", str(GUEST), "--name", "vm")
    assert r.returncode == 1
    assert "too long" in r.stderr, r.stderr
    assert not d.exists()
