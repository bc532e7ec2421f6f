#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Network benchmark: passthrough VF (hdnic over vfio-user) vs the paravirtual
virtio-net device emulated in hdvm, measured side by side in one run.

Directions, each with 64-byte and 1400-byte UDP payloads:
  g2g  guest -> guest  (VF: two VFs of one hdnic, switched inside the NIC;
                        PV: two TAPs on a Linux bridge)
  g2u  guest -> uplink (the namespace's end of the TAP receives)
  u2g  uplink -> guest (tools/udpflood in the namespace sends; the VF's drops are
       reported too: with receive flow control hdnic drops none)
  echo UDP echo through the uplink: a client in the namespace keeps --inflight
       requests outstanding against the guest's app=echo (udp/7); transactions/s
The sender is hdguest app=flood (or udpflood); the rate is what the receiving side
counted over a fixed window: hdnic's per-VF rx_packets (frames DMA'd into the guest's
ring), or the TAP's kernel counters.  Also ping RTT p50/p99 from the namespace and
hdnic's CPU time per million packets.  Medians of --runs windows; everything lives in
a namespace the tool creates and removes.  Prints a table, writes JSON.

It boots guests, so it needs /dev/kvm (it says so and exits 77 where there is none;
`make bench-flowctl` measures hdnic's receive flow control without KVM).
--hdnic-args passes options to hdnic (e.g. --no-rx-flow-control, --spin-passes N)
to compare policies in otherwise identical runs.
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

from benchlib import BUILD, cpu_seconds, ns_exec, sh, start_hdnic, stop
NS = f"hdvm-bench-{os.getpid()}"
HOST, PVHOST = "10.68.0.1", "10.69.0.1"
SIZES = (64, 1400)


def nsx(*cmd, check=True):
    return ns_exec(NS, *cmd, check=check)


def link_counter(ifname, name):
    return int(nsx("cat", f"/sys/class/net/{ifname}/statistics/{name}").stdout)


class Guest:
    def __init__(self, tmp, name, cmdline, dev_args, in_ns=False):
        self.log = Path(tmp) / f"{name}.log"
        argv = [str(BUILD / "hdvm"), "run", "--kernel", str(BUILD / "hdguest.elf"),
                "--cmdline", cmdline, "--mem", "64M", "--name", name,
                "--run-dir", str(Path(tmp) / "run"), "--console", f"file:{self.log}",
                *dev_args]
        if in_ns:
            argv = ["ip", "netns", "exec", NS] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_line(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and re.search(pattern, self.log.read_text(errors="replace")):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"guest never printed {pattern!r}: "
                           f"{self.log.read_text(errors='replace') if self.log.exists() else ''}"
                           f"{self.proc.stderr.read().decode() if self.proc.poll() is not None else ''}")

    def stop(self):
        stop(self.proc)


ECHO_CLIENT = r"""
import socket, sys, time
dst, inflight, secs = (sys.argv[1], 7), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
for i in range(inflight):
    s.sendto(b"x" * 32, dst)
done, lost, end = 0, 0, time.monotonic() + secs
while time.monotonic() < end:
    try:
        s.recv(64)
        done += 1
    except socket.timeout:
        lost += 1               # a request or reply went missing: top the window up
    s.sendto(b"x" * 32, dst)
print(done, lost, flush=True)
"""


class Bench:
    def __init__(self, tmp, window, runs, hdnic_args=()):
        self.tmp, self.window, self.runs = tmp, window, runs
        sh("ip", "netns", "add", NS)
        nsx("ip", "link", "set", "lo", "up")
        self.nic = start_hdnic(NS, f"{tmp}/nic", 2, HOST, *hdnic_args)
        nsx("ip", "link", "add", "pvbr", "type", "bridge")
        nsx("ip", "addr", "add", f"{PVHOST}/24", "dev", "pvbr")
        nsx("ip", "link", "set", "pvbr", "up")
        self.guests = []

    def vf_stats(self, vf):
        r = sh(str(BUILD / "hdnic"), "ctl", f"{self.tmp}/nic", "stats", "--json")
        return json.loads(r.stdout)["vfs"][vf]

    # -- guests --------------------------------------------------------------
    def guest(self, mode, idx, app):
        name = f"{mode}{idx}-{len(self.guests)}"
        if mode == "vf":
            ip = f"10.68.0.{10 + idx}"
            g = Guest(self.tmp, name, f"{app} ip={ip}/24",
                      ["--vfio-user", f"{self.tmp}/nic/vf{idx}.sock"])
        else:
            ip = f"10.69.0.{10 + idx}"
            tap = f"pvt{idx}"
            g = Guest(self.tmp, name, f"{app} ip={ip}/24", ["--net", f"tap={tap}"], in_ns=True)
            for _ in range(100):
                if nsx("ip", "link", "show", tap, check=False).returncode == 0:
                    break
                time.sleep(0.05)
            nsx("ip", "link", "set", tap, "master", "pvbr")
            nsx("ip", "link", "set", tap, "up")
        self.guests.append(g)
        g.wait_line(r"net: .* up")
        return g, ip

    # -- one measurement window ---------------------------------------------
    def rx_counter(self, mode, where):
        """Packets received at `where` ('guest0', 'guest1' or 'uplink')."""
        if mode == "vf":
            if where == "uplink":
                return link_counter("hdt0", "rx_packets")
            return self.vf_stats(int(where[-1]))["rx_packets"]
        if where == "uplink":
            return link_counter("pvt0", "rx_packets")
        return link_counter(f"pvt{where[-1]}", "tx_packets")

    def window_rate(self, mode, where):
        a, t0 = self.rx_counter(mode, where), time.monotonic()
        c0 = cpu_seconds(self.nic.pid)
        time.sleep(self.window)
        b, t1 = self.rx_counter(mode, where), time.monotonic()
        c1 = cpu_seconds(self.nic.pid)
        return (b - a) / (t1 - t0), (c1 - c0), (b - a)

    def flood(self, mode, direction, size):
        rates, cpu_per_m = [], []
        hostip = HOST if mode == "vf" else PVHOST
        recv = None
        if direction == "g2g":
            recv, rip = self.guest(mode, 1, "app=counter")
            dst, where = f"{rip}:9", "guest1"
        else:
            dst, where = f"{hostip}:9", "uplink"
        sender, _ = self.guest(mode, 0, f"app=flood,dst={dst},size={size}")
        sender.wait_line(r"flood: sent \d+")
        for _ in range(self.runs):
            pps, cpu, pkts = self.window_rate(mode, where)
            rates.append(pps)
            if pkts:
                cpu_per_m.append(cpu / pkts * 1e6)
        sender.stop()
        if recv:
            recv.stop()
        return rates, cpu_per_m

    def inbound(self, mode, size):
        g, ip = self.guest(mode, 0, "app=counter")
        rates, drops = [], []
        for _ in range(self.runs):
            p = subprocess.Popen(["ip", "netns", "exec", NS, str(BUILD / "udpflood"), ip,
                                  "9", str(size), str(self.window + 1.0)],
                                 stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            d0 = self.vf_stats(0)["rx_drops"] if mode == "vf" else 0
            pps, _, _ = self.window_rate(mode, "guest0")
            d1 = self.vf_stats(0)["rx_drops"] if mode == "vf" else 0
            rates.append(pps)
            drops.append((d1 - d0) / self.window)
            p.wait(30)
        g.stop()
        return rates, drops

    def echo(self, mode, inflight):
        """UDP echo transactions/s against app=echo, and hdnic CPU per transaction."""
        g, ip = self.guest(mode, 0, "app=echo")
        g.wait_line(r"echo: listening")
        tps, cpu_us = [], []
        for _ in range(self.runs):
            c0 = cpu_seconds(self.nic.pid)
            r = nsx(sys.executable, "-c", ECHO_CLIENT, ip, str(inflight), str(self.window))
            c1 = cpu_seconds(self.nic.pid)
            done = int(r.stdout.split()[0])
            tps.append(done / self.window)
            if done and mode == "vf":
                cpu_us.append((c1 - c0) / done * 1e6)
        g.stop()
        return tps, cpu_us

    def ping(self, mode):
        g, ip = self.guest(mode, 0, "app=counter")
        r = nsx("ping", "-c", "200", "-i", "0.005", "-W", "2", ip, check=False)
        g.stop()
        rtts = sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", r.stdout))
        if len(rtts) < 150:
            raise RuntimeError(f"ping {mode}: only {len(rtts)} replies")
        return rtts

    def close(self):
        for g in self.guests:
            g.stop()
        stop(self.nic)
        sh("ip", "netns", "del", NS, check=False)


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="measurement windows per cell")
    ap.add_argument("--window", type=float, default=2.0, help="seconds per window")
    ap.add_argument("--json", default=str(BUILD / "bench-net.json"))
    ap.add_argument("--cells", default="",
                    help="only these cells, e.g. g2g_64,u2g_1400 (default: all, and ping)")
    ap.add_argument("--modes", default="vf,pv", help="vf, pv or both (default)")
    ap.add_argument("--inflight", type=int, default=32, help="echo requests outstanding")
    ap.add_argument("--hdnic-args", default="",
                    help="extra hdnic options, space-separated (e.g. --no-rx-flow-control)")
    args = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        print("bench_net: no /dev/kvm on this host, the guests cannot boot; "
              "`make bench-flowctl` measures hdnic without KVM", file=sys.stderr)
        return 77
    modes = [m for m in ("vf", "pv") if m in args.modes.split(",")]
    if not modes:
        ap.error("--modes: vf, pv or vf,pv")
    cells = set(filter(None, args.cells.split(",")))
    known = {f"{d}_{s}" for d in ("g2g", "g2u", "u2g") for s in SIZES} | {"echo"}
    if cells - known:
        ap.error(f"unknown cells {sorted(cells - known)}; known: {sorted(known)}")
    want = lambda k: not cells or k in cells

    res = {"vf": {}, "pv": {}}
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(tmp, args.window, args.runs, args.hdnic_args.split())
        try:
            for size in SIZES:
                for mode in modes:      # interleaved: drift hits both alike
                    for d in ("g2g", "g2u"):
                        if want(f"{d}_{size}"):
                            rates, cpu = b.flood(mode, d, size)
                            res[mode][f"{d}_{size}"] = {"pps": rates,
                                                        "hdnic_cpu_s_per_mpkt": cpu}
                    if want(f"u2g_{size}"):
                        rates, drops = b.inbound(mode, size)
                        res[mode][f"u2g_{size}"] = {"pps": rates, "vf_drops_per_s": drops}
            for mode in modes:
                if want("echo"):
                    tps, cpu = b.echo(mode, args.inflight)
                    res[mode]["echo"] = {"pps": tps, "hdnic_cpu_us_per_txn": cpu}
            for mode in modes:
                if not cells:
                    res[mode]["ping_ms"] = b.ping(mode)
        finally:
            b.close()

    print(f"UDP packets/s (median of {args.runs} x {args.window:.0f} s windows), "
          "payload Mbit/s, VF/PV ratio")
    print(f"{'':<10} {'VF pps':>12} {'VF Mbit/s':>10} {'PV pps':>12} {'PV Mbit/s':>10} "
          f"{'VF/PV':>7}")
    summary = {}
    for d in ("g2g", "g2u", "u2g"):
        for size in SIZES:
            k = f"{d}_{size}"
            if not any(k in res[m] for m in modes):
                continue
            vf = statistics.median(res["vf"][k]["pps"]) if k in res["vf"] else 0
            pv = statistics.median(res["pv"][k]["pps"]) if k in res["pv"] else 0
            ratio = vf / pv if pv else float("inf")
            summary[k] = {"vf_pps": vf, "pv_pps": pv, "ratio": ratio}
            print(f"{k:<10} {vf:>12.0f} {vf * size * 8 / 1e6:>10.1f} {pv:>12.0f} "
                  f"{pv * size * 8 / 1e6:>10.1f} {ratio:>7.2f}")
    for k in [f"u2g_{s}" for s in SIZES]:
        if k in res["vf"]:
            d = statistics.median(res["vf"][k]["vf_drops_per_s"])
            summary[k]["vf_drops_per_s"] = d
            print(f"{k}: drops at the VF {d:.0f}/s")
    if "echo" in res["vf"] or "echo" in res["pv"]:
        vf = statistics.median(res["vf"]["echo"]["pps"]) if "echo" in res["vf"] else 0
        pv = statistics.median(res["pv"]["echo"]["pps"]) if "echo" in res["pv"] else 0
        summary["echo"] = {"vf_tps": vf, "pv_tps": pv, "ratio": vf / pv if pv else float("inf")}
        print(f"UDP echo, {args.inflight} in flight: VF {vf:.0f}/s, PV {pv:.0f}/s, "
              f"VF/PV {summary['echo']['ratio']:.2f}")
        cpu = res["vf"].get("echo", {}).get("hdnic_cpu_us_per_txn")
        if cpu:
            summary["echo"]["hdnic_cpu_us_per_txn"] = statistics.median(cpu)
            print(f"hdnic CPU per echo transaction: {statistics.median(cpu):.1f} us")
    for mode in modes if not cells else ():
        r = res[mode]["ping_ms"]
        summary[f"ping_{mode}"] = {"p50_ms": pct(r, 50), "p99_ms": pct(r, 99)}
        print(f"ping RTT {mode}: p50 {pct(r, 50):.3f} ms, p99 {pct(r, 99):.3f} ms")
    cpu = res["vf"].get("g2g_64", {}).get("hdnic_cpu_s_per_mpkt")
    if cpu:
        summary["hdnic_cpu_s_per_mpkt_vf_g2g_64"] = statistics.median(cpu)
        print(f"hdnic CPU per million packets (VF->VF, 64 B): "
              f"{statistics.median(cpu):.3f} CPU-s")
    Path(args.json).write_text(json.dumps({"summary": summary, "raw": res}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
