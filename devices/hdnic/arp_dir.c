// SPDX-License-Identifier: MIT
#include "devices/hdnic/arp_dir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/switch.h"

#define ETH_P_ARP	0x0806
#define ARP_HLEN	14
#define ARP_PKT_LEN	28

static unsigned ip_hash(uint32_t ip)
{
	return (ip * 2654435761u) >> 20 & (ARPD_BUCKETS - 1);
}

int arpd_init(struct arp_dir *d, unsigned max_entries)
{
	memset(d, 0, sizeof(*d));
	d->pool = calloc(max_entries, sizeof(*d->pool));
	if (!d->pool)
		return -ENOMEM;
	d->pool_size = max_entries;
	memset(d->buckets, 0xff, sizeof(d->buckets));	/* every chain empty (-1) */
	for (unsigned i = 0; i < max_entries; i++)
		d->pool[i].next = i + 1 < max_entries ? (int)i + 1 : -1;
	return 0;
}

void arpd_destroy(struct arp_dir *d)
{
	free(d->pool);
	d->pool = NULL;
}

/* The link that points at ip's entry, or at the end of its chain. */
static int *link_of(struct arp_dir *d, uint32_t ip)
{
	int *l = &d->buckets[ip_hash(ip)];

	while (*l >= 0 && d->pool[*l].ip != ip)
		l = &d->pool[*l].next;
	return l;
}

static void drop(struct arp_dir *d, int *link)
{
	int i = *link;

	*link = d->pool[i].next;
	d->pool[i].next = d->free_head;
	d->free_head = i;
	d->nr_entries--;
}

void arpd_learn(struct arp_dir *d, uint32_t ip, uint32_t port, const uint8_t mac[6],
		uint64_t now_ns)
{
	int *l = link_of(d, ip);
	struct arpd_entry *e;

	if (*l >= 0) {
		e = &d->pool[*l];
		if (e->port != port)
			d->stats.moved++;
	} else {
		if (d->free_head < 0)
			return;
		*l = d->free_head;
		e = &d->pool[*l];
		d->free_head = e->next;
		e->next = -1;
		e->ip = ip;
		d->nr_entries++;
		d->stats.learned++;
	}
	e->port = port;
	memcpy(e->mac, mac, 6);
	e->seen_ns = now_ns;
}

int arpd_lookup(struct arp_dir *d, uint32_t ip, uint64_t now_ns)
{
	int *l = link_of(d, ip);
	struct arpd_entry *e;

	if (*l < 0)
		return -1;
	e = &d->pool[*l];
	if (e->port == SW_PORT_UPLINK && now_ns - e->seen_ns > ARPD_UPLINK_AGING_NS) {
		drop(d, l);
		return -1;
	}
	return (int)e->port;
}

void arpd_flush_port(struct arp_dir *d, uint32_t port)
{
	for (unsigned b = 0; b < ARPD_BUCKETS; b++) {
		int *l = &d->buckets[b];

		while (*l >= 0) {
			if (d->pool[*l].port == port)
				drop(d, l);
			else
				l = &d->pool[*l].next;
		}
	}
}

void arpd_forget_uplink_mac(struct arp_dir *d, const uint8_t mac[6])
{
	if (!d->nr_entries)	/* functions created by the hundred: nothing to scan */
		return;
	for (unsigned b = 0; b < ARPD_BUCKETS; b++) {
		int *l = &d->buckets[b];

		while (*l >= 0) {
			if (d->pool[*l].port == SW_PORT_UPLINK && !memcmp(d->pool[*l].mac, mac, 6))
				drop(d, l);
			else
				l = &d->pool[*l].next;
		}
	}
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool arp_view_parse(const uint8_t *frame, uint32_t len, struct arp_view *v)
{
	const uint8_t *a = frame + ARP_HLEN;

	if (len < ARP_HLEN + ARP_PKT_LEN || be16(frame + 12) != ETH_P_ARP)
		return false;
	/* htype Ethernet, ptype IPv4, hlen 6, plen 4 */
	if (be16(a) != 1 || be16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
		return false;
	v->op = be16(a + 6);
	v->sha = a + 8;
	v->spa = be32(a + 14);
	v->tpa = be32(a + 24);
	return true;
}
