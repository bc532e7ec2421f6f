# SPDX-License-Identifier: MIT
"""hdnic's management socket (pf.sock), `hdnic ctl`, the CLI and shutdown."""
import json
import signal
import socket
import subprocess
import time

import pytest

from hdvmlib import HDNIC
import vfio_user_client as vu
from vfio_user_client import VirtioNetVF, wait_for
from nichost import Hdnic


@pytest.fixture
def nic(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=3, uplink="tap:hdt0", netns=ns, name="mgmtnic")
    yield n
    assert n.stop() == 0, n.output()
    assert "AddressSanitizer" not in n.output()


def raw_request(nic, data, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(nic.dir / "pf.sock"))
    s.sendall(data)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return [json.loads(line) for line in buf.decode().splitlines()]


def test_list(nic):
    r = nic.ctl_json("list")
    assert r["ok"] and r["nic"] == "mgmtnic"
    assert r["uplink"] == {"kind": "tap", "ifname": "hdt0", "rate": 0}
    assert r["qps"] == {"total": 2048, "free": 2048 - 3} and r["adis"] == []
    assert [v["vf"] for v in r["vfs"]] == [0, 1, 2]
    macs = {v["mac"] for v in r["vfs"]}
    assert len(macs) == 3 and all(m.startswith("02:48:44:") for m in macs)
    assert all(v["state"] == "no-client" and v["socket"].endswith(f"vf{v['vf']}.sock")
               for v in r["vfs"])
    human = nic.ctl("list")
    assert human.returncode == 0 and "vf1.sock" in human.stdout and "no-client" in human.stdout


def test_stats(nic):
    with VirtioNetVF(nic.sock(1)) as vf:
        vf.send(vu.ether_frame(b"\xff" * 6, vf.mac()))
        assert vf.wait_tx_done(1)
        s = nic.ctl_json("stats")
        v = s["vfs"][1]
        for key in ("rx_packets", "rx_bytes", "rx_drops", "rx_errors", "tx_packets", "tx_bytes",
                    "tx_drops", "tx_errors", "needs_reset"):
            assert isinstance(v[key], int)
        assert v["tx_packets"] == 1 and v["tx_bytes"] == 60 and v["needs_reset"] == 0
        assert s["uplink"]["tx_packets"] >= 1
        assert nic.vf_info(1)["state"] == "running"
    human = nic.ctl("stats")
    assert human.returncode == 0 and "tx_pkts" in human.stdout
    head, vf1 = human.stdout.splitlines()[0].split(), next(
        line.split() for line in human.stdout.splitlines() if line.startswith("vf1 "))
    assert "filtered" in head and len(head) == len(vf1)
    assert int(vf1[head.index("tx_pkts")]) == 1


def test_set_mac(nic):
    with VirtioNetVF(nic.sock(2)) as vf:
        gen = vf.r8(vu.CFGGEN)
        r = nic.ctl("set-mac", "2", "02:00:00:00:02:02")
        assert r.returncode == 0, r.stderr
        assert vf.mac() == bytes.fromhex("020000000202")
        assert vf.r8(vu.CFGGEN) != gen
        assert vf.wait_irq(0), "no config-change interrupt for the new MAC"
        assert nic.vf_info(2)["mac"] == "02:00:00:00:02:02"


@pytest.mark.parametrize("args,msg", [
    (["set-mac", "7", "02:00:00:00:00:01"], "does not exist"),
    (["set-mac", "0", "01:00:5e:00:00:01"], "unicast"),
    (["set-mac", "0", "00:00:00:00:00:00"], "unicast"),
    (["set-mac", "0", "02:00:00:00:00"], "must look like"),
    (["set-mac", "0", "zz:00:00:00:00:01"], "must look like"),
    (["set-mac", "x", "02:00:00:00:00:01"], "no VF or ADI named \"x\""),
    (["set-mac", "vf9", "02:00:00:00:00:01"], "does not exist"),
    (["set-mac", "0"], "expected a device and a MAC"),
    (["frobnicate"], "unknown command"),
    (["list", "extra"], "no arguments"),
    (["egress", "0", "sideways"], "unknown egress action"),
])
def test_ctl_errors(nic, args, msg):
    r = nic.ctl(*args)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
    assert nic.alive()


def test_set_mac_duplicate(nic):
    mac1 = nic.vf_info(1)["mac"]
    r = nic.ctl("set-mac", "0", mac1)
    assert r.returncode != 0 and "belongs to vf1" in r.stderr


