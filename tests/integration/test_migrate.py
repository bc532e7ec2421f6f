# SPDX-License-Identifier: MIT
"""`hdvm migrate NAME URI` and `hdvm run --incoming URI --name NAME`.

Without KVM: the CLI's refusals (bad URI, unknown VM, --cancel with no VM,
--incoming without --name or with machine options), and a destination
refusing a bad stream -- from a file or from a peer on loopback TCP -- with
a message naming the problem, answering the peer `ERR why`, exiting 1 before
/dev/kvm is opened.  A stream is written here by an independent Python
writer of the format (migration/stream.h, migration/README.md).
With KVM: an app=dirty guest migrates over unix: and tcp: and its RAM on the
destination holds the dirty invariant while the passes continue; an
app=counter guest keeps counting through a migration."""
import re
import socket
import struct
import subprocess
import time
import zlib

import pytest

from hdvmlib import HDVM, ResumedVM, hdvm_ctl
from test_snapshot import dirty_invariant_holds, read_snapshot

MAGIC = b"HDVMSNAP"


def tag(s):
    return struct.unpack("<I", s.encode())[0]


def section(t, body):
    crc = zlib.crc32(struct.pack("<IQ", tag(t), len(body)) + body)
    return struct.pack("<IIQ", tag(t), crc, len(body)) + body


def header(version=2, flags=0):
    return MAGIC + struct.pack("<II", version, flags)


