# SPDX-License-Identifier: MIT
"""`hdvm snapshot NAME FILE [--stop]` and `hdvm run --restore FILE`.

Without KVM: every refusal that happens before /dev/kvm is opened (options, a
missing, truncated or corrupt file, a snapshot that needs devices the command
line does not give), with a message naming the problem and nothing left in
the run directory.  With KVM: a running app=dirty guest is snapshotted, its
RAM in the file satisfies the dirty invariant, and the restored VM continues
the same passes; an app=counter guest on the paravirtual NIC continues its
counter where it stopped.  The file is read here by an independent Python
reader of the format (migration/snapshot_file.h)."""
import os
import struct
import subprocess
import zlib

import pytest

from hdvmlib import HDVM, ResumedVM, hdvm_ctl, wait_running

MAGIC = b"HDVMSNAP"
PAGE = 4096
DIRTY_AREA = 0x1000000


def tag(s):
    return struct.unpack("<I", s.encode())[0]


def section(t, body):
    tl = struct.pack("<IQ", tag(t), len(body))
    crc = zlib.crc32(tl + body)
    return struct.pack("<IIQ", tag(t), crc, len(body)) + body


def conf_body(mem=64 << 20, cpus=1, nr_vfio_user=0, nr_vfio=0, nets=(), kernel="k",
              cmdline="app=idle"):
    b = struct.pack("<IQIIII", 1, mem, cpus, nr_vfio_user, nr_vfio, len(nets))
    for s in (*nets, kernel, cmdline):
        b += struct.pack("<H", len(s)) + s.encode()
    return b


def snapshot_bytes(conf=None, ram_pages=(), mem=64 << 20, devs=b"y"):
    """A well-formed file (as far as the format goes) with the given sections."""
    ram = struct.pack("<Q", mem)
    for p in ram_pages:
        ram += struct.pack("<QQ", p, 1) + bytes([p % 251 + 1]) * PAGE
    secs = [section("CONF", conf if conf is not None else conf_body(mem=mem)),
            section("RAM ", ram), section("DEVS", devs)]
    return (MAGIC + struct.pack("<II", 1, 0) + b"".join(secs)
            + section("END ", struct.pack("<Q", len(secs))))


def fdt_root_prop(blob, want):
    """A property of the root node of a flattened device tree (the manifest)."""
    magic, _, off_struct, off_strings = struct.unpack_from(">IIII", blob, 0)
    assert magic == 0xd00dfeed
    o, depth = off_struct, 0
    while True:
        tok = struct.unpack_from(">I", blob, o)[0]
        o += 4
        if tok == 1:                                    # BEGIN_NODE
            end = blob.index(b"\0", o)
            o = (end + 1 + 3) & ~3
            depth += 1
        elif tok == 2:                                  # END_NODE
            depth -= 1
        elif tok == 3:                                  # PROP
            n, nameoff = struct.unpack_from(">II", blob, o)
            o += 8
            name = blob[off_strings + nameoff:blob.index(b"\0", off_strings + nameoff)]
            if depth == 1 and name.decode() == want:
                return blob[o:o + n]
            o = (o + n + 3) & ~3
        elif tok == 4:                                  # NOP
            continue
        else:                                           # END
            raise KeyError(want)


def read_snapshot(path):
    """Independent reader: {tag: body}, the RAM size, and the RAM as {page: bytes}.
    Version 2 (what hdvm snapshot writes: the migration stream in a file) and
    version 1 (the old format, still restored)."""
    data = open(path, "rb").read()
    version = struct.unpack_from("<I", data, 8)[0]
    assert data[:8] == MAGIC and version in (1, 2)
    off, secs, batches = 16, {}, []
    while True:
        t, crc, n = struct.unpack_from("<IIQ", data, off)
        body = data[off + 16:off + 16 + n]
        assert zlib.crc32(struct.pack("<IQ", t, n) + body) == crc
        off += 16 + n
        name = struct.pack("<I", t).decode()
        if name == "END ":
            break
        if name == "RAMB":
            batches.append(body)
        else:
            secs[name] = body
    assert off == len(data)
    pages = {}
    if version == 2:
        size = struct.unpack(">Q", fdt_root_prop(secs["MANF"], "memory-size"))[0]
        for b in batches:                               # pass after pass: the last wins
            _, runs = struct.unpack_from("<II", b, 0)
            o = 8
            for _ in range(runs):
                first, count = struct.unpack_from("<QQ", b, o)
                o += 16
                if first & (1 << 63):
                    for i in range(count):
                        pages.pop((first & ~(1 << 63)) + i, None)
                    continue
                for i in range(count):
                    pages[first + i] = b[o + i * PAGE:o + (i + 1) * PAGE]
                o += count * PAGE
        return secs, size, pages
    ram = secs["RAM "]
    size, o = struct.unpack_from("<Q", ram, 0)[0], 8
    while o < len(ram):
        first, count = struct.unpack_from("<QQ", ram, o)
        o += 16
        for i in range(count):
            pages[first + i] = ram[o + i * PAGE:o + (i + 1) * PAGE]
        o += count * PAGE
    return secs, size, pages


