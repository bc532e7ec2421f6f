#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A function moving between two hdnics, shown and measured without KVM on
the two-host harness (tests/integration/hosts.py): host namespaces A and B
with an hdnic each on a bridge, a client namespace, offloads at the
kernel's defaults.  The "guest" is the Python virtio driver answering UDP
counter requests with the counter in its memory; it is moved A -> B -> A ...
(PRE_COPY, STOP_COPY, memory copied, RESUMING on the other hdnic) while the
client keeps asking.  Per move: the device-state bytes, the device downtime
(STOP_COPY asked on A -> RUNNING on B) and the reply gap the client saw.
Python drives both sides, so the times are an upper bound on what hdnic
costs (hdnic's part is microseconds; the rest is this script).

  tools/move_demo.py [--moves 10] [--json FILE]
"""
import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HDVM_BUILD", str(ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import vfio_user_client as vu  # noqa: E402
from hosts import COUNTER_PORT, TwoHosts, UdpGuest, guest_ip, move_driver, read_state  # noqa: E402


def ask(sock, guest, rid, ip, timeout=2.0, retry=0.01):
    """One counter request with retries every `retry` s: (counter, when)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(struct.pack("!Q", rid), (ip, COUNTER_PORT))
        until = time.monotonic() + retry
        while time.monotonic() < until:
            guest.poll(0.0, step=0.001)
            try:
                got = struct.unpack("!QQ", sock.recv(64)[:16])
            except BlockingIOError:
                continue
            if got[0] == rid:
                return got[1], time.monotonic()
    return None, time.monotonic()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hosts = TwoHosts(tmp, vfs=1)
        try:
            nics = [hosts.nic["a"], hosts.nic["b"]]
            s = hosts.udp_socket()
            s.setblocking(False)
            ip, rid, expect = guest_ip(0), 1, 1
            with vu.VirtioNetVF(nics[0].sock(0)) as vf:
                vf.post_rx()
                g = UdpGuest(vf, ip)
                for move in range(args.moves):
                    for _ in range(5):
                        c, last = ask(s, g, rid, ip)
                        assert c == expect, (c, expect)
                        rid, expect = rid + 1, expect + 1
                    assert vf.c.set_mig_state(vu.MIG_PRE_COPY) == vu.MIG_PRE_COPY
                    ahead = read_state(vf.c)
                    t0 = time.monotonic()
                    vf.c.set_mig_state(vu.MIG_STOP_COPY)
                    stream = ahead + read_state(vf.c)
                    old = move_driver(vf, nics[(move + 1) % 2].sock(0), stream)
                    t1 = time.monotonic()
                    old.close()
                    c, first = ask(s, g, rid, ip)
                    assert c == expect, (c, expect)
                    rid, expect = rid + 1, expect + 1
                    rows.append({"move": move + 1, "to": "AB"[(move + 1) % 2],
                                 "state_bytes": len(stream),
                                 "device_downtime_ms": (t1 - t0) * 1e3,
                                 "client_gap_ms": (first - last) * 1e3})
            s.close()
        finally:
            hosts.close()
    print(f"{'move':>4} {'to':>2} {'state B':>8} {'downtime ms':>12} {'reply gap ms':>13}")
    for r in rows:
        print(f"{r['move']:>4} {r['to']:>2} {r['state_bytes']:>8} "
              f"{r['device_downtime_ms']:>12.2f} {r['client_gap_ms']:>13.2f}")
    med = {k: statistics.median(r[k] for r in rows)
           for k in ("device_downtime_ms", "client_gap_ms")}
    print(f"median: device downtime {med['device_downtime_ms']:.2f} ms, "
          f"client reply gap {med['client_gap_ms']:.2f} ms, counter continued over "
          f"{len(rows)} moves")
    if args.json:
        Path(args.json).write_text(json.dumps({"moves": rows, "median": med}, indent=1))


if __name__ == "__main__":
    main()
