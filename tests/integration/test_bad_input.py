# SPDX-License-Identifier: MIT
"""Bad input: a clear message naming the problem, non-zero exit, nothing left behind."""
import json
import struct
import subprocess

import pytest

from hdvmlib import GUEST, HDVM, hdvm_ctl


def run(run_dir, *args, timeout=20):
    return subprocess.run([str(HDVM), "run", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_refused(r, run_dir, *needles):
    assert r.returncode not in (0, None), r.stdout
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr!r}"
    assert list(run_dir.iterdir()) == [], "files left behind"


def elf_with_segment(path, paddr, size=0x100):
    """A minimal, well-formed ELF64 x86-64 executable with one PT_LOAD at paddr."""
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, paddr, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, paddr, paddr, size, size, 0x1000)
    data = ehdr + phdr
    data += b"\0" * (0x1000 - len(data)) + b"\xf4" * size
    path.write_bytes(data)
    return path


@pytest.mark.kvm
def test_missing_kernel(run_dir, tmp_path):
    r = run(run_dir, "--kernel", str(tmp_path / "nope"))
    assert_refused(r, run_dir, "nope", "No such file")


@pytest.mark.kvm
def test_kernel_is_a_directory(run_dir, tmp_path):
    assert_refused(run(run_dir, "--kernel", str(tmp_path)), run_dir, "not a regular file")


def test_no_kernel_option(run_dir):
    assert_refused(run(run_dir), run_dir, "--kernel is required")


@pytest.mark.kvm
def test_not_a_kernel(run_dir, tmp_path):
    f = tmp_path / "text"
    f.write_text("just some text, certainly not a kernel\n" * 20)
    assert_refused(run(run_dir, "--kernel", str(f)), run_dir, "not an ELF64 or bzImage")