def dirty_invariant_holds(pages, mib):
    """First byte of each area page, in order: a run of v+1 then a run of v."""
    vals = [pages.get(DIRTY_AREA // PAGE + i, b"\0")[0] for i in range(mib * 256)]
    hi = [i for i in range(1, len(vals)) if vals[i] != vals[i - 1]]
    if not hi:
        return True, vals[0]
    return (len(hi) == 1 and (vals[0] - vals[-1]) % 256 == 1), vals[0]


def run(run_dir, *args, timeout=20):
    return subprocess.run([str(HDVM), "run", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_refused(r, run_dir, *needles, status=None):
    assert r.returncode not in (0, None), r.stdout
    if status is not None:
        assert r.returncode == status, r.stderr
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr!r}"
    assert "/dev/kvm" not in r.stderr, "refused only after opening KVM"
    assert list(run_dir.iterdir()) == [], "files left behind"


# ---- refusals before KVM is opened ----

def test_restore_missing_file(run_dir, tmp_path):
    r = run(run_dir, "--restore", str(tmp_path / "nope.snap"))
    assert_refused(r, run_dir, "nope.snap", "No such file", status=1)


def test_restore_not_a_snapshot(run_dir, tmp_path):
    f = tmp_path / "text"
    f.write_text("hello\n" * 100)
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "not an hdvm snapshot")


def test_restore_empty_file(run_dir, tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "empty file")


@pytest.mark.parametrize("cut", [20, 40, 100, 5000, -1])
def test_restore_truncated_file(run_dir, tmp_path, cut):
    data = snapshot_bytes(ram_pages=[0, 5])
    f = tmp_path / "cut.snap"
    f.write_bytes(data[:cut])
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "truncated")


def test_restore_corrupt_ram(run_dir, tmp_path):
    data = bytearray(snapshot_bytes(ram_pages=[0, 5]))
    data[len(data) // 2] ^= 0x40            # inside a RAM page
    f = tmp_path / "bad.snap"
    f.write_bytes(bytes(data))
    assert_refused(run(run_dir, "--restore", str(f)), run_dir,
                   "crc mismatch in section 'RAM '")


def test_restore_newer_format(run_dir, tmp_path):
    data = bytearray(snapshot_bytes())
    data[8] = 7
    f = tmp_path / "v7.snap"
    f.write_bytes(bytes(data))
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "version 7")


def test_restore_missing_section(run_dir, tmp_path):
    secs = [section("CONF", conf_body()), section("RAM ", struct.pack("<Q", 64 << 20))]
    data = (MAGIC + struct.pack("<II", 1, 0) + b"".join(secs)
            + section("END ", struct.pack("<Q", 2)))
    f = tmp_path / "part.snap"
    f.write_bytes(data)
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "section is missing")


def test_restore_needs_the_same_passthrough_devices(run_dir, tmp_path):
    f = tmp_path / "vf.snap"
    f.write_bytes(snapshot_bytes(conf=conf_body(nr_vfio_user=1)))
    assert_refused(run(run_dir, "--restore", str(f)), run_dir,
                   "1 --vfio-user", "give as many")


def test_restore_ram_size_mismatch(run_dir, tmp_path):
    f = tmp_path / "size.snap"
    f.write_bytes(snapshot_bytes(conf=conf_body(mem=128 << 20), mem=64 << 20))
    assert_refused(run(run_dir, "--restore", str(f)), run_dir, "RAM configured")


@pytest.mark.parametrize("opt", [["--mem", "64M"], ["--cpus", "2"],
                                 ["--kernel", "/bin/true"], ["--net", "tap=x0"],
                                 ["--cmdline", "app=hello"]])
def test_restore_refuses_machine_options(run_dir, tmp_path, opt):
    f = tmp_path / "ok.snap"
    f.write_bytes(snapshot_bytes())
    r = run(run_dir, "--restore", str(f), *opt)
    assert_refused(r, run_dir, f"{opt[0]} cannot be combined with --restore", status=2)


def test_restore_option_needs_a_value(run_dir):
    assert_refused(run(run_dir, "--restore"), run_dir, "needs a value", status=2)


def test_snapshot_usage_errors(run_dir, tmp_path):
    r = hdvm_ctl(run_dir, "snapshot", "vm1")
    assert r.returncode == 2 and "expected NAME and FILE" in r.stderr, r.stderr
    r = hdvm_ctl(run_dir, "snapshot", "vm1", str(tmp_path / "no" / "dir" / "f"))
    assert r.returncode == 2 and "No such file" in r.stderr, r.stderr
    r = hdvm_ctl(run_dir, "snapshot", "vm1", str(tmp_path))
    assert r.returncode == 2 and "directory" in r.stderr, r.stderr
    r = hdvm_ctl(run_dir, "snapshot", "bad/name", str(tmp_path / "f"))
    assert r.returncode == 2 and "not a valid VM name" in r.stderr, r.stderr
    r = hdvm_ctl(run_dir, "snapshot", "vm1", str(tmp_path / "f"), "--bogus")
    assert r.returncode == 2 and "unknown option" in r.stderr, r.stderr


