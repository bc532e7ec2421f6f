# SPDX-License-Identifier: MIT
"""Receive filtering on hdnic functions (VIRTIO_NET_F_CTRL_RX): every VF and
ADI has a control queue; a driver that negotiates CTRL_RX decides with
PROMISC / ALLMULTI / MAC_TABLE_SET which multicast and foreign unicast frames
it gets, and hdnic drops the rest before any DMA (rx_filtered).  A driver
that does not negotiate it keeps receiving everything.  The last test runs a
real guest (hdguest on an ADI) and floods it with multicast from the uplink."""
import struct
import time

import pytest

import vfio_user_client as vu
from vfio_user_client import VirtioNetVF, ether_frame, wait_for

BCAST = b"\xff" * 6
PEER = bytes.fromhex("02aabbccdd01")          # a host behind the uplink
MCAST = bytes.fromhex("333300000001")         # IPv6 all-nodes
MCAST2 = bytes.fromhex("01005e0000fb")        # mDNS
STRANGER = bytes.fromhex("02aabbccdd77")      # unicast nobody on the NIC owns
ETH_TEST = 0x88B5
OK, ERR = vu.CTRL_OK, vu.CTRL_ERR


def tagged(tag):
    return lambda f: len(f) >= 14 and f[12:14] == struct.pack("!H", ETH_TEST) and tag in f


def delivered(tap, vf, dst, tag, timeout=1.0):
    """Send a test frame to dst from behind the uplink; did vf receive it?"""
    frame = ether_frame(dst, PEER, payload=tag)
    tap.send(frame)
    return vf.recv(timeout=timeout, match=tagged(tag), repost=True) == frame


def rx_mode(nic, dev):
    return nic.dev_info(dev)["rx_mode"]


def test_every_function_offers_ctrl_rx(nic):
    nic.adi_add("one")
    nic.adi_add("two", "--queues", "2")
    for path, queues in ((nic.sock(0), 3), (nic.adi_sock("one"), 3), (nic.adi_sock("two"), 5)):
        with VirtioNetVF(path, ctrl_rx=True) as vf:
            assert vf.device_features() & (vu.F_CTRL_VQ | vu.F_CTRL_RX) == \
                vu.F_CTRL_VQ | vu.F_CTRL_RX
            assert vf.r16(0x12) == queues          # num_queues: the pairs', then control
            assert vf.rx_mode(promisc=False, allmulti=False) == [OK, OK]


def test_without_ctrl_rx_all_multicast_arrives(nic, tap):
    with VirtioNetVF(nic.sock(0)) as vf:
        vf.post_rx()
        assert delivered(tap, vf, MCAST, b"legacy-mc")
        assert delivered(tap, vf, BCAST, b"legacy-bc")
        assert nic.stats(0)["rx_filtered"] == 0
        assert rx_mode(nic, "vf0")["filtering"] is False


def test_multicast_only_with_allmulti(nic, tap):
    with VirtioNetVF(nic.sock(0), ctrl_rx=True) as vf, VirtioNetVF(nic.sock(1)) as legacy:
        vf.post_rx()
        legacy.post_rx()
        mode = rx_mode(nic, "vf0")
        # Reset state: empty MAC table, promiscuous on, all-multicast off.
        assert mode == {"filtering": True, "promisc": True, "allmulti": False,
                        "unicast": 0, "multicast": 0}
        assert delivered(tap, vf, MCAST, b"default-mc")
        assert vf.rx_mode(promisc=False, allmulti=False) == [OK, OK]
        before = nic.stats(0)
        for i in range(12):
            tap.send(ether_frame(MCAST, PEER, payload=b"filtered-mc-%02d" % i))
        # the driver without CTRL_RX next door still gets all 12
        for i in range(12):
            assert legacy.recv(match=tagged(b"filtered-mc-%02d" % i), repost=True)
        assert vf.recv(timeout=0.3, match=tagged(b"filtered-mc")) is None
        after = nic.stats(0)
        assert after["rx_filtered"] - before["rx_filtered"] == 12
        assert after["rx_packets"] == before["rx_packets"]
        assert after["rx_drops"] == before["rx_drops"]   # filtering is not a drop
        # broadcast and the function's own unicast always pass
        assert delivered(tap, vf, BCAST, b"bc-passes")
        assert delivered(tap, vf, vf.mac(), b"own-unicast")
        assert vf.rx_mode(allmulti=True) == [OK]
        assert delivered(tap, vf, MCAST, b"allmulti-mc")
        assert delivered(tap, vf, MCAST2, b"allmulti-mc2")


