/* SPDX-License-Identifier: MIT */
/*
 * The TX scheduler: how the uplink and the internal switch share
 * themselves among active devices.  Each output port runs deficit-weighted
 * round robin over the active (polling) devices: on its turn a device gets
 * weight * SCHED_QUANTUM bytes of credit and sends frames bound for that
 * port while the credit, its own egress token bucket and the port allow.
 * When the port runs out (its rate: the uplink's line rate or the switch's
 * forwarding rate; TX buffers in flight; the pass budget) the turn is
 * suspended, not ended: the same device continues it
 * when the port has room again, so under contention each device's share of
 * a port follows its weight.  A frame waits in the guest's TX ring until it
 * is scheduled: hdnic never fetches what it cannot send.
 */
#ifndef HDNIC_SCHED_H
#define HDNIC_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/qos.h"

struct nic;
struct vdev;

enum sched_port_id { SCHED_PORT_UPLINK, SCHED_PORT_SWITCH, SCHED_NR_PORTS };

#define SCHED_QUANTUM		1518		/* bytes per unit of weight and turn */
#define SCHED_PASS_BYTES	(256 * 1024)	/* per port and loop pass */

struct sched_port {
	struct vdev *cursor;	/* the device whose turn it is */
	bool granted;		/* the cursor's quantum for this turn is granted */
	struct token_bucket line;	/* port capacity (line / switching rate), or unlimited */
	uint64_t budget;	/* bytes left in this pass */
	uint64_t frames, bytes;	/* served */
	uint64_t full;		/* turns suspended because the port was full */
};

/* Per-device scheduling state (struct vdev embeds it). */
struct sched_entry {
	struct vdev *next, *prev;	/* ring of active devices */
	uint32_t weight;
	uint64_t deficit[SCHED_NR_PORTS];
	struct token_bucket tx, rx;	/* egress shaper, ingress policer */
	bool queued;			/* on the ring */
};

struct sched {
	struct vdev *ring;		/* any active device; NULL when none */
	unsigned nr_active;
	struct sched_port port[SCHED_NR_PORTS];
	uint64_t wake_ns;		/* throttled work becomes sendable (0: none) */
	bool sleep_ok;			/* every active device waits on a rate */
};

void sched_init(struct sched *s);
void sched_entry_init(struct sched_entry *e, uint64_t now_ns);
void sched_set_rate(struct sched *s, unsigned port, uint64_t bits, uint64_t now_ns);

/* A device starts or stops being polled. */
void sched_add(struct sched *s, struct vdev *vd);
void sched_remove(struct sched *s, struct vdev *vd);

/* Serve every port for one loop pass. */
void sched_pass(struct nic *nic);

static inline const char *sched_port_name(unsigned p)
{
	return p == SCHED_PORT_UPLINK ? "uplink" : "switch";
}

#endif
