# SPDX-License-Identifier: MIT
"""The Python harness's wire constants against the C headers they were copied from.

vfio_user_client.py (and a few tests and tools) speak hdnic's and hdvm's wire
formats with numbers copied by hand: vfio-user command numbers and message
layouts, VFIO region/IRQ/feature numbers, the virtio common config, hdnic's
BAR0 layout, the guest's ports.  Here the C compiler evaluates each one from
the real headers (project headers, <linux/vfio.h>, <linux/virtio_*.h>), so a
header change that the harness does not follow fails `make check` and says
which name drifted.  No KVM and no root needed.
"""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

import vfio_user_client as vu
from hdvmlib import ROOT

import compsc
import test_qos_vms
import test_snapshot
import nichost

HEADERS = """
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include "devices/vfio/vfio_compat.h"
#include "devices/vfio/vfio_user_proto.h"
#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/hdnic/vdev.h"
#include "devices/vfio/compsc_abi.h"
"""

# Defines that live in a .c file: lifted into the generated program as they are.
LIFTED = {
    "guest/app_dirty.c": ["DIRTY_AREA_GPA"],
    "guest/app_counter.c": ["COUNTER_PORT"],
    "migration/snapshot_file.c": ["SNAP_MAGIC"],
}


def _tools_density():
    if str(ROOT / "tools") not in sys.path:
        sys.path.append(str(ROOT / "tools"))     # its own imports (hoststat)
    spec = importlib.util.spec_from_file_location("density", ROOT / "tools" / "density.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


density = _tools_density()

# python name -> (value in the harness, C expression)
SCALARS = {
    # vfio-user commands and header flags (devices/vfio/vfio_user_proto.h)
    **{f"vu.{n}": (getattr(vu, n), f"VFIO_USER_{n}") for n in (
        "VERSION", "DMA_MAP", "DMA_UNMAP", "DEVICE_GET_INFO", "DEVICE_GET_REGION_INFO",
        "DEVICE_GET_REGION_IO_FDS", "DEVICE_GET_IRQ_INFO", "DEVICE_SET_IRQS", "REGION_READ",
        "REGION_WRITE", "DMA_READ", "DMA_WRITE", "DEVICE_RESET", "REGION_WRITE_MULTI",
        "DEVICE_FEATURE", "MIG_DATA_READ", "MIG_DATA_WRITE",
        "F_TYPE_COMMAND", "F_TYPE_REPLY", "F_NO_REPLY", "F_ERROR")},
    "vu.DMA_F_READ": (vu.DMA_F_READ, "VFIO_USER_DMA_MAP_F_READ"),
    "vu.DMA_F_WRITE": (vu.DMA_F_WRITE, "VFIO_USER_DMA_MAP_F_WRITE"),
    "vu.MAX_FDS": (vu.MAX_FDS, "VFIO_USER_MAX_MSG_FDS"),
    # VFIO (linux/vfio.h + devices/vfio/vfio_compat.h)
    "vu.REGION_F_READ": (vu.REGION_F_READ, "VFIO_REGION_INFO_FLAG_READ"),
    "vu.REGION_F_WRITE": (vu.REGION_F_WRITE, "VFIO_REGION_INFO_FLAG_WRITE"),
    "vu.REGION_F_MMAP": (vu.REGION_F_MMAP, "VFIO_REGION_INFO_FLAG_MMAP"),
    "vu.REGION_F_CAPS": (vu.REGION_F_CAPS, "VFIO_REGION_INFO_FLAG_CAPS"),
    "vu.CAP_SPARSE_MMAP": (vu.CAP_SPARSE_MMAP, "VFIO_REGION_INFO_CAP_SPARSE_MMAP"),
    "vu.BAR0": (vu.BAR0, "VFIO_PCI_BAR0_REGION_INDEX"),
    "vu.CONFIG": (vu.CONFIG, "VFIO_PCI_CONFIG_REGION_INDEX"),
    "vu.NUM_REGIONS": (vu.NUM_REGIONS, "VFIO_PCI_NUM_REGIONS"),
    "vu.MSIX": (vu.MSIX, "VFIO_PCI_MSIX_IRQ_INDEX"),
    "vu.IRQ_DATA_NONE": (vu.IRQ_DATA_NONE, "VFIO_IRQ_SET_DATA_NONE"),
    "vu.IRQ_DATA_BOOL": (vu.IRQ_DATA_BOOL, "VFIO_IRQ_SET_DATA_BOOL"),
    "vu.IRQ_DATA_EVENTFD": (vu.IRQ_DATA_EVENTFD, "VFIO_IRQ_SET_DATA_EVENTFD"),
    "vu.IRQ_ACTION_MASK": (vu.IRQ_ACTION_MASK, "VFIO_IRQ_SET_ACTION_MASK"),
    "vu.IRQ_ACTION_UNMASK": (vu.IRQ_ACTION_UNMASK, "VFIO_IRQ_SET_ACTION_UNMASK"),
    "vu.IRQ_ACTION_TRIGGER": (vu.IRQ_ACTION_TRIGGER, "VFIO_IRQ_SET_ACTION_TRIGGER"),
    "vu.FEATURE_GET": (vu.FEATURE_GET, "VFIO_DEVICE_FEATURE_GET"),
    "vu.FEATURE_SET": (vu.FEATURE_SET, "VFIO_DEVICE_FEATURE_SET"),
    "vu.FEATURE_PROBE": (vu.FEATURE_PROBE, "VFIO_DEVICE_FEATURE_PROBE"),
    "vu.FEAT_MIGRATION": (vu.FEAT_MIGRATION, "VFIO_DEVICE_FEATURE_MIGRATION"),
    "vu.FEAT_MIG_DEVICE_STATE": (vu.FEAT_MIG_DEVICE_STATE,
                                 "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE"),
    "vu.FEAT_DMA_LOGGING_START": (vu.FEAT_DMA_LOGGING_START,
                                  "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"),
    "vu.FEAT_DMA_LOGGING_STOP": (vu.FEAT_DMA_LOGGING_STOP,
                                 "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP"),
    "vu.FEAT_DMA_LOGGING_REPORT": (vu.FEAT_DMA_LOGGING_REPORT,
                                   "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"),
    "vu.MIGRATION_STOP_COPY": (vu.MIGRATION_STOP_COPY, "VFIO_MIGRATION_STOP_COPY"),
    "vu.MIGRATION_P2P": (vu.MIGRATION_P2P, "VFIO_MIGRATION_P2P"),
    "vu.MIGRATION_PRE_COPY": (vu.MIGRATION_PRE_COPY, "VFIO_MIGRATION_PRE_COPY"),
    **{f"vu.MIG_{n}": (getattr(vu, f"MIG_{n}"), f"VFIO_DEVICE_STATE_{n}") for n in (
        "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
        "PRE_COPY_P2P")},
    # virtio common config (linux/virtio_pci.h)
    **{f"vu.{py}": (getattr(vu, py), f"VIRTIO_PCI_COMMON_{c}") for py, c in (
        ("DFSELECT", "DFSELECT"), ("DF", "DF"), ("GFSELECT", "GFSELECT"), ("GF", "GF"),
        ("MSIX_CONFIG", "MSIX"), ("NUMQ", "NUMQ"), ("STATUS", "STATUS"),
        ("CFGGEN", "CFGGENERATION"), ("Q_SELECT", "Q_SELECT"), ("Q_SIZE", "Q_SIZE"),
        ("Q_MSIX", "Q_MSIX"), ("Q_ENABLE", "Q_ENABLE"), ("Q_NOFF", "Q_NOFF"),
        ("Q_DESC", "Q_DESCLO"), ("Q_AVAIL", "Q_AVAILLO"), ("Q_USED", "Q_USEDLO"))},
    # hdnic's function (devices/hdnic/hdnic_vf_abi.h, vdev.h)
    "vu.ISR_OFF": (vu.ISR_OFF, "HDNIC_BAR0_ISR_OFF"),
    "vu.DEVCFG_OFF": (vu.DEVCFG_OFF, "HDNIC_BAR0_DEVCFG_OFF"),
    "vu.NOTIFY_OFF": (vu.NOTIFY_OFF, "HDNIC_BAR0_NOTIFY_OFF"),
    "vu.DOORBELL_OFF": (vu.DOORBELL_OFF, "HDNIC_BAR0_DOORBELL_OFF"),
    "vu.DB_STRIDE": (vu.DB_STRIDE, "HDNIC_DB_STRIDE"),
    "vu.NET_HDR_LEN": (vu.NET_HDR_LEN, "HDNIC_NET_HDR_LEN"),
    "vu.RX": (vu.RX, "HDNIC_QUEUE_RX"),
    "vu.TX": (vu.TX, "HDNIC_QUEUE_TX"),
    "vu.STATS_MAGIC": (vu.STATS_MAGIC, "HDNIC_STATS_CAP_MAGIC"),
    "len(vu.STATS)": (len(vu.STATS), "HDNIC_NR_STATS"),
    **{f"vu.STATS[{vu.STATS.index(n)}]={n}": (vu.STATS.index(n), f"HDNIC_STAT_{n.upper()}")
       for n in vu.STATS},
    "vu.FEAT_OUTPUT_COMMIT": (vu.FEAT_OUTPUT_COMMIT, "HDNIC_FEATURE_OUTPUT_COMMIT"),
    **{f"vu.OUTPUT_{n}": (getattr(vu, f"OUTPUT_{n}"), f"HDNIC_OUTPUT_{n}") for n in (
        "START", "EPOCH", "COMMIT", "STOP", "DISCARD", "DEFAULT_FRAMES", "MAX_FRAMES")},
    "vu.S_ACK": (vu.S_ACK, "VST_ACKNOWLEDGE"),
    "vu.S_DRIVER": (vu.S_DRIVER, "VST_DRIVER"),
    "vu.S_DRIVER_OK": (vu.S_DRIVER_OK, "VST_DRIVER_OK"),
    "vu.S_FEATURES_OK": (vu.S_FEATURES_OK, "VST_FEATURES_OK"),
    "vu.S_NEEDS_RESET": (vu.S_NEEDS_RESET, "VST_NEEDS_RESET"),
    **{f"vu.F_{n}": (getattr(vu, f"F_{n}"), f"VF_F_{n}") for n in (
        "MAC", "STATUS", "EVENT_IDX", "VERSION_1", "CTRL_VQ", "CTRL_RX", "MQ")},
    # virtio (linux/virtio_*.h)
    "vu.S_NEEDS_RESET/virtio": (vu.S_NEEDS_RESET, "VIRTIO_CONFIG_S_NEEDS_RESET"),
    "vu.F_EVENT_IDX/virtio": (vu.F_EVENT_IDX, "1ULL << VIRTIO_RING_F_EVENT_IDX"),
    "vu.F_VERSION_1/virtio": (vu.F_VERSION_1, "1ULL << VIRTIO_F_VERSION_1"),
    "vu.DESC_F_NEXT": (vu.DESC_F_NEXT, "VRING_DESC_F_NEXT"),
    "vu.DESC_F_WRITE": (vu.DESC_F_WRITE, "VRING_DESC_F_WRITE"),
    "vu.CTRL_MQ": (vu.CTRL_MQ, "VIRTIO_NET_CTRL_MQ"),
    "vu.CTRL_MQ_VQ_PAIRS_SET": (vu.CTRL_MQ_VQ_PAIRS_SET, "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET"),
    "vu.CTRL_RX": (vu.CTRL_RX, "VIRTIO_NET_CTRL_RX"),
    "vu.CTRL_RX_PROMISC": (vu.CTRL_RX_PROMISC, "VIRTIO_NET_CTRL_RX_PROMISC"),
    "vu.CTRL_RX_ALLMULTI": (vu.CTRL_RX_ALLMULTI, "VIRTIO_NET_CTRL_RX_ALLMULTI"),
    "vu.CTRL_MAC": (vu.CTRL_MAC, "VIRTIO_NET_CTRL_MAC"),
    "vu.CTRL_MAC_TABLE_SET": (vu.CTRL_MAC_TABLE_SET, "VIRTIO_NET_CTRL_MAC_TABLE_SET"),
    "vu.CTRL_OK": (vu.CTRL_OK, "VIRTIO_NET_OK"),
    "vu.CTRL_ERR": (vu.CTRL_ERR, "VIRTIO_NET_ERR"),
    # the guest and the snapshot file (defines lifted from .c files)
    "test_snapshot.DIRTY_AREA": (test_snapshot.DIRTY_AREA, "DIRTY_AREA_GPA"),
    "test_qos_vms.COUNTER_PORT": (test_qos_vms.COUNTER_PORT, "COUNTER_PORT"),
    "density.COUNTER_PORT": (density.COUNTER_PORT, "COUNTER_PORT"),
    "len(test_snapshot.MAGIC)": (len(test_snapshot.MAGIC), "sizeof(SNAP_MAGIC) - 1"),
    # CompSC (devices/vfio/compsc_abi.h)
    **{f"compsc.{n}": (getattr(compsc, n), n) for n in (
        "COMPSC_ECAP_POS", "COMPSC_ECAP_ID", "COMPSC_VSEC_ID", "COMPSC_VERSION",
        "COMPSC_PAGE_ENABLE", "COMPSC_ST_ACTIVE", "COMPSC_ST_REFUSED", "COMPSC_PAGE_MAGIC",
        "COMPSC_LOCK_WRITER", "COMPSC_LOCK_READERS", "COMPSC_MAX_STATS",
        "COMPSC_F_PF_REPLAYED")},
    "compsc.OFF_LOCK": (compsc.OFF_LOCK, "offsetof(struct compsc_page, lock)"),
    "compsc.OFF_COUNTER": (compsc.OFF_COUNTER, "offsetof(struct compsc_page, counter)"),
    "compsc.OFF_FLAGS": (compsc.OFF_FLAGS, "offsetof(struct compsc_page, flags)"),
    "compsc.OFF_RESIDUAL": (compsc.OFF_RESIDUAL, "offsetof(struct compsc_page, stats_residual)"),
    # kernel numbers Python does not name
    "nichost.CLONE_NEWNET": (nichost.CLONE_NEWNET, "CLONE_NEWNET"),
    "density.CLONE_NEWNET": (density.CLONE_NEWNET, "CLONE_NEWNET"),
    "test_qos_vms.SO_RCVBUFFORCE": (test_qos_vms.SO_RCVBUFFORCE, "SO_RCVBUFFORCE"),
}

STRINGS = {
    "test_snapshot.MAGIC": (test_snapshot.MAGIC.decode(), "SNAP_MAGIC"),
}

# python struct.Struct -> (C struct, its fields in the order the format packs them)
LAYOUTS = {
    "vu.HDR": (vu.HDR, "struct vfio_user_header",
               ["msg_id", "command", "msg_size", "flags", "error_no"]),
    "vu.DMA_MAP_S": (vu.DMA_MAP_S, "struct vfio_user_dma_map",
                     ["argsz", "flags", "offset", "address", "size"]),
    "vu.DMA_UNMAP_S": (vu.DMA_UNMAP_S, "struct vfio_user_dma_unmap",
                       ["argsz", "flags", "address", "size"]),
    "vu.REGION_INFO_S": (vu.REGION_INFO_S, "struct vfio_region_info",
                         ["argsz", "flags", "index", "cap_offset", "size", "offset"]),
    "vu.IRQ_INFO_S": (vu.IRQ_INFO_S, "struct vfio_irq_info",
                      ["argsz", "flags", "index", "count"]),
    "vu.IRQ_SET_S": (vu.IRQ_SET_S, "struct vfio_irq_set",
                     ["argsz", "flags", "index", "start", "count"]),
    "vu.ACCESS_S": (vu.ACCESS_S, "struct vfio_user_region_access",
                    ["offset", "region", "count"]),
    "vu.IO_FDS_S": (vu.IO_FDS_S, "struct vfio_user_region_io_fds_request",
                    ["argsz", "flags", "index", "count"]),
    "vu.DMA_RW_S": (vu.DMA_RW_S, "struct vfio_user_dma_rw", ["address", "count"]),
    "vu.IOEVENTFD_S": (vu.IOEVENTFD_S, "struct vfio_user_sub_region_ioeventfd",
                       ["offset", "size", "fd_index", "type", "flags", "padding",
                        "datamatch"]),
    "vu.OUTPUT_COMMIT_S": (vu.OUTPUT_COMMIT_S, "struct hdnic_output_commit",
                           ["op", "max_frames", "epoch"]),
    "vu.OUTPUT_STATUS_S": (vu.OUTPUT_STATUS_S, "struct hdnic_output_status",
                           list(vu.output_status_fields)),
    "compsc.ECAP_S": (compsc.ECAP_S, "struct compsc_ecap", list(compsc.ECAP_FIELDS)),
    "compsc.PAGE_S": (compsc.PAGE_S, "struct compsc_page",
                      list(compsc.PAGE_FIELDS) + [f"stats_residual[{i}]" for i in range(8)]),
}


def lifted_defines():
    out = []
    for path, names in LIFTED.items():
        text = (ROOT / path).read_text()
        for name in names:
            m = re.search(rf"^#define\s+{name}\s+(.+?)\s*(/\*.*)?$", text, re.M)
            assert m, f"{path} no longer defines {name}"
            out.append(f"#define {name} {m.group(1)}")
    return "\n".join(out)


def py_layout(st):
    """(size, [(offset, size) per field]) of a little-endian struct format."""
    fmt = st.format if isinstance(st.format, str) else st.format.decode()
    order, codes = fmt[0], fmt[1:]
    fields, off = [], 0
    for code in codes:
        n = struct.calcsize(order + code)
        fields.append((off, n))
        off += n
    return st.size, fields


@pytest.fixture(scope="module")
def c_values(tmp_path_factory):
    """Every C expression above, evaluated by the compiler against the real headers."""
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        pytest.skip(f"no C compiler ({cc})")
    lines = [HEADERS, lifted_defines(), "int main(void)\n{"]
    for name, (_, expr) in SCALARS.items():
        lines.append(f'\tprintf("S %s %llu\\n", "{name}", (unsigned long long)({expr}));')
    for name, (_, expr) in STRINGS.items():
        lines.append(f'\tprintf("T %s %s\\n", "{name}", {expr});')
    for name, (_, cstruct, fields) in LAYOUTS.items():
        lines.append(f'\tprintf("L %s sizeof %zu\\n", "{name}", sizeof({cstruct}));')
        for f in fields:
            lines.append(f'\tprintf("L %s {f} %zu %zu\\n", "{name}", '
                         f'offsetof({cstruct}, {f}), sizeof((({cstruct} *)0)->{f}));')
    lines.append("\treturn 0;\n}\n")
    d = tmp_path_factory.mktemp("wire")
    src, exe = d / "wire.c", d / "wire"
    src.write_text("\n".join(lines))
    r = subprocess.run([cc, "-std=gnu11", "-D_GNU_SOURCE", f"-I{ROOT}", "-o", str(exe),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, "the headers no longer define what the harness copies:\n" + \
        r.stderr[-3000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    vals = {"S": {}, "T": {}, "L": {}}
    for line in out.splitlines():
        kind, name, rest = line.split(" ", 2)
        if kind == "S":
            vals["S"][name] = int(rest)
        elif kind == "T":
            vals["T"][name] = rest
        else:
            vals["L"].setdefault(name, []).append(rest)
    return vals


def test_scalars_match_the_headers(c_values):
    drift = [f"{name} = {py!r} but {expr} = {c_values['S'][name]}"
             for name, (py, expr) in SCALARS.items() if py != c_values["S"][name]]
    drift += [f"{name} = {py!r} but {expr} = {c_values['T'][name]!r}"
              for name, (py, expr) in STRINGS.items() if py != c_values["T"][name]]
    assert not drift, "harness constants drifted from the C headers:\n" + "\n".join(drift)


def test_message_layouts_match_the_headers(c_values):
    drift = []
    for name, (st, cstruct, fields) in LAYOUTS.items():
        size, py_fields = py_layout(st)
        assert len(py_fields) == len(fields), f"{name}: format has {len(py_fields)} fields"
        c = {}
        for row in c_values["L"][name]:
            f, *nums = row.split()
            c[f] = tuple(int(x) for x in nums)
        if c["sizeof"] != (size,):
            drift.append(f"{name}: {size} bytes, {cstruct} {c['sizeof'][0]}")
        for f, (off, n) in zip(fields, py_fields):
            if c[f] != (off, n):
                drift.append(f"{name}.{f}: offset {off} size {n}, "
                             f"{cstruct} offset {c[f][0]} size {c[f][1]}")
    assert not drift, "message layouts drifted from the C headers:\n" + "\n".join(drift)


# Harness choices with no C counterpart (none today): name them here to leave them unchecked.
HARNESS_ONLY = set()


def test_every_wire_constant_of_the_client_is_checked():
    """A constant added to vfio_user_client.py must be added to the tables above."""
    checked = {key[3:].split("/")[0].split("[")[0] for key in (*SCALARS, *LAYOUTS)
               if key.startswith("vu.")}
    names = {n for n in dir(vu) if n.isupper() and
             isinstance(getattr(vu, n), (int, tuple, struct.Struct))}
    missing = sorted(names - checked - HARNESS_ONLY)
    assert not missing, f"vfio_user_client.py constants not checked against C: {missing}"
