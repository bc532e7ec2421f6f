#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Time to ready against N: runs tools/density.py once per N and plots.

    tools/density_sweep.py [--ns 50,100,200,500,1000] [--mode adi|vf]
                           [--json FILE] [--plot FILE]

Prints a table (launch rate, time to ready p50/p99, attach p50 per N) and an ASCII chart of time to ready against N drawn by gnuplot's dumb
terminal, writes both as JSON and as text.  Exit status 1 if any run failed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DENSITY = ROOT / "tools" / "density.py"


def run_one(n, mode, idle_window):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        p = subprocess.run([sys.executable, str(DENSITY), "--n", str(n), "--mode", mode,
                            "--idle-window", str(idle_window), "--json", out.name],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        try:
            r = json.loads(Path(out.name).read_text())
        except (OSError, ValueError):
            r = {"ok": False, "errors": [p.stderr[-2000:]]}
    r["exit_status"] = p.returncode
    return r


def plot(points):
    """ASCII chart of time to ready (p50, p99) against N, by gnuplot."""
    data = "".join(f"{n} {p50 / 1000:.3f} {p99 / 1000:.3f}\n" for n, p50, p99 in points)
    script = ("set terminal dumb size 78,24 ansirgb\n" if os.environ.get("COLOR") else
              "set terminal dumb size 78,24\n") + (
        "set title 'time to ready against N (s)'\n"
        "set xlabel 'microVMs booted (N)'\n"
        "set key left top\n"
        "set logscale x\n"
        "set yrange [0:*]\n"
        "plot '-' using 1:2 with linespoints title 'p50', "
        "'-' using 1:3 with linespoints title 'p99'\n"
        f"{data}e\n{data}e\n")
    p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"gnuplot failed: {p.stderr.strip()}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="50,100,200,500,1000",
                    help="comma-separated N values (default 50,100,200,500,1000)")
    ap.add_argument("--mode", choices=("adi", "vf"), default="adi")
    ap.add_argument("--idle-window", type=float, default=3.0,
                    help="passed to density.py (idle CPU is not what the sweep is for)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="write the chart here too")
    a = ap.parse_args()
    try:
        ns = [int(x) for x in a.ns.split(",")]
    except ValueError:
        ap.error(f"--ns: expected comma-separated integers, got {a.ns!r}")
    if not ns or min(ns) < 1:
        ap.error("--ns: every N must be at least 1")
    runs, ok = [], True
    for n in ns:
        print(f"density_sweep: N={n} ...", file=sys.stderr, flush=True)
        r = run_one(n, a.mode, a.idle_window)
        ok &= bool(r.get("ok"))
        runs.append(r)
    print(f"{'N':>6} {'ready':>11} {'VMs/s':>7} {'ready p50 ms':>13} {'ready p99 ms':>13} "
          f"{'attach p50 us':>14}")
    points = []
    for n, r in zip(ns, runs):
        ttr = r.get("time_to_ready_ms", {})
        print(f"{n:>6} {r.get('ready', 0):>5} of {n:<4}"
              f"{r.get('launch_rate_vms_per_s', 0):>7.1f} {ttr.get('p50', 0):>13.0f} "
              f"{ttr.get('p99', 0):>13.0f} {r.get('attach_us', {}).get('p50', 0):>14.0f}")
        if ttr:
            points.append((n, ttr["p50"], ttr["p99"]))
    chart = plot(points) if points else ""
    print(chart)
    if a.plot:
        a.plot.write_text(chart)
    if a.json:
        a.json.write_text(json.dumps({"mode": a.mode, "ns": ns, "runs": runs}, indent=1))
    for n, r in zip(ns, runs):
        for e in r.get("errors", []):
            print(f"N={n}: {e}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
