# SPDX-License-Identifier: MIT
import itertools
import os

import pytest

from hdvmlib import VM, HDVM, GUEST, HDNIC
from nichost import Hdnic, Netns

_names = itertools.count()


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture
def vms(run_dir):
    """Factory: vms(cmdline=..., cpus=..., extra=[...]) -> VM; all killed at teardown."""
    started = []

    def start(name=None, **kw):
        vm = VM(run_dir, name or f"t{os.getpid()}-{next(_names)}", **kw)
        started.append(vm)
        return vm

    yield start
    for vm in started:
        vm.kill()


@pytest.fixture
def ns():
    """A network namespace of the test's own, removed at teardown."""
    n = Netns()
    yield n
    n.delete()


@pytest.fixture
def nic(ns, tmp_path, request):
    """hdnic with 3 VFs and a TAP uplink hdt0 in the test's namespace, devices
    polled for 0.3 s before sleeping, and the options in the module's
    HDNIC_EXTRA list if it has one, then a test's @pytest.mark.hdnic_extra(...)
    options; a module may define its own `nic`."""
    mark = request.node.get_closest_marker("hdnic_extra")
    n = Hdnic(HDNIC, tmp_path / "nic", vfs=3, uplink="tap:hdt0", netns=ns,
              extra=["--idle-us", "300000", *getattr(request.module, "HDNIC_EXTRA", ()),
                     *(mark.args if mark else ())])
    yield n
    n.stop_checked()


@pytest.fixture
def tap(ns, nic):
    """AF_PACKET socket on hdnic's TAP uplink hdt0 (of the `nic` fixture)."""
    s = ns.packet_socket("hdt0")
    yield s
    s.close()


KVM = "/dev/kvm"


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: the test boots a guest and needs /dev/kvm")
    config.addinivalue_line("markers", "hdnic_extra(*opts): more hdnic options for the "
                            "`nic` fixture (the last of a repeated option wins)")
    config.addinivalue_line("markers", "speed: the assertions need guests at KVM speed "
                            "(rates, fairness); skipped in tools/kvmlab (TCG)")


def pytest_collection_modifyitems(config, items):
    """Tests that boot a guest cannot run on a host without KVM (a host whose
    kernel is itself a guest, say); they are reported as skipped, by name, with
    the reason, never silently passed."""
    if os.environ.get("KVMLAB"):
        lab = pytest.mark.skip(reason="tools/kvmlab: TCG guests cannot reach the rates "
                               "these assertions are about")
        for item in items:
            if "speed" in item.keywords:
                item.add_marker(lab)
    if os.path.exists(KVM):
        return
    skip = pytest.mark.skip(reason=f"{KVM} is absent on this host: the test boots a guest")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session):
    for f in (HDVM, GUEST):
        if not f.exists():
            raise pytest.UsageError(f"{f} is missing: run `make` first")
