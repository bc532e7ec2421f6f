/* SPDX-License-Identifier: MIT */
/*
 * The NIC's internal L2 switch: a forwarding database from MAC address to
 * port.  VF MACs are static entries (set by the PF driver, `set-mac`);
 * addresses seen on the uplink are learned and age out.  The forwarding
 * decisions themselves live in nic.c, which knows the ports.
 */
#ifndef HDNIC_SWITCH_H
#define HDNIC_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#define SW_PORT_UPLINK		0xffffu
#define SW_AGING_NS		(300ULL * 1000000000ULL)
#define SW_BUCKETS		1024

struct sw_entry {
	uint8_t mac[6];
	bool is_static;
	uint32_t port;
	uint64_t seen_ns;
	int next;		/* bucket chain or free list, -1 ends */
};

struct sw_stats {
	uint64_t learned, moved, aged, flooded;
	uint64_t unknown_unicast_drops, spoof_drops, loop_drops;
};

struct nic_switch {
	int buckets[SW_BUCKETS];
	struct sw_entry *pool;
	unsigned pool_size;
	int free_head;
	unsigned nr_learned, nr_static;
	int last_hit;		/* entry sw_lookup() found last (-1: none); a flood of
				 * frames to one station skips the hash walk */
	struct sw_stats stats;
};

int sw_init(struct nic_switch *sw, unsigned max_entries);
void sw_destroy(struct nic_switch *sw);
/* Static entry for a VF port: -EEXIST if mac belongs to another VF. */
int sw_set_static(struct nic_switch *sw, const uint8_t mac[6], uint32_t port);
void sw_remove(struct nic_switch *sw, const uint8_t mac[6]);
/* Port for mac, or -1 when unknown (learned entries past their age are gone). */
int sw_lookup(struct nic_switch *sw, const uint8_t mac[6], uint64_t now_ns);
/* Learn mac behind port (the uplink, a trusted device); never overrides a static entry. */
void sw_learn(struct nic_switch *sw, const uint8_t mac[6], uint32_t port, uint64_t now_ns);
/* The port of mac's static entry, or -1 (learned or unknown). */
int sw_static_port(struct nic_switch *sw, const uint8_t mac[6]);
/* Forget every learned address behind port (a device left or lost its trust). */
void sw_flush_port(struct nic_switch *sw, uint32_t port);

static inline bool mac_is_multicast(const uint8_t *mac) { return mac[0] & 1; }
static inline bool mac_is_broadcast(const uint8_t *m)
{
	return (m[0] & m[1] & m[2] & m[3] & m[4] & m[5]) == 0xff;
}
static inline bool mac_is_zero(const uint8_t *m)
{
	return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}
/* "aa:bb:cc:dd:ee:ff" <-> bytes */
int mac_parse(const char *s, uint8_t mac[6]);
void mac_format(const uint8_t mac[6], char out[18]);

#endif
