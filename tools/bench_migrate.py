#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Migration benchmark (issue 10; `make bench-migrate`).  Needs /dev/kvm.

1. Guest size x dirty rate, hdvm and QEMU 7.2 side by side: hdguest.elf with
   app=idle (no writes) or app=dirty,mib=M (M MiB rewritten pass after pass),
   64 MiB .. 1 GiB, moved over tcp: loopback.  hdvm: `hdvm migrate --json`
   (downtime = source vCPUs stop -> destination vCPUs run, as hdvm reports
   it).  QEMU: the same ELF with `-M microvm`, no device, downtime-limit at
   its minimum (1 ms) and max-bandwidth raised to 100 GiB/s so both have the
   same link; downtime and total-time from query-migrate.  The ratio is
   hdvm / QEMU.
2. A 256 MiB counter microVM on a VF of host A's hdnic, a client sending
   1000 requests/s from the client namespace (tests/integration/hosts.py),
   moved to a VF of host B: hdvm's downtime and the client-observed reply gap
   (p50 over the runs), and a timeline of the reply rate around the
   switchover (10 ms bins) as gnuplot PNG and ASCII.
3. unix: migration of a 1 GiB guest (the memfd passes; no RAM copied).
4. Evacuation of 100 and 500 counter VMs (tools/evacuate, 8 streams).

Output: a table on stdout, JSON (default build/bench-migrate.json), and
build/bench-migrate-timeline.{png,txt}.  Targets (issue 10): downtime p50
<= 5 ms for the counter VM with a VF, reply gap p50 <= 20 ms; 1 GiB idle in
<= 1 s; downtime <= 1/10 of QEMU's; unix: 1 GiB <= 50 ms total.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("HDVM_BUILD", ROOT / "build"))
HDVM, GUEST, HDNIC = BUILD / "hdvm", BUILD / "hdguest.elf", BUILD / "hdnic"
sys.path.insert(0, str(ROOT / "tests" / "integration"))

SIZES = ["64M", "256M", "1G"]
LOADS = [("idle", "app=idle"), ("dirty16", "app=dirty,mib=16"), ("dirty64", "app=dirty,mib=64")]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(proc, needle, timeout):
    deadline = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        buf += line
        if needle in line:
            return buf
    raise RuntimeError(f"'{needle}' not seen: {buf[-500:]}")


# ---- hdvm ----

