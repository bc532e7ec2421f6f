#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Receive flow control in hdnic, measured without KVM: uplink -> function,
64-byte UDP from tools/udpflood through the TAP, into one VF whose "guest" is
the Python virtio driver (tests/integration/vfio_user_client.py) in a process
of its own, reposting its buffers as fast as Python goes: a receiver slower
than the wire, so its ring is full most of the time, as a descheduled guest's.

Polling that yields: a ping-pong through the uplink (the VF's driver sends an
ICMP echo request to the namespace's address on the TAP and waits for the
kernel's reply, one in flight) with the default --spin-passes 64 against
--spin-passes 1000000 (spin the whole idle window, as hdnic did before):
transactions/s and hdnic CPU per transaction.

Flow control on (the default) and off (--no-rx-flow-control) run side by side,
interleaved, a fresh hdnic per window.  Per window: frames delivered into the
ring, hdnic's CPU time per delivered frame (from /proc), frames hdnic read
from the TAP, frames dropped at the VF (read, then thrown away) and frames
the kernel dropped at the TAP's queue (never read: free for hdnic).  Medians
of --runs windows; a table and JSON.

  tools/bench_flowctl.py [--runs 3] [--window 3] [--json FILE]
  tools/bench_flowctl.py --receiver SOCK SECONDS     (the guest side, internal)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import BUILD, ROOT, cpu_seconds, ns_exec, sh, start_hdnic, stop

sys.path.insert(0, str(ROOT / "tests" / "integration"))
NS = f"hdvm-fc-{os.getpid()}"
HOST, GUEST = "10.67.0.1", "10.67.0.10"
QSIZE = 256


def nsx(*cmd, check=True):
    return ns_exec(NS, *cmd, check=check)


def receiver(sock, seconds):
    """The guest: take used RX entries, give the buffers back, kick when asked."""
    import vfio_user_client as vu
    vf = vu.VirtioNetVF(sock, qsize=QSIZE, irqs=False)
    r = vf.rings[vu.RX]
    vf.post_rx()
    print(vf.mac().hex(), flush=True)
    end = time.monotonic() + seconds
    got = 0
    while time.monotonic() < end:
        heads = []
        while True:
            e = r.pop_used()
            if e is None:
                break
            heads.append(e[0])
        if heads:
            got += len(heads)
            r.publish_many(heads)
            vf.kick(vu.RX)          # doorbell, and a notify if the device asked for one
    vf.close()
    print(got, flush=True)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def icmp_request(dst_mac, src_mac, seq):
    import socket
    import struct
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4844, seq & 0xFFFF) + b"p" * 18
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq & 0xFFFF, 0, 64, 1, 0,
                     socket.inet_aton(GUEST), socket.inet_aton(HOST))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + icmp


def pingpong(sock, tap_mac, seconds):
    """The guest: one ICMP echo in flight through the uplink; transactions done."""
    import vfio_user_client as vu
    vf = vu.VirtioNetVF(sock, irqs=False)
    rx, tx = vf.rings[vu.RX], vf.rings[vu.TX]
    vf.post_rx()
    mac = vf.mac()
    print(mac.hex(), flush=True)
    sys.stdin.readline()            # the bench set up the neighbour entry
    done, seq = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seq += 1
        vf.send(icmp_request(tap_mac, mac, seq))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            e = rx.pop_used()
            if e is None:
                continue
            rx.publish(e[0])
            vf.ring_doorbell(vu.RX)
            f = bytes(vf.mem[vf.bufs[vu.RX] + e[0] * vf.BUF_SIZE + vu.NET_HDR_LEN:
                             vf.bufs[vu.RX] + e[0] * vf.BUF_SIZE + e[1]])
            if len(f) >= 42 and f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 0:
                done += 1
                break
        while tx.pop_used() is not None:
            pass
    vf.close()
    print(done, flush=True)


