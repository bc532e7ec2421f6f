# SPDX-License-Identifier: MIT
"""Device-level QoS in hdnic: the uplink serves flooding devices by deficit
weighted round robin (shares follow weights, equal weights share fairly),
a per-device egress token bucket holds a device to its rate while the rest
of the line goes to others, and ingress policing drops a device's excess at
the device, before any DMA, while a neighbour receives everything sent to
it.  Drivers are Python threads playing guests that send and receive as
fast as the device lets them."""
import threading
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VirtioNetVF, ether_frame
from nichost import Hdnic

PEER = bytes.fromhex("02aabbccdd01")
LINE = 20_000_000            # uplink line rate for these tests, bit/s
FRAME = 1000                 # bytes on the wire per test frame
WARMUP, WINDOW = 1.0, 3.0    # seconds


class Flooder(threading.Thread):
    """Keeps one TX queue of a driver full of copies of a frame, like a guest
    sending as fast as the device takes packets.  Only doorbell stores and
    ioeventfd notifies: no vfio-user traffic, so the main thread may use the
    driver's socket meanwhile."""

    def __init__(self, drv, frame, q=vu.TX):
        super().__init__(daemon=True)
        self.drv, self.q, self.ring = drv, q, drv.rings[q]
        self.done = 0
        self.halt = threading.Event()
        data = bytes(vu.NET_HDR_LEN) + frame
        for slot in range(drv.QSIZE):
            addr = drv.bufs[q] + slot * drv.BUF_SIZE
            drv.mem[addr:addr + len(data)] = data
            self.ring.set_desc(slot, drv.IOVA + addr, len(data))

    def run(self):
        r, size, inflight = self.ring, self.drv.QSIZE, 0
        while not self.halt.is_set():
            used = r.used_idx()
            finished = (used - r.last_used) & 0xFFFF
            r.last_used = used
            inflight -= finished
            self.done += finished
            free = size - inflight
            if free:
                r.publish_many([(r.avail_idx + i) % size for i in range(free)])
                inflight += free
                self.drv.kick(self.q)
            else:
                time.sleep(0.0005)

    def stop(self):
        self.halt.set()
        self.join(5)


class RxDrain(threading.Thread):
    """Gives every RX buffer the device fills straight back, counting frames
    (a guest that keeps up).  Doorbell stores only, like Flooder."""

    def __init__(self, drv, q=vu.RX):
        super().__init__(daemon=True)
        self.drv, self.q, self.ring = drv, q, drv.rings[q]
        self.frames = 0
        self.halt = threading.Event()
        drv.post_rx(q=q)

    def run(self):
        r = self.ring
        while not self.halt.is_set():
            heads = []
            while (e := r.pop_used()) is not None:
                heads.append(e[0])
            if heads:
                self.frames += len(heads)
                r.publish_many(heads)
                self.drv.ring_doorbell(self.q)
            else:
                time.sleep(0.0005)

    def stop(self):
        self.halt.set()
        self.join(5)


@pytest.fixture
def nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=1, uplink="tap:hdt0", netns=ns, name="qostest",
              extra=["--uplink-rate", "20M", "--idle-us", "300000"])
    yield n
    n.stop_checked()


def flood_frame(drv, tag, dst=PEER):
    return ether_frame(dst, drv.mac(), payload=tag + bytes(FRAME - 14 - len(tag)))


def measure(nic, devs, key="tx_bytes", window=WINDOW):
    """Per-device delta of a counter over the window, and the window's length.
    The window is timed by hdnic's own clock at each read of the counters
    (stats' now_ns): timed here, after each `hdnic ctl` came back, it was off
    by the difference of the two round trips, hundreds of ms of a 3 s window
    on a loaded host."""
    def snap():
        s = nic.ctl_json("stats")
        by = {d["dev"]: d for d in s["vfs"] + s["adis"]}
        return {d: by[d][key] for d in devs}, s["uplink"]["tx_bytes"], s["now_ns"] / 1e9
    a, up_a, t0 = snap()
    time.sleep(window)
    b, up_b, t1 = snap()
    return {d: b[d] - a[d] for d in devs}, up_b - up_a, t1 - t0


