/* SPDX-License-Identifier: MIT */
/* Inside the network stack: wire formats, the interface, layer entry points. */
#ifndef HDGUEST_NET_INTERNAL_H
#define HDGUEST_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "guest/drivers/virtio_net.h"
#include "guest/net/net.h"

#define ETH_ALEN		6
#define ETH_HLEN		14
#define ETH_P_IP		0x0800
#define ETH_P_ARP		0x0806
#define IP_HLEN			20
#define IP_PROTO_ICMP		1
#define IP_PROTO_UDP		17
#define UDP_HLEN		8
#define ICMP_HLEN		8

#define htons(x)		__builtin_bswap16(x)
#define ntohs(x)		__builtin_bswap16(x)
#define htonl(x)		__builtin_bswap32(x)
#define ntohl(x)		__builtin_bswap32(x)

struct eth_hdr {
	uint8_t dst[ETH_ALEN];
	uint8_t src[ETH_ALEN];
	uint16_t type;
} __attribute__((packed));

struct ip_hdr {
	uint8_t ver_ihl;
	uint8_t tos;
	uint16_t tot_len;
	uint16_t id;
	uint16_t frag;		/* flags and fragment offset */
	uint8_t ttl;
	uint8_t proto;
	uint16_t csum;
	uint32_t src;
	uint32_t dst;
} __attribute__((packed));

#define IP_FRAG_MF		0x2000
#define IP_FRAG_DF		0x4000
#define IP_FRAG_OFFSET		0x1fff

struct udp_hdr {
	uint16_t sport;
	uint16_t dport;
	uint16_t len;
	uint16_t csum;
} __attribute__((packed));

struct net_stats {
	uint64_t rx_not_for_us, rx_bad, rx_frag, rx_unknown;
	uint64_t arp_requests_answered, icmp_echo_answered;
	uint64_t udp_bad_csum, udp_no_port;
	uint64_t tx_no_route, tx_no_buffer, arp_dropped;
};

struct netif {
	struct virtio_net dev;
	uint8_t mac[ETH_ALEN];
	uint32_t ip, mask, gw;		/* gw 0: none */
	unsigned prefix;
	struct net_stats stats;
};

extern struct netif netif;
extern const uint8_t eth_broadcast[ETH_ALEN];

/* checksum.c: Internet checksum, summed in memory order (byte-order neutral) */
uint64_t csum_partial(const void *data, size_t len, uint64_t sum);
uint16_t csum_fold(uint64_t sum);

/* eth.c */
void eth_input(void *ctx, uint8_t *frame, uint32_t len);
/* A TX buffer; returns the Ethernet payload pointer or NULL. */
uint8_t *eth_tx_alloc(struct net_txbuf *tb);
void eth_tx_send(struct net_txbuf *tb, const uint8_t *dst, uint16_t type, uint32_t len);
void eth_tx_cancel(struct net_txbuf *tb);
/* Copy a payload into a new frame and send it; -1 if no TX buffer. */
int eth_send_copy(const uint8_t *dst, uint16_t type, const void *data, uint32_t len);

/* arp.c */
void arp_input(const uint8_t *pkt, uint32_t len);
/* MAC of an on-link address; false (and a request goes out, rate limited) if unknown. */
bool arp_lookup(uint32_t ip, uint8_t *mac);
/* Keep an IP packet until ip resolves (one per address; newer replaces older). */
void arp_hold(uint32_t ip, const uint8_t *pkt, uint32_t len);
void arp_announce(void);
void arp_tick(uint64_t now);
/* A packet is held for an address still being resolved: keep polling, the retries run on timers. */
bool arp_waiting(void);

/* ipv4.c */
void ip_input(const uint8_t *pkt, uint32_t len);
uint8_t *ip_tx_alloc(struct net_txbuf *tb);
/* Fill the IPv4 header in front of len payload bytes and send (or hold for ARP). */
int ip_output(struct net_txbuf *tb, uint32_t dst, uint8_t proto, uint32_t len);
uint32_t ip_next_hop(uint32_t dst);	/* 0: no route */

/* icmp.c, udp.c */
void icmp_input(const struct ip_hdr *ip, const uint8_t *data, uint32_t len);
void udp_input(const struct ip_hdr *ip, const uint8_t *data, uint32_t len);

/*
 * Idle mode (net_idle.c): called after every pass of net_run(); once nothing
 * moved for ~2 ms it sleeps until an RX interrupt or the idle_wake timer.
 */
void net_idle_note(struct virtio_net *vn, uint64_t now);
/* The device was re-initialised: route its RX interrupt again before sleeping. */
void net_idle_reset(void);

#endif
