// SPDX-License-Identifier: MIT
/* Ethernet II: receive filter and dispatch, frame building for TX. */
#include "guest/lib.h"
#include "guest/net/net_internal.h"

const uint8_t eth_broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct eth_proto {
	uint16_t type;
	void (*input)(const uint8_t *pkt, uint32_t len);
};

static const struct eth_proto protos[] = {
	{ ETH_P_IP, ip_input },
	{ ETH_P_ARP, arp_input },
};

void eth_input(void *ctx, uint8_t *frame, uint32_t len)
{
	const struct eth_hdr *eh = (const struct eth_hdr *)frame;
	uint16_t type;
	unsigned i;

	(void)ctx;
	if (len < ETH_HLEN) {
		netif.stats.rx_bad++;
		return;
	}
	if (memcmp(eh->dst, netif.mac, ETH_ALEN) && memcmp(eh->dst, eth_broadcast, ETH_ALEN)) {
		netif.stats.rx_not_for_us++;
		return;
	}
	type = ntohs(eh->type);
	for (i = 0; i < ARRAY_SIZE(protos); i++) {
		if (protos[i].type == type) {
			protos[i].input(frame + ETH_HLEN, len - ETH_HLEN);
			return;
		}
	}
	netif.stats.rx_unknown++;
}

uint8_t *eth_tx_alloc(struct net_txbuf *tb)
{
	tb->frame = virtio_net_tx_alloc(&netif.dev, &tb->id);
	if (!tb->frame) {
		netif.stats.tx_no_buffer++;
		return NULL;
	}
	return tb->frame + ETH_HLEN;
}

void eth_tx_send(struct net_txbuf *tb, const uint8_t *dst, uint16_t type, uint32_t len)
{
	struct eth_hdr *eh = (struct eth_hdr *)tb->frame;

	memcpy(eh->dst, dst, ETH_ALEN);
	memcpy(eh->src, netif.mac, ETH_ALEN);
	eh->type = htons(type);
	virtio_net_tx_submit(&netif.dev, tb->id, ETH_HLEN + len);
}

void eth_tx_cancel(struct net_txbuf *tb)
{
	virtio_net_tx_cancel(&netif.dev, tb->id);
}

int eth_send_copy(const uint8_t *dst, uint16_t type, const void *data, uint32_t len)
{
	struct net_txbuf tb;
	uint8_t *p;

	if (len > VNET_MTU)
		return -1;
	p = eth_tx_alloc(&tb);
	if (!p)
		return -1;
	memcpy(p, data, len);
	eth_tx_send(&tb, dst, type, len);
	return 0;
}