def flood(nic, names, qos=None, dst=PEER):
    """Flood from ADIs `names` (created here, qos args per name) towards dst
    (the uplink by default) and return their byte counts over the window and
    the uplink's."""
    for name in names:
        nic.adi_add(name)
        if qos and name in qos:
            r = nic.ctl("qos", f"adi-{name}", *qos[name])
            assert r.returncode == 0, r.stderr
    drvs = [VirtioNetVF(nic.adi_sock(name), qsize=256) for name in names]
    floods = [Flooder(d, flood_frame(d, name.encode(), dst)) for d, name in zip(drvs, names)]
    try:
        for f in floods:
            f.start()
        time.sleep(WARMUP)
        got, uplink, dt = measure(nic, [f"adi-{n}" for n in names])
    finally:
        for f in floods:
            f.stop()
        for d in drvs:
            d.close()
    return got, uplink, dt


def test_weights_share_the_uplink(nic):
    got, uplink, dt = flood(nic, ["light", "heavy"],
                            {"light": ["--weight", "1"], "heavy": ["--weight", "3"]})
    light, heavy = got["adi-light"], got["adi-heavy"]
    share = light / (light + heavy)
    print(f"\nweights 1:3 -> {light * 8 / dt / 1e6:.2f} : {heavy * 8 / dt / 1e6:.2f} Mbit/s, "
          f"ratio 1:{heavy / light:.3f}, uplink {uplink * 8 / dt / 1e6:.2f} Mbit/s")
    assert abs(share - 0.25) <= 0.025, share              # within 10% of 1:3
    assert abs(uplink * 8 / dt - LINE) <= 0.1 * LINE      # the line is kept busy
    assert abs((light + heavy) - uplink) <= 0.02 * uplink  # and it is all theirs


def test_equal_weights_are_fair(nic):
    names = [f"eq{i}" for i in range(8)]
    got, uplink, dt = flood(nic, names)
    x = [got[f"adi-{n}"] for n in names]
    jain = sum(x) ** 2 / (len(x) * sum(v * v for v in x))
    print(f"\n8 equal flooders: Jain {jain:.4f}, Mbit/s "
          + " ".join(f"{v * 8 / dt / 1e6:.2f}" for v in x))
    assert jain >= 0.95, (jain, x)
    assert abs(uplink * 8 / dt - LINE) <= 0.1 * LINE


def test_tx_rate_limit_leaves_the_rest_to_others(nic):
    got, uplink, dt = flood(nic, ["capped", "open"], {"capped": ["--tx-rate", "4M"]})
    capped, other = got["adi-capped"] * 8 / dt, got["adi-open"] * 8 / dt
    print(f"\ntx-rate 4M: capped {capped / 1e6:.2f} Mbit/s, neighbour {other / 1e6:.2f} Mbit/s")
    assert abs(capped - 4e6) <= 0.1 * 4e6
    assert abs(capped + other - LINE) <= 0.1 * LINE        # work-conserving
    assert nic.dev_stats("adi-capped")["tx_throttled"] > 0


def test_weights_share_the_switch(ns, tmp_path):
    """Device-to-device traffic contends for the internal switch: the same DWRR."""
    n = Hdnic(HDNIC, tmp_path / "snic", vfs=0, uplink="tap:hds0", netns=ns,
              extra=["--switch-rate", "20M", "--idle-us", "300000"])
    try:
        assert n.ctl_json("list")["switch_rate"] == LINE
        n.adi_add("sink")
        with VirtioNetVF(n.adi_sock("sink"), qsize=256) as sink:
            drain = RxDrain(sink)
            drain.start()
            try:
                got, uplink, dt = flood(n, ["w1", "w3"], {"w1": ["--weight", "1"],
                                                          "w3": ["--weight", "3"]},
                                        dst=sink.mac())
                received = n.dev_stats("adi-sink")["rx_bytes"]
            finally:
                drain.stop()
        w1, w3 = got["adi-w1"], got["adi-w3"]
        print(f"\nswitch, weights 1:3 -> {w1 * 8 / dt / 1e6:.2f} : {w3 * 8 / dt / 1e6:.2f} Mbit/s")
        assert abs(w1 / (w1 + w3) - 0.25) <= 0.025
        assert abs((w1 + w3) * 8 / dt - LINE) <= 0.1 * LINE
        assert uplink == 0 and received > 0
        assert n.ctl_json("stats")["sched"]["switch"]["full"] > 0
    finally:
        assert n.stop() == 0, n.output()


