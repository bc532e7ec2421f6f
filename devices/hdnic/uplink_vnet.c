// SPDX-License-Identifier: MIT
/*
 * The virtio-net header the kernel puts before each frame on an uplink
 * opened with IFF_VNET_HDR (TAP) or PACKET_VNET_HDR (AF_PACKET).  A frame
 * whose transport checksum the host left to "hardware" (CHECKSUM_PARTIAL:
 * a veth or TAP peer with offloads at their defaults) arrives with
 * NEEDS_CSUM; hdnic is that hardware, so it completes the checksum before
 * a driver that did not negotiate checksum offload sees the frame.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "devices/hdnic/uplink.h"

/* The 16-bit one's-complement sum of len bytes (network order), folded. */
static uint16_t csum_fold_bytes(const uint8_t *p, uint32_t len)
{
	uint64_t sum = 0;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

int uplink_vnet_rx(const void *hdr, uint8_t *frame, uint32_t len)
{
	struct virtio_net_hdr h;
	uint32_t start, at;
	uint16_t sum;

	memcpy(&h, hdr, sizeof(h));
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return -EMSGSIZE;	/* a segmentation job: not one frame */
	if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return 0;
	start = h.csum_start;
	at = start + h.csum_offset;
	if (start >= len || at + 2 > len)
		return -EINVAL;
	/* The field holds the pseudo-header sum; sum from csum_start over it. */
	sum = ~csum_fold_bytes(frame + start, len - start);
	if (!sum)
		sum = 0xffff;	/* UDP: 0 would mean "no checksum" */
	frame[at] = (uint8_t)(sum >> 8);
	frame[at + 1] = (uint8_t)sum;
	return 0;
}

void uplink_vnet_tx(void *hdr)
{
	/* Frames from functions carry complete checksums and are never GSO. */
	memset(hdr, 0, sizeof(struct virtio_net_hdr));
}
