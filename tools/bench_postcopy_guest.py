#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Post-copy against pre-copy with auto-converge, on the same guest (issue 14):
an app=dirty guest (it rewrites --mib MiB pass after pass, faster than the
link) migrated over unix: three ways -- pre-copy (auto-converge throttles its
vCPUs until it converges), --postcopy (switch at once) and --postcopy-after 3.
Per mode: total time, downtime, and the guest's slowdown during the
migration: its passes per second while the migration runs (on the source,
then on the destination, whose pass count continues) against the same
guest's rate before it started.  Median of --runs; a table and JSON.

Boots guests: needs /dev/kvm, and refuses clearly without it (this build
host has none; tools/kvmlab's nested KVM runs under TCG, where timings mean
nothing).  The mechanism's own costs (fault round trip, push throughput)
are measured without a guest by build/bench-postcopy.

  tools/bench_postcopy_guest.py [--mib 256] [--mem 512M] [--runs 3] [--json FILE]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

PASS = re.compile(r"dirty: pass (\d+)")
MODES = {
    "precopy+auto-converge": [],
    "postcopy": ["--postcopy"],
    "postcopy-after-3": ["--postcopy-after", "3"],
}


def last_pass(*outs):
    best = -1
    for o in outs:
        for line in o.text().splitlines():
            m = PASS.search(line)
            if m:
                best = max(best, int(m.group(1)))
    return best


def one(mode, args, mib, mem):
    from hdvmlib import VM, hdvm_ctl
    from test_migrate import Incoming
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        src = VM(run_dir, "pcsrc", cmdline=f"app=dirty,mib={mib}", mem=mem, cpus=2)
        dst = None
        try:
            src.out.wait_for(r"dirty: pass 2\b", timeout=120)
            p0, t0 = last_pass(src.out), time.monotonic()
            time.sleep(3)
            base = (last_pass(src.out) - p0) / (time.monotonic() - t0)
            uri = f"unix:{tmp}/mig.sock"
            dst = Incoming(run_dir, uri, "pcdst")
            time.sleep(0.5)
            p1, t1 = last_pass(src.out), time.monotonic()
            r = hdvm_ctl(run_dir, "migrate", "pcsrc", uri, *args, "--json", timeout=600)
            if r.returncode:
                raise RuntimeError(f"{mode}: {r.stderr.strip()}")
            rep = json.loads(r.stdout.strip().splitlines()[-1])
            if rep.get("postcopy"):
                dst.err.wait_for(r"post-copy done", timeout=300)
            t2 = time.monotonic()
            during = (last_pass(src.out, dst.out) - p1) / (t2 - t1)
            dst.ctl("stop")
            return {"total_ms": rep["total_ms"], "downtime_ms": rep["downtime_ms"],
                    "passes": rep["passes"], "postcopy": bool(rep.get("postcopy")),
                    "guest_rate_before": base, "guest_rate_during": during,
                    "slowdown_pct": 100.0 * (1 - during / base) if base else None}
        finally:
            src.kill()
            if dst:
                dst.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--mem", default="512M")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("bench_postcopy_guest: refused: the guest-slowdown comparison boots guests "
              "and needs /dev/kvm, which this host does not have (build/bench-postcopy "
              "measures post-copy's fault round trip and push without a guest)",
              file=sys.stderr)
        return 2
    results = {}
    for mode, args in MODES.items():
        runs = [one(mode, args, a.mib, a.mem) for _ in range(a.runs)]
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("total_ms", "downtime_ms", "slowdown_pct")}
        results[mode] = {"median": med, "runs": runs}
    print(f"app=dirty,mib={a.mib} over unix:, median of {a.runs}")
    print(f"{'mode':24} {'total ms':>9} {'downtime ms':>12} {'guest slowdown':>15}")
    for mode, r in results.items():
        m = r["median"]
        print(f"{mode:24} {m['total_ms']:9.0f} {m['downtime_ms']:12.0f} "
              f"{m['slowdown_pct']:14.1f}%")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