def test_rx_policing_at_the_device(ns, nic):
    """Ingress policing: the limited device gets its rate and not a frame
    more into its rings; the excess is counted at hdnic; its neighbour gets
    everything sent to it."""
    nic.adi_add("lim")
    nic.adi_add("free")
    assert nic.ctl_json("qos", "adi-lim", "--rx-rate", "4M")["qos"]["rx_rate"] == 4_000_000
    with VirtioNetVF(nic.adi_sock("lim"), qsize=256) as lim, \
            VirtioNetVF(nic.adi_sock("free"), qsize=256) as free:
        drains = {"lim": RxDrain(lim), "free": RxDrain(free)}
        sent = {"lim": 0, "free": 0}
        halt = threading.Event()
        tx = ns.packet_socket("hdt0")
        frames = {k: ether_frame(d.mac(), PEER, payload=b"in-" + k.encode() + bytes(FRAME - 17 - len(k)))
                  for k, d in (("lim", lim), ("free", free))}

        def sender():      # 12 Mbit/s to each: three times what lim may take
            per_tick, tick = 15, 0.01
            nxt = time.monotonic()
            while not halt.is_set():
                for _ in range(per_tick):
                    for k in ("lim", "free"):
                        tx.send(frames[k])
                        sent[k] += 1
                nxt += tick
                time.sleep(max(0.0, nxt - time.monotonic()))

        t = threading.Thread(target=sender, daemon=True)
        for d in drains.values():
            d.start()
        t.start()
        try:
            time.sleep(WARMUP)
            s0 = {k: nic.dev_stats(f"adi-{k}") for k in ("lim", "free")}
            sent0 = dict(sent)
            t0 = time.monotonic()
            time.sleep(WINDOW)
            s1 = {k: nic.dev_stats(f"adi-{k}") for k in ("lim", "free")}
            sent1 = dict(sent)
            dt = time.monotonic() - t0
        finally:
            halt.set()
            t.join(5)
            tx.close()
        # let in-flight frames land, then compare what the guests saw
        time.sleep(0.3)
        for d in drains.values():
            d.stop()
        final = {k: nic.dev_stats(f"adi-{k}") for k in ("lim", "free")}
    rate = (s1["lim"]["rx_bytes"] - s0["lim"]["rx_bytes"]) * 8 / dt
    policed = s1["lim"]["rx_policed"] - s0["lim"]["rx_policed"]
    offered_lim = sent1["lim"] - sent0["lim"]
    offered_free = sent1["free"] - sent0["free"]
    got_free = s1["free"]["rx_packets"] - s0["free"]["rx_packets"]
    print(f"\nrx-rate 4M: limited device {rate / 1e6:.2f} Mbit/s, {policed} of {offered_lim} "
          f"frames policed; neighbour got {got_free} of {offered_free}")
    assert abs(rate - 4e6) <= 0.1 * 4e6
    assert policed > 0.5 * offered_lim                      # the drop counter grows at hdnic
    assert got_free >= 0.98 * offered_free                  # the neighbour gets the rest
    assert final["free"]["rx_policed"] == 0
    # the excess cost the limited guest nothing: no buffer used, no other drop
    assert drains["lim"].frames == final["lim"]["rx_packets"]
    assert final["lim"]["rx_drops"] == final["lim"]["rx_policed"]
    assert final["lim"]["needs_reset"] == final["free"]["needs_reset"] == 0


def test_qos_settings(nic):
    r = nic.ctl_json("qos", "0")
    assert r["qos"] == {"tx_rate": 0, "rx_rate": 0, "weight": 1}
    r = nic.ctl_json("qos", "vf0", "--tx-rate", "1.5G", "--rx-rate", "250k", "--weight", "7")
    assert r["qos"] == {"tx_rate": 1_500_000_000, "rx_rate": 250_000, "weight": 7}
    assert nic.vf_info(0)["qos"] == r["qos"]
    human = nic.ctl("qos", "vf0")
    assert "tx-rate 1.5G" in human.stdout and "rx-rate 250k" in human.stdout
    assert "1.5G" in nic.ctl("list").stdout
    assert nic.ctl_json("qos", "vf0", "--tx-rate", "0")["qos"]["tx_rate"] == 0
    nic.adi_add("q")
    assert nic.ctl_json("qos", "q", "--weight", "3")["dev"] == "adi-q"
    for args, msg in [
        (["--tx-rate", "fast"], "expected a rate like 10M"),
        (["--tx-rate", "1k"], "expected a rate like 10M"),          # below 8 kbit/s
        (["--rx-rate", "101G"], "expected a rate like 10M"),        # above 100 Gbit/s
        (["--weight", "0"], "expected 1 to 1000"),
        (["--weight", "1001"], "expected 1 to 1000"),
        (["--burst", "1"], "unknown option"),
    ]:
        r = nic.ctl("qos", "vf0", *args)
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
    r = nic.ctl("qos", "adi-nosuch", "--weight", "2")
    assert r.returncode != 0 and "no VF or ADI named" in r.stderr
    assert nic.alive()
