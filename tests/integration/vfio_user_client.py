"""A small vfio-user client for tests.

VfioUserClient speaks the wire protocol (devices/vfio/vfio_user_proto.h)
over an AF_UNIX socket, passing fds with SCM_RIGHTS.  It can also send raw
bytes, so tests can feed a server malformed messages.  The guest-style
virtio-net driver on top of it (VirtioNetVF) is virtio_net_driver.py; its
names are reachable from here too (see __getattr__ at the end).

Memory mapped without an fd (dma_map_nofd, VirtioNetVF(nofd=True)) is a
bytearray the server reaches with DMA_READ/DMA_WRITE requests over the same
socket.  From the first such map a reader thread takes every message: it
answers the server's requests at once from that memory (checked against the
maps: outside any of them is an EFAULT error reply) and hands the replies to
the client's own commands to whoever waits for them, so both kinds may
interleave freely.  For tests, dma_serve=False leaves requests unanswered
and dma_reply_hook replaces the answer.
"""
import array
import json
import os
import queue
import socket
import struct
import threading
import time

# Commands
VERSION = 1
DMA_MAP = 2
DMA_UNMAP = 3
DEVICE_GET_INFO = 4
DEVICE_GET_REGION_INFO = 5
DEVICE_GET_REGION_IO_FDS = 6
DEVICE_GET_IRQ_INFO = 7
DEVICE_SET_IRQS = 8
REGION_READ = 9
REGION_WRITE = 10
DMA_READ = 11
DMA_WRITE = 12
DEVICE_RESET = 13
REGION_WRITE_MULTI = 15
DEVICE_FEATURE = 16
MIG_DATA_READ = 17
MIG_DATA_WRITE = 18

F_TYPE_COMMAND = 0
F_TYPE_REPLY = 1
F_NO_REPLY = 0x10
F_ERROR = 0x20

HDR = struct.Struct("<HHIII")          # msg_id, command, msg_size, flags, error_no
DMA_MAP_S = struct.Struct("<IIQQQ")    # argsz, flags, offset, address, size
DMA_UNMAP_S = struct.Struct("<IIQQ")   # argsz, flags, address, size
REGION_INFO_S = struct.Struct("<IIIIQQ")  # argsz, flags, index, cap_offset, size, offset
IRQ_INFO_S = struct.Struct("<IIII")    # argsz, flags, index, count
IRQ_SET_S = struct.Struct("<IIIII")    # argsz, flags, index, start, count
ACCESS_S = struct.Struct("<QII")       # offset, region, count
IO_FDS_S = struct.Struct("<IIII")      # argsz, flags, index, count
IOEVENTFD_S = struct.Struct("<QQIIIIQ")  # offset, size, fd_index, type, flags, pad, datamatch
DMA_RW_S = struct.Struct("<QQ")        # address, count (DMA_READ/DMA_WRITE, server to client)

DMA_F_READ = 1
DMA_F_WRITE = 2

REGION_F_READ, REGION_F_WRITE, REGION_F_MMAP, REGION_F_CAPS = 1, 2, 4, 8
CAP_SPARSE_MMAP = 1

BAR0 = 0
CONFIG = 7
NUM_REGIONS = 9
MSIX = 2

IRQ_DATA_NONE, IRQ_DATA_BOOL, IRQ_DATA_EVENTFD = 1, 2, 4
IRQ_ACTION_MASK, IRQ_ACTION_UNMASK, IRQ_ACTION_TRIGGER = 8, 16, 32