def hdvm_move(run_dir, mem, cmdline, uri_kind="tcp", warm=1.0):
    name = f"b{time.monotonic_ns() % 10**9}"
    src = subprocess.Popen([str(HDVM), "run", "--kernel", str(GUEST), "--cmdline", cmdline,
                            "--mem", mem, "--name", name, "--run-dir", run_dir],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    dst = None
    try:
        wait_line(src, "Hello" if "idle" in cmdline else "dirty: pass", 60)
        time.sleep(warm)
        uri = (f"tcp:127.0.0.1:{free_port()}" if uri_kind == "tcp"
               else f"unix:{run_dir}/{name}.mig")
        dst = subprocess.Popen([str(HDVM), "run", "--incoming", uri, "--name", name + "d",
                                "--run-dir", run_dir], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while "waiting for a migration" not in dst.stderr.readline():
            pass
        r = subprocess.run([str(HDVM), "migrate", name, uri, "--json", "--downtime-ms", "1",
                            "--timeout", "120", "--run-dir", run_dir],
                           capture_output=True, text=True, timeout=200)
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        if not rep.get("success"):
            raise RuntimeError(rep.get("error"))
        subprocess.run([str(HDVM), "stop", name + "d", "--run-dir", run_dir],
                       capture_output=True, timeout=30)
        return rep
    finally:
        for p in (src, dst):
            if p and p.poll() is None:
                p.kill()
                p.wait(10)


# ---- QEMU 7.2 ----

class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        for _ in range(200):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                if "error" in r:
                    raise RuntimeError(f"{name}: {r['error']}")
                return r["return"]


def qemu_argv(mem, cmdline, qmp, extra=()):
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", "-cpu", "host",
            "-m", mem, "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
            "-kernel", str(GUEST), "-append", cmdline,
            "-qmp", f"unix:{qmp},server=on,wait=off", *extra]


def qemu_move(tmp, mem, cmdline, warm=1.0):
    port = free_port()
    src = subprocess.Popen(qemu_argv(mem, cmdline, f"{tmp}/src.qmp"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    dst = subprocess.Popen(qemu_argv(mem, cmdline, f"{tmp}/dst.qmp",
                                     ["-incoming", f"tcp:127.0.0.1:{port}"]),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_line(src, "Hello" if "idle" in cmdline else "dirty: pass", 60)
        time.sleep(warm)
        q = Qmp(f"{tmp}/src.qmp")
        q.cmd("migrate-set-parameters", **{"downtime-limit": 1,
                                           "max-bandwidth": 100 << 30})
        q.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            st = q.cmd("query-migrate")
            if st.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
        if st.get("status") != "completed":
            raise RuntimeError(f"QEMU migration {st.get('status')}")
        return {"downtime_ms": st["downtime"], "total_ms": st["total-time"]}
    finally:
        for p in (src, dst):
            if p.poll() is None:
                p.kill()
                p.wait(10)


# ---- the counter VM with a VF, under 1000 requests/s ----

class Pacer(threading.Thread):
    """1000 requests/s from the client namespace; every reply's arrival time."""

    def __init__(self, hosts, ip, rate=1000):
        super().__init__(daemon=True)
        self.sock = hosts.udp_socket(timeout=0.001)
        self.ip, self.period, self.stop_at = ip, 1.0 / rate, None
        self.replies, self.running = [], True

    def run(self):
        rid, t_next = 1, time.monotonic()
        while self.running:
            self.sock.sendto(struct.pack("!Q", rid), (self.ip, 9000))
            rid += 1
            t_next += self.period
            while time.monotonic() < t_next:
                try:
                    self.sock.recv(64)
                    self.replies.append(time.monotonic())
                except (socket.timeout, BlockingIOError):
                    pass

    def stop(self):
        self.running = False
        self.join(5)


def vf_move(tmp):
    from hosts import TwoHosts
    h = TwoHosts(tmp, vfs=1)
    run = {x: Path(tmp) / f"run-{x}" for x in ("a", "b")}
    for d in run.values():
        d.mkdir(exist_ok=True)
    ip = "10.66.0.10"
    src = subprocess.Popen([str(HDVM), "run", "--kernel", str(GUEST), "--cmdline",
                            f"app=counter ip={ip}/24", "--mem", "256M", "--name", "ctr",
                            "--run-dir", str(run["a"]), "--vfio-user",
                            str(h.nic["a"].sock(0))], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    dst, pacer = None, None
    try:
        wait_line(src, "counter: listening", 60)
        pacer = Pacer(h, ip)
        pacer.start()
        time.sleep(1.0)
        uri = f"unix:{tmp}/vf.mig"
        dst = subprocess.Popen([str(HDVM), "run", "--incoming", uri, "--name", "ctr",
                                "--run-dir", str(run["b"]), "--vfio-user",
                                str(h.nic["b"].sock(0))], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while "waiting for a migration" not in dst.stderr.readline():
            pass
        t0 = time.monotonic()
        r = subprocess.run([str(HDVM), "migrate", "ctr", uri, "--json", "--downtime-ms", "5",
                            "--run-dir", str(run["a"])], capture_output=True, text=True,
                           timeout=120)
        time.sleep(1.0)
        pacer.stop()
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        times = [t for t in pacer.replies if t > t0 - 1.0]
        gap = max((b - a for a, b in zip(times, times[1:])), default=0) * 1000
        bins = {}
        for t in times:
            k = int((t - t0) * 100)                    # 10 ms bins
            bins[k] = bins.get(k, 0) + 1
        timeline = [((k / 100.0), bins.get(k, 0) * 100) for k in range(min(bins), max(bins) + 1)]
        return {"downtime_ms": rep.get("downtime_ms"), "gap_ms": round(gap, 2),
                "device_precopy_bytes": rep.get("device_precopy_bytes"),
                "timeline": timeline}
    finally:
        if pacer and pacer.is_alive():
            pacer.stop()
        for p in (src, dst):
            if p and p.poll() is None:
                p.kill()
                p.wait(10)
        h.close()


def plot(timeline, out):
    dat = out.with_suffix(".dat")
    dat.write_text("".join(f"{t:.3f} {r}\n" for t, r in timeline))
    script = (f"set xlabel 's from migrate'; set ylabel 'replies/s'; "
              f"plot '{dat}' with steps title 'counter replies'")
    if not shutil.which("gnuplot"):
        return "gnuplot not installed: timeline left in " + str(dat)
    subprocess.run(["gnuplot", "-e", f"set terminal png size 900,400; set output "
                    f"'{out.with_suffix('.png')}'; " + script], check=True)
    ascii_plot = subprocess.run(["gnuplot", "-e", "set terminal dumb 100 25; " + script],
                                capture_output=True, text=True, check=True).stdout
    out.with_suffix(".txt").write_text(ascii_plot)
    return ascii_plot


def evacuation(tmp, n):
    env = dict(os.environ, HDVM_EVACUATE_VMS=str(n), HDVM_BUILD=str(BUILD))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-m", "kvm",
                        str(ROOT / "tests/integration/test_evacuate.py")], env=env,
                       capture_output=True, text=True, timeout=7200)
    for line in r.stdout.splitlines():
        if line.startswith("evacuated"):
            return line
    return f"failed: {r.stdout[-400:]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=str(BUILD / "bench-migrate.json"))
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-evacuation", action="store_true")
    a = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        sys.exit("bench-migrate: needs /dev/kvm (it moves running guests and runs QEMU "
                 "with -enable-kvm); this host has none.  Run it on a KVM host; "
                 "tools/kvmlab is for correctness, not for timing.")
    qemu = not a.no_qemu and shutil.which("qemu-system-x86_64")
    res = {"grid": [], "vf": [], "unix_1g": None, "evacuation": {}}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'size':>5} {'load':>8} | {'hdvm down':>9} {'total':>7} | "
              f"{'qemu down':>9} {'total':>7} | {'ratio':>5}")
        for mem in SIZES:
            for label, cmdline in LOADS:
                h = [hdvm_move(tmp, mem, cmdline) for _ in range(a.runs)]
                row = {"mem": mem, "load": label,
                       "hdvm_downtime_ms": pct([x["downtime_ms"] for x in h], 50),
                       "hdvm_total_ms": pct([x["total_ms"] for x in h], 50)}
                if qemu:
                    q = [qemu_move(tmp, mem, cmdline) for _ in range(a.runs)]
                    row["qemu_downtime_ms"] = pct([x["downtime_ms"] for x in q], 50)
                    row["qemu_total_ms"] = pct([x["total_ms"] for x in q], 50)
                    row["ratio"] = round(row["hdvm_downtime_ms"] /
                                         max(row["qemu_downtime_ms"], 1), 3)
                res["grid"].append(row)
                print(f"{mem:>5} {label:>8} | {row['hdvm_downtime_ms']:>9} "
                      f"{row['hdvm_total_ms']:>7} | {row.get('qemu_downtime_ms', '-'):>9} "
                      f"{row.get('qemu_total_ms', '-'):>7} | {row.get('ratio', '-'):>5}")
        vf = [vf_move(Path(tmp) / f"vf{i}") for i in range(a.runs)]
        res["vf"] = [{k: v for k, v in x.items() if k != "timeline"} for x in vf]
        print(f"256M counter + VF, 1000 req/s: downtime p50 "
              f"{pct([x['downtime_ms'] for x in vf], 50)} ms, reply gap p50 "
              f"{pct([x['gap_ms'] for x in vf], 50)} ms")
        print(plot(vf[0]["timeline"], BUILD / "bench-migrate-timeline"))
        u = hdvm_move(tmp, "1G", "app=idle", uri_kind="unix")
        res["unix_1g"] = {"total_ms": u["total_ms"], "downtime_ms": u["downtime_ms"],
                          "pages": u["pages"]}
        print(f"unix: 1 GiB: total {u['total_ms']} ms, {u['pages']} pages copied")
        if not a.no_evacuation:
            for n in (100, 500):
                res["evacuation"][n] = evacuation(tmp, n)
                print(f"evacuation of {n}: {res['evacuation'][n]}")
    Path(a.json).write_text(json.dumps(res, indent=1))
    print(f"JSON: {a.json}")


if __name__ == "__main__":
    main()
