# SPDX-License-Identifier: MIT
"""ARP suppression in hdnic's switch: a broadcast ARP request for an address
a function has announced goes to that function only, a function's
gratuitous ARP goes to the uplink only, requests for addresses nobody has
claimed are still flooded, and an untrusted function cannot take over a
live neighbour's address.  Python drivers play the guests so the test sees
exactly which function received what."""
import struct

import pytest

from vfio_user_client import VirtioNetVF, ether_frame
from nichost import sniff

BCAST = b"\xff" * 6
PEER = bytes.fromhex("02aabbccdd01")          # a station behind the uplink
IP = {k: bytes([10, 199, 0, v]) for k, v in (("peer", 1), ("a", 2), ("b", 3), ("c", 4),
                                                ("nobody", 9))}


@pytest.fixture
def vfs(nic):
    drv = [VirtioNetVF(nic.sock(i)) for i in range(3)]
    for d in drv:
        d.post_rx()
    yield drv
    for d in drv:
        d.close()


def arp(op, sha, spa, tpa, tha=bytes(6), dst=BCAST):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)
    return ether_frame(dst, sha, 0x0806, body)


def is_arp_for(tpa, spa):
    return lambda f: f[12:14] == b"\x08\x06" and f[38:42] == tpa and f[28:32] == spa


def got(vf, match, timeout=0.5):
    """Did vf receive a frame matching match within timeout?"""
    return vf.recv(timeout=timeout, match=match, repost=True) is not None


def announce(vf, ip):
    vf.send(arp(1, vf.mac(), ip, ip))
    assert vf.wait_tx_done(1), "gratuitous ARP never completed"


def arp_stats(nic):
    return nic.ctl_json("stats")["arp"]


def test_announcement_goes_to_uplink_only(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    assert sniff(tap, is_arp_for(IP["a"], IP["a"])), "the announcement did not reach the uplink"
    assert not got(b, is_arp_for(IP["a"], IP["a"]))
    assert not got(c, is_arp_for(IP["a"], IP["a"]))
    st = arp_stats(nic)
    assert st["bindings"] == 1 and st["suppressed"] >= 1


def test_request_from_uplink_reaches_only_the_owner(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    tap.send(arp(1, PEER, IP["peer"], IP["a"]))
    match = is_arp_for(IP["a"], IP["peer"])
    assert got(a, match, timeout=3), "the owner did not get the request for its address"
    assert not got(b, match) and not got(c, match)
    assert arp_stats(nic)["directed"] >= 1


def test_request_for_unclaimed_address_is_flooded(nic, vfs, tap):
    tap.send(arp(1, PEER, IP["peer"], IP["nobody"]))
    match = is_arp_for(IP["nobody"], IP["peer"])
    for vf in vfs:
        assert got(vf, match, timeout=3), "a request nobody can answer must reach everyone"
    assert arp_stats(nic)["flooded"] >= 1


def test_request_between_functions_is_directed(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    c.send(arp(1, c.mac(), IP["c"], IP["a"]))
    match = is_arp_for(IP["a"], IP["c"])
    assert got(a, match, timeout=3)
    assert not got(b, match)
    assert not sniff(tap, match, timeout=0.5), "a request for a local owner leaked to the uplink"


def test_request_for_uplink_address_stays_off_functions(nic, vfs, tap):
    a, b, c = vfs
    # the peer behind the uplink speaks: its address is learned there
    tap.send(arp(1, PEER, IP["peer"], IP["nobody"]))
    assert got(a, is_arp_for(IP["nobody"], IP["peer"]), timeout=3)
    c.send(arp(1, c.mac(), IP["c"], IP["peer"]))
    match = is_arp_for(IP["peer"], IP["c"])
    assert sniff(tap, match, timeout=3), "the request for the uplink's address never left"
    assert not got(a, match) and not got(b, match)


def test_request_between_uplink_stations_stays_off_functions(nic, vfs, tap):
    a, b, c = vfs
    other = bytes.fromhex("02aabbccdd02")
    tap.send(arp(1, PEER, IP["peer"], IP["nobody"]))        # the peer is learned
    assert got(a, is_arp_for(IP["nobody"], IP["peer"]), timeout=3)
    tap.send(arp(1, other, bytes([10, 199, 0, 8]), IP["peer"]))
    match = is_arp_for(IP["peer"], bytes([10, 199, 0, 8]))
    for vf in vfs:
        assert not got(vf, match), "a request between uplink stations woke a function"


def test_untrusted_function_cannot_take_a_neighbours_address(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    announce(b, IP["a"])                      # b claims a's address
    assert arp_stats(nic)["refused"] >= 1
    tap.send(arp(1, PEER, IP["peer"], IP["a"]))
    match = is_arp_for(IP["a"], IP["peer"])
    assert got(a, match, timeout=3)
    assert not got(b, match), "the impostor received the owner's ARP request"


def test_trusted_function_may_take_an_address(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    nic.ctl("trust", "vf1", "on")
    announce(b, IP["a"])                      # e.g. a failover address moving
    assert arp_stats(nic)["moved"] >= 1
    tap.send(arp(1, PEER, IP["peer"], IP["a"]))
    match = is_arp_for(IP["a"], IP["peer"])
    assert got(b, match, timeout=3)
    assert not got(a, match)


def test_departed_function_is_forgotten(nic, vfs, tap):
    a, b, c = vfs
    announce(a, IP["a"])
    a.close()                                 # the client goes: the VF is reset
    tap.send(arp(1, PEER, IP["peer"], IP["a"]))
    match = is_arp_for(IP["a"], IP["peer"])
    assert got(b, match, timeout=3) and got(c, match, timeout=3), \
        "with its owner gone the request must be flooded again"
