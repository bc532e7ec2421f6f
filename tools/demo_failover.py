#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Remus failover demo (`make demo-failover`): a client, host A, host B.

An app=counter microVM on host A's VF is protected by a standby on host B
(`hdvm checkpoint`, `hdvm run --standby`); a client in its own namespace sends
numbered requests every few ms; host A (its hdvm and its hdnic) is killed
with SIGKILL at a random moment; the standby takes over.  Printed: a timeline
of the client's reply rate and latency (100 ms bins, the kill and the first
reply from B marked) as gnuplot ASCII, the same as a PNG, and the verdict:
every reply the client ever got is still reflected after the takeover (the
counter goes on above the last one seen) and the counter never went back.

    tools/demo_failover.py [--epoch-ms 20] [--heartbeat-ms 10] [--failover-ms 100]
                           [--before 3] [--after 2] [--png FILE] [--ascii FILE]

Needs /dev/kvm (or tools/kvmlab), root (namespaces) and a built tree.
"""
import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from remuslib import Client, Protected, first_reply, try_status, two_hosts  # noqa: E402


def timeline(c, t0, bin_s=0.1):
    """(t, replies/s, latency p50 ms, max ms) per bin from t0."""
    bins = {}
    for rid, _, t in c.replies:
        lat = (t - c.sent.get(rid, t)) * 1000
        bins.setdefault(int((t - t0) / bin_s), []).append(lat)
    last = max(bins) if bins else 0
    rows = []
    for b in range(last + 1):
        lats = sorted(bins.get(b, []))
        rows.append((b * bin_s, len(lats) / bin_s, lats[len(lats) // 2] if lats else 0,
                     lats[-1] if lats else 0))
    return rows


def plot(rows, t_kill, t_first, png):
    data = "".join(f"{t:.2f} {rate:.0f} {p50:.2f} {mx:.2f}\n" for t, rate, p50, mx in rows)
    marks = (f"set arrow from {t_kill:.2f}, graph 0 to {t_kill:.2f}, graph 1 nohead\n"
             f"set label 'kill A' at {t_kill:.2f}, graph 0.95\n")
    if t_first is not None:
        marks += (f"set arrow from {t_first:.2f}, graph 0 to {t_first:.2f}, graph 1 nohead\n"
                  f"set label 'B answers' at {t_first:.2f}, graph 0.85\n")
    body = (marks + "set xlabel 'time (s)'\nset ylabel 'replies/s'\nset y2label 'latency ms'\n"
            "set y2tics\nset key bottom right\n"
            "plot '-' using 1:2 with lines title 'reply rate', "
            "'-' using 1:4 axes x1y2 with lines title 'max latency'\n"
            f"{data}e\n{data}e\n")
    ascii_out = subprocess.run(["gnuplot"], input="set terminal dumb size 100,28\n" + body,
                               capture_output=True, text=True).stdout
    subprocess.run(["gnuplot"], input=f"set terminal png size 1000,500\nset output '{png}'\n"
                   + body, capture_output=True, text=True)
    return ascii_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epoch-ms", type=int, default=20)
    ap.add_argument("--heartbeat-ms", type=int, default=10)
    ap.add_argument("--failover-ms", type=int, default=100)
    ap.add_argument("--before", type=float, default=3.0, help="protected seconds, at most")
    ap.add_argument("--after", type=float, default=2.0, help="seconds after B answers")
    ap.add_argument("--png", default="build/demo-failover.png")
    ap.add_argument("--ascii", default="build/demo-failover.txt")
    a = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        print("demo-failover needs /dev/kvm (try: tools/kvmlab -- make demo-failover)")
        return 2
    tmp, run_dirs, hosts = two_hosts("hdvm-demo-failover.")
    p = c = None
    try:
        p = Protected(hosts, tmp, run_dirs)
        p.start_standby()
        with hosts.udp_socket() as s:
            first_reply(s, 1 << 40)
        c = Client(hosts)
        t0 = time.monotonic()
        c.start()
        p.protect("a", "--epoch-ms", str(a.epoch_ms), "--heartbeat-ms", str(a.heartbeat_ms),
                  "--failover-ms", str(a.failover_ms))
        time.sleep(random.uniform(0.5, a.before))
        seen = max((r[1] for r in c.replies), default=0)
        t_kill = time.monotonic()
        p.primary.kill()                       # host A dies: its hdvm ...
        hosts.nic["a"].proc.kill()             # ... and its NIC
        t_first = c.first_reply_after(t_kill, 10, "host B never answered")
        time.sleep(a.after)
        c.stop()
        last = c.check()
        ok = last > seen
        rows = timeline(c, t0)
        art = plot(rows, t_kill - t0, t_first - t0, a.png)
        Path(a.ascii).write_text(art)
        print(art)
        st = try_status(run_dirs["b"], "ctr")
        print(f"replies: {len(c.replies)}; last counter seen before the kill {seen}, "
              f"after the takeover {last}; B took over from checkpoint "
              f"{st.get('took_over_from_epoch')}; first reply from B "
              f"{(t_first - t_kill) * 1000:.0f} ms after the kill")
        print("verdict:", "OK -- nothing a client saw was lost, the counter never went back"
              if ok else "VIOLATION")
        print(f"plot: {a.png}, {a.ascii}")
        return 0 if ok else 1
    finally:
        if c:
            c.stop_flag.set()
        if p:
            p.close()
        hosts.close()


if __name__ == "__main__":
    sys.exit(main())
