#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Remus benchmark (`make bench-remus`; not a test): an app=counter microVM on
a VF of host A, protected by a standby on host B, a client sending numbered
requests every few ms.  For each epoch length: pause p50/p99 and checkpoint
bytes per epoch (from `hdvm status`), the client's request latency p50/p99
and reply rate, against the same VM unprotected; then the failover time
(host A's hdvm SIGKILLed -> the client's first reply from B).

    tools/bench_remus.py [--epochs 5,20,50,100] [--seconds 3] [--failover-ms 100]

Needs /dev/kvm: it cannot be measured on the build hosts (no KVM); the
figures for everything but the vCPUs come from `make bench-remus-parts`.
Not yet here: app=dirty at several dirty rates, and PV virtio-net against the
VF under checkpointing (ReNIC's comparison).
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from hdvmlib import hdvm_ctl  # noqa: E402
from remuslib import Client, Protected, first_reply, try_status, two_hosts  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, len(xs) * p // 100)] if xs else float("nan")


def measure(hosts, seconds):
    c = Client(hosts)
    c.start()
    time.sleep(seconds)
    c.stop()
    c.check()
    lat = [(t - c.sent[rid]) * 1000 for rid, _, t in c.replies if rid in c.sent]
    return pct(lat, 50), pct(lat, 99), len(c.replies) / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="5,20,50,100")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--failover-ms", type=int, default=100)
    a = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        print("bench-remus needs /dev/kvm; without it see `make bench-remus-parts`")
        return 2
    tmp, run_dirs, hosts = two_hosts("hdvm-bench-remus.")
    p = None
    try:
        p = Protected(hosts, tmp, run_dirs)
        with hosts.udp_socket() as s:
            first_reply(s, 1 << 40)
        base = measure(hosts, a.seconds)
        print(f"{'epoch ms':>8} {'pause p50':>10} {'pause p99':>10} {'ckpt KiB':>9} "
              f"{'lat p50':>8} {'lat p99':>8} {'replies/s':>9}")
        print(f"{'none':>8} {'-':>10} {'-':>10} {'-':>9} {base[0]:7.2f}m {base[1]:7.2f}m "
              f"{base[2]:9.0f}")
        for i, ep in enumerate(int(x) for x in a.epochs.split(",")):
            p.uri = f"unix:{tmp}/ckpt-{i}.sock"
            p.start_standby()
            p.protect("a", "--epoch-ms", str(ep), "--failover-ms", str(a.failover_ms))
            lat = measure(hosts, a.seconds)
            st = try_status(run_dirs["a"], "ctr")
            print(f"{ep:>8} {st.get('pause_p50_us', 0) / 1000:9.2f}m "
                  f"{st.get('pause_p99_us', 0) / 1000:9.2f}m "
                  f"{st.get('checkpoint_bytes', 0) / 1024:9.1f} {lat[0]:7.2f}m {lat[1]:7.2f}m "
                  f"{lat[2]:9.0f}")
            hdvm_ctl(run_dirs["a"], "checkpoint", "ctr", "--stop", timeout=30)
            p.standby.wait(10)
        # failover time: kill A's hdvm while protected, first reply from B
        p.uri = f"unix:{tmp}/ckpt-failover.sock"
        p.start_standby()
        p.protect("a", "--failover-ms", str(a.failover_ms))
        c = Client(hosts)
        c.start()
        time.sleep(1.0)
        t_kill = time.monotonic()
        p.primary.kill()
        t_first = c.first_reply_after(t_kill, 10, "B never answered")
        c.stop()
        c.check()
        print(f"failover: first reply from B {(t_first - t_kill) * 1000:.0f} ms after the "
              f"kill (heartbeat 10 ms, failover {a.failover_ms} ms)")
        return 0
    finally:
        if p:
            p.close()
        hosts.close()


if __name__ == "__main__":
    sys.exit(main())