FEATURE_GET, FEATURE_SET, FEATURE_PROBE = 1 << 16, 1 << 17, 1 << 18
# device features (linux/vfio.h)
FEAT_MIGRATION, FEAT_MIG_DEVICE_STATE = 1, 2
FEAT_DMA_LOGGING_START, FEAT_DMA_LOGGING_STOP, FEAT_DMA_LOGGING_REPORT = 6, 7, 8
MIGRATION_STOP_COPY, MIGRATION_P2P, MIGRATION_PRE_COPY = 1, 2, 4
# enum vfio_device_mig_state
MIG_ERROR, MIG_STOP, MIG_RUNNING, MIG_STOP_COPY, MIG_RESUMING = 0, 1, 2, 3, 4
MIG_RUNNING_P2P, MIG_PRE_COPY, MIG_PRE_COPY_P2P = 5, 6, 7
# hdnic's vendor feature: output commit (devices/hdnic/hdnic_vf_abi.h)
FEAT_OUTPUT_COMMIT = 0xe001
OUTPUT_START, OUTPUT_EPOCH, OUTPUT_COMMIT, OUTPUT_STOP, OUTPUT_DISCARD = 1, 2, 3, 4, 5
OUTPUT_DEFAULT_FRAMES, OUTPUT_MAX_FRAMES = 1024, 4096
OUTPUT_COMMIT_S = struct.Struct("<IIQ")       # op, max_frames, epoch
OUTPUT_STATUS_S = struct.Struct("<IIQQQQQQQQ")  # holding, max_frames, epoch, committed,
#                       held, held_bytes, held_total, released, discarded, tx_blocked
output_status_fields = ("holding", "max_frames", "epoch", "committed", "held", "held_bytes",
                 "held_total", "released", "discarded", "tx_blocked")
MAX_FDS = 16


class VfioUserError(Exception):
    def __init__(self, command, err):
        super().__init__(f"command {command} failed: {os.strerror(err) if err else 'error'}"
                         f" ({err})")
        self.command = command
        self.errno = err


