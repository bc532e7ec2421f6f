/* SPDX-License-Identifier: MIT */
/*
 * The NIC's internal L2 switch.  switch.c is its forwarding database from
 * MAC address to port: function MACs are static entries (set by the PF
 * driver, `set-mac`), addresses seen on the uplink (or behind a trusted
 * function) are learned and age out.  switch_fwd.c makes the forwarding
 * decisions (unicast to the owner, flooding, ARP suppression with the
 * directory in arp_dir.h) over the switch's own table of ports, and hands
 * frames out through the port ops the NIC gives it: the switch never sees
 * a function, only port numbers.
 */
#ifndef HDNIC_SWITCH_H
#define HDNIC_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/arp_dir.h"

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

/* What the switch asks of the ports it connects (the NIC provides them). */
struct sw_port_ops {
	/* A frame for the function on port: its receive path (filter, policer, DMA). */
	void (*deliver)(void *ctx, uint32_t port, const uint8_t *frame, uint32_t len);
	/* Does the function on port take unicast for dst, a station nobody owns? */
	bool (*wants_unknown)(void *ctx, uint32_t port, const uint8_t *dst);
	/* Out of the uplink. */
	void (*uplink_tx)(void *ctx, const uint8_t *frame, uint32_t len);
};

/* A function's port as the switch sees it. */
struct sw_port {
	bool attached;		/* a function sits on it */
	bool live;		/* running or quiesced: its frames and addresses are its own */
	bool trusted;		/* may send as other stations, take over addresses */
	uint32_t slot;		/* index in members */
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

	/* Ports 0 .. nr_ports-1 (functions) and the attached ones packed (flooding). */
	struct sw_port *ports;
	unsigned nr_ports;
	uint32_t *members;
	unsigned nr_members;
	struct arp_dir *arpd;
	const struct sw_port_ops *ops;
	void *ctx;
};

int sw_init(struct nic_switch *sw, unsigned max_entries);
/* The port table and what frames go out through (switch_fwd.c). */
int sw_ports_init(struct nic_switch *sw, unsigned nr_ports, struct arp_dir *arpd,
		  const struct sw_port_ops *ops, void *ctx);
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
/* ---- ports and forwarding (switch_fwd.c) ---- */

/* A function joins port (not live, not trusted until said) or leaves it (addresses forgotten). */
void sw_port_attach(struct nic_switch *sw, uint32_t port);
void sw_port_detach(struct nic_switch *sw, uint32_t port);
void sw_port_set_live(struct nic_switch *sw, uint32_t port, bool live);
void sw_port_set_trusted(struct nic_switch *sw, uint32_t port, bool trusted);

enum sw_out { SW_OUT_UPLINK, SW_OUT_SWITCH };	/* = SCHED_PORT_UPLINK, _SWITCH */

/* Which way a frame from port src leaves: SW_OUT_*, or -1 (to itself: a hairpin). */
int sw_out_port(struct nic_switch *sw, uint32_t src, const uint8_t *frame, uint64_t now_ns);

enum sw_verdict {
	SW_FORWARDED,		/* delivered, flooded, sent out or kept on its side */
	SW_DROP_HAIRPIN,	/* a function's frame for itself */
	SW_DROP_LOOP,		/* from the uplink with one of our functions' addresses */
	SW_DROP_UNKNOWN,	/* from the uplink for a station nobody here owns */
};

/* Forward a frame a function (port src) sent / the uplink received. */
enum sw_verdict sw_forward_from_port(struct nic_switch *sw, uint32_t src, const uint8_t *frame,
				     uint32_t len, uint64_t now_ns);
enum sw_verdict sw_forward_from_uplink(struct nic_switch *sw, const uint8_t *frame,
				       uint32_t len, uint64_t now_ns);

/* "aa:bb:cc:dd:ee:ff" <-> bytes; mac_parse: 0 or -EINVAL */
int mac_parse(const char *s, uint8_t mac[6]);
void mac_format(const uint8_t mac[6], char out[18]);

#endif