def run(run_dir, *args, timeout=20):
    return subprocess.run([str(HDVM), "run", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def refused(r, *needles, status=1):
    assert r.returncode == status, (r.returncode, r.stderr)
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr!r}"
    assert "/dev/kvm" not in r.stderr, "refused only after opening KVM"


# ---- the CLI's refusals ----

def test_migrate_bad_uri(run_dir):
    r = hdvm_ctl(run_dir, "migrate", "vm1", "ftp:host")
    refused(r, "not a migration URI", status=2)
    r = hdvm_ctl(run_dir, "migrate", "vm1", "tcp:10.0.0.1:99999")
    refused(r, "port must be 1 to 65535", status=2)
    r = hdvm_ctl(run_dir, "migrate", "vm1")
    refused(r, "expected NAME and URI", status=2)
    r = hdvm_ctl(run_dir, "migrate", "vm1", "unix:/tmp/x", "--downtime-ms", "soon")
    refused(r, "--downtime-ms", status=2)


def test_migrate_unknown_vm(run_dir):
    r = hdvm_ctl(run_dir, "migrate", "ghost", "tcp:127.0.0.1:4444")
    refused(r, "no VM named 'ghost'")


def test_migrate_cancel_without_a_vm(run_dir):
    r = hdvm_ctl(run_dir, "migrate", "ghost", "--cancel")
    refused(r, "no VM named 'ghost'")
    r = hdvm_ctl(run_dir, "migrate", "--cancel")
    refused(r, "expected NAME", status=2)


def test_migrate_help_says_plain_tcp_is_for_namespaces(run_dir):
    r = hdvm_ctl(run_dir, "migrate", "--help")
    assert r.returncode == 0 and "namespaces on one machine" in r.stdout, r.stdout
    r = subprocess.run([str(HDVM), "run", "--help"], capture_output=True, text=True)
    assert "--incoming URI" in r.stdout and "namespaces on one machine" in r.stdout


def test_incoming_needs_a_name_and_no_machine_options(run_dir, tmp_path):
    refused(run(run_dir, "--incoming", "unix:/tmp/x.sock"), "needs --name", status=2)
    refused(run(run_dir, "--incoming", "unix:/tmp/x.sock", "--name", "m", "--mem", "1G"),
            "cannot be combined with --incoming", status=2)
    refused(run(run_dir, "--incoming", "nope", "--name", "m"), "not a migration URI")


# ---- a destination refusing a bad stream, before KVM ----

@pytest.mark.parametrize("data,needle", [
    (b"", "stream is empty"),
    (b"HDVMSNAX" + bytes(8), "bad magic"),
    (header(version=7), "version 7"),
    (header(), "without an end marker"),
    (header() + section("MANF", b"\xd0\x0d\xfe\xed" + bytes(60))[:-10], "truncated in section 'MANF'"),
    (header() + section("MANF", b"junk" * 20), "manifest"),
    (header() + section("RAMB", bytes(8)), "not the manifest"),
    (header(flags=1), "only a unix: socket"),
], ids=["empty", "magic", "version", "no-sections", "truncated", "bad-fdt", "ram-first",
        "memfd-on-file"])
def test_incoming_file_refuses_bad_streams(run_dir, tmp_path, data, needle):
    f = tmp_path / "stream"
    f.write_bytes(data)
    r = run(run_dir, "--incoming", f"file:{f}", "--name", "m")
    refused(r, needle)


def test_incoming_corrupt_section_named(run_dir, tmp_path):
    sec = bytearray(section("MANF", b"x" * 64))
    sec[30] ^= 1
    f = tmp_path / "stream"
    f.write_bytes(header() + bytes(sec))
    refused(run(run_dir, "--incoming", f"file:{f}", "--name", "m"),
            "crc mismatch in section 'MANF'")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect_when_listening(port, timeout=10):
    """A connection to the destination on 127.0.0.1:port, once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the destination never listened"
            time.sleep(0.05)


def test_incoming_tcp_answers_a_bad_peer_and_exits(run_dir):
    port = free_port()
    p = subprocess.Popen([str(HDVM), "run", "--run-dir", str(run_dir), "--incoming",
                          f"tcp:127.0.0.1:{port}", "--name", "m"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        s = connect_when_listening(port)
        with s:
            s.sendall(header() + section("MANF", b"not a device tree at all"))
            answer = s.makefile("rb").readline().decode()
        assert answer.startswith("ERR ") and "manifest" in answer, answer
        assert p.wait(10) == 1
        err = p.stderr.read()
        assert "manifest" in err and "/dev/kvm" not in err, err
        # one source only: the port is closed once the stream was refused
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_incoming_tls_refuses_a_peer_without_a_certificate(run_dir, tmp_path):
    d = tmp_path / "creds"
    d.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *key, "-days", "2", "-subj", "/CN=ca",
                    "-keyout", d / "ca-key.pem", "-out", d / "ca-cert.pem"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", *key, "-subj", "/CN=server", "-keyout",
                    d / "server-key.pem", "-out", d / "server.csr"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca-cert.pem",
                    "-CAkey", d / "ca-key.pem", "-CAcreateserial", "-days", "2",
                    "-out", d / "server-cert.pem"], check=True, capture_output=True)
    port = free_port()
    p = subprocess.Popen([str(HDVM), "run", "--run-dir", str(run_dir), "--incoming",
                          f"tcp:127.0.0.1:{port}", "--tls-creds", str(d), "--name", "m"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        s = connect_when_listening(port)
        with s:      # a plain-TCP "source": no TLS, no certificate
            s.sendall(header() + section("MANF", b"x" * 64))
            try:
                s.recv(100)
            except ConnectionResetError:
                pass
        assert p.wait(10) == 1
        err = p.stderr.read()
        assert "TLS handshake with the source failed" in err, err
        assert "/dev/kvm" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def make_cert(d, name, ca_dir):
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", *key, "-subj", f"/CN={name}", "-keyout",
                    d / f"{name}-key.pem", "-out", d / f"{name}.csr"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA",
                    ca_dir / "ca-cert.pem", "-CAkey", ca_dir / "ca-key.pem", "-CAcreateserial",
                    "-days", "2", "-out", d / f"{name}-cert.pem"], check=True, capture_output=True)


def test_incoming_tls_hostname_refuses_another_certificate_of_the_ca(run_dir, tmp_path):
    """--tls-hostname: a source whose certificate the CA signed but for another name
    is refused with what its certificate names, before /dev/kvm (nothing built)."""
    d = tmp_path / "creds"
    d.mkdir()
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *key, "-days", "2", "-subj", "/CN=ca",
                    "-keyout", d / "ca-key.pem", "-out", d / "ca-cert.pem"],
                   check=True, capture_output=True)
    make_cert(d, "server", d)
    make_cert(d, "intruder", d)
    port = free_port()
    p = subprocess.Popen([str(HDVM), "run", "--run-dir", str(run_dir), "--incoming",
                          f"tcp:127.0.0.1:{port}", "--tls-creds", str(d), "--tls-hostname",
                          "source.example", "--name", "m"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    seen = ""
    while "waiting for a migration" not in seen:     # listening: its one peer is next
        line = p.stderr.readline()
        assert line, "the destination exited before listening: " + seen
        seen += line
    try:
        c = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-CAfile", d / "ca-cert.pem", "-cert", d / "intruder-cert.pem",
                            "-key", d / "intruder-key.pem"],
                           input="", capture_output=True, text=True, timeout=20)
        assert p.wait(10) == 1
        err = seen + p.stderr.read()
        assert ("the source's certificate (signed by the CA) names 'intruder', "
                "not 'source.example' (--tls-hostname): refused") in err, err + c.stderr
        assert "/dev/kvm" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_tls_creds_only_with_tcp(run_dir, tmp_path):
    refused(run(run_dir, "--incoming", "unix:/tmp/x.sock", "--name", "m", "--tls-creds",
                str(tmp_path)), "tcp: streams only")
    refused(hdvm_ctl(run_dir, "migrate", "vm1", "unix:/tmp/x", "--tls-creds", str(tmp_path)),
            "tcp: streams only", status=2)


# ---- with KVM ----

class Incoming(ResumedVM):
    """`hdvm run --incoming URI --name NAME`."""

    def __init__(self, run_dir, uri, name, ns=None, extra=()):
        super().__init__(run_dir, ["--incoming", uri], name, ns, extra)


@pytest.mark.kvm
@pytest.mark.parametrize("kind", ["unix", "tcp", "file"])
def test_dirty_guest_migrates(vms, run_dir, tmp_path, kind):
    mib = 16
    src = vms(cmdline=f"app=dirty,mib={mib}", mem="64M", cpus=2)
    src.out.wait_for(r"dirty: pass", timeout=30, nth=2)
    uri = {"unix": f"unix:{tmp_path}/mig.sock", "tcp": f"tcp:127.0.0.1:{free_port()}",
           "file": f"file:{tmp_path}/mig.stream"}[kind]
    dst = None
    try:
        if kind != "file":
            dst = Incoming(run_dir, uri, "moved")
            time.sleep(0.5)
        r = hdvm_ctl(run_dir, "migrate", src.name, uri, "--json", timeout=120)
        assert r.returncode == 0, r.stderr
        rep = __import__("json").loads(r.stdout.strip().splitlines()[-1])
        # unix: passes the RAM's memfd, so there is no RAM pass at all
        assert rep["success"] and rep["passes"] >= (0 if kind == "unix" else 2), rep
        if kind == "unix":
            assert rep["pages"] == 0, "unix: copied RAM instead of passing the memfd"
        assert src.wait(20) == 0
        last = max(int(m) for m in re.findall(r"dirty: pass (\d+)", src.out.text()))
        if kind == "file":
            dst = Incoming(run_dir, uri, "moved")
        m = dst.out.wait_for(r"dirty: pass (\d+)", timeout=30)
        assert int(m.group(1)) > last and "dirty: area=" not in dst.out.text()
        snap = tmp_path / "dst.snap"
        assert dst.ctl("snapshot", str(snap)).returncode == 0
        ok, _ = dirty_invariant_holds(read_snapshot(snap)[2], mib)
        assert ok, "the destination's RAM breaks the dirty invariant"
        assert dst.ctl("stop").returncode == 0
        assert dst.proc.wait(20) == 0
    finally:
        if dst:
            dst.kill()


@pytest.mark.kvm
def test_failed_migration_leaves_the_source_running(vms, run_dir, tmp_path):
    src = vms(cmdline="app=dirty,mib=8", mem="64M")
    src.out.wait_for(r"dirty: pass", timeout=30)
    r = hdvm_ctl(run_dir, "migrate", src.name, f"tcp:127.0.0.1:{free_port()}", timeout=60)
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr
    n = src.out.count(r"dirty: pass")
    src.out.wait_for(r"dirty: pass", timeout=10, start=len(src.out.lines))
    assert src.out.count(r"dirty: pass") > n, "the source stopped"
    assert src.ctl("status").returncode == 0


@pytest.mark.kvm
def test_counter_continues_through_migration(run_dir, tmp_path):
    from counterlib import PvCounter
    with PvCounter(run_dir) as c:
        uri = f"unix:{tmp_path}/mig.sock"
        c.dst = Incoming(run_dir, uri, "counter2", ns=c.ns)
        time.sleep(0.5)
        r = hdvm_ctl(run_dir, "migrate", c.src.name, uri, timeout=60)
        assert r.returncode == 0, r.stderr
        assert c.src.wait(20) == 0
        c.continues()
