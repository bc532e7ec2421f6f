// SPDX-License-Identifier: MIT
/* The interface: configuration from the command line, bring-up, the poll loop. */
#include "guest/bootinfo.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/drivers/dma.h"
#include "guest/io.h"
#include "guest/lib.h"
#include "guest/net/net_internal.h"

/* Frames per pass: a deep ring drains in few passes, each with one refill kick. */
#define RX_BUDGET		256
/* ARP timers: about every 67 ms at the rough TSC rate */
#define TICK_CYCLES		(1ULL << 27)
/*
 * Device health (NEEDS_RESET, surprise removal): about every half second.
 * A status read is a VM exit, and for a passed-through device a round trip
 * to its server, so hundreds of guests must not do it often.
 */
#define HEALTH_CYCLES		(1ULL << 30)
#define GONE_WAIT_DEFAULT_S	30

struct netif netif;
static uint64_t last_tick, last_health;

struct virtio_net *net_device(void)
{
	return &netif.dev;
}

/* Up to three decimal digits no larger than max; returns the character after them. */
static const char *parse_dec(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0, digits = 0;

	for (; *s >= '0' && *s <= '9'; s++) {
		if (++digits > 3)
			return NULL;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (!digits || v > max)
		return NULL;
	*out = v;
	return s;
}

/* "a.b.c.d"; returns the character after it. */
static const char *parse_addr(const char *s, uint32_t *ip)
{
	unsigned i, b;

	*ip = 0;
	for (i = 0; i < 4; i++) {
		s = parse_dec(s, 255, &b);
		if (!s)
			return NULL;
		*ip = *ip << 8 | b;
		if (i < 3 && *s++ != '.')
			return NULL;
	}
	return s;
}

bool net_parse_ip(const char *s, uint32_t *ip)
{
	s = parse_addr(s, ip);
	return s && !*s;
}

void net_format_ip(char *buf, uint32_t ip)
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
		 ip & 0xff);
}

/* ip=ADDR/LEN: a unicast address and a prefix length 1..32. */
static bool parse_cidr(const char *s, uint32_t *ip, unsigned *prefix)
{
	s = parse_addr(s, ip);
	if (!s || *s != '/')
		return false;
	s = parse_dec(s + 1, 32, prefix);
	return s && !*s && *prefix >= 1 && *ip && *ip < 0xe0000000u;
}

static int configure(void)
{
	const char *ip = cmdline_get("ip"), *gw = cmdline_get("gw");
	char a[16], b[16];

	if (!ip) {
		printf("net: missing ip=ADDR/LEN (e.g. ip=10.0.0.2/24)\n");
		return 2;
	}
	if (!parse_cidr(ip, &netif.ip, &netif.prefix)) {
		printf("net: bad value '%s' for ip (expected ADDR/LEN, e.g. 10.0.0.2/24)\n", ip);
		return 2;
	}
	netif.mask = netif.prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> netif.prefix);
	netif.gw = 0;
	if (gw) {
		if (!net_parse_ip(gw, &netif.gw) || !netif.gw) {
			printf("net: bad value '%s' for gw (expected an address, e.g. 10.0.0.1)\n", gw);
			return 2;
		}
		if ((netif.gw & netif.mask) != (netif.ip & netif.mask) || netif.gw == netif.ip) {
			net_format_ip(a, netif.ip & netif.mask);
			net_format_ip(b, netif.gw);
			printf("net: gateway %s is not another address in %s/%u\n", b, a,
			       netif.prefix);
			return 2;
		}
	}
	return 0;
}

int net_up(const struct boot_info *bi)
{
	const uint8_t *m;
	char a[16];
	int err;

	err = configure();
	if (err)
		return err;
	dma_init(bi);
	if (virtio_net_open(&netif.dev, 0))
		return 1;
	memcpy(netif.mac, netif.dev.mac, ETH_ALEN);
	arp_announce();
	virtio_net_tx_flush(&netif.dev);
	last_tick = last_health = rdtsc();
	m = netif.mac;
	net_format_ip(a, netif.ip);
	printf("net: %02x:%02x:%02x:%02x:%02x:%02x ip %s/%u up\n", m[0], m[1], m[2], m[3], m[4],
	       m[5], a, netif.prefix);
	return 0;
}

/*
 * The device reads as gone (all-ones: its server stalled or died) or lost
 * DRIVER_OK (the host reset it: a restarted server re-attached).  Both may
 * be recoverable: answering again as before, the device is used as it is;
 * reset, it is brought up again, as after a function-level reset.  Only a
 * device that stays away for gone_wait=S seconds (default 30) ends the app.
 */
static uint64_t unwell_since;

static bool net_unwell(struct virtio_net *vn, uint64_t now)
{
	uint8_t st = virtio_pci_get_status(&vn->vp);
	uint64_t wait_s;

	if (cmdline_get_u64("net", "gone_wait", GONE_WAIT_DEFAULT_S, 0, 3600, &wait_s))
		wait_s = GONE_WAIT_DEFAULT_S;
	if (!unwell_since) {
		unwell_since = now ? now : 1;
		printf("virtio-net: device %s, waiting up to %u s for it\n",
		       vn->health == VNET_GONE ? "not answering" : "was reset", (unsigned)wait_s);
	}
	if (st != 0xff && (st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET) &&
	    vn->health == VNET_GONE) {
		printf("virtio-net: device answers again\n");
		vn->health = VNET_OK;
		unwell_since = 0;
		return false;
	}
	if (st != 0xff) {
		printf("virtio-net: device reset by the host, re-initialising\n");
		if (virtio_net_open(vn, 0) == 0) {
			arp_announce();
			virtio_net_tx_flush(vn);
			net_idle_reset();
			unwell_since = 0;
			return false;
		}
	}
	if (now - unwell_since < wait_s * TSC_ROUGH_HZ)
		return false;
	printf("virtio-net: device gone\n");
	return true;
}

int net_poll(void)
{
	struct virtio_net *vn = &netif.dev;
	uint64_t now;

	virtio_net_rx(vn, eth_input, NULL, RX_BUDGET);
	virtio_net_tx_reclaim(vn);
	if (vn->cs_moved) {		/* CompSC restored us on another host: say where we are */
		vn->cs_moved = false;
		arp_announce();
		net_idle_reset();	/* the fresh device has no RX vector yet: route it again */
	}
	now = rdtsc();
	if (now - last_tick >= TICK_CYCLES) {
		last_tick = now;
		arp_tick(now);
	}
	if (now - last_health >= HEALTH_CYCLES) {
		last_health = now;
		if (virtio_net_check(vn) != VNET_OK && net_unwell(vn, now))
			return 1;
	}
	virtio_net_tx_flush(vn);
	return 0;
}

int net_run(void)
{
	int st;

	while (!(st = net_poll())) {
		net_idle_note(&netif.dev, rdtsc());
		cpu_relax();	/* a spinning poller should not starve its SMT sibling */
	}
	return st;
}

bool net_routable(uint32_t dst)
{
	return ip_next_hop(dst) != 0;
}

bool net_resolved(uint32_t dst)
{
	uint8_t mac[ETH_ALEN];
	uint32_t hop = ip_next_hop(dst);

	return hop && arp_lookup(hop, mac);
}

unsigned net_tx_room(void)
{
	return virtio_net_tx_room(&netif.dev);
}

void net_tx_flush(void)
{
	virtio_net_tx_flush(&netif.dev);
}