def test_foreign_unicast_only_with_promisc(nic, tap):
    with VirtioNetVF(nic.sock(0), ctrl_rx=True) as vf, VirtioNetVF(nic.sock(1)) as legacy:
        vf.post_rx()
        legacy.post_rx()
        assert vf.rx_mode(promisc=False, allmulti=False) == [OK, OK]
        drops = nic.stats()["switch"]["unknown_unicast_drops"]
        assert not delivered(tap, vf, STRANGER, b"stranger-1")
        assert nic.stats()["switch"]["unknown_unicast_drops"] == drops + 1
        assert vf.rx_mode(promisc=True) == [OK]
        assert delivered(tap, vf, STRANGER, b"stranger-2")
        assert legacy.recv(timeout=0.3, match=tagged(b"stranger-2")) is None
        # promiscuous also means every multicast
        assert delivered(tap, vf, MCAST, b"promisc-mc")
        # another function's unicast still goes to that function only
        assert delivered(tap, legacy, legacy.mac(), b"for-legacy")
        assert vf.recv(timeout=0.3, match=tagged(b"for-legacy")) is None


def test_mac_table(nic, tap):
    with VirtioNetVF(nic.sock(2), ctrl_rx=True) as vf:
        vf.post_rx()
        assert vf.rx_mode(promisc=False, allmulti=False) == [OK, OK]
        assert vf.mac_table(unicast=[STRANGER], multicast=[MCAST]) == OK
        mode = rx_mode(nic, "vf2")
        assert (mode["unicast"], mode["multicast"]) == (1, 1)
        assert delivered(tap, vf, MCAST, b"listed-mc")
        assert not delivered(tap, vf, MCAST2, b"unlisted-mc", timeout=0.3)
        assert delivered(tap, vf, STRANGER, b"listed-uc")
        # more multicast addresses than the table holds: all multicast passes
        many = [bytes([0x01, 0x00, 0x5e, 0, 1, i]) for i in range(40)]
        assert vf.mac_table(multicast=many) == OK
        assert rx_mode(nic, "vf2")["multicast"] == -1
        assert delivered(tap, vf, MCAST2, b"overflow-mc")
        # an empty table: back to nothing but broadcast and our own address
        assert vf.mac_table() == OK
        assert not delivered(tap, vf, MCAST, b"emptied-mc", timeout=0.3)
        assert not delivered(tap, vf, STRANGER, b"emptied-uc", timeout=0.3)


BAD_COMMANDS = [
    (vu.CTRL_RX, vu.CTRL_RX_PROMISC, b""),                 # no state byte
    (vu.CTRL_RX, vu.CTRL_RX_ALLMULTI, b"\x01\x01"),        # two
    (vu.CTRL_RX, 2, b"\x01"),                              # NOUNI: needs CTRL_RX_EXTRA
    (vu.CTRL_MAC, 1, bytes(6)),                            # ADDR_SET: needs CTRL_MAC_ADDR
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET, b""),
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET, struct.pack("<I", 1) + STRANGER),   # no mc list
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET, struct.pack("<I", 0xFFFFFFFF) + bytes(8)),
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET,                   # multicast in the unicast list
     struct.pack("<I", 1) + MCAST + struct.pack("<I", 0)),
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET,                   # unicast in the multicast list
     struct.pack("<I", 0) + struct.pack("<I", 1) + STRANGER),
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET, bytes(8) + b"\0"),  # trailing byte
    (vu.CTRL_MAC, vu.CTRL_MAC_TABLE_SET,                   # longer than any command
     struct.pack("<I", 300) + STRANGER * 300 + bytes(4)),
    (vu.CTRL_MQ, vu.CTRL_MQ_VQ_PAIRS_SET, struct.pack("<H", 1)),  # MQ not negotiated
    (9, 0, b"\x01"),                                       # no such class
    (0xFF, 0xFF, b""),
]


def test_bad_commands_get_err_and_change_nothing(nic, tap):
    with VirtioNetVF(nic.sock(0), ctrl_rx=True) as vf:
        vf.post_rx()
        assert vf.rx_mode(promisc=False, allmulti=True) == [OK, OK]
        assert vf.mac_table(multicast=[MCAST]) == OK
        before = rx_mode(nic, "vf0")
        for cls, cmd, data in BAD_COMMANDS:
            assert vf.ctrl(cls, cmd, data) == ERR, (cls, cmd, data[:16])
        assert not vf.status() & vu.S_NEEDS_RESET
        assert rx_mode(nic, "vf0") == before
        assert delivered(tap, vf, vf.mac(), b"still-working")
    # A multi-queue driver without CTRL_RX: the class is refused, MQ still works.
    nic.adi_add("mq", "--queues", "2")
    with VirtioNetVF(nic.adi_sock("mq"), pairs=2) as mq:
        assert mq.rx_mode(promisc=False) == [ERR]
        assert mq.mac_table() == ERR
        assert mq.ctrl(vu.CTRL_MQ, vu.CTRL_MQ_VQ_PAIRS_SET, struct.pack("<H", 1)) == OK
    assert nic.alive()


