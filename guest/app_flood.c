// SPDX-License-Identifier: MIT
/*
 * flood,dst=IP:PORT[,size=N]: send UDP datagrams of N payload bytes
 * (default 64, at most 1472) to dst as fast as the TX ring drains, filling
 * every free TX buffer before one kick.  The payload starts with a 64-bit
 * sequence number (network order, from 1) when N >= 8; the rest is 0x5a.
 * Ping and ARP are answered meanwhile.  Prints "flood: sent K" (K the total
 * so far) about once a second.
 */
#include "guest/app.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/io.h"
#include "guest/lib.h"
#include "guest/net/net.h"

#define FLOOD_SRC_PORT		40000
#define FLOOD_DEFAULT_SIZE	64
/* TX buffers left for ARP and ping replies */
#define FLOOD_TX_RESERVE	8
#define FLOOD_REPORT_CYCLES	TSC_ROUGH_HZ

static uint32_t flood_dst;
static uint16_t flood_port;
static uint16_t flood_size;

/* dst=a.b.c.d:PORT */
static bool parse_dst(const char *s)
{
	char addr[16];
	const char *colon = strchr(s, ':');
	uint64_t port;
	size_t n;

	if (!colon)
		return false;
	n = (size_t)(colon - s);
	if (n >= sizeof(addr))
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (!net_parse_ip(addr, &flood_dst) || !parse_u64(colon + 1, &port) || !port ||
	    port > 65535)
		return false;
	flood_port = (uint16_t)port;
	return true;
}

static int flood_check(const struct boot_info *bi)
{
	const char *dst = cmdline_get("dst");
	uint64_t size;

	(void)bi;
	if (!dst) {
		printf("flood: missing dst=IP:PORT\n");
		return 2;
	}
	if (!parse_dst(dst)) {
		printf("flood: bad value '%s' for dst (expected IP:PORT, e.g. 10.0.0.1:9)\n", dst);
		return 2;
	}
	if (cmdline_get_u64("flood", "size", FLOOD_DEFAULT_SIZE, 0, UDP_MAX_PAYLOAD, &size))
		return 2;
	flood_size = (uint16_t)size;
	return 0;
}

/* Fill the free TX buffers (but the reserve); returns how many were queued. */
static unsigned send_batch(uint64_t *seq)
{
	unsigned room = net_tx_room(), n;
	struct net_txbuf tb;
	uint8_t *p;

	for (n = 0; n + FLOOD_TX_RESERVE < room; n++) {
		p = udp_tx_alloc(&tb);
		if (!p)
			break;
		memset(p, 0x5a, flood_size);
		if (flood_size >= 8)
			put_be64(p, *seq + 1);
		if (udp_tx_send(&tb, flood_dst, FLOOD_SRC_PORT, flood_port, flood_size))
			break;
		++*seq;
	}
	net_tx_flush();
	return n;
}

static int flood_main(const struct boot_info *bi)
{
	uint64_t sent = 0, last_report;
	char a[16];
	int st;

	(void)bi;
	net_format_ip(a, flood_dst);
	if (!net_routable(flood_dst)) {
		printf("flood: no route to %s (not on our subnet and no gw=)\n", a);
		return 2;
	}
	printf("flood: sending %u-byte datagrams to %s:%u\n", flood_size, a, flood_port);
	last_report = rdtsc();
	while (!(st = net_poll())) {
		if (net_resolved(flood_dst))
			send_batch(&sent);
		if (rdtsc() - last_report >= FLOOD_REPORT_CYCLES) {
			last_report = rdtsc();
			printf("flood: sent %lu\n", sent);
		}
	}
	return st;
}

static const struct app flood_app = {
	.name = "flood", .check = flood_check, .net = true, .main = flood_main,
};
APP_REGISTER(flood_app);
