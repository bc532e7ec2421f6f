// SPDX-License-Identifier: MIT
/*
 * ARP (RFC 826) for IPv4 over Ethernet: answer requests for our address,
 * learn senders (the RFC's merge rule: refresh any entry we hold; add one
 * when the packet is aimed at us), resolve next hops for sending with one
 * held packet per address, and announce ourselves at start.
 */
#include "guest/io.h"
#include "guest/lib.h"
#include "guest/net/net_internal.h"

#define ARP_HTYPE_ETHER		1
#define ARP_OP_REQUEST		1
#define ARP_OP_REPLY		2
#define ARP_ENTRIES		16
/* Rough TSC times (io.h): a request every half second, give up after 3 s */
#define ARP_RETRY_CYCLES	(TSC_ROUGH_HZ / 2)
#define ARP_MAX_TRIES		6
/* Entries older than this are still used but re-requested */
#define ARP_REFRESH_CYCLES	(60 * TSC_ROUGH_HZ)

struct arp_pkt {
	uint16_t htype;
	uint16_t ptype;
	uint8_t hlen;
	uint8_t plen;
	uint16_t op;
	uint8_t sha[ETH_ALEN];
	uint32_t spa;
	uint8_t tha[ETH_ALEN];
	uint32_t tpa;
} __attribute__((packed));

enum arp_state { ARP_FREE, ARP_INCOMPLETE, ARP_VALID };

struct arp_entry {
	uint32_t ip;
	uint8_t mac[ETH_ALEN];
	enum arp_state state;
	unsigned tries;
	uint64_t confirmed;		/* VALID: last heard from */
	uint64_t requested;		/* last request we sent */
	uint64_t used;			/* for replacement */
	uint16_t held_len;		/* an IP packet waiting for the address */
	uint8_t held[VNET_MTU];
};

static struct arp_entry cache[ARP_ENTRIES];

static void send_arp(uint16_t op, const uint8_t *eth_dst, const uint8_t *tha, uint32_t tpa)
{
	struct arp_pkt a = {
		.htype = htons(ARP_HTYPE_ETHER),
		.ptype = htons(ETH_P_IP),
		.hlen = ETH_ALEN,
		.plen = 4,
		.op = htons(op),
		.spa = htonl(netif.ip),
		.tpa = htonl(tpa),
	};

	memcpy(a.sha, netif.mac, ETH_ALEN);
	memcpy(a.tha, tha, ETH_ALEN);
	eth_send_copy(eth_dst, ETH_P_ARP, &a, sizeof(a));
}

static void request(struct arp_entry *e, uint64_t now)
{
	static const uint8_t zero[ETH_ALEN];

	e->requested = now;
	e->tries++;
	send_arp(ARP_OP_REQUEST, eth_broadcast, zero, e->ip);
}

void arp_announce(void)
{
	static const uint8_t zero[ETH_ALEN];

	/* Gratuitous ARP: a request for our own address (RFC 5227 announcement) */
	send_arp(ARP_OP_REQUEST, eth_broadcast, zero, netif.ip);
}

static struct arp_entry *find(uint32_t ip)
{
	int i;

	for (i = 0; i < ARP_ENTRIES; i++)
		if (cache[i].state != ARP_FREE && cache[i].ip == ip)
			return &cache[i];
	return NULL;
}

/* A free entry, else the least recently used one. */
static struct arp_entry *make(uint32_t ip, uint64_t now)
{
	struct arp_entry *e = &cache[0];
	int i;

	for (i = 0; i < ARP_ENTRIES; i++) {
		if (cache[i].state == ARP_FREE) {
			e = &cache[i];
			break;
		}
		if (cache[i].used < e->used)
			e = &cache[i];
	}
	if (e->held_len)
		netif.stats.arp_dropped++;
	*e = (struct arp_entry){ .ip = ip, .state = ARP_INCOMPLETE, .used = now };
	return e;
}

static void release_held(struct arp_entry *e)
{
	if (!e->held_len)
		return;
	if (eth_send_copy(e->mac, ETH_P_IP, e->held, e->held_len))
		netif.stats.arp_dropped++;
	e->held_len = 0;
}

static void learn(struct arp_entry *e, const uint8_t *mac, uint64_t now)
{
	memcpy(e->mac, mac, ETH_ALEN);
	e->state = ARP_VALID;
	e->confirmed = now;
	e->tries = 0;
	release_held(e);
}

void arp_input(const uint8_t *pkt, uint32_t len)
{
	const struct arp_pkt *a = (const struct arp_pkt *)pkt;
	uint64_t now = rdtsc();
	struct arp_entry *e;
	uint32_t spa, tpa;

	if (len < sizeof(*a) || a->htype != htons(ARP_HTYPE_ETHER) ||
	    a->ptype != htons(ETH_P_IP) || a->hlen != ETH_ALEN || a->plen != 4) {
		netif.stats.rx_bad++;
		return;
	}
	spa = ntohl(a->spa);
	tpa = ntohl(a->tpa);
	if (!spa || spa == netif.ip)	/* probes, and our own announcements */
		return;
	e = find(spa);
	if (e)
		learn(e, a->sha, now);
	if (tpa != netif.ip)
		return;
	if (!e)
		learn(make(spa, now), a->sha, now);
	if (a->op == htons(ARP_OP_REQUEST)) {
		send_arp(ARP_OP_REPLY, a->sha, a->sha, spa);
		netif.stats.arp_requests_answered++;
	}
}

bool arp_lookup(uint32_t ip, uint8_t *mac)
{
	uint64_t now = rdtsc();
	struct arp_entry *e = find(ip);

	if (!e) {
		request(make(ip, now), now);
		return false;
	}
	e->used = now;
	if (e->state == ARP_VALID) {
		if (now - e->confirmed > ARP_REFRESH_CYCLES && now - e->requested > ARP_RETRY_CYCLES)
			request(e, now);
		memcpy(mac, e->mac, ETH_ALEN);
		return true;
	}
	if (now - e->requested > ARP_RETRY_CYCLES)
		request(e, now);
	return false;
}

void arp_hold(uint32_t ip, const uint8_t *pkt, uint32_t len)
{
	struct arp_entry *e = find(ip);

	if (!e || e->state != ARP_INCOMPLETE || len > sizeof(e->held)) {
		netif.stats.arp_dropped++;
		return;
	}
	if (e->held_len)
		netif.stats.arp_dropped++;	/* the newer packet wins */
	memcpy(e->held, pkt, len);
	e->held_len = (uint16_t)len;
}

void arp_tick(uint64_t now)
{
	int i;

	for (i = 0; i < ARP_ENTRIES; i++) {
		struct arp_entry *e = &cache[i];

		if (e->state != ARP_INCOMPLETE || now - e->requested <= ARP_RETRY_CYCLES)
			continue;
		if (e->held_len && e->tries < ARP_MAX_TRIES) {
			request(e, now);	/* keep asking while a packet waits */
			continue;
		}
		if (!e->held_len && now - e->requested < ARP_MAX_TRIES * ARP_RETRY_CYCLES)
			continue;	/* a poller (net_resolved) may still be asking */
		if (e->held_len)
			netif.stats.arp_dropped++;
		e->state = ARP_FREE;
		e->held_len = 0;
	}
}

bool arp_waiting(void)
{
	for (int i = 0; i < ARP_ENTRIES; i++)
		if (cache[i].state == ARP_INCOMPLETE && cache[i].held_len)
			return true;
	return false;
}
