// SPDX-License-Identifier: MIT
/* ICMP (RFC 792): answer echo requests sent to our address; ignore the rest. */
#include "guest/lib.h"
#include "guest/net/net_internal.h"

#define ICMP_ECHO_REPLY		0
#define ICMP_ECHO_REQUEST	8

struct icmp_hdr {
	uint8_t type;
	uint8_t code;
	uint16_t csum;
	uint16_t id;
	uint16_t seq;
} __attribute__((packed));

void icmp_input(const struct ip_hdr *ip, const uint8_t *data, uint32_t len)
{
	const struct icmp_hdr *req = (const struct icmp_hdr *)data;
	struct icmp_hdr *rep;
	struct net_txbuf tb;

	if (len < ICMP_HLEN || len > VNET_MTU - IP_HLEN || csum_fold(csum_partial(data, len, 0))) {
		netif.stats.rx_bad++;
		return;
	}
	/* Echo to a broadcast address goes unanswered (smurf amplification). */
	if (req->type != ICMP_ECHO_REQUEST || req->code || ntohl(ip->dst) != netif.ip)
		return;
	rep = (struct icmp_hdr *)ip_tx_alloc(&tb);
	if (!rep)
		return;
	memcpy(rep, data, len);
	rep->type = ICMP_ECHO_REPLY;
	rep->csum = 0;
	rep->csum = csum_fold(csum_partial(rep, len, 0));
	if (!ip_output(&tb, ntohl(ip->src), IP_PROTO_ICMP, len))
		netif.stats.icmp_echo_answered++;
}