def test_bad_requests(nic):
    cases = [
        (b"not json\n", "not a JSON object"),
        (b"[1,2]\n", "not a JSON object"),
        (b'{"nocmd":1}\n', "no \"cmd\""),
        (b'{"cmd":42}\n', "no \"cmd\""),
        (b'{"cmd":"reboot"}\n', "unknown command"),
        (b'{"cmd":"set-mac","vf":"0","mac":"02:00:00:00:00:01"}\n', "integer"),
        (b'{"cmd":"set-mac","vf":-1,"mac":"02:00:00:00:00:01"}\n', "does not exist"),
        (b'{"cmd":"set-mac","vf":0,"mac":7}\n', "must look like"),
    ]
    for data, msg in cases:
        (r,) = raw_request(nic, data)
        assert r["ok"] is False and msg in r["error"], (data, r)
    (r,) = raw_request(nic, b"x" * 5000)
    assert r["ok"] is False and "longer" in r["error"]
    # several requests on one connection, answered in order
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(nic.dir / "pf.sock"))
    s.sendall(b'{"cmd":"list"}\n{"cmd":"bogus"}\n{"cmd":"stats"}\n')
    f = s.makefile("rb")
    replies = [json.loads(f.readline()) for _ in range(3)]
    s.close()
    assert replies[0]["ok"] and "nic" in replies[0]
    assert replies[1]["ok"] is False
    assert replies[2]["ok"] and "uplink" in replies[2]
    assert nic.alive()


def test_ctl_without_daemon(tmp_path):
    r = subprocess.run([str(HDNIC), "ctl", str(tmp_path), "list"], capture_output=True, text=True)
    assert r.returncode != 0 and "cannot reach" in r.stderr


@pytest.mark.parametrize("args,msg", [
    ([], "required"),
    (["--dir", "D", "--vfs", "2"], "required"),
    (["--dir", "D", "--vfs", "257", "--uplink", "tap:x"], "0 to 256"),
    (["--dir", "D", "--vfs", "-1", "--uplink", "tap:x"], "0 to 256"),
    (["--dir", "D", "--vfs", "two", "--uplink", "tap:x"], "0 to 256"),
    (["--dir", "D", "--vfs", "2", "--uplink", "eth0"], "tap:IFNAME or iface:IFNAME"),
    (["--dir", "D", "--vfs", "2", "--uplink", "tap:"], "bad interface name"),
    (["--dir", "D", "--vfs", "2", "--uplink", "tap:" + "x" * 20], "bad interface name"),
    (["--dir", "D", "--vfs", "2", "--uplink", "iface:nosuchif0"], "no such interface"),
    (["--dir", "D", "--vfs", "2", "--uplink", "tap:x", "--frob"], "usage"),
    (["--dir", "D", "--vfs", "2", "--uplink", "tap:x", "stray"], "unexpected argument"),
    (["--dir", "D", "--vfs", "2", "--uplink", "tap:x", "--idle-us", "0"], "idle-us"),
])
def test_bad_cli(ns, tmp_path, args, msg):
    args = [a.replace("D", str(tmp_path / "d")) if a == "D" else a for a in args]
    r = ns.exec(str(HDNIC), *args, check=False)
    assert r.returncode != 0 and msg in r.stderr, r.stderr


def test_dir_is_a_file(ns, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    r = ns.exec(str(HDNIC), "--dir", str(f), "--vfs", "1", "--uplink", "tap:x", check=False)
    assert r.returncode != 0 and "not a directory" in r.stderr


def test_second_instance_refused(ns, nic):
    r = ns.exec(str(HDNIC), "--dir", str(nic.dir), "--vfs", "1", "--uplink", "tap:hdt9",
                check=False)
    assert r.returncode != 0 and "served by another process" in r.stderr
    assert nic.alive() and (nic.dir / "pf.sock").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_removes_sockets_and_tap(ns, tmp_path, sig):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=2, uplink="tap:hdtx", netns=ns)
    assert "hdtx" in ns.exec("ip", "link", "show").stdout
    with VirtioNetVF(n.sock(0)):
        assert n.stop(sig) == 0, n.output()
    assert not list((tmp_path / "nic").iterdir())
    assert "hdtx" not in ns.exec("ip", "link", "show").stdout
    assert "AddressSanitizer" not in n.output()


def test_many_vfs(ns, tmp_path):
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=256, uplink="tap:hdtm", netns=ns)
    try:
        r = n.ctl_json("list")
        assert len(r["vfs"]) == 256 and len({v["mac"] for v in r["vfs"]}) == 256
        with VirtioNetVF(n.sock(255)) as a, VirtioNetVF(n.sock(0)) as b:
            b.post_rx()
            frame = vu.ether_frame(b.mac(), a.mac(), payload=b"255-to-0")
            a.send(frame)
            assert b.recv(match=lambda f: b"255-to-0" in f) == frame
        # an idle NIC with 256 VFs costs no CPU
        assert wait_for(lambda: not any(v["polling"] for v in n.ctl_json("list")["vfs"]))
        before = n.cpu_seconds()
        time.sleep(1.0)
        assert n.cpu_seconds() - before < 0.05
    finally:
        assert n.stop() == 0, n.output()
