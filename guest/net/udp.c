// SPDX-License-Identifier: MIT
/* UDP (RFC 768): port table, checksums with the IPv4 pseudo-header. */
#include "guest/lib.h"
#include "guest/net/net_internal.h"

#define UDP_PORTS_MAX	8

struct udp_port {
	uint16_t port;
	udp_handler fn;
};

static struct udp_port ports[UDP_PORTS_MAX];
static int nr_ports;

int udp_bind(uint16_t port, udp_handler fn)
{
	if (nr_ports == UDP_PORTS_MAX)
		return -1;
	ports[nr_ports++] = (struct udp_port){ port, fn };
	return 0;
}

/* Sum of the pseudo-header: addresses, protocol, UDP length (network order). */
static uint64_t pseudo_sum(uint32_t src_be, uint32_t dst_be, uint16_t udp_len)
{
	uint8_t ph[12];

	memcpy(ph, &src_be, 4);
	memcpy(ph + 4, &dst_be, 4);
	ph[8] = 0;
	ph[9] = IP_PROTO_UDP;
	ph[10] = udp_len >> 8;
	ph[11] = udp_len & 0xff;
	return csum_partial(ph, sizeof(ph), 0);
}

void udp_input(const struct ip_hdr *ip, const uint8_t *data, uint32_t len)
{
	const struct udp_hdr *uh = (const struct udp_hdr *)data;
	uint16_t ulen, dport;
	int i;

	if (len < UDP_HLEN) {
		netif.stats.rx_bad++;
		return;
	}
	ulen = ntohs(uh->len);
	if (ulen < UDP_HLEN || ulen > len) {
		netif.stats.rx_bad++;
		return;
	}
	if (uh->csum && csum_fold(csum_partial(data, ulen, pseudo_sum(ip->src, ip->dst, ulen)))) {
		netif.stats.udp_bad_csum++;
		return;
	}
	dport = ntohs(uh->dport);
	for (i = 0; i < nr_ports; i++) {
		if (ports[i].port == dport) {
			ports[i].fn(ntohl(ip->src), ntohs(uh->sport), data + UDP_HLEN,
				    ulen - UDP_HLEN);
			return;
		}
	}
	netif.stats.udp_no_port++;
}

uint8_t *udp_tx_alloc(struct net_txbuf *tb)
{
	uint8_t *p = ip_tx_alloc(tb);

	return p ? p + UDP_HLEN : NULL;
}

int udp_tx_send(struct net_txbuf *tb, uint32_t dst, uint16_t sport, uint16_t dport,
		uint16_t len)
{
	struct udp_hdr *uh = (struct udp_hdr *)(tb->frame + ETH_HLEN + IP_HLEN);
	uint16_t ulen = UDP_HLEN + len, csum;

	if (len > UDP_MAX_PAYLOAD) {
		eth_tx_cancel(tb);
		return -1;
	}
	*uh = (struct udp_hdr){ .sport = htons(sport), .dport = htons(dport), .len = htons(ulen) };
	csum = csum_fold(csum_partial(uh, ulen, pseudo_sum(htonl(netif.ip), htonl(dst), ulen)));
	uh->csum = csum ? csum : 0xffff;	/* 0 means "no checksum" */
	return ip_output(tb, dst, IP_PROTO_UDP, ulen);
}

int udp_send(uint32_t dst, uint16_t sport, uint16_t dport, const void *data, uint16_t len)
{
	struct net_txbuf tb;
	uint8_t *p;

	if (len > UDP_MAX_PAYLOAD)
		return -1;
	p = udp_tx_alloc(&tb);
	if (!p)
		return -1;
	memcpy(p, data, len);
	return udp_tx_send(&tb, dst, sport, dport, len);
}
