// SPDX-License-Identifier: MIT
#include "devices/hdnic/switch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned mac_hash(const uint8_t *m)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 6; i++)
		h = (h ^ m[i]) * 16777619u;
	return h % SW_BUCKETS;
}

int sw_init(struct nic_switch *sw, unsigned max_entries)
{
	memset(sw, 0, sizeof(*sw));
	sw->pool = calloc(max_entries, sizeof(*sw->pool));
	if (!sw->pool)
		return -ENOMEM;
	sw->pool_size = max_entries;
	for (unsigned i = 0; i < SW_BUCKETS; i++)
		sw->buckets[i] = -1;
	for (unsigned i = 0; i < max_entries; i++)
		sw->pool[i].next = i + 1 < max_entries ? (int)i + 1 : -1;
	sw->free_head = 0;
	sw->last_hit = -1;
	return 0;
}

void sw_destroy(struct nic_switch *sw)
{
	free(sw->pool);
	free(sw->ports);
	free(sw->members);
	sw->pool = NULL;
	sw->ports = NULL;
	sw->members = NULL;
}

static int find(struct nic_switch *sw, const uint8_t *mac, int **link)
{
	int *l = &sw->buckets[mac_hash(mac)];

	while (*l >= 0) {
		if (!memcmp(sw->pool[*l].mac, mac, 6)) {
			if (link)
				*link = l;
			return *l;
		}
		l = &sw->pool[*l].next;
	}
	return -1;
}

static void unlink_entry(struct nic_switch *sw, int *link)
{
	int i = *link;
	struct sw_entry *e = &sw->pool[i];

	*link = e->next;
	if (sw->last_hit == i)
		sw->last_hit = -1;
	if (e->is_static)
		sw->nr_static--;
	else
		sw->nr_learned--;
	e->next = sw->free_head;
	sw->free_head = i;
}

static struct sw_entry *alloc_entry(struct nic_switch *sw, const uint8_t *mac)
{
	unsigned b = mac_hash(mac);
	int i = sw->free_head;
	struct sw_entry *e;

	if (i < 0)
		return NULL;
	e = &sw->pool[i];
	sw->free_head = e->next;
	memcpy(e->mac, mac, 6);
	e->next = sw->buckets[b];
	sw->buckets[b] = i;
	return e;
}

int sw_set_static(struct nic_switch *sw, const uint8_t mac[6], uint32_t port)
{
	int *link;
	int i = find(sw, mac, &link);
	struct sw_entry *e;

	if (i >= 0) {
		e = &sw->pool[i];
		if (e->is_static)
			return e->port == port ? 0 : -EEXIST;
		unlink_entry(sw, link);	/* a learned uplink entry loses */
	}
	e = alloc_entry(sw, mac);
	if (!e)
		return -ENOSPC;
	e->is_static = true;
	e->port = port;
	sw->nr_static++;
	/* the station is here now: what it claimed from behind the uplink is stale */
	if (sw->arpd)
		arpd_forget_uplink_mac(sw->arpd, mac);
	return 0;
}

void sw_remove(struct nic_switch *sw, const uint8_t mac[6])
{
	int *link;

	if (find(sw, mac, &link) >= 0)
		unlink_entry(sw, link);
}

int sw_lookup(struct nic_switch *sw, const uint8_t mac[6], uint64_t now_ns)
{
	int *link, i = sw->last_hit;
	struct sw_entry *e;

	if (i >= 0) {
		e = &sw->pool[i];
		if (!memcmp(e->mac, mac, 6) && (e->is_static || now_ns - e->seen_ns <= SW_AGING_NS))
			return (int)e->port;
	}
	i = find(sw, mac, &link);
	if (i < 0)
		return -1;
	e = &sw->pool[i];
	if (!e->is_static && now_ns - e->seen_ns > SW_AGING_NS) {
		unlink_entry(sw, link);
		sw->stats.aged++;
		return -1;
	}
	sw->last_hit = i;
	return (int)e->port;
}

void sw_learn(struct nic_switch *sw, const uint8_t mac[6], uint32_t port, uint64_t now_ns)
{
	int i = find(sw, mac, NULL);
	struct sw_entry *e;

	if (mac_is_multicast(mac) || mac_is_zero(mac))
		return;
	if (i >= 0) {
		e = &sw->pool[i];
		if (e->is_static)
			return;
		if (e->port != port)
			sw->stats.moved++;
		e->port = port;
		e->seen_ns = now_ns;
		return;
	}
	/* Keep room for static entries: learning stops at 3/4 of the pool. */
	if (sw->nr_learned >= sw->pool_size * 3 / 4)
		return;
	e = alloc_entry(sw, mac);
	if (!e)
		return;
	e->is_static = false;
	e->port = port;
	e->seen_ns = now_ns;
	sw->nr_learned++;
	sw->stats.learned++;
}

int sw_static_port(struct nic_switch *sw, const uint8_t mac[6])
{
	int i = find(sw, mac, NULL);

	return i >= 0 && sw->pool[i].is_static ? (int)sw->pool[i].port : -1;
}

void sw_flush_port(struct nic_switch *sw, uint32_t port)
{
	for (unsigned b = 0; b < SW_BUCKETS; b++) {
		int *link = &sw->buckets[b];

		while (*link >= 0) {
			struct sw_entry *e = &sw->pool[*link];

			if (!e->is_static && e->port == port)
				unlink_entry(sw, link);	/* *link now names the next one */
			else
				link = &e->next;
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mac_parse(const char *s, uint8_t mac[6])
{
	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[i * 3]), lo = hexval(s[i * 3 + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}