@pytest.mark.kvm
def test_empty_kernel(run_dir, tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    r = run(run_dir, "--kernel", str(f))
    assert_refused(r, run_dir, "empty")


@pytest.mark.kvm
@pytest.mark.parametrize("keep", [20, 64, 200, 0.5])
def test_truncated_elf(run_dir, tmp_path, keep):
    data = GUEST.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    f = tmp_path / "cut.elf"
    f.write_bytes(data[:n])
    r = run(run_dir, "--kernel", str(f))
    assert_refused(r, run_dir, str(f))
    assert any(w in r.stderr for w in ("truncated", "past the end", "beyond")), r.stderr


@pytest.mark.kvm
def test_truncated_bzimage(run_dir, tmp_path):
    from hdvmlib import GUEST_BZIMAGE
    data = GUEST_BZIMAGE.read_bytes()
    f = tmp_path / "cut.bzImage"
    f.write_bytes(data[:len(data) // 2])
    r = run(run_dir, "--kernel", str(f))
    assert_refused(r, run_dir, "truncated")


@pytest.mark.kvm
def test_segment_outside_ram(run_dir, tmp_path):
    f = elf_with_segment(tmp_path / "high.elf", 0x10000000)     # 256 MiB
    r = run(run_dir, "--kernel", str(f), "--mem", "64M")
    assert_refused(r, run_dir, "outside guest RAM")


@pytest.mark.kvm
def test_segment_in_mmio_hole(run_dir, tmp_path):
    f = elf_with_segment(tmp_path / "hole.elf", 0xd0000000)
    r = run(run_dir, "--kernel", str(f), "--mem", "8G", timeout=60)
    assert_refused(r, run_dir, "outside guest RAM")


@pytest.mark.parametrize("mem,needle", [
    ("12Q", "not a size"), ("", "not a size"), ("abc", "not a size"),
    ("0", "at least"), ("1M", "at least"), ("4097K", "multiple of 4 KiB"),
])
def test_bad_memory_size(run_dir, mem, needle):
    r = run(run_dir, "--kernel", str(GUEST), "--mem", mem)
    assert_refused(r, run_dir, "--mem", needle)


@pytest.mark.kvm
def test_memory_larger_than_host_allows(run_dir):
    r = run(run_dir, "--kernel", str(GUEST), "--mem", "64T")
    assert_refused(r, run_dir, "guest memory")


@pytest.mark.parametrize("cpus", ["0", "-1", "two", ""])
def test_bad_cpu_count(run_dir, cpus):
    assert_refused(run(run_dir, "--kernel", str(GUEST), "--cpus", cpus), run_dir, "--cpus")


@pytest.mark.kvm
def test_cpus_above_kvm_limit(run_dir):
    r = run(run_dir, "--kernel", str(GUEST), "--cpus", "4096")
    assert_refused(r, run_dir, "KVM's limit")


@pytest.mark.kvm
def test_too_many_cpus_for_mptable(run_dir):
    """Whatever the limit, the error names it instead of booting a broken table."""
    r = run(run_dir, "--kernel", str(GUEST), "--cpus", "255", "--cmdline", "app=hello")
    if r.returncode == 0:
        pytest.fail("255 vCPUs cannot fit the MP table below 640 KiB, expected refusal")
    assert_refused(r, run_dir)
    assert "limit" in r.stderr or "MP table" in r.stderr, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--name", "bad/name"], "--name"),
    (["--name", ""], "--name"),
    (["--console", "tty"], "--console"),
    (["--console", "file:"], "--console"),
    (["--boot", "efi"], "--boot"),
    (["--vfio-timeout", "5"], "--vfio-timeout"),
    (["--vfio-timeout", "soon"], "--vfio-timeout"),
    (["--frobnicate"], "unknown option"),
    (["--cmdline"], "needs a value"),
    (["stray"], "unexpected argument"),
])
def test_bad_options(run_dir, args, needle):
    r = run(run_dir, "--kernel", str(GUEST), *args)
    assert_refused(r, run_dir, needle)
    assert r.returncode == 2


@pytest.mark.kvm
def test_pvh_without_pvh_note(run_dir, tmp_path):
    f = elf_with_segment(tmp_path / "nopvh.elf", 0x100000)
    r = run(run_dir, "--kernel", str(f), "--boot", "pvh")
    assert_refused(r, run_dir, "PVH")


@pytest.mark.kvm
def test_initrd_missing(run_dir, tmp_path):
    r = run(run_dir, "--kernel", str(GUEST), "--initrd", str(tmp_path / "none.img"))
    assert_refused(r, run_dir, "none.img")


@pytest.mark.kvm
def test_initrd_too_big_for_ram(run_dir, tmp_path):
    f = tmp_path / "big.img"
    with open(f, "wb") as fh:
        fh.truncate(48 << 20)
    r = run(run_dir, "--kernel", str(GUEST), "--initrd", str(f), "--mem", "32M")
    assert_refused(r, run_dir, "initrd")


@pytest.mark.kvm
def test_duplicate_name(vms, run_dir):
    vm = vms(name="dup", cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    r = run(run_dir, "--kernel", str(GUEST), "--name", "dup")
    assert r.returncode == 1
    assert "already running" in r.stderr
    # the first VM is untouched
    assert hdvm_ctl(run_dir, "status", "dup").returncode == 0
    assert sorted(p.name for p in run_dir.iterdir()) == ["dup.lock", "dup.sock"]


def test_control_commands_for_unknown_vm(run_dir):
    for cmd in ("status", "pause", "resume", "stop"):
        r = hdvm_ctl(run_dir, cmd, "ghost")
        assert r.returncode == 1
        assert "no VM named 'ghost'" in r.stderr
    r = hdvm_ctl(run_dir, "status")
    assert r.returncode == 2 and "which VM" in r.stderr


def test_ps_on_missing_run_dir(tmp_path):
    r = hdvm_ctl(tmp_path / "does-not-exist", "ps")
    assert r.returncode == 0
    assert r.stdout.split() == ["NAME", "PID", "STATE", "CPUS", "MEM_MIB", "UPTIME_S", "ROLE"]


@pytest.mark.kvm
def test_malformed_control_requests(vms, run_dir):
    vm = vms(cmdline="app=idle")
    vm.out.wait_for("idle: halting")
    cases = {
        b"this is not json\n": "malformed request",
        b"[1, 2, 3]\n": "malformed request",
        b"{\"cmd\": 7}\n": "malformed request",
        b"{\"nocmd\": \"status\"}\n": "malformed request",
        b"{\"cmd\": \"reboot-the-host\"}\n": "unknown command",
        b"{\"cmd\": \"status\"\n": "malformed request",
        b"x" * 5000: "request too long",
    }
    for raw, needle in cases.items():
        reply = json.loads(vm.request(raw))
        assert reply["ok"] is False and needle in reply["error"], (raw[:40], reply)
    # the VM and its control socket still work
    assert json.loads(vm.request(b"{\"cmd\":\"status\"}\n"))["state"] == "running"
    assert vm.proc.poll() is None


@pytest.mark.parametrize("sub", ["run", "ps", "status", "pause", "resume", "stop"])
def test_help_on_every_subcommand(sub):
    r = subprocess.run([str(HDVM), sub, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: hdvm " + sub)


def test_unknown_subcommand():
    r = subprocess.run([str(HDVM), "launch"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command 'launch'" in r.stderr