def pingpong_window(tmp, spin, window):
    nic = start_hdnic(NS, f"{tmp}/nic", 1, HOST, "--spin-passes", str(spin))
    drv = None
    try:
        tap_mac = nsx("cat", "/sys/class/net/hdt0/address").stdout.strip()
        drv = subprocess.Popen([sys.executable, __file__, "--pingpong",
                                f"{tmp}/nic/vf0.sock", tap_mac.replace(":", ""), str(window)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        mac = drv.stdout.readline().strip()
        nsx("ip", "neigh", "replace", GUEST, "lladdr",
            ":".join(mac[i:i + 2] for i in range(0, 12, 2)), "dev", "hdt0")
        c0, t0 = cpu_seconds(nic.pid), time.monotonic()
        drv.stdin.write("go\n")
        drv.stdin.flush()
        done = int(drv.stdout.readline())
        c1, t1 = cpu_seconds(nic.pid), time.monotonic()
        drv.wait(10)
    finally:
        if drv and drv.poll() is None:
            drv.kill()
            drv.wait()
        stop(nic)
    return {"tps": done / (t1 - t0), "hdnic_cpu_frac": (c1 - c0) / (t1 - t0),
            "hdnic_cpu_us_per_txn": (c1 - c0) / done * 1e6 if done else None}


class Window:
    def __init__(self, tmp, fc, window):
        self.tmp, self.fc, self.window = tmp, fc, window

    def stats(self):
        r = sh(str(BUILD / "hdnic"), "ctl", f"{self.tmp}/nic", "stats", "--json")
        return json.loads(r.stdout)

    def tap_dropped(self):
        return int(nsx("cat", "/sys/class/net/hdt0/statistics/tx_dropped").stdout)

    def run(self):
        extra = [] if self.fc else ["--no-rx-flow-control"]
        nic = start_hdnic(NS, f"{self.tmp}/nic", 1, HOST, *extra)
        rx = flood = None
        try:
            rx = subprocess.Popen([sys.executable, __file__, "--receiver",
                                   f"{self.tmp}/nic/vf0.sock", str(self.window + 3)],
                                  stdout=subprocess.PIPE, text=True)
            mac = rx.stdout.readline().strip()
            mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2))
            nsx("ip", "neigh", "replace", GUEST, "lladdr", mac, "dev", "hdt0")
            flood = subprocess.Popen(["ip", "netns", "exec", NS, str(BUILD / "udpflood"),
                                      GUEST, "9", "64", str(self.window + 1.5)],
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            s0, c0, d0, t0 = self.stats(), cpu_seconds(nic.pid), self.tap_dropped(), time.monotonic()
            time.sleep(self.window)
            s1, c1, d1, t1 = self.stats(), cpu_seconds(nic.pid), self.tap_dropped(), time.monotonic()
            flood.wait(30)
            sent = flood.stdout.read()
            rx.wait(30)
        finally:
            for p in (flood, rx):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()
            stop(nic)
        dt = t1 - t0
        v0, v1 = s0["vfs"][0], s1["vfs"][0]
        delivered = v1["rx_packets"] - v0["rx_packets"]
        cpu = c1 - c0
        return {
            "delivered_pps": delivered / dt,
            "hdnic_cpu_frac": cpu / dt,
            "hdnic_cpu_us_per_frame": cpu / delivered * 1e6 if delivered else None,
            "read_pps": (s1["uplink"]["rx_packets"] - s0["uplink"]["rx_packets"]) / dt,
            "vf_drops_ps": (v1["rx_drops"] - v0["rx_drops"]) / dt,
            "vf_wait_drops_ps": (v1["rx_wait_drops"] - v0["rx_wait_drops"]) / dt,
            "kernel_drops_ps": (d1 - d0) / dt,
            "rx_pauses": s1["uplink"].get("rx_pauses", 0) - s0["uplink"].get("rx_pauses", 0),
            "udpflood": sent.strip(),
        }


def med(rows, key):
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=float, default=3.0)
    ap.add_argument("--json", default=str(BUILD / "bench-flowctl.json"))
    ap.add_argument("--receiver", nargs=2, metavar=("SOCK", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--pingpong", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        return receiver(args.receiver[0], float(args.receiver[1]))
    if args.pingpong:
        return pingpong(args.pingpong[0], bytes.fromhex(args.pingpong[1]),
                        float(args.pingpong[2]))
    res = {"on": [], "off": []}
    poll = {"yield": [], "spin": []}
    sh("ip", "netns", "add", NS)
    try:
        nsx("ip", "link", "set", "lo", "up")
        with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
            for _ in range(args.runs):
                for mode in ("on", "off"):      # interleaved: drift hits both alike
                    res[mode].append(Window(tmp, mode == "on", args.window).run())
                for mode, spin in (("yield", 64), ("spin", 1000000)):
                    poll[mode].append(pingpong_window(tmp, spin, args.window))
    finally:
        sh("ip", "netns", "del", NS, check=False)
    cols = [("delivered_pps", "delivered/s", "{:.0f}"),
            ("hdnic_cpu_us_per_frame", "hdnic us/frame", "{:.2f}"),
            ("hdnic_cpu_frac", "hdnic CPU", "{:.2f}"),
            ("read_pps", "TAP reads/s", "{:.0f}"),
            ("vf_drops_ps", "VF drops/s", "{:.0f}"),
            ("kernel_drops_ps", "kernel drops/s", "{:.0f}")]
    print(f"uplink -> VF, 64 B UDP, Python receiver, {QSIZE}-entry ring; "
          f"median of {args.runs} x {args.window:.0f} s windows")
    print(f"{'flow control':<14}" + "".join(f"{h:>16}" for _, h, _ in cols))
    summary = {}
    for mode in ("on", "off"):
        summary[mode] = {k: med(res[mode], k) for k, _, _ in cols}
        print(f"{mode:<14}" + "".join(f"{f.format(summary[mode][k]):>16}" for k, _, f in cols))
    print(f"ping-pong through the uplink, one in flight (Python driver); "
          f"median of {args.runs} x {args.window:.0f} s windows")
    print(f"{'idle loop':<22}{'transactions/s':>16}{'hdnic CPU':>12}{'hdnic us/txn':>14}")
    for mode, label in (("yield", "spin 64, then yield"), ("spin", "spin the idle window")):
        summary[f"pingpong_{mode}"] = {k: med(poll[mode], k) for k in poll[mode][0]}
        m = summary[f"pingpong_{mode}"]
        print(f"{label:<22}{m['tps']:>16.0f}{m['hdnic_cpu_frac']:>12.2f}"
              f"{m['hdnic_cpu_us_per_txn']:>14.1f}")
    res["pingpong"] = poll
    Path(args.json).write_text(json.dumps({"summary": summary, "raw": res}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
