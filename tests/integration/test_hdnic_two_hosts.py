# SPDX-License-Identifier: MIT
"""hdnic on the two-host harness (hosts.py), offloads at the kernel's
defaults: UDP through an AF_PACKET uplink arrives with valid checksums in
both directions, and a function moves from host A's hdnic to host B's with
its guest (the Python driver and its memory) while a client talks to it."""
import errno
import select
import socket
import struct
import time

import pytest

import vfio_user_client as vu
from vfio_user_client import VfioUserClient, VirtioNetVF, wait_for
from hosts import (CLIENT_IP, COUNTER_PORT, TwoHosts, UdpGuest, guest_ip, move_driver,
                   read_state)


@pytest.fixture
def hosts(tmp_path):
    h = TwoHosts(tmp_path, vfs=2, extra=["--idle-us", "300000"])
    yield h
    h.close()


def counter_request(sock, guest, rid, ip, timeout=2.0):
    """One request; the guest is polled until the reply arrives."""
    sock.sendto(struct.pack("!Q", rid), (ip, COUNTER_PORT))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        guest.poll(0.0, step=0.005)
        if not select.select([sock], [], [], 0)[0]:
            continue
        data = sock.recv(64)
        got = struct.unpack("!QQ", data[:16])
        if got[0] == rid:
            return got
    return None


def test_harness_keeps_default_offloads(hosts):
    """The client's veth computes no UDP checksum itself: offload is on."""
    assert hosts.tx_csum_offload("client", "cl0")


def test_udp_checksums_through_af_packet_uplink(hosts):
    """A client with default offloads sends UDP to a function on A's hdnic:
    the driver (no checksum offload negotiated) gets every frame with a
    valid checksum and answers; the reply reaches the client's socket (its
    kernel checks the checksum, so a bad one would be dropped)."""
    with VirtioNetVF(hosts.nic["a"].sock(0)) as vf, hosts.udp_socket() as s:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        replies = [counter_request(s, g, i, guest_ip(0)) for i in range(20)]
        assert g.bad_csum == 0, f"{g.bad_csum} frames arrived with a partial checksum"
        assert replies == [(i, i + 1) for i in range(20)], replies


def test_udp_checksums_through_tap_uplink(ns, nic):
    """The TAP uplink offers checksum offload to the host's stack (the
    frames arrive partial) and completes it: the host's UDP reaches the
    driver with valid checksums, and the replies reach the host's socket."""
    ns.exec("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "hdt0")
    ns.exec("ip", "link", "set", "hdt0", "up")
    with VirtioNetVF(nic.sock(0)) as vf, ns.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        vf.post_rx()
        g = UdpGuest(vf, guest_ip(0))
        replies = [counter_request(s, g, i, guest_ip(0)) for i in range(10)]
        assert g.bad_csum == 0, f"{g.bad_csum} frames arrived with a partial checksum"
        assert replies == [(i, i + 1) for i in range(10)], replies
