#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Protection at density (`make bench-protect`; a benchmark, not a test; issue 13).

For each N: N app=counter microVMs on host A (each on its own ADI of A's
hdnic; hosts = network namespaces, tests/integration/hosts.py), a client in
the client namespace sending numbered requests round-robin over all of them.

  1. unprotected, --seconds: the client's request latency, the VMs' CPU
  2. tools/protect (standbys on fresh ADIs of B's hdnic, --epoch-ms 50,
     epochs staggered), --seconds again: CPU spent on checkpointing (the
     primaries' "checkpoint" threads and the standby processes, from
     /proc/PID/task/TID/stat; and the VM processes' total minus step 1),
     pause p50/p99, achieved epoch length and checkpoint bytes/s (from
     `hdvm status --json` of every VM at the window's ends), latency p99
  3. host A killed (every hdvm of A and A's hdnic, SIGKILL): the time until
     every VM has answered from B, and the client's invariants for every VM
     (the counter above the last reply seen before the kill, never going back)
  4. with --reprotect: B's VMs protected back onto a fresh A (time it takes)

Prints a table, writes JSON (--json), and a gnuplot plot (PNG --png, ASCII
--ascii): CPU and latency p99 against N; failover time against N.

    tools/bench_protect.py [--n 10,100,300] [--seconds 5] [--epoch-ms 50]
                           [--mem 32M] [--failover-ms N] [--reprotect]

Needs /dev/kvm (or tools/kvmlab, where TCG makes every timing meaningless:
only the correctness of the run means something there).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from hosts import TwoHosts  # noqa: E402
from protectlib import TIME_SCALE, Fleet, RoundRobinClient, vm_name  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, len(xs) * p // 100)] if xs else None


def cpu_s(pid, thread=None):
    """utime+stime of a process, or of its threads named `thread` only."""
    try:
        if thread is None:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / TICK
        total = 0
        for t in Path(f"/proc/{pid}/task").iterdir():
            if (t / "comm").read_text().strip() == thread:
                f = (t / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
        return total / TICK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return None


def cpu_sample(fleet):
    a = [p.pid for p, _, _ in fleet.procs]
    b = fleet.pids("b")
    return {
        "a_vm": sum(cpu_s(p) for p in a),
        "a_ckpt": sum(cpu_s(p, "checkpoint") for p in a),
        "b_standby": sum(cpu_s(p) for p in b),
        "nic_a": cpu_s(fleet.hosts.nic["a"].proc.pid),
        "nic_b": cpu_s(fleet.hosts.nic["b"].proc.pid),
        "t": time.monotonic(),
    }


def window(fleet, client, seconds, protected):
    s0 = cpu_sample(fleet)
    names = [vm_name(i) for i in range(fleet.n)]
    st0 = fleet.statuses("a") if protected else None
    t0 = time.monotonic()
    time.sleep(seconds)
    t1 = time.monotonic()
    s1 = cpu_sample(fleet)
    st1 = fleet.statuses("a") if protected else None
    dt = s1["t"] - s0["t"]
    out = {k: round((s1[k] - s0[k]) / dt * 100, 1) for k in s0 if k != "t"}    # % of a core
    lat = client.latencies_ms(t0, t1 - 1.0)     # requests with time to be answered
    out["latency_ms_p50"] = pct(lat, 50)
    out["latency_ms_p99"] = pct(lat, 99)
    out["replies"] = len(lat)
    if protected:
        missing = [x for x in names if x not in st0 or x not in st1 or "epoch" not in st1[x]]
        if missing:
            raise RuntimeError(f"no protection status from {missing[:5]}")
        st0, st1 = [st0[x] for x in names], [st1[x] for x in names]
        epochs = [b["epoch"] - a["epoch"] for a, b in zip(st0, st1)]
        out["epoch_ms_achieved_p50"] = round(pct([(t1 - t0) * 1000 / e for e in epochs if e], 50)
                                             or 0, 1)
        out["epochs_min"] = min(epochs)
        out["ckpt_bytes_per_s"] = round(sum(b["checkpoint_bytes_total"] - a["checkpoint_bytes_total"]
                                            for a, b in zip(st0, st1)) / (t1 - t0))
        out["pause_us_p50"] = pct([b["pause_p50_us"] for b in st1], 50)
        out["pause_us_p99"] = max(b["pause_p99_us"] for b in st1)
        out["roles"] = sorted({b["role"] for b in st1})
        # what one standby process costs (the per-VM vs one-for-many decision)
        rss = [x for x in (rss_mib(p) for p in fleet.pids("b")) if x is not None]
        out["standby_rss_mib_p50"] = round(pct(rss, 50) or 0, 1)
        out["primary_rss_mib_p50"] = round(pct([x for x in (rss_mib(p.pid) for p, _, _
                                                 in fleet.procs) if x], 50) or 0, 1)
        out["standby_cpu_pct_per_vm"] = round(out["b_standby"] / fleet.n, 2)
    return out


def run_n(n, a, tmp):
    hosts = TwoHosts(tmp, vfs=0, extra=["--qps", str(2 * n + 16)])
    fleet = Fleet(hosts, tmp, n, mem=a.mem)
    client = None
    res = {"n": n}
    try:
        t = time.monotonic()
        fleet.start(timeout=60 + n)
        res["boot_s"] = round(time.monotonic() - t, 1)
        client = RoundRobinClient(hosts, n, interval=a.interval_ms / 1000)
        client.start()
        deadline = time.monotonic() + (30 + n) * TIME_SCALE
        while not all(client.replies[i] for i in range(n)):
            if time.monotonic() > deadline:
                raise RuntimeError("not every VM answered unprotected: " + ", ".join(
                    vm_name(i) for i in range(n) if not client.replies[i]))
            time.sleep(0.1)
        res["unprotected"] = window(fleet, client, a.seconds, False)

        t = time.monotonic()
        opts = ["--epoch-ms", str(a.epoch_ms), "--failover-ms", str(a.failover_ms),
                "--heartbeat-ms", str(a.heartbeat_ms)]
        rc, rep, err = fleet.protect(*opts, timeout=120 + 10 * n)
        res["protect_s"] = round(time.monotonic() - t, 1)
        if rc or rep.get("protected") != n:
            raise RuntimeError(f"tools/protect: {rep.get('failed')} {err.strip()[-500:]}")
        res["protected"] = window(fleet, client, a.seconds, True)
        p = res["protected"]
        p["ckpt_cpu_pct"] = round(p["a_ckpt"] + p["b_standby"], 1)
        p["ckpt_cpu_pct_by_delta"] = round(p["a_vm"] - res["unprotected"]["a_vm"]
                                           + p["b_standby"], 1)

        t_kill = fleet.kill_host_a()
        seen = [client.last_counter(i, before=t_kill) for i in range(n)]
        deadline = time.monotonic() + (30 + n) * TIME_SCALE
        while True:
            firsts = [client.first_reply_after(i, t_kill) for i in range(n)]
            if all(firsts) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(1.0)
        client.stop()
        answered = [f for f in firsts if f]
        bad = client.violations() + [
            f"{vm_name(i)}: {client.last_counter(i)} not above {seen[i]} seen before the kill"
            for i in range(n) if firsts[i] and client.last_counter(i) <= seen[i]]
        res["failover"] = {
            "answered": len(answered),
            "all_ms": round((max(answered) - t_kill) * 1000, 1) if len(answered) == n else None,
            "p50_ms": round((pct(answered, 50) - t_kill) * 1000, 1) if answered else None,
            "silent": [vm_name(i) for i in range(n) if not firsts[i]],
            "violations": bad,
        }
        if a.reprotect:
            hosts.start_nic("a", tmp / "nica2", vfs=0, extra=["--qps", str(2 * n + 16)])
            t = time.monotonic()
            rc, rep, err = fleet.protect(*opts, reverse=True, timeout=120 + 10 * n)
            res["reprotect"] = {"ok": rc == 0 and rep.get("protected") == n,
                                "s": round(time.monotonic() - t, 1),
                                "failed": rep.get("failed")}
    except Exception as e:      # where it stops: recorded, the next N still runs
        res["error"] = str(e)[-800:]
    finally:
        if client and client.is_alive():
            client.stop()
        fleet.stop_all()
        hosts.close()
    return res


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def table(results):
    head = (f"{'N':>4} {'ckpt CPU%':>9} {'(delta)':>8} {'pause p50':>9} {'pause p99':>9} "
            f"{'epoch ms':>8} {'ckpt MB/s':>9} {'lat p99':>8} {'(unprot)':>8} "
            f"{'failover':>8} {'viol':>4}")
    lines = [head]
    for r in results:
        p, u, f = r.get("protected", {}), r.get("unprotected", {}), r.get("failover", {})
        lines.append(
            f"{r['n']:>4} {fmt(p.get('ckpt_cpu_pct')):>9} {fmt(p.get('ckpt_cpu_pct_by_delta')):>8} "
            f"{fmt(p.get('pause_us_p50') and p['pause_us_p50'] / 1000, '.2f'):>8}m "
            f"{fmt(p.get('pause_us_p99') and p['pause_us_p99'] / 1000, '.2f'):>8}m "
            f"{fmt(p.get('epoch_ms_achieved_p50')):>8} "
            f"{fmt(p.get('ckpt_bytes_per_s') and p['ckpt_bytes_per_s'] / 1e6, '.2f'):>9} "
            f"{fmt(p.get('latency_ms_p99')):>7}m {fmt(u.get('latency_ms_p99')):>7}m "
            f"{fmt(f.get('all_ms'), '.0f'):>7}m {len(f.get('violations', [])) if f else '-':>4}"
            + (f"  stopped: {r['error'][:120]}" if "error" in r else ""))
    return "\n".join(lines)


def plot(results, png, ascii_path):
    rows = [r for r in results if "protected" in r]
    if not rows or not shutil.which("gnuplot"):
        return None
    data = "\n".join(f"{r['n']} {r['protected']['ckpt_cpu_pct']} "
                     f"{r['protected']['latency_ms_p99'] or 0} "
                     f"{(r.get('failover') or {}).get('all_ms') or 0}" for r in rows) + "\ne\n"
    body = ("set multiplot layout 1,2\n"
            "set xlabel 'protected VMs (N)'\nset ylabel '% of a core'\nset y2label 'ms'\n"
            "set ytics nomirror\nset y2tics\nset key top left\n"
            "set title 'checkpointing CPU and request latency p99'\n"
            "plot '-' using 1:2 with linespoints title 'CPU %', "
            "'-' using 1:3 axes x1y2 with linespoints title 'latency p99 ms'\n"
            + data + data +
            "unset y2label\nunset y2tics\nset ylabel 'ms'\n"
            "set title 'host A killed: every VM answering from B'\n"
            "plot '-' using 1:4 with linespoints title 'failover ms'\n" + data +
            "unset multiplot\n")
    txt = subprocess.run(["gnuplot"], input="set terminal dumb size 120,30\n" + body,
                         capture_output=True, text=True).stdout
    if ascii_path:
        Path(ascii_path).write_text(txt)
    if png:
        subprocess.run(["gnuplot"], input=f"set terminal png size 1200,500\nset output '{png}'\n"
                       + body, capture_output=True, text=True)
    return txt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="10,100,300", help="comma-separated numbers of VMs")
    ap.add_argument("--seconds", type=float, default=5.0, help="each measuring window")
    ap.add_argument("--epoch-ms", type=int, default=50)
    ap.add_argument("--heartbeat-ms", type=int, default=10)
    ap.add_argument("--failover-ms", type=int, default=int(500 * TIME_SCALE))
    ap.add_argument("--interval-ms", type=float, default=2.0,
                    help="the client's gap between requests (round-robin over the VMs)")
    ap.add_argument("--mem", default="32M", help="guest RAM each")
    ap.add_argument("--reprotect", action="store_true",
                    help="after the failover, protect B's VMs back onto a fresh A")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--png")
    ap.add_argument("--ascii")
    a = ap.parse_args()
    try:
        ns = [int(x) for x in a.n.split(",")]
        assert all(x > 0 for x in ns)
    except (ValueError, AssertionError):
        ap.error("--n: comma-separated positive numbers, e.g. 10,100")
    if not os.path.exists("/dev/kvm"):
        print("bench-protect needs /dev/kvm (run it under tools/kvmlab for correctness only)",
              file=sys.stderr)
        return 2
    results = []
    for n in ns:
        tmp = Path(tempfile.mkdtemp(prefix=f"hdvm-bench-protect-{n}."))
        print(f"N={n} ...", flush=True)
        results.append(run_n(n, a, tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        print(table(results[-1:]).splitlines()[1], flush=True)
    env = {"kvmlab_tcg": bool(os.environ.get("KVMLAB")), "time_scale": TIME_SCALE,
           "cpus": os.cpu_count(), "epoch_ms": a.epoch_ms, "seconds": a.seconds}
    print("\n" + table(results))
    print("ckpt CPU%: the primaries' checkpoint threads + the standby processes, in % of one "
          "core; (delta): VM processes protected minus unprotected + standbys")
    if env["kvmlab_tcg"]:
        print("tools/kvmlab (QEMU TCG): these timings mean nothing; correctness only")
    txt = plot(results, a.png, a.ascii)
    if txt:
        print(txt)
    if a.json:
        Path(a.json).write_text(json.dumps({"env": env, "results": results}, indent=1))
    ok = all("error" not in r and not r["failover"]["violations"] and not r["failover"]["silent"]
             for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
