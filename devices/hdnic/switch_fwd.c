// SPDX-License-Identifier: MIT
/*
 * The switch's forwarding decisions (switch.h): unicast to the port that
 * owns the destination, flooding to the live ports, unknown unicast to the
 * functions that ask for it, and ARP suppression: a broadcast request for
 * an address the directory knows goes to its owner only, a function's
 * announcement to the uplink only.  Ports are numbers in the switch's own
 * table; frames leave through the NIC's port ops.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/switch.h"

enum arp_way { ARP_FLOOD, ARP_TO_UPLINK, ARP_TO_PORT, ARP_NOWHERE };

int sw_ports_init(struct nic_switch *sw, unsigned nr_ports, struct arp_dir *arpd,
		  const struct sw_port_ops *ops, void *ctx)
{
	sw->ports = calloc(nr_ports + 1, sizeof(*sw->ports));
	sw->members = calloc(nr_ports + 1, sizeof(*sw->members));
	if (!sw->ports || !sw->members)
		return -ENOMEM;
	sw->nr_ports = nr_ports;
	sw->nr_members = 0;
	sw->arpd = arpd;
	sw->ops = ops;
	sw->ctx = ctx;
	return 0;
}

void sw_port_attach(struct nic_switch *sw, uint32_t port)
{
	struct sw_port *p = &sw->ports[port];

	if (p->attached)
		return;
	p->attached = true;
	p->slot = sw->nr_members;
	sw->members[sw->nr_members++] = port;
}

void sw_port_detach(struct nic_switch *sw, uint32_t port)
{
	struct sw_port *p = &sw->ports[port];
	uint32_t last;

	if (!p->attached)
		return;
	last = sw->members[--sw->nr_members];
	sw->members[p->slot] = last;
	sw->ports[last].slot = p->slot;
	memset(p, 0, sizeof(*p));
	arpd_flush_port(sw->arpd, port);
}

void sw_port_set_live(struct nic_switch *sw, uint32_t port, bool live)
{
	sw->ports[port].live = live;
}

void sw_port_set_trusted(struct nic_switch *sw, uint32_t port, bool trusted)
{
	sw->ports[port].trusted = trusted;
}

/* The function's port behind a port number, or NULL (uplink, unknown, empty). */
static const struct sw_port *fn_port(const struct nic_switch *sw, int port)
{
	if (port < 0 || (unsigned)port >= sw->nr_ports || !sw->ports[port].attached)
		return NULL;
	return &sw->ports[port];
}

/*
 * Learns who owns an ARP frame's sender address; false if the frame is no
 * ARP packet.
 */
static bool arp_learn(struct nic_switch *sw, uint32_t from, const uint8_t *frame, uint32_t len,
		      struct arp_view *a, uint64_t now_ns)
{
	const struct sw_port *sender = fn_port(sw, (int)from);
	int owner_port;
	const struct sw_port *owner;

	if (!arp_view_parse(frame, len, a))
		return false;
	/* Bindings come from a station speaking for itself. */
	if (!a->spa || memcmp(a->sha, frame + 6, 6))
		return true;
	owner_port = arpd_lookup(sw->arpd, a->spa, now_ns);
	owner = fn_port(sw, owner_port);
	/* Only a trusted function may take over a live neighbour's address. */
	if (owner && owner_port != (int)from && owner->live && !(sender && sender->trusted))
		sw->arpd->stats.refused++;
	else
		arpd_learn(sw->arpd, a->spa, from, a->sha, now_ns);
	return true;
}

/* Where a broadcast frame goes: a request for a known address goes to its owner only. */
static enum arp_way arp_route(struct nic_switch *sw, uint32_t from, const uint8_t *frame,
			      uint32_t len, uint32_t *to, uint64_t now_ns)
{
	const struct sw_port *sender = fn_port(sw, (int)from), *owner_fn;
	struct arp_view a;
	int owner;

	if (!arp_learn(sw, from, frame, len, &a, now_ns) || a.op != ARP_OP_REQUEST ||
	    !mac_is_broadcast(frame))
		return ARP_FLOOD;
	if (a.spa && a.spa == a.tpa && sender) {
		/* A function's announcement: the directory holds it now. */
		sw->arpd->stats.suppressed++;
		return ARP_TO_UPLINK;
	}
	owner = arpd_lookup(sw->arpd, a.tpa, now_ns);
	if (owner == SW_PORT_UPLINK) {
		/* Behind the uplink: no function needs to hear it. */
		sw->arpd->stats.suppressed++;
		return sender ? ARP_TO_UPLINK : ARP_NOWHERE;
	}
	owner_fn = fn_port(sw, owner);
	if (!owner_fn || owner_fn == sender || !owner_fn->live) {
		sw->arpd->stats.flooded++;
		return ARP_FLOOD;
	}
	sw->arpd->stats.directed++;
	*to = (uint32_t)owner;
	return ARP_TO_PORT;
}