def test_reset_clears_the_filter(nic, tap):
    with VirtioNetVF(nic.sock(1), ctrl_rx=True) as vf:
        assert vf.rx_mode(promisc=False, allmulti=True) == [OK, OK]
        assert vf.mac_table(unicast=[STRANGER], multicast=[MCAST]) == OK
        vf.init_device()                     # virtio reset, bring-up again
        assert rx_mode(nic, "vf1") == {"filtering": True, "promisc": True, "allmulti": False,
                                       "unicast": 0, "multicast": 0}
        vf.post_rx()
        assert vf.rx_mode(promisc=False) == [OK]
        assert not delivered(tap, vf, MCAST, b"after-reset-mc", timeout=0.3)
    # a new client starts from a function-level reset as well
    with VirtioNetVF(nic.sock(1)) as vf:
        vf.post_rx()
        assert rx_mode(nic, "vf1")["filtering"] is False
        assert delivered(tap, vf, MCAST, b"next-client-mc")


def test_multi_queue_adi_filters(nic, tap):
    nic.adi_add("mqf", "--queues", "2")
    with VirtioNetVF(nic.adi_sock("mqf"), pairs=2, ctrl_rx=True) as vf:
        assert vf.ctrl_index == 4
        for q in (0, 2):
            vf.post_rx(q=q)
        assert vf.rx_mode(promisc=False, allmulti=False) == [OK, OK]
        for i in range(10):
            tap.send(ether_frame(MCAST, PEER, payload=b"mq-mc-%d" % i))
        assert wait_for(lambda: nic.dev_stats("adi-mqf")["rx_filtered"] == 10)
        assert nic.dev_stats("adi-mqf")["rx_packets"] == 0
        frame = ether_frame(vf.mac(), PEER, payload=b"mq-uc")
        tap.send(frame)
        got = None
        deadline = time.monotonic() + 3
        while got is None and time.monotonic() < deadline:
            for q in (0, 2):
                got = got or vf.recv(timeout=0.05, match=tagged(b"mq-uc"), q=q)
        assert got == frame


# ---- a real guest: hdguest's counter app on an ADI ----

@pytest.fixture
def net(tmp_path):
    from netlib import NicNet
    n = NicNet(tmp_path, vfs=1)
    yield n
    n.close_checked()


@pytest.mark.kvm
def test_guest_on_adi_never_sees_uplink_multicast(vms, net):
    from netlib import guest_ip
    net.nic.adi_add("g")
    ip = guest_ip(0)
    vm = vms(cmdline=f"app=counter ip={ip}/24",
             extra=["--vfio-user", str(net.nic.adi_sock("g"))])
    vm.out.wait_for(r"virtio-net: rx filter: promisc off allmulti off", timeout=30)
    vm.out.wait_for("counter: listening", timeout=30)
    mode = net.nic.dev_info("adi-g")["rx_mode"]
    assert mode["filtering"] and not mode["promisc"] and not mode["allmulti"]
    assert net.counter_requests(ip, [1]) == [(1, 1)]
    tap = net.ns.packet_socket("hdt0")
    try:
        before = net.nic.dev_stats("adi-g")
        for i in range(200):
            dst = MCAST if i % 2 else MCAST2
            tap.send(ether_frame(dst, PEER, ethertype=0x86DD, payload=b"mld-ish-%03d" % i))
        assert wait_for(lambda: net.nic.dev_stats("adi-g")["rx_filtered"] -
                        before["rx_filtered"] >= 200, timeout=5)
        after = net.nic.dev_stats("adi-g")
    finally:
        tap.close()
    # none of the 200 reached the guest (an ARP refresh may have)
    assert after["rx_packets"] - before["rx_packets"] <= 2, (before, after)
    print(f"\nrx_filtered {after['rx_filtered'] - before['rx_filtered']} of 200 multicast, "
          f"rx_packets +{after['rx_packets'] - before['rx_packets']}")
    # unicast and broadcast still work: ping (ARP broadcast first) and the counter
    sent, got, out = net.ping(ip, count=20)
    assert got == sent, out
    assert net.counter_requests(ip, [2, 3]) == [(2, 2), (3, 3)]
    assert "virtio-net: device needs reset" not in vm.out.text()
