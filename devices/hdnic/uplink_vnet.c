// SPDX-License-Identifier: MIT
/*
 * The virtio-net header the kernel puts before each frame on an uplink
 * opened with IFF_VNET_HDR (TAP) or PACKET_VNET_HDR (AF_PACKET).  A frame
 * whose transport checksum the host left to "hardware" (CHECKSUM_PARTIAL:
 * a veth or TAP peer with offloads at their defaults) arrives with
 * NEEDS_CSUM; a GSO super-frame (TSO, UDP_SEGMENT from a peer whose veth
 * segments nothing) arrives whole.  hdnic is that hardware: it completes
 * checksums and cuts super-frames into wire frames (IPv4/IPv6, TCP and
 * UDP) before a driver that negotiated no offload sees them.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4	5	/* Linux 6.2; the build host's headers are 6.1 */
#endif

#define ETH_HLEN	14
#define TCP_FIN		0x01
#define TCP_PSH		0x08
#define TCP_CWR		0x80

static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Store the complement of the sum at p; UDP's 0 means "none", so 0xffff. */
static void csum_store(uint8_t *p, uint32_t sum)
{
	uint16_t c = (uint16_t)~csum_fold(sum);

	put16(p, c ? c : 0xffff);
}

/* The checksum field holds the pseudo-header sum: sum from start over it. */
static int complete_csum(const struct virtio_net_hdr *h, uint8_t *frame, uint32_t len)
{
	uint32_t start = h->csum_start, at = start + h->csum_offset;

	if (start >= len || at + 2 > len)
		return -EINVAL;
	csum_store(frame + at, csum_add(0, frame + start, len - start));
	return 0;
}

/*
 * One wire frame of a super-frame: headers (hlen bytes, l3 at l3, l4 at l4)
 * then payload bytes [off, off + n); the IP length and id, the TCP sequence
 * and flags or the UDP length, and both checksums redone.
 */
static uint32_t build_segment(uint8_t *out, const uint8_t *sf, uint32_t l3, uint32_t l4,
			      uint32_t hlen, bool tcp, uint32_t off, uint32_t n, unsigned i,
			      bool last)
{
	uint8_t *ip = out + l3, *th = out + l4;
	uint32_t l4len = hlen - l4 + n, sum;
	bool v4 = (sf[l3] >> 4) == 4;

	memcpy(out, sf, hlen);
	memcpy(out + hlen, sf + hlen + off, n);
	if (v4) {
		put16(ip + 2, (uint16_t)(hlen - l3 + n));
		put16(ip + 4, (uint16_t)(get16(ip + 4) + i));
		put16(ip + 10, 0);
		csum_store(ip + 10, csum_add(0, ip, l4 - l3));
		sum = csum_add(0, ip + 12, 8);
	} else {
		put16(ip + 4, (uint16_t)(hlen - l4 + n));	/* no extension headers */
		sum = csum_add(0, ip + 8, 32);
	}
	sum += (tcp ? 6 : 17) + l4len;
	if (tcp) {
		uint32_t seq = ((uint32_t)get16(th + 4) << 16 | get16(th + 6)) + off;

		put16(th + 4, (uint16_t)(seq >> 16));
		put16(th + 6, (uint16_t)seq);
		if (!last)
			th[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i)
			th[13] &= (uint8_t)~TCP_CWR;
		put16(th + 16, 0);
		csum_store(th + 16, csum_add(sum, th, l4len));
	} else {
		put16(th + 4, (uint16_t)l4len);
		put16(th + 6, 0);
		csum_store(th + 6, csum_add(sum, th, l4len));
	}
	return hlen + n;
}

static int segment(const struct virtio_net_hdr *h, const uint8_t *sf, uint32_t len,
		   uplink_emit_fn emit, void *ctx)
{
	static uint8_t out[HDNIC_MAX_FRAME];	/* single-threaded; emit copies */
	uint32_t l3 = ETH_HLEN, l4 = h->csum_start, hlen, mss = h->gso_size, payload;
	uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	bool tcp = gso == VIRTIO_NET_HDR_GSO_TCPV4 || gso == VIRTIO_NET_HDR_GSO_TCPV6;
	unsigned i = 0;

	if (!tcp && gso != VIRTIO_NET_HDR_GSO_UDP_L4)
		return -EOPNOTSUPP;	/* UFO (fragmentation): not offered by the kernel today */
	if (len > ETH_HLEN && get16(sf + 12) == 0x8100)
		l3 += 4;
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || l4 <= l3 || l4 + 20 > len || !mss)
		return -EINVAL;
	hlen = l4 + (tcp ? (uint32_t)(sf[l4 + 12] >> 4) * 4 : 8);
	if (hlen > len || hlen + mss > sizeof(out) || ((sf[l3] >> 4) != 4 && (sf[l3] >> 4) != 6))
		return -EINVAL;
	payload = len - hlen;
	for (uint32_t off = 0; off < payload; off += mss, i++) {
		uint32_t n = payload - off < mss ? payload - off : mss;

		emit(ctx, out, build_segment(out, sf, l3, l4, hlen, tcp, off, n, i,
					      off + n >= payload));
	}
	return 0;
}

int uplink_vnet_rx(const void *hdr, uint8_t *frame, uint32_t len, uplink_emit_fn emit,
		   void *ctx)
{
	struct virtio_net_hdr h;
	int err;

	memcpy(&h, hdr, sizeof(h));
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return segment(&h, frame, len, emit, ctx);
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		err = complete_csum(&h, frame, len);
		if (err)
			return err;
	}
	emit(ctx, frame, len);
	return 0;
}

void uplink_vnet_tx(void *hdr)
{
	/* Frames from functions carry complete checksums and are never GSO. */
	memset(hdr, 0, sizeof(struct virtio_net_hdr));
}