class VfioUserClient:
    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.timeout = timeout
        self.msg_id = 0
        self.server_caps = {}
        self.nofd = []                  # (iova, size, bytearray) mapped without an fd
        self.dma_serve = True           # answer the server's DMA_READ/DMA_WRITE
        self.dma_reply_hook = None      # f(msg_id, command, payload) -> raw bytes, or None
        self.dma_log = []               # (command, address, count) of every server request
        self._send_lock = threading.Lock()
        self._reader = None
        self._replies = queue.Queue()

    def close(self):
        if self.sock:
            if self._reader:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._reader.join(timeout=2)
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- framing ----

    def send_raw(self, data, fds=()):
        """Send bytes as they are, with fds attached to the first byte."""
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        with self._send_lock:
            sent = self.sock.sendmsg([data], anc)
            if sent < len(data):
                self.sock.sendall(data[sent:])

    def send(self, command, payload=b"", fds=(), flags=F_TYPE_COMMAND, msg_id=None,
             msg_size=None, error_no=0):
        if msg_id is None:
            self.msg_id = (self.msg_id + 1) & 0xFFFF
            msg_id = self.msg_id
        size = HDR.size + len(payload) if msg_size is None else msg_size
        self.send_raw(HDR.pack(msg_id, command, size, flags, error_no) + payload, fds)
        return msg_id

    def _recv_exact(self, n, fds):
        buf = bytearray()
        while len(buf) < n:
            data, anc, _flags, _addr = self.sock.recvmsg(
                n - len(buf), socket.CMSG_SPACE(MAX_FDS * 4))
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(cdata[:len(cdata) - len(cdata) % 4])
                    fds.extend(a)
            if not data:
                raise ConnectionError("server closed the connection")
            buf += data
        return bytes(buf)

    def recv(self):
        """One message: (msg_id, command, flags, error_no, payload, fds)."""
        if self._reader:
            try:
                item = self._replies.get(timeout=self.timeout)
            except queue.Empty:
                raise socket.timeout("no reply") from None
            if isinstance(item, Exception):
                raise item
            return item
        return self._recv_msg()

    def _recv_msg(self):
        fds = []
        hdr = self._recv_exact(HDR.size, fds)
        msg_id, command, size, flags, err = HDR.unpack(hdr)
        if size < HDR.size or size > (1 << 21):
            raise ConnectionError(f"bad reply size {size}")
        payload = self._recv_exact(size - HDR.size, fds) if size > HDR.size else b""
        return msg_id, command, flags, err, payload, fds

    def call(self, command, payload=b"", fds=()):
        """Send a command and return (payload, fds) of the reply; raise on error."""
        msg_id = self.send(command, payload, fds)
        rid, rcmd, flags, err, rpayload, rfds = self.recv()
        if rid != msg_id or rcmd != command or (flags & 0xF) != F_TYPE_REPLY:
            for fd in rfds:
                os.close(fd)
            raise ConnectionError(f"reply {rid}/{rcmd}/{flags:#x} does not match {msg_id}/{command}")
        if flags & F_ERROR:
            for fd in rfds:
                os.close(fd)
            raise VfioUserError(command, err)
        return rpayload, rfds

    def expect_error(self, command, payload=b"", fds=(), **kw):
        """Send (possibly malformed) and return the errno of the error reply."""
        msg_id = self.send(command, payload, fds, **kw)
        rid, rcmd, flags, err, _payload, rfds = self.recv()
        for fd in rfds:
            os.close(fd)
        assert rid == msg_id, f"reply id {rid} != {msg_id}"
        assert flags & F_ERROR, f"command {command} unexpectedly succeeded"
        return err

    # ---- commands ----

    def version(self, caps=None, major=0, minor=2):
        if caps is None:
            caps = {"capabilities": {"max_msg_fds": MAX_FDS, "max_data_xfer_size": 1 << 20}}
        body = struct.pack("<HH", major, minor)
        if caps is not False:
            body += json.dumps(caps).encode() + b"\0"
        payload, fds = self.call(VERSION, body)
        for fd in fds:
            os.close(fd)
        smaj, smin = struct.unpack_from("<HH", payload)
        text = payload[4:].rstrip(b"\0").decode()
        self.server_caps = json.loads(text) if text else {}
        return smaj, smin, self.server_caps

    # ---- memory without an fd: the server's DMA_READ / DMA_WRITE ----

    def dma_map_nofd(self, iova, size, mem=None, flags=DMA_F_READ | DMA_F_WRITE):
        """Map [iova, iova+size) without an fd, backed by mem (a bytearray)."""
        mem = bytearray(size) if mem is None else mem
        assert len(mem) >= size
        self.nofd.append((iova, size, mem))
        if not self._reader:
            self.sock.settimeout(None)      # the reader never gives up half way into a message
            self._reader = threading.Thread(target=self._read_loop, daemon=True)
            self._reader.start()
        self.call(DMA_MAP, DMA_MAP_S.pack(DMA_MAP_S.size, flags, 0, iova, size))
        return mem

    def _read_loop(self):
        while True:
            try:
                msg = self._recv_msg()
            except socket.timeout:
                continue
            except Exception as e:          # closed: whoever waits learns it
                self._replies.put(e if isinstance(e, ConnectionError) else ConnectionError(str(e)))
                return
            msg_id, command, flags, _err, payload, fds = msg
            if (flags & 0xF) == F_TYPE_COMMAND and command in (DMA_READ, DMA_WRITE):
                for fd in fds:
                    os.close(fd)
                self._serve_dma(msg_id, command, payload)
            else:
                self._replies.put(msg)

    def _dma_target(self, address, count):
        for iova, size, mem in self.nofd:
            if iova <= address and address + count <= iova + size:
                return mem, address - iova
        return None, 0

    def _serve_dma(self, msg_id, command, payload):
        if len(payload) < DMA_RW_S.size:
            return self._reply(msg_id, command, b"", errno_=22)
        address, count = DMA_RW_S.unpack_from(payload)
        self.dma_log.append((command, address, count))
        if not self.dma_serve:
            return
        if self.dma_reply_hook:
            raw = self.dma_reply_hook(msg_id, command, payload)
            if raw is not None:
                return self.send_raw(raw)
        mem, off = self._dma_target(address, count)
        if mem is None:
            return self._reply(msg_id, command, b"", errno_=14)         # EFAULT
        if command == DMA_READ:
            return self._reply(msg_id, command, payload[:16] + bytes(mem[off:off + count]))
        data = payload[16:]
        if len(data) != count:
            return self._reply(msg_id, command, b"", errno_=22)
        mem[off:off + count] = data
        self._reply(msg_id, command, payload[:16])

    def _reply(self, msg_id, command, payload, errno_=0):
        flags = F_TYPE_REPLY | (F_ERROR if errno_ else 0)
        self.send_raw(HDR.pack(msg_id, command, HDR.size + len(payload), flags, errno_) + payload)

    def dma_map(self, fd, iova, size, offset=0, flags=DMA_F_READ | DMA_F_WRITE):
        self.call(DMA_MAP, DMA_MAP_S.pack(DMA_MAP_S.size, flags, offset, iova, size), [fd])

    def dma_unmap(self, iova, size, flags=0):
        payload, _ = self.call(DMA_UNMAP, DMA_UNMAP_S.pack(DMA_UNMAP_S.size, flags, iova, size))
        return DMA_UNMAP_S.unpack_from(payload)

    def device_info(self):
        payload, _ = self.call(DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
        argsz, flags, nregions, nirqs = struct.unpack_from("<IIII", payload)
        return {"flags": flags, "num_regions": nregions, "num_irqs": nirqs}

    def region_info(self, index, argsz=REGION_INFO_S.size):
        """Two-step region info; returns a dict with 'areas' and 'fd' (or None)."""
        payload, fds = self.call(DEVICE_GET_REGION_INFO,
                                 REGION_INFO_S.pack(argsz, 0, index, 0, 0, 0))
        need = REGION_INFO_S.unpack_from(payload)[0]
        if need > argsz:
            for fd in fds:
                os.close(fd)
            return self.region_info(index, need)
        rargsz, flags, rindex, cap_off, size, offset = REGION_INFO_S.unpack_from(payload)
        info = {"argsz": rargsz, "flags": flags, "index": rindex, "size": size,
                "offset": offset, "areas": [], "fd": fds[0] if fds else None}
        for fd in fds[1:]:
            os.close(fd)
        while cap_off:
            cid, cver, nxt = struct.unpack_from("<HHI", payload, cap_off)
            if cid == CAP_SPARSE_MMAP:
                nr, = struct.unpack_from("<I", payload, cap_off + 8)
                for i in range(nr):
                    info["areas"].append(struct.unpack_from("<QQ", payload, cap_off + 16 + 16 * i))
            cap_off = nxt
        return info

    def region_io_fds(self, index, argsz=1024):
        payload, fds = self.call(DEVICE_GET_REGION_IO_FDS, IO_FDS_S.pack(argsz, 0, index, 0))
        rargsz, _flags, rindex, count = IO_FDS_S.unpack_from(payload)
        subs = [IOEVENTFD_S.unpack_from(payload, IO_FDS_S.size + i * IOEVENTFD_S.size)
                for i in range(count) if rargsz <= argsz]
        return subs, fds

    def irq_info(self, index):
        payload, _ = self.call(DEVICE_GET_IRQ_INFO, IRQ_INFO_S.pack(16, 0, index, 0))
        _argsz, flags, rindex, count = IRQ_INFO_S.unpack_from(payload)
        return flags, count

    def set_irqs(self, index, flags, start, count, fds=(), data=b""):
        self.call(DEVICE_SET_IRQS,
                  IRQ_SET_S.pack(IRQ_SET_S.size + len(data), flags, index, start, count) + data,
                  fds)

    def region_read(self, region, offset, count):
        payload, _ = self.call(REGION_READ, ACCESS_S.pack(offset, region, count))
        return payload[ACCESS_S.size:]

    def region_write(self, region, offset, data):
        self.call(REGION_WRITE, ACCESS_S.pack(offset, region, len(data)) + bytes(data))

    def read32(self, region, offset):
        return struct.unpack("<I", self.region_read(region, offset, 4))[0]

    def write32(self, region, offset, value):
        self.region_write(region, offset, struct.pack("<I", value))

    def reset(self):
        self.call(DEVICE_RESET)

    def device_feature(self, flags, data=b"", room=0):
        """DEVICE_FEATURE with data; argsz leaves room for a reply of `room` bytes."""
        argsz = 8 + max(len(data), room)
        return self.call(DEVICE_FEATURE, struct.pack("<II", argsz, flags) + data)

    # migration (VFIO migration v2 over vfio-user)
    def migration_flags(self):
        payload, _ = self.device_feature(FEATURE_GET | FEAT_MIGRATION, room=8)
        return struct.unpack_from("<Q", payload, 8)[0]

    def mig_state(self):
        payload, _ = self.device_feature(FEATURE_GET | FEAT_MIG_DEVICE_STATE, room=8)
        return struct.unpack_from("<I", payload, 8)[0]

    def set_mig_state(self, state):
        payload, _ = self.device_feature(FEATURE_SET | FEAT_MIG_DEVICE_STATE,
                                         struct.pack("<Ii", state, -1))
        return struct.unpack_from("<I", payload, 8)[0]

    def mig_data_read(self, size):
        payload, _ = self.call(MIG_DATA_READ, struct.pack("<II", 8 + size, size))
        argsz, got = struct.unpack_from("<II", payload)
        return payload[8:8 + got]

    def mig_data_write(self, data):
        self.call(MIG_DATA_WRITE, struct.pack("<II", 8 + len(data), len(data)) + data)

    def dma_logging_start(self, ranges, page_size=4096):
        """Start device DMA logging over [(iova, length)] ([] = everything mapped);
        returns the page size the device chose."""
        data = struct.pack("<QII", page_size, len(ranges), 0)
        data += b"".join(struct.pack("<QQ", i, n) for i, n in ranges)
        payload, _ = self.device_feature(FEATURE_SET | FEAT_DMA_LOGGING_START, data)
        return struct.unpack_from("<Q", payload, 8)[0]

    def dma_logging_stop(self):
        self.device_feature(FEATURE_SET | FEAT_DMA_LOGGING_STOP)

    def dma_logging_report(self, iova, length, page_size=4096):
        """The dirty pages of [iova, iova+length) (read and cleared) as a set of page numbers."""
        pages = length // page_size
        payload, _ = self.device_feature(FEATURE_GET | FEAT_DMA_LOGGING_REPORT,
                                         struct.pack("<QQQ", iova, length, page_size),
                                         room=24 + (pages + 63) // 64 * 8)
        bitmap = payload[8 + 24:]
        return {i for i in range(pages) if bitmap[i // 8] >> (i % 8) & 1}

    # output commit (hdnic's vendor feature)
    def output(self, op, epoch=0, max_frames=0):
        self.device_feature(FEATURE_SET | FEAT_OUTPUT_COMMIT,
                            OUTPUT_COMMIT_S.pack(op, max_frames, epoch))

    def output_start(self, epoch, max_frames=0):
        self.output(OUTPUT_START, epoch, max_frames)

    def output_epoch(self, epoch):
        self.output(OUTPUT_EPOCH, epoch)

    def output_commit(self, epoch):
        self.output(OUTPUT_COMMIT, epoch)

    def output_stop(self):
        self.output(OUTPUT_STOP)

    def output_status(self):
        payload, _ = self.device_feature(FEATURE_GET | FEAT_OUTPUT_COMMIT,
                                         room=OUTPUT_STATUS_S.size)
        return dict(zip(output_status_fields, OUTPUT_STATUS_S.unpack_from(payload, 8)))


def wait_for(pred, timeout=5.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


# The virtio-net driver (VirtioNetVF, Ring, its register and feature
# constants, ether_frame, mac_bytes) lives in virtio_net_driver.py; its names
# stay reachable here (`vu.VirtioNetVF`, `from vfio_user_client import RX`),
# looked up on first use, so importing either module first works.
def __getattr__(name):
    import virtio_net_driver
    try:
        return getattr(virtio_net_driver, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__():
    import virtio_net_driver
    return sorted(set(globals()) | {n for n in dir(virtio_net_driver) if not n.startswith("_")})
