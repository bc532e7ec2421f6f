#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Density scale test: N microVMs, each with an ADI (or a VF) of one hdnic.

    tools/density.py [--n N] [--mode adi|vf] [--json FILE] ...

Starts hdnic with a TAP uplink (10.80.0.1/16) inside a network namespace it
creates, gives every VM its own device, boots hdguest's counter app in each
(10.80.x.y/16), waits until every guest answers a counter request from the
namespace, measures launch rate, time to ready, device attach time, memory and
idle CPU, checks a few counter replies per guest, then tears everything down and
checks nothing leaked (processes, sockets, the TAP, host memory).  Prints a
table and writes JSON.  Exit status: 0 if every guest answered correctly and
nothing leaked, 1 otherwise, 2 for bad arguments.

Only addresses inside the namespace are used; every wait is bounded.
"""
import argparse
import ctypes
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hoststat import host_cpu, meminfo, pct, proc_status_kib, sched_delta, sched_threads

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("HDVM_BUILD", ROOT / "build"))
TAP = "hdt0"
HOST_IP = "10.80.0.1"
NET_BASE = (10 << 24) | (80 << 16)
FIRST_HOST = 257                    # 10.80.1.1: guest i gets NET_BASE + FIRST_HOST + i
MAX_VMS = 65536 - FIRST_HOST - 2
COUNTER_PORT = 9000
PROBE_EVERY = 0.25                  # s between counter requests to a guest not yet ready
RESEND_AFTER = 1.0                  # s before a check request is first sent again;
MAX_SENDS = 8                       # doubling after each send: ~4 min for a reply in all
CLONE_NEWNET = 0x40000000
SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def log(msg):
    print(f"density: {msg}", file=sys.stderr, flush=True)


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL, timeout=60)


def guest_ip(i):
    a = NET_BASE + FIRST_HOST + i
    return socket.inet_ntoa(struct.pack("!I", a))


def ns_socket(ns):
    """A UDP socket created inside namespace ns (setns affects one thread only)."""
    box = {}

    def work():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{ns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST_IP, 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setblocking(False)
            box["s"] = s
        except OSError as e:
            box["e"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["s"]


class Mgmt:
    """A connection to hdnic's pf.sock: newline-delimited JSON requests.
    hdnic drops a management client idle for its --conn-timeout (5 s by
    default), so one idle for IDLE_S is replaced before the next request
    (the boot phase alone outlasts 5 s: the next call met a broken pipe)."""

    IDLE_S = 2.0

    def __init__(self, path):
        self.path = str(path)
        self.s = self.f = None
        self.last = 0.0

    def connect(self):
        self.close()
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(self.path)
        self.f = self.s.makefile("rb")

    def call(self, **req):
        if self.s is None or time.monotonic() - self.last > self.IDLE_S:
            self.connect()
        self.s.sendall(json.dumps(req).encode() + b"\n")
        line = self.f.readline()
        if not line:
            raise RuntimeError(f"hdnic closed pf.sock during {req}")
        self.last = time.monotonic()
        return json.loads(line)

    def close(self):
        if self.f:
            self.f.close()
            self.s.close()
        self.s = self.f = None


class Guest:
    def __init__(self, idx, dev, sock):
        self.idx = idx
        self.name = f"d{idx}"
        self.ip = guest_ip(idx)
        self.dev = dev                  # adi-NAME or vfK
        self.sock = sock                # its vfio-user socket
        self.proc = None
        self.t_spawn = None
        self.t_listen = None
        self.t_ready = None
        self.next_probe = 0.0
        self.mark = 0                   # replies seen before the current drain
        self.seq = 0
        self.replies = []               # (id, counter) in arrival order
        self.sent = set()


class Density:
    def __init__(self, a):
        self.a = a
        # Sockets, locks and console logs on tmpfs, as /run is on a real host:
        # a thousand of them on this host's disk-backed /tmp stall on the
        # journal (ADI attach p50 ~1 ms instead of ~40 us; console writes
        # block vCPU threads mid-boot).
        self.tmp = Path(tempfile.mkdtemp(prefix="hdvm-density.", dir=SCRATCH_DIR))
        self.ns = f"hdvm-dens-{os.getpid()}"
        self.nicdir = self.tmp / "nic"
        self.rundir = self.tmp / "run"
        self.logdir = self.tmp / "log"
        self.rundir.mkdir()
        self.logdir.mkdir()
        self.nic = None
        self.mgmt = None
        self.udp = None
        self.guests = []
        self.errors = []
        self.r = {"n": a.n, "mode": a.mode, "mem": a.mem, "concurrency": a.concurrency,
                  "cpus_host": os.cpu_count()}

    # ---- set-up ----

    def start_nic(self):
        # hdnic holds a few descriptors per device and client
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        # No IPv6 autoconfiguration chatter from the namespace's side unless
        # asked for (--ipv6): hdnic's receive filter keeps its multicast off
        # hdguest's functions, --ipv6 shows that at scale.
        for key in ("all", "default"):
            sh("ip", "netns", "exec", self.ns, "sysctl", "-qw",
               f"net.ipv6.conf.{key}.disable_ipv6={0 if self.a.ipv6 else 1}", check=False)
        vfs = self.a.n if self.a.mode == "vf" else 0
        qps = max(2048, self.a.n + 16)
        self.nic_log = open(self.tmp / "hdnic.log", "wb")
        self.nic = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, str(BUILD / "hdnic"), "--dir", str(self.nicdir),
             "--vfs", str(vfs), "--qps", str(qps), "--uplink", f"tap:{TAP}",
             "--name", "density"], stdin=subprocess.DEVNULL, stdout=self.nic_log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not (self.nicdir / "pf.sock").exists():
            if self.nic.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hdnic did not start: "
                                   + (self.tmp / "hdnic.log").read_text(errors="replace"))
            time.sleep(0.02)
        sh("ip", "-n", self.ns, "addr", "add", f"{HOST_IP}/16", "dev", TAP)
        sh("ip", "-n", self.ns, "link", "set", TAP, "up")
        self.mgmt = Mgmt(self.nicdir / "pf.sock")
        self.udp = ns_socket(self.ns)

    def create_devices(self):
        """One device per guest; attach time as hdnic measures it (creation ->
        socket ready) and the management round trip as seen from here."""
        attach, rtt = [], []
        if self.a.mode == "adi":
            for i in range(self.a.n):
                t0 = time.monotonic()
                e = self.mgmt.call(cmd="adi-add", name=f"d{i}")
                rtt.append((time.monotonic() - t0) * 1e6)
                if not e.get("ok"):
                    raise RuntimeError(f"adi-add d{i}: {e.get('error', e)}")
                attach.append(e["attach_us"])
                self.guests.append(Guest(i, e["dev"], e["socket"]))
        else:
            vfs = self.mgmt.call(cmd="list")["vfs"]
            for i in range(self.a.n):
                attach.append(vfs[i]["attach_us"])
                self.guests.append(Guest(i, f"vf{i}", str(self.nicdir / f"vf{i}.sock")))
        self.r["attach_us"] = {"p50": pct(attach, 50), "p99": pct(attach, 99),
                               "max": max(attach), "source": "hdnic attach_us (creation -> socket ready)"}
        if rtt:
            self.r["adi_add_rtt_us"] = {"p50": pct(rtt, 50), "p99": pct(rtt, 99)}

    # ---- launch and readiness ----

    def spawn(self, g):
        argv = [str(BUILD / "hdvm"), "run", "--kernel", str(BUILD / "hdguest.elf"),
                "--cmdline", f"app=counter ip={g.ip}/16 {self.a.guest_args}".rstrip(),
                "--mem", self.a.mem,
                "--name", g.name, "--run-dir", str(self.rundir), "--vfio-user", g.sock,
                "--console", f"file:{self.logdir / (g.name + '.log')}",
                "--metrics", str(self.logdir / (g.name + ".metrics.json"))]
        with open(self.logdir / f"{g.name}.err", "wb") as err:
            g.t_spawn = time.monotonic()
            g.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err,
                                      stderr=subprocess.STDOUT)

    def listening(self, g):
        try:
            with open(self.logdir / f"{g.name}.log", "rb") as f:
                return b"counter: listening on udp/9000" in f.read()
        except FileNotFoundError:
            return False

    def probe(self, g, now):
        g.seq += 1
        rid = (g.idx << 24) | g.seq
        g.sent.add(rid)
        g.next_probe = now + PROBE_EVERY
        try:
            self.udp.sendto(struct.pack("!Q", rid), (g.ip, COUNTER_PORT))
        except (BlockingIOError, OSError):
            pass                        # neighbour not resolved yet: next probe retries

    def drain(self, now):
        while True:
            try:
                data, (src, _) = self.udp.recvfrom(64)
            except BlockingIOError:
                return
            if len(data) < 16:
                self.errors.append(f"short counter reply ({len(data)} bytes) from {src}")
                continue
            rid, counter = struct.unpack("!QQ", data[:16])
            idx = rid >> 24
            if idx >= len(self.guests) or self.guests[idx].ip != src:
                self.errors.append(f"reply id {rid:#x} from {src} matches no guest")
                continue
            g = self.guests[idx]
            if rid not in g.sent:
                self.errors.append(f"{g.name}: reply to an id never sent ({rid:#x})")
            g.replies.append((rid, counter))
            if g.t_ready is None:
                g.t_ready = now

    def launch_all(self):
        """Spawn guests with at most --concurrency booting (spawned, not yet
        answering) at once; probe every listening guest until it answers."""
        a = self.a
        pending = list(self.guests)
        booting = []
        deadline = time.monotonic() + a.ready_timeout
        t_first = time.monotonic()
        while pending or booting:
            now = time.monotonic()
            if now > deadline:
                break
            while pending and len(booting) < a.concurrency:
                g = pending.pop(0)
                self.spawn(g)
                booting.append(g)
            now = time.monotonic()
            for g in booting:
                if g.t_listen is None and self.listening(g):
                    g.t_listen = now
                if g.t_listen is not None and now >= g.next_probe:
                    self.probe(g, now)
                if g.proc.poll() is not None:
                    self.errors.append(f"{g.name} exited with {g.proc.returncode} before answering: "
                                       + self.tail(g))
            select.select([self.udp], [], [], 0.02)
            self.drain(time.monotonic())
            dead = [g for g in booting if g.proc.poll() is not None and g.t_ready is None]
            booting = [g for g in booting if g.t_ready is None and g not in dead]
            if dead:
                break
        t_last_spawn = max((g.t_spawn for g in self.guests if g.t_spawn), default=t_first)
        ready = [g for g in self.guests if g.t_ready is not None]
        self.r["launched"] = sum(1 for g in self.guests if g.proc is not None)
        self.r["ready"] = len(ready)
        self.r["launch_window_s"] = t_last_spawn - t_first
        all_ready = max((g.t_ready for g in ready), default=t_first)
        self.r["all_ready_s"] = all_ready - t_first
        self.r["launch_rate_vms_per_s"] = (len(ready) / (all_ready - t_first)
                                           if ready and all_ready > t_first else 0.0)
        if ready:
            ttr = [(g.t_ready - g.t_spawn) * 1e3 for g in ready]
            ttl = [(g.t_listen - g.t_spawn) * 1e3 for g in ready]
            self.r["time_to_ready_ms"] = {"p50": pct(ttr, 50), "p99": pct(ttr, 99), "max": max(ttr)}
            self.r["time_to_listening_ms"] = {"p50": pct(ttl, 50), "p99": pct(ttl, 99)}
        missing = [g for g in self.guests if g.t_ready is None and g.proc is not None
                   and g.proc.poll() is None]
        unlaunched = sum(1 for g in self.guests if g.proc is None)
        if unlaunched:                      # a guest died (reported above): launching stopped
            self.errors.append(f"launching stopped with {unlaunched} guests not started")
        if missing:
            self.errors.append(f"{len(missing)} running guests never answered "
                               f"{'within ' + str(a.ready_timeout) + 's' if not unlaunched else 'before launching stopped'} "
                               f"(first: {', '.join(g.name for g in missing[:5])})")
            for g in missing[:3]:           # what they were doing: hdvm's log, the console
                state = ("spawned" if g.t_listen is None else "listening") if g.proc else "never spawned"
                self.errors.append(f"{g.name} ({state}, {len(g.sent)} probes sent): "
                                   + self.tail(g) + self.nic_view(g))

    def nic_view(self, g):
        """hdnic's view of a guest's device: its counters, or why not."""
        try:
            st = self.mgmt.call(cmd="stats")
            d = next((d for d in st.get("vfs", []) + st.get("adis", []) if d.get("dev") == g.dev), None)
            return f" | hdnic {g.dev}: {json.dumps(d)}"
        except (OSError, RuntimeError, ValueError) as e:
            return f" | hdnic stats: {e}"

    def tail(self, g):
        out = []
        for suffix in (".err", ".log"):
            p = self.logdir / (g.name + suffix)
            if p.exists():
                out.append(p.read_text(errors="replace")[-600:])
        return " | ".join(out)

    def ask_all(self, guests):
        """One request to each guest at once, resent with doubling intervals until
        its reply comes (at most MAX_SENDS times; a thousand polling guests on two
        cores can take tens of seconds to answer): {guest: (counter or None, sends)}."""
        out, want = {}, {}
        for g in guests:
            g.seq += 1
            rid = (g.idx << 24) | g.seq
            g.sent.add(rid)
            want[rid] = [g, 0, 0.0]            # guest, sends, next send
        while want:
            now = time.monotonic()
            for rid, w in list(want.items()):
                if w[2] > now:
                    continue
                if w[1] == MAX_SENDS:
                    out[w[0]] = (None, w[1])
                    del want[rid]
                    continue
                w[1] += 1
                w[2] = now + RESEND_AFTER * (1 << (w[1] - 1))
                try:
                    self.udp.sendto(struct.pack("!Q", rid), (w[0].ip, COUNTER_PORT))
                except BlockingIOError:
                    w[2] = now + 0.01          # socket buffer full: retry soon, same count
                    w[1] -= 1
            select.select([self.udp], [], [], 0.02)
            for g in guests:
                g.mark = len(g.replies)
            self.drain(time.monotonic())
            for g in guests:
                for r_id, c in g.replies[g.mark:]:
                    if r_id in want:
                        out[g] = (c, want.pop(r_id)[1])
        return out

    def verify_counters(self):
        """Every guest gets --checks requests, one after another (all guests in
        parallel).  Every reply must echo its id; the first sets the baseline (a
        readiness probe's reply may have been lost, and a lost UDP reply still
        counts in the guest), each later one must carry the previous counter + 1
        (+ up to k for the k extra sends of this or the previous request whose
        replies have not been seen); counters never go backwards in arrival order."""
        live = [g for g in self.guests if g.t_ready is not None]
        bad = set()
        prev = {g: max(c for _, c in g.replies) for g in live}
        slack = {g: 0 for g in live}            # duplicates sent, their replies not yet seen
        for k in range(self.a.checks):
            ask = [g for g in live if g not in bad]
            res = self.ask_all(ask)
            resent = False
            for g in ask:
                got, sends = res[g]
                hi = prev[g] + sends + slack[g] if k else 1 << 63
                if got is None:
                    self.errors.append(f"{g.name}: no reply to counter request {g.seq}")
                    bad.add(g)
                elif not prev[g] + 1 <= got <= hi:
                    self.errors.append(f"{g.name}: counter {got} after {prev[g]} ({sends} sends)")
                    bad.add(g)
                resent |= sends > 1
            if resent:                          # let duplicates' replies arrive, count them in
                t_end = time.monotonic() + 4 * RESEND_AFTER
                while time.monotonic() < t_end:
                    select.select([self.udp], [], [], 0.05)
                    self.drain(time.monotonic())
            for g in ask:
                prev[g] = max(c for _, c in g.replies)
                rid = (g.idx << 24) | g.seq
                seen = sum(1 for r_id, _ in g.replies if r_id == rid)
                slack[g] = max(0, res[g][1] - seen)
        for g in live:
            seq = [c for _, c in g.replies]
            if g not in bad and any(b <= a for a, b in zip(seq, seq[1:])):
                self.errors.append(f"{g.name}: counters out of order: {seq[:20]}")
                bad.add(g)
        self.r["counter_checks"] = {"per_guest": self.a.checks, "bad_guests": len(bad)}

    # ---- measurements while everyone idles ----

    def measure_idle(self, mem0, nic_rss0):
        live = [g for g in self.guests if g.proc is not None and g.proc.poll() is None]
        over, shmem, rss = [], [], []
        for g in live:
            s = proc_status_kib(g.proc.pid)
            if s:
                over.append(s.get("RssAnon", 0) + s.get("RssFile", 0))
                shmem.append(s.get("RssShmem", 0))
                rss.append(s.get("VmRSS", 0))
        if over:
            self.r["hdvm_overhead_kib"] = {"p50": pct(over, 50), "p99": pct(over, 99),
                                           "mean": sum(over) / len(over),
                                           "what": "RssAnon + RssFile (guest RAM is RssShmem)"}
            self.r["hdvm_rss_kib_p50"] = pct(rss, 50)
            self.r["guest_resident_kib_p50"] = pct(shmem, 50)
        nic = proc_status_kib(self.nic_pid())
        if nic and live:
            before = "before any ADI" if self.a.mode == "adi" else "VFs created, no client yet"
            self.r["hdnic_rss_kib"] = {"before": nic_rss0, "before_is": before,
                                       "all_attached": nic["VmRSS"]}
            self.r["hdnic_kib_per_device"] = (nic["VmRSS"] - nic_rss0) / len(live)
        # MemAvailable also moves with anything else running on the host
        self.r["host_mem_used_mib"] = (mem0 - meminfo()["MemAvailable"]) / 1024
        nic_rss = nic["VmRSS"] if nic else 0
        self.r["processes_rss_mib"] = (sum(rss) + nic_rss) / 1024
        # idle CPU: whole host, hdnic, and all hdvm processes over one window
        pids = [g.proc.pid for g in live]
        w0 = time.monotonic()
        t0, idle0 = host_cpu()
        nic0, vm0 = sched_threads(self.nic_pid()), [sched_threads(p) for p in pids]
        time.sleep(self.a.idle_window)
        nic1, vm1 = sched_threads(self.nic_pid()), [sched_threads(p) for p in pids]
        t1, idle1 = host_cpu()
        w = time.monotonic() - w0           # the reads of a thousand /proc files included
        nic_ns, _ = sched_delta(nic0, nic1)
        vm_ns = vm_in = 0
        for a, b in zip(vm0, vm1):
            d = sched_delta(a, b)
            vm_ns, vm_in = vm_ns + d[0], vm_in + d[1]
        self.r["idle_cpu"] = {
            "window_s": round(w, 2),
            "host_busy_pct": 100.0 * (1 - (idle1 - idle0) / max(1, t1 - t0)),
            "hdnic_cores": nic_ns / 1e9 / w,
            "hdvm_cores": vm_ns / 1e9 / w,
            "hdvm_and_hdnic_pct_of_a_core": 100.0 * (vm_ns + nic_ns) / 1e9 / w,
            "hdvm_wakeups_per_vm_s": vm_in / w / max(1, len(pids)),
            "source": "schedstat of every hdvm thread (vCPUs carry guest time) and hdnic",
        }
        self.nic_counters()

    def nic_counters(self):
        """What hdnic's switch kept away from the guests: ARP requests directed
        instead of flooded, frames the guests' receive filters refused."""
        st = self.mgmt.call(cmd="stats")
        devs = st.get("vfs", []) + st.get("adis", [])
        self.r["hdnic_counters"] = {
            "arp": st.get("arp", {}),
            "switch_flooded": st.get("switch", {}).get("flooded"),
            "rx_filtered_total": sum(d.get("rx_filtered", 0) for d in devs),
        }

    def nic_pid(self):
        """hdnic's own pid (the Popen is `ip netns exec`, which execs hdnic)."""
        return self.nic.pid

    # ---- teardown and leak checks ----

    def stop_guests(self):
        live = [g for g in self.guests if g.proc is not None and g.proc.poll() is None]
        t0 = time.monotonic()
        for g in live:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2)
                    s.connect(str(self.rundir / f"{g.name}.sock"))
                    s.sendall(b'{"cmd":"stop"}\n')
            except OSError:
                g.proc.send_signal(signal.SIGTERM)
        codes = {}
        deadline = time.monotonic() + max(30, 0.2 * len(live))
        for g in live:
            try:
                rc = g.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.errors.append(f"{g.name} did not stop within the deadline; killed")
                g.proc.kill()
                rc = g.proc.wait()
            codes[rc] = codes.get(rc, 0) + 1
            if rc != 0:
                self.errors.append(f"{g.name} exited with {rc} after stop: {self.tail(g)}")
        for g in self.guests:             # anything that died early
            if g.proc is not None and g.proc.poll() is None:
                g.proc.kill()
                g.proc.wait()
        self.r["stop_s"] = time.monotonic() - t0
        self.r["stop_exit_codes"] = {str(k): v for k, v in codes.items()}
        ov, first_run, phases = [], [], {}
        for g in self.guests:
            p = self.logdir / f"{g.name}.metrics.json"
            if p.exists():
                try:
                    m = json.loads(p.read_text())
                    ov.append(m["overhead_kib"])
                    if m.get("start_to_first_run_us") is not None:
                        first_run.append(m["start_to_first_run_us"])
                    prev = 0
                    for k, v in m.get("start_phases_us", {}).items():
                        if v is not None:   # each phase's own duration
                            phases.setdefault(k, []).append(v - prev)
                            prev = v
                except (ValueError, KeyError):
                    pass
        if phases:
            self.r["hdvm_start_phase_us"] = {k: {"p50": pct(v, 50), "p99": pct(v, 99)}
                                             for k, v in phases.items()}
        if ov:
            self.r["metrics_overhead_kib_p50"] = pct(ov, 50)
        if first_run:
            # hdvm's own clock: process start -> first KVM_RUN, the device's
            # vfio-user connect and attach included
            self.r["hdvm_start_to_first_run_us"] = {"p50": pct(first_run, 50),
                                                    "p99": pct(first_run, 99)}

    def del_devices(self):
        if self.a.mode != "adi" or self.mgmt is None:
            return
        for g in self.guests:
            e = self.mgmt.call(cmd="adi-del", name=g.name)
            if not e.get("ok"):
                self.errors.append(f"adi-del {g.name}: {e.get('error', e)}")
        left = self.mgmt.call(cmd="list").get("adis", [])
        if left:
            self.errors.append(f"{len(left)} ADIs left after adi-del")

    def stop_nic(self):
        if self.mgmt:
            self.mgmt.close()
            self.mgmt = None
        if self.nic and self.nic.poll() is None:
            self.nic.send_signal(signal.SIGTERM)
            try:
                rc = self.nic.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.errors.append("hdnic did not exit within 30 s of SIGTERM; killed")
                self.nic.kill()
                rc = self.nic.wait()
            if rc != 0:
                self.errors.append(f"hdnic exited with {rc}: "
                                   + (self.tmp / "hdnic.log").read_text(errors="replace")[-600:])

    def leak_checks(self, mem0):
        leaks = []
        pids = [g.proc.pid for g in self.guests if g.proc is not None] + [self.nic.pid]
        alive = [p for p in pids if Path(f"/proc/{p}").exists()]
        if alive:
            leaks.append(f"processes still there: {alive[:10]}")
        tag = str(self.tmp).encode()
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                try:
                    if tag in (d / "cmdline").read_bytes():
                        leaks.append(f"process {d.name} still refers to {self.tmp}")
                except OSError:
                    pass
        for d in (self.rundir, self.nicdir):
            if d.exists():
                socks = [p.name for p in d.iterdir() if p.is_socket()]
                if socks:
                    leaks.append(f"sockets left in {d}: {socks[:10]}")
        if sh("ip", "-n", self.ns, "link", "show", TAP, check=False).returncode == 0:
            leaks.append(f"TAP {TAP} still exists after hdnic stopped")
        sh("ip", "netns", "del", self.ns, check=False)
        if self.ns in sh("ip", "netns", "list").stdout.split():
            leaks.append(f"namespace {self.ns} still exists")
        tol = self.a.mem_tolerance_mib * 1024
        deadline = time.monotonic() + 15
        while True:
            drop = mem0 - meminfo()["MemAvailable"]
            if drop <= tol or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.r["mem_after_teardown_mib"] = drop / 1024
        if drop > tol:
            leaks.append(f"MemAvailable is {drop / 1024:.0f} MiB below the start "
                         f"(tolerance {self.a.mem_tolerance_mib} MiB)")
        self.r["leaks"] = leaks
        self.errors.extend(leaks)

    def size_neigh_table(self):
        """The kernel's ARP table is shared by every namespace and by default
        holds at most 1024 entries (gc_thresh3), and starts evicting entries
        older than 5 s above 512 (gc_thresh2): the namespace's neighbours for
        a thousand guests would churn or be refused.  Raise the limits for
        the run; cleanup() puts the old values back."""
        need = self.a.n + 1024
        self.neigh_saved = {}
        for key, want in (("gc_thresh2", need), ("gc_thresh3", 2 * need)):
            path = Path(f"/proc/sys/net/ipv4/neigh/default/{key}")
            old = int(path.read_text())
            if old < want:
                self.neigh_saved[path] = old
                path.write_text(str(want))
                log(f"net.ipv4.neigh.default.{key} {old} -> {want} for this run")

    def restore_neigh_table(self):
        for path, old in getattr(self, "neigh_saved", {}).items():
            path.write_text(str(old))
        self.neigh_saved = {}

    def cleanup(self):
        """Last resort on any path: kill what this run started, remove its namespace."""
        self.restore_neigh_table()
        for g in self.guests:
            if g.proc is not None and g.proc.poll() is None:
                g.proc.kill()
                g.proc.wait()
        if self.mgmt:
            self.mgmt.close()
        if self.nic and self.nic.poll() is None:
            self.nic.kill()
            self.nic.wait()
        if self.udp:
            self.udp.close()
            self.udp = None
        sh("ip", "netns", "del", self.ns, check=False)
        if not self.a.keep:
            subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def run(self):
        mem0 = meminfo()["MemAvailable"]
        t0, idle0 = host_cpu()
        time.sleep(1.0)
        t1, idle1 = host_cpu()
        # other work on the host, for reading idle_cpu.host_busy_pct
        self.r["host_busy_pct_before"] = 100.0 * (1 - (idle1 - idle0) / max(1, t1 - t0))
        try:
            self.size_neigh_table()
            self.start_nic()
            time.sleep(0.2)
            nic_rss0 = proc_status_kib(self.nic_pid())["VmRSS"]
            log(f"hdnic up; creating {self.a.n} {self.a.mode.upper()}s")
            self.create_devices()
            log(f"launching {self.a.n} microVMs ({self.a.concurrency} booting at a time)")
            self.launch_all()
            log(f"{self.r['ready']}/{self.a.n} answered in {self.r['all_ready_s']:.1f}s; "
                "checking counters")
            self.verify_counters()
            self.measure_idle(mem0, nic_rss0)
            log("tearing down")
            self.stop_guests()
            self.del_devices()
            self.stop_nic()
            self.udp.close()
            self.udp = None
            self.leak_checks(mem0)
        except Exception as e:          # report, then the finally clause cleans up
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)   # finish cleaning up
            self.cleanup()
        self.r["errors"] = self.errors
        self.r["ok"] = not self.errors
        return self.r


