// SPDX-License-Identifier: MIT
/* IPv4 (RFC 791) without fragmentation or options on output. */
#include "guest/lib.h"
#include "guest/net/net_internal.h"

#define IP_VERSION		4
#define IP_TTL			64

struct ip_proto {
	uint8_t proto;
	void (*input)(const struct ip_hdr *ip, const uint8_t *data, uint32_t len);
};

static const struct ip_proto protos[] = {
	{ IP_PROTO_ICMP, icmp_input },
	{ IP_PROTO_UDP, udp_input },
};

static uint16_t next_id;

static bool for_us(uint32_t dst)
{
	return dst == netif.ip || dst == 0xffffffffu || dst == (netif.ip | ~netif.mask);
}

void ip_input(const uint8_t *pkt, uint32_t len)
{
	const struct ip_hdr *ip = (const struct ip_hdr *)pkt;
	uint32_t hlen, tot;
	unsigned i;

	if (len < IP_HLEN || ip->ver_ihl >> 4 != IP_VERSION) {
		netif.stats.rx_bad++;
		return;
	}
	hlen = (ip->ver_ihl & 0xf) * 4u;
	tot = ntohs(ip->tot_len);
	if (hlen < IP_HLEN || tot < hlen || tot > len || csum_fold(csum_partial(ip, hlen, 0))) {
		netif.stats.rx_bad++;
		return;
	}
	if (!for_us(ntohl(ip->dst))) {
		netif.stats.rx_not_for_us++;
		return;
	}
	if (ntohs(ip->frag) & (IP_FRAG_MF | IP_FRAG_OFFSET)) {
		netif.stats.rx_frag++;	/* we do not reassemble */
		return;
	}
	for (i = 0; i < ARRAY_SIZE(protos); i++) {
		if (protos[i].proto == ip->proto) {
			protos[i].input(ip, pkt + hlen, tot - hlen);
			return;
		}
	}
	netif.stats.rx_unknown++;
}

uint32_t ip_next_hop(uint32_t dst)
{
	if ((dst & netif.mask) == (netif.ip & netif.mask))
		return dst;
	return netif.gw;
}

uint8_t *ip_tx_alloc(struct net_txbuf *tb)
{
	uint8_t *p = eth_tx_alloc(tb);

	return p ? p + IP_HLEN : NULL;
}

int ip_output(struct net_txbuf *tb, uint32_t dst, uint8_t proto, uint32_t len)
{
	struct ip_hdr *ip = (struct ip_hdr *)(tb->frame + ETH_HLEN);
	uint32_t hop = ip_next_hop(dst);
	uint8_t mac[ETH_ALEN];
	bool bcast = dst == 0xffffffffu || dst == (netif.ip | ~netif.mask);

	if (!hop || IP_HLEN + len > VNET_MTU) {
		netif.stats.tx_no_route++;
		eth_tx_cancel(tb);
		return -1;
	}
	*ip = (struct ip_hdr){
		.ver_ihl = IP_VERSION << 4 | IP_HLEN / 4,
		.tot_len = htons((uint16_t)(IP_HLEN + len)),
		.id = htons(next_id++),
		.frag = htons(IP_FRAG_DF),
		.ttl = IP_TTL,
		.proto = proto,
		.src = htonl(netif.ip),
		.dst = htonl(dst),
	};
	ip->csum = csum_fold(csum_partial(ip, IP_HLEN, 0));
	if (bcast) {
		memcpy(mac, eth_broadcast, ETH_ALEN);
	} else if (!arp_lookup(hop, mac)) {
		arp_hold(hop, (const uint8_t *)ip, IP_HLEN + len);
		eth_tx_cancel(tb);
		return 0;	/* goes out when the address resolves */
	}
	eth_tx_send(tb, mac, ETH_P_IP, IP_HLEN + len);
	return 0;
}
