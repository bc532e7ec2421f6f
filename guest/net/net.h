/* SPDX-License-Identifier: MIT */
/*
 * hdguest's network stack: Ethernet, ARP, IPv4 (no fragments), ICMP echo
 * and UDP over the poll-mode virtio-net driver.  One interface, configured
 * from the command line: ip=ADDR/LEN (required) and gw=ADDR (optional).
 * Addresses are IPv4 in host byte order.
 *
 * A network app runs `while (!(st = net_poll())) { ... }`: each pass
 * receives and answers (ARP, ping, bound UDP ports), reclaims and kicks
 * TX, and now and then checks the device's health.
 */
#ifndef HDGUEST_NET_H
#define HDGUEST_NET_H

#include <stdbool.h>
#include <stdint.h>

struct boot_info;
struct virtio_net;

/*
 * Parse ip=/gw=, bring the device up, announce our address (gratuitous
 * ARP) and print "net: <mac> ip <ip>/<len> up".  Returns 0, 2 (bad command
 * line; the problem is printed) or 1 (no usable device, or no RAM for
 * its rings and buffers).
 */
int net_up(const struct boot_info *bi);
/* One polling pass; 0, or 1 once the device is gone ("virtio-net: device gone"). */
int net_poll(void);
/*
 * net_poll() until it reports the device gone, sleeping when idle (see
 * net_idle.c and the README); returns that status.
 */
int net_run(void);
struct virtio_net *net_device(void);

/* "a.b.c.d" -> address; false if malformed. */
bool net_parse_ip(const char *s, uint32_t *ip);
/* Writes "a.b.c.d" (at most 16 bytes with the NUL). */
void net_format_ip(char *buf, uint32_t ip);
/* Can we reach dst (same subnet, or via gw)? */
bool net_routable(uint32_t dst);
/*
 * Is the next hop towards dst resolved?  If not, asks (ARP, rate limited)
 * and returns false; keep polling.
 */
bool net_resolved(uint32_t dst);

/* UDP.  Handlers run inside net_poll(). */
typedef void (*udp_handler)(uint32_t src_ip, uint16_t src_port, const uint8_t *data,
			    uint16_t len);
int udp_bind(uint16_t port, udp_handler fn);
/* Copy and send one datagram; -1 if it could not be queued (TX full, no route). */
int udp_send(uint32_t dst, uint16_t sport, uint16_t dport, const void *data, uint16_t len);

/* Zero-copy sending: fill the payload in place, then udp_tx_send() it. */
struct net_txbuf {
	uint16_t id;
	uint8_t *frame;
};
#define UDP_MAX_PAYLOAD		1472	/* 1500 - IPv4 - UDP headers */
uint8_t *udp_tx_alloc(struct net_txbuf *tb);
int udp_tx_send(struct net_txbuf *tb, uint32_t dst, uint16_t sport, uint16_t dport,
		uint16_t len);
/* Free TX buffers now; submitted frames go out at the end of net_poll() or here. */
unsigned net_tx_room(void);
void net_tx_flush(void);

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

#endif
