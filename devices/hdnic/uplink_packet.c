// SPDX-License-Identifier: MIT
/*
 * Existing-interface uplink through an AF_PACKET socket bound to it, in
 * promiscuous mode, ignoring the host's own outgoing frames (we are the
 * NIC: what the host sends on that interface is not ours to switch).
 * PACKET_VNET_HDR: each frame comes with a virtio-net header, so a partial
 * checksum (a veth peer with offloads on) is completed and a GSO
 * super-frame (its TSO or UDP_SEGMENT) is cut into frames (uplink_vnet.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/hdnic/uplink.h"
#include "vmm/util.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING	23
#endif

static int packet_open(struct uplink *up)
{
	unsigned ifindex = if_nametoindex(up->ifname);
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_protocol = htons(ETH_P_ALL),
		.sll_ifindex = (int)ifindex,
	};
	struct packet_mreq mr = { .mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC };
	int one = 1, fd, err;
	char drain[64];

	if (!ifindex) {
		pr_err("uplink iface:%s: no such interface", up->ifname);
		return -ENODEV;
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0) {
		pr_err("uplink iface:%s: AF_PACKET socket: %s", up->ifname, strerror(errno));
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) {
		err = -errno;
		pr_err("uplink iface:%s: %s", up->ifname, strerror(errno));
		close(fd);
		return err;
	}
	/* Frames from any interface may have queued before bind(): drop them. */
	while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT | MSG_TRUNC) >= 0)
		;
	err = uplink_if_up(up->ifname, false);
	if (err)
		pr_err("uplink iface:%s: cannot bring it up: %s", up->ifname, strerror(-err));
	up->fd = fd;
	up->vnet_hdr_len = UPLINK_VNET_HDR_LEN;
	up->rx_buf_size = UPLINK_GSO_BUF_SIZE;	/* a veth peer's TSO/UDP_SEGMENT frames */
	return 0;
}

static void packet_close(struct uplink *up)
{
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
}

const struct uplink_ops uplink_packet_ops = {
	.kind = "iface",
	.open = packet_open,
	.close = packet_close,
};