def fmt(v, unit=""):
    if v is None:
        return "-"
    return f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def table(r):
    g = r.get
    ttr, att = g("time_to_ready_ms", {}), g("attach_us", {})
    ov, cpu = g("hdvm_overhead_kib", {}), g("idle_cpu", {})
    fr = g("hdvm_start_to_first_run_us", {})
    rows = [
        ("microVMs (mode)", f"{r['n']} ({r['mode'].upper()}, {r['mem']} each)"),
        ("answered", f"{g('ready', 0)} of {r['n']}"),
        ("launch rate", fmt(g("launch_rate_vms_per_s"), " VMs/s")
         + f"  (all ready after {fmt(g('all_ready_s'), ' s')}, concurrency {r['concurrency']})"),
        ("time to ready p50 / p99", f"{fmt(ttr.get('p50'), ' ms')} / {fmt(ttr.get('p99'), ' ms')}"),
        (f"{r['mode'].upper()} attach p50 / p99", f"{fmt(att.get('p50'), ' us')} / {fmt(att.get('p99'), ' us')}"
         "  (hdnic: creation -> socket ready)"),
        ("hdvm start -> first run p50 / p99",
         f"{fmt(fr.get('p50'), ' us')} / {fmt(fr.get('p99'), ' us')}  (device attach included)"),
        ("hdvm RSS overhead / VM p50 / p99", f"{fmt(ov.get('p50'), ' KiB')} / {fmt(ov.get('p99'), ' KiB')}"),
        ("hdnic memory / device", fmt(g("hdnic_kib_per_device"), " KiB")),
        ("host memory used", fmt(g("host_mem_used_mib"), " MiB")
         + f"  (MemAvailable drop; RSS of hdvm + hdnic {fmt(g('processes_rss_mib'), ' MiB')})"),
        ("idle CPU: hdvm + hdnic", fmt(cpu.get("hdvm_and_hdnic_pct_of_a_core"), " % of a core")
         + f"  ({fmt(cpu.get('hdvm_wakeups_per_vm_s'))} wake-ups/s per VM, "
         f"{fmt(cpu.get('window_s'), ' s')} window)"),
        ("idle CPU: whole host", fmt(cpu.get("host_busy_pct"), " % busy")
         + f"  ({fmt(g('host_busy_pct_before'), ' %')} busy before start: other work)"),
        ("kept off the guests by hdnic",
         f"{g('hdnic_counters', {}).get('arp', {}).get('directed', '-')} ARP requests directed, "
         f"{g('hdnic_counters', {}).get('arp', {}).get('flooded', '-')} flooded; "
         f"{g('hdnic_counters', {}).get('rx_filtered_total', '-')} frames filtered"),
        ("counter checks", f"{g('counter_checks', {}).get('bad_guests', '-')} bad guests"),
        ("teardown", f"{fmt(g('stop_s'), ' s')}, MemAvailable "
         f"{fmt(g('mem_after_teardown_mib'), ' MiB')} below start"),
        ("leaks", "none" if g("leaks") == [] else "; ".join(g("leaks", ["not checked"]))),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="microVMs (default 1000)")
    ap.add_argument("--mode", choices=("adi", "vf"), default="adi")
    ap.add_argument("--mem", default="32M", help="guest RAM each (default 32M)")
    ap.add_argument("--concurrency", type=int, default=2 * (os.cpu_count() or 1),
                    help="guests booting (spawned, not yet answering) at once (default: two "
                    "per host CPU; more only queue for the CPUs and stretch KVM's memslot "
                    "grace periods: at N=1000 on 2 cores 4 gave 53-54 VMs/s, 8 gave 45, 16 "
                    "gave 28-41)")
    ap.add_argument("--ready-timeout", type=float, default=1800.0,
                    help="seconds for all guests to answer (default 1800)")
    ap.add_argument("--checks", type=int, default=3,
                    help="counter requests per guest after ready, one after another (default 3)")
    ap.add_argument("--idle-window", type=float, default=65.0,
                    help="seconds of idle CPU sampling (default 65: longer than a sleeping "
                    "guest's 60 s safety-net timer, so every guest's wake-up is counted)")
    ap.add_argument("--mem-tolerance-mib", type=int, default=128,
                    help="MemAvailable may end this far below the start (default 128)")
    ap.add_argument("--json", default=str(BUILD / "bench-density.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary dir (logs; under /dev/shm)")
    ap.add_argument("--ipv6", action="store_true",
                    help="leave IPv6 on in the namespace (its multicast reaches hdnic)")
    ap.add_argument("--guest-args", default="",
                    help="appended to each guest's command line (e.g. idle_wake=60)")
    a = ap.parse_args()
    if not 1 <= a.n <= MAX_VMS:
        ap.error(f"--n {a.n}: expected 1..{MAX_VMS}")
    if a.mode == "vf" and a.n > 256:
        ap.error(f"--n {a.n}: hdnic has at most 256 VFs (use --mode adi for more)")
    if a.concurrency < 1 or a.checks < 1 or a.ready_timeout <= 0 or a.idle_window <= 0:
        ap.error("--concurrency, --checks, --ready-timeout and --idle-window must be positive")
    for f in ("hdvm", "hdnic", "hdguest.elf"):
        if not (BUILD / f).exists():
            ap.error(f"{BUILD / f} is missing: run `make` first (or set HDVM_BUILD)")
    if os.geteuid() != 0:
        ap.error("needs root (network namespace, TAP, /dev/kvm)")
    def on_term(signum, _frame):
        raise SystemExit(f"signal {signum}")   # unwinds through run()'s clean-up

    signal.signal(signal.SIGTERM, on_term)
    r = Density(a).run()
    print(table(r))
    for e in r["errors"][:20]:
        print(f"error: {e}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {a.json}")
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
