#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark for CompSC (issue 14, devices/compsc.md): `make bench-compsc`.

1. lock  -- the run-time cost of CompSC's read lock: the C driver's section
   (hdguest's vnet_enter/vnet_leave: a CAS to take, an atomic decrement to
   leave, one load of the counter) timed natively, against an empty section;
   and the Python driver's (compsc.CompscVF) per-section lock time.  No KVM.
2. move  -- the same Python guest moved between two hosts' hdnics N times the
   VFIO-v2 way (STOP_COPY/RESUMING, migratable functions) and the CompSC way
   (--no-migration functions, the driver restores): downtime of each.  Needs
   root (namespaces), no KVM.  Python-bound: compare the two, not with hdvm.
3. vm    -- hdguest's counter on a VF migrated by hdvm, VFIO v2 against
   CompSC: downtime and the client's reply rate before/after.  Needs
   /dev/kvm (or tools/kvmlab, where timings mean nothing).

Prints a table (and --json FILE).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

LOCK_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "devices/vfio/compsc_abi.h"
static struct compsc_page page __attribute__((aligned(4096)));
static uint32_t seen;
static inline void enter(void)
{
	uint32_t v;
	for (;;) {
		v = __atomic_load_n(&page.lock, __ATOMIC_ACQUIRE);
		if (v & COMPSC_LOCK_WRITER) continue;
		if (__atomic_compare_exchange_n(&page.lock, &v, v + 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) break;
	}
	if (__atomic_load_n(&page.counter, __ATOMIC_ACQUIRE) != seen) seen = page.counter;
}
static inline void leave(void) { __atomic_fetch_sub(&page.lock, 1, __ATOMIC_RELEASE); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv)
{
	long n = 20000000; volatile uint64_t work = 0; double t0, t1, t2;
	t0 = now();
	for (long i = 0; i < n; i++) { work++; __asm__ volatile("" ::: "memory"); }
	t1 = now();
	for (long i = 0; i < n; i++) { enter(); work++; leave(); }
	t2 = now();
	printf("%.2f %.2f\n", (t1 - t0) / n, (t2 - t1) / n);
	return 0;
}
"""


def bench_lock(results):
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "lock.c", Path(d) / "lock"
        src.write_text(LOCK_C)
        subprocess.run(["cc", "-O2", f"-I{ROOT}", "-o", str(exe), str(src)], check=True)
        runs = [tuple(map(float, subprocess.run([str(exe)], capture_output=True, text=True,
                                                check=True).stdout.split())) for _ in range(3)]
    base = statistics.median(r[0] for r in runs)
    locked = statistics.median(r[1] for r in runs)
    results["lock_c_ns"] = round(locked - base, 2)
    print(f"C driver section (uncontended CAS + decrement + counter check): "
          f"{locked - base:.2f} ns per section ({base:.2f} ns loop)")


def bench_python_lock(results, tmp):
    from nichost import Netns, Hdnic
    from hdvmlib import HDNIC
    from compsc import CompscHost, CompscVF
    ns = Netns()
    try:
        nic = Hdnic(HDNIC, Path(tmp) / "nic", vfs=1, uplink="tap:hdt0", netns=ns,
                    extra=["--no-migration"])
        try:
            vf = CompscVF(nic.sock(0))
            host = CompscHost(vf)
            assert vf.opt_in(host)
            vf.lock_ns = vf.sections = 0
            for _ in range(200):
                vf.post_rx(1)
            t = vf.lock_ns / max(vf.sections, 1) / 1000
            results["lock_python_us"] = round(t, 2)
            print(f"Python driver: {t:.2f} us of lock per section ({vf.sections} sections)")
            vf.close()
        finally:
            nic.stop()
    finally:
        ns.delete()


def bench_moves(results, tmp, n):
    from hosts import TwoHosts, guest_ip, move_driver, read_state
    from test_hdnic_two_hosts import Client
    from hosts import UdpGuest
    from vfio_user_client import VirtioNetVF
    import vfio_user_client as vu
    from compsc import CompscGuest, CompscHost, CompscVF
    out = {}
    for way in ("vfio", "compsc"):
        extra = ["--idle-us", "300000"] + (["--no-migration"] if way == "compsc" else [])
        (Path(tmp) / way).mkdir()
        h = TwoHosts(Path(tmp) / way, vfs=2, extra=extra)
        downs, proto = [], []
        try:
            client = Client(h, guest_ip(0))
            if way == "vfio":
                vf = VirtioNetVF(h.nic["a"].sock(0))
                g = UdpGuest(vf, guest_ip(0))
            else:
                vf = CompscVF(h.nic["a"].sock(0))
                host = CompscHost(vf)
                assert vf.opt_in(host)
                g = CompscGuest(vf, guest_ip(0))
            vf.post_rx()
            side = ["a", "b"]
            for i in range(n):
                for _ in range(5):
                    assert client.request(g) is not None
                src, dst = h.nic[side[i % 2]], h.nic[side[(i + 1) % 2]]
                sdev, ddev = ("vf0", "vf1") if i % 2 == 0 else ("vf1", "vf0")
                dpath = dst.sock(int(ddev[2]))
                t0 = time.monotonic()
                if way == "vfio":
                    assert vf.c.set_mig_state(vu.MIG_STOP_COPY) == vu.MIG_STOP_COPY
                    old = move_driver(vf, dpath, read_state(vf.c))
                else:
                    old = host.migrate(dpath, src, sdev, dst, ddev)
                    t1 = time.monotonic()
                    g.pass_once()       # the vCPUs run: the driver restores, announces
                    proto.append(host.result["downtime_ms"] + (time.monotonic() - t1) * 1000)
                assert client.request(g) is not None
                downs.append((time.monotonic() - t0) * 1000)
                old.close()
            vf.close()
            client.close()
        finally:
            h.close()
        out[way] = downs
        print(f"{way}: {n} moves, stop to first reply median "
              f"{statistics.median(downs):.1f} ms (min {min(downs):.1f}, max {max(downs):.1f})")
        if proto:
            out["compsc_protocol"] = proto
            print(f"compsc: write lock to restored device median {statistics.median(proto):.1f} ms "
                  f"(3 `hdnic ctl` processes for the PF state inside); the first request "
                  f"races the driver's announce and waits for the client's 250 ms retry")
    results["moves"] = out


def bench_vm(results):
    if not os.path.exists("/dev/kvm"):
        print("vm: skipped, /dev/kvm is absent (run under tools/kvmlab for a functional run; "
              "its timings mean nothing)")
        results["vm"] = "skipped: no /dev/kvm"
        return
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-m", "kvm",
                        str(ROOT / "tests/integration/test_compsc_vm.py"), "-k", "moves"],
                       capture_output=True, text=True, env={**os.environ,
                                                            "HDVM_BUILD": str(ROOT / "build")})
    line = [l for l in r.stdout.splitlines() if l.startswith("CompSC VM:")]
    print(line[0] if line else r.stdout[-2000:])
    results["vm"] = line[0] if line else "failed"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=5)
    p.add_argument("--only", choices=["lock", "move", "vm"])
    p.add_argument("--json")
    a = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if a.only in (None, "lock"):
            bench_lock(results)
            if os.geteuid() == 0:
                bench_python_lock(results, tmp)
        if a.only in (None, "move"):
            bench_moves(results, tmp, a.moves)
        if a.only in (None, "vm"):
            bench_vm(results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