def test_snapshot_of_a_vm_that_is_not_running(run_dir, tmp_path):
    r = hdvm_ctl(run_dir, "snapshot", "ghost", str(tmp_path / "f.snap"))
    assert r.returncode == 1 and "no VM named 'ghost'" in r.stderr, r.stderr
    assert not (tmp_path / "f.snap").exists()


# ---- with KVM ----

class Restored(ResumedVM):
    """`hdvm run --restore FILE ...`, optionally inside a namespace."""

    def __init__(self, run_dir, path, name, ns=None, extra=()):
        super().__init__(run_dir, ["--restore", str(path)], name, ns, extra)


@pytest.mark.kvm
def test_snapshot_and_restore_dirty_guest_continues(vms, run_dir, tmp_path):
    mib = 16
    src = vms(cmdline=f"app=dirty,mib={mib}", mem="64M", cpus=2)
    src.out.wait_for(r"dirty: pass", timeout=30, nth=2)
    snap = tmp_path / "dirty.snap"
    r = hdvm_ctl(run_dir, "snapshot", src.name, str(snap), "--stop", timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{snap} written" in r.stdout and "VM stopped" in r.stdout, r.stdout
    assert src.wait(20) == 0
    last_pass = max(int(m) for m in
                    __import__("re").findall(r"dirty: pass (\d+)", src.out.text()))

    secs, size, pages = read_snapshot(snap)
    assert size == 64 << 20
    ok, _ = dirty_invariant_holds(pages, mib)
    assert ok, "the saved RAM breaks the dirty invariant"
    assert os.path.getsize(snap) < size, "zero pages were not left out"

    dst = Restored(run_dir, snap, "restored")
    try:
        # the guest continues its passes: no new banner, no new area set-up
        m = dst.out.wait_for(r"dirty: pass (\d+)", timeout=30)
        assert int(m.group(1)) > last_pass, (m.group(1), last_pass)
        assert "dirty: area=" not in dst.out.text()
        # and its memory still holds the invariant while it runs on
        snap2 = tmp_path / "again.snap"
        r = dst.ctl("snapshot", str(snap2))
        assert r.returncode == 0, r.stderr
        ok, _ = dirty_invariant_holds(read_snapshot(snap2)[2], mib)
        assert ok
        n = dst.out.count(r"dirty: pass")
        dst.out.wait_for(r"dirty: pass", timeout=10, start=len(dst.out.lines))
        assert dst.out.count(r"dirty: pass") > n, "not resumed after the snapshot"
        assert dst.ctl("stop").returncode == 0
        assert dst.proc.wait(20) == 0
    finally:
        dst.kill()


@pytest.mark.kvm
def test_snapshot_and_restore_counter_continues(run_dir, tmp_path):
    from counterlib import PvCounter
    with PvCounter(run_dir) as c:
        snap = tmp_path / "counter.snap"
        r = hdvm_ctl(run_dir, "snapshot", c.src.name, str(snap), "--stop", timeout=60)
        assert r.returncode == 0, r.stderr
        assert c.src.wait(20) == 0
        c.dst = Restored(run_dir, snap, "counter2", ns=c.ns)
        wait_running(run_dir, "counter2")   # a request sent earlier is lost
        c.continues()


@pytest.mark.kvm
@pytest.mark.parametrize("dst_vf", [0, 1], ids=["same-vf", "other-vf"])
def test_snapshot_and_restore_vf_counter_continues(vms, run_dir, tmp_path, dst_vf):
    """A VF guest's counter continues on the same function or on another one:
    the device state goes through the VFIO migration v2 FSM (STOP_COPY on
    save, RESUMING on restore) and the switch learns where the guest is now."""
    from netlib import NicNet, guest_ip
    net = NicNet(tmp_path, vfs=2)
    dst = None
    try:
        src = vms(cmdline=f"app=counter ip={guest_ip(0)}/24", extra=net.vf_args(0))
        src.out.wait_for("counter: listening", timeout=30)
        assert [c for _, c in net.counter_requests(guest_ip(0), range(1, 31))] == \
            list(range(1, 31))
        snap = tmp_path / "vf.snap"
        r = hdvm_ctl(run_dir, "snapshot", src.name, str(snap), "--stop", timeout=60)
        assert r.returncode == 0, r.stderr
        assert src.wait(20) == 0
        dst = Restored(run_dir, snap, "vfcounter2",
                       extra=["--vfio-user", str(net.nic.sock(dst_vf))])
        wait_running(run_dir, "vfcounter2")
        replies = net.counter_requests(guest_ip(0), range(100, 130))
        assert [c for _, c in replies] == list(range(31, 61)), replies[:5]
        assert dst.ctl("stop").returncode == 0
    finally:
        if dst:
            dst.kill()
        net.close_checked()