/* To every live function but the sender (a quiesced one counts what it missed). */
static void flood(struct nic_switch *sw, uint32_t src, const uint8_t *frame, uint32_t len)
{
	sw->stats.flooded++;
	for (unsigned i = 0; i < sw->nr_members; i++) {
		uint32_t p = sw->members[i];

		if (p != src && sw->ports[p].live)
			sw->ops->deliver(sw->ctx, p, frame, len);
	}
}

/*
 * A unicast frame for a station the switch does not know also reaches the
 * functions whose receive filter asks for it (promiscuous, or the address
 * in its MAC table); true if any did.
 */
static bool to_unknown_listeners(struct nic_switch *sw, uint32_t src, const uint8_t *frame,
				 uint32_t len)
{
	bool any = false;

	for (unsigned i = 0; i < sw->nr_members; i++) {
		uint32_t p = sw->members[i];

		if (p != src && sw->ports[p].live && sw->ops->wants_unknown(sw->ctx, p, frame)) {
			sw->ops->deliver(sw->ctx, p, frame, len);
			any = true;
		}
	}
	return any;
}

int sw_out_port(struct nic_switch *sw, uint32_t src, const uint8_t *frame, uint64_t now_ns)
{
	int to;

	if (mac_is_multicast(frame))
		return SW_OUT_UPLINK;	/* and the switch floods it */
	to = sw_lookup(sw, frame, now_ns);
	if (!fn_port(sw, to))
		return SW_OUT_UPLINK;	/* behind the uplink, or unknown */
	return (uint32_t)to == src ? -1 : SW_OUT_SWITCH;
}

enum sw_verdict sw_forward_from_port(struct nic_switch *sw, uint32_t src, const uint8_t *frame,
				     uint32_t len, uint64_t now_ns)
{
	uint32_t owner;
	int to;

	if (mac_is_multicast(frame)) {
		switch (arp_route(sw, src, frame, len, &owner, now_ns)) {
		case ARP_TO_PORT:
			sw->ops->deliver(sw->ctx, owner, frame, len);
			return SW_FORWARDED;
		case ARP_NOWHERE:
			return SW_FORWARDED;
		case ARP_FLOOD:
			flood(sw, src, frame, len);
			/* fall through */
		case ARP_TO_UPLINK:
			sw->ops->uplink_tx(sw->ctx, frame, len);
			return SW_FORWARDED;
		}
	}
	arp_learn(sw, src, frame, len, &(struct arp_view){ 0 }, now_ns);
	to = sw_lookup(sw, frame, now_ns);
	if (fn_port(sw, to)) {
		if ((uint32_t)to == src) {
			sw->stats.loop_drops++;	/* no hairpin */
			return SW_DROP_HAIRPIN;
		}
		sw->ops->deliver(sw->ctx, (uint32_t)to, frame, len);
		return SW_FORWARDED;
	}
	to_unknown_listeners(sw, src, frame, len);
	sw->ops->uplink_tx(sw->ctx, frame, len);
	return SW_FORWARDED;
}

enum sw_verdict sw_forward_from_uplink(struct nic_switch *sw, const uint8_t *frame,
				       uint32_t len, uint64_t now_ns)
{
	const uint8_t *dst = frame, *src = frame + 6;
	uint32_t owner;
	int to;

	if (fn_port(sw, sw_static_port(sw, src))) {
		/* One of our functions' own address arriving from outside: a loop or a spoof. */
		sw->stats.loop_drops++;
		return SW_DROP_LOOP;
	}
	sw_learn(sw, src, SW_PORT_UPLINK, now_ns);
	if (mac_is_multicast(dst)) {
		switch (arp_route(sw, SW_PORT_UPLINK, frame, len, &owner, now_ns)) {
		case ARP_TO_PORT:
			sw->ops->deliver(sw->ctx, owner, frame, len);
			return SW_FORWARDED;
		case ARP_TO_UPLINK:
		case ARP_NOWHERE:
			return SW_FORWARDED;	/* it stays on its own side */
		case ARP_FLOOD:
			flood(sw, SW_PORT_UPLINK, frame, len);
			return SW_FORWARDED;
		}
	}
	arp_learn(sw, SW_PORT_UPLINK, frame, len, &(struct arp_view){ 0 }, now_ns);
	to = sw_lookup(sw, dst, now_ns);
	if (fn_port(sw, to)) {
		sw->ops->deliver(sw->ctx, (uint32_t)to, frame, len);
		return SW_FORWARDED;
	}
	if (to_unknown_listeners(sw, SW_PORT_UPLINK, frame, len))
		return SW_FORWARDED;
	sw->stats.unknown_unicast_drops++;
	return SW_DROP_UNKNOWN;
}
