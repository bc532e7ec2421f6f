#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Boot benchmark: N boots of hdguest app=hello under hdvm and under QEMU microvm.

hdvm reports its own timings (--metrics: process start -> first KVM_RUN, -> boot
marker, -> exit; memory overhead = peak RSS - resident guest pages).  Both VMMs are
also timed from the outside the same way: spawn -> the guest's "Hello from hdguest"
line (printed right after the boot marker) and spawn -> process exit, so the ratio
compares like with like.  Runs alternate hdvm/QEMU so drift hits both equally.
Prints a table and writes JSON (default build/bench-boot.json).
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
HELLO = b"Hello from hdguest"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed_run(argv):
    """Spawn argv; return (ms to the hello line, ms to exit)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    t_hello = None
    for line in iter(p.stdout.readline, b""):
        if t_hello is None and HELLO in line:
            t_hello = time.monotonic()
    p.wait(timeout=60)
    t_exit = time.monotonic()
    if t_hello is None:
        raise RuntimeError(f"{argv[0]}: guest never printed its hello line")
    return (t_hello - t0) * 1e3, (t_exit - t0) * 1e3


def hdvm_boot(run_dir, i):
    with tempfile.NamedTemporaryFile(suffix=".json") as m:
        argv = [str(BUILD / "hdvm"), "run", "--kernel", str(BUILD / "hdguest.elf"),
                "--cmdline", "app=hello", "--mem", "64M", "--name", f"bench{i}",
                "--run-dir", run_dir, "--metrics", m.name]
        hello, exit_ms = timed_run(argv)
        metrics = json.load(open(m.name))
    return hello, exit_ms, metrics


def qemu_boot():
    argv = ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm",
            "-cpu", "host,-arch-capabilities", "-m", "64M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-kernel", str(BUILD / "hdguest.elf"), "-append", "app=hello"]
    return timed_run(argv)


def row(name, values, unit):
    return f"{name:<38} {statistics.median(values):>10.2f} {pct(values, 90):>10.2f} {unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--json", default=str(BUILD / "bench-boot.json"))
    args = ap.parse_args()

    h = {"first_run": [], "marker": [], "exit": [], "overhead": [], "ext_hello": [],
         "ext_exit": []}
    q = {"ext_hello": [], "ext_exit": []}
    with tempfile.TemporaryDirectory() as run_dir:
        for i in range(args.runs):
            hello, exit_ms, m = hdvm_boot(run_dir, i)
            h["first_run"].append(m["start_to_first_run_us"] / 1e3)
            h["marker"].append(m["start_to_marker_us"] / 1e3)
            h["exit"].append(m["start_to_exit_us"] / 1e3)
            h["overhead"].append(m["overhead_kib"] / 1024)
            h["ext_hello"].append(hello)
            h["ext_exit"].append(exit_ms)
            if not args.no_qemu:
                hello, exit_ms = qemu_boot()
                q["ext_hello"].append(hello)
                q["ext_exit"].append(exit_ms)

    print(f"{args.runs} boots of hdguest app=hello, 1 vCPU, 64 MiB")
    print(f"{'':<38} {'median':>10} {'p90':>10}")
    print(row("hdvm: start -> first KVM_RUN", h["first_run"], "ms"))
    print(row("hdvm: start -> boot marker", h["marker"], "ms"))
    print(row("hdvm: start -> guest exit", h["exit"], "ms"))
    print(row("hdvm: memory overhead", h["overhead"], "MiB"))
    print(row("hdvm: spawn -> hello line (external)", h["ext_hello"], "ms"))
    print(row("hdvm: spawn -> process exit (external)", h["ext_exit"], "ms"))
    result = {"runs": args.runs, "hdvm": h}
    if q["ext_hello"]:
        print(row("qemu: spawn -> hello line (external)", q["ext_hello"], "ms"))
        print(row("qemu: spawn -> process exit (external)", q["ext_exit"], "ms"))
        ratio = statistics.median(h["ext_hello"]) / statistics.median(q["ext_hello"])
        print(f"{'ratio hdvm/qemu, spawn -> hello':<38} {ratio:>10.3f}")
        result.update(qemu=q, ratio_hello=ratio)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
