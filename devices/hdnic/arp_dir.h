/* SPDX-License-Identifier: MIT */
/*
 * ARP suppression for the internal switch: a directory of which port owns
 * which IPv4 address, learned from the ARP frames the ports send.  With it
 * the switch hands a broadcast ARP request only to the port that owns the
 * target address (or to the uplink alone) instead of flooding it to every
 * function, and keeps a function's gratuitous ARP off its neighbours: with
 * hundreds of microVMs on one NIC a flooded frame would wake every one of
 * them.  Requests for addresses nobody has claimed are still flooded.
 */
#ifndef HDNIC_ARP_DIR_H
#define HDNIC_ARP_DIR_H

#include <stdbool.h>
#include <stdint.h>

/* Addresses behind the uplink are forgotten after this; functions' stay until they go. */
#define ARPD_UPLINK_AGING_NS	(300ULL * 1000000000ULL)
#define ARPD_BUCKETS		4096

struct arpd_entry {
	uint32_t ip;		/* host order */
	uint32_t port;		/* a switch port or SW_PORT_UPLINK */
	uint8_t mac[6];		/* the sender that claimed it */
	uint64_t seen_ns;
	int next;		/* bucket chain or free list, -1 ends */
};

struct arpd_stats {
	uint64_t learned, moved, refused;		/* bindings */
	uint64_t directed, suppressed, flooded;	/* broadcast requests */
};

struct arp_dir {
	int buckets[ARPD_BUCKETS];
	struct arpd_entry *pool;
	unsigned pool_size;
	int free_head;
	unsigned nr_entries;
	struct arpd_stats stats;
};

int arpd_init(struct arp_dir *d, unsigned max_entries);
void arpd_destroy(struct arp_dir *d);
/* ip is owned by port (mac claimed it); a full directory keeps what it has. */
void arpd_learn(struct arp_dir *d, uint32_t ip, uint32_t port, const uint8_t mac[6],
		uint64_t now_ns);
/* The port owning ip, or -1 when unknown (uplink addresses age out). */
int arpd_lookup(struct arp_dir *d, uint32_t ip, uint64_t now_ns);
/* A function left, was reset or changed its MAC: its addresses are no longer known. */
void arpd_flush_port(struct arp_dir *d, uint32_t port);
/*
 * A function here took mac (a guest restored or migrated onto it): what
 * that station claimed while it lived behind the uplink is stale now.
 */
void arpd_forget_uplink_mac(struct arp_dir *d, const uint8_t mac[6]);

#define ARP_OP_REQUEST	1

/* The fields of an Ethernet/IPv4 ARP frame the switch acts on. */
struct arp_view {
	uint16_t op;
	const uint8_t *sha;
	uint32_t spa, tpa;	/* host order */
};

/* Parses frame as an untagged Ethernet/IPv4 ARP packet; false if it is not one. */
bool arp_view_parse(const uint8_t *frame, uint32_t len, struct arp_view *v);

#endif
