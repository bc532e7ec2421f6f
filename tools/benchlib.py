# SPDX-License-Identifier: MIT
"""What the host-side network benchmarks (bench_net.py, bench_flowctl.py)
share: commands, a process's CPU time, and an hdnic started inside the
tool's namespace with its TAP uplink addressed and up, then stopped."""
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("HDVM_BUILD", ROOT / "build"))


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def ns_exec(ns, *cmd, check=True):
    return sh("ip", "netns", "exec", ns, *cmd, check=check)


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc, timeout=10):
    """SIGTERM, then SIGKILL if it is still there after timeout seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_hdnic(ns, nic_dir, vfs, host_ip, *args, tap="hdt0"):
    """hdnic in namespace ns with vfs VFs (sockets in nic_dir) on uplink
    tap:TAP, which gets host_ip/24 and is up once the last VF's socket is
    there (5 s at most)."""
    nic = subprocess.Popen(["ip", "netns", "exec", ns, str(BUILD / "hdnic"), "--dir",
                            str(nic_dir), "--vfs", str(vfs), "--uplink", f"tap:{tap}", *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if Path(f"{nic_dir}/vf{vfs - 1}.sock").exists():
            break
        time.sleep(0.025)
    try:
        ns_exec(ns, "ip", "addr", "add", f"{host_ip}/24", "dev", tap)
        ns_exec(ns, "ip", "link", "set", tap, "up")
    except BaseException:
        stop(nic)
        raise
    return nic
