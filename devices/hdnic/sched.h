/* SPDX-License-Identifier: MIT */
/*
 * The TX scheduler: how the uplink and the internal switch share
 * themselves among active transmitters.  It works on its own entries (a
 * function embeds one) and reaches them only through sched_ops: a transmit
 * callback per frame, turn end, idle.  Each output port runs deficit-weighted
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

enum sched_port_id { SCHED_PORT_UPLINK, SCHED_PORT_SWITCH, SCHED_NR_PORTS };

#define SCHED_QUANTUM		1518		/* bytes per unit of weight and turn */
#define SCHED_PASS_BYTES	(256 * 1024)	/* per port and loop pass */

struct sched_entry;

struct sched_port {
	struct sched_entry *cursor;	/* the entry whose turn it is */
	bool granted;		/* the cursor's quantum for this turn is granted */
	struct token_bucket line;	/* port capacity (line / switching rate), or unlimited */
	uint64_t budget;	/* bytes left in this pass */
	uint64_t frames, bytes;	/* served */
	uint64_t full;		/* turns suspended because the port was full */
};

/* What the scheduler keeps per transmitter (a function embeds one). */
struct sched_entry {
	struct sched_entry *next, *prev;	/* ring of active entries */
	uint32_t weight;
	uint64_t deficit[SCHED_NR_PORTS];
	struct token_bucket tx, rx;		/* egress shaper, ingress policer */
	bool queued;				/* on the ring */
};

/* Why sched_admit() said no. */
enum sched_refusal {
	SCHED_REFUSED_NONE,
	SCHED_REFUSED_OTHER_PORT,	/* the frame is for the other port: not backlogged here */
	SCHED_REFUSED_CREDIT,		/* the turn's credit is spent */
	SCHED_REFUSED_THROTTLED,	/* the entry's egress bucket is empty */
	SCHED_REFUSED_PORT_FULL,	/* the port's rate, buffers or pass budget */
};

/* What a transmit callback did. */
enum sched_tx {
	SCHED_TX_SENT,		/* one frame admitted and sent */
	SCHED_TX_EMPTY,		/* nothing queued */
	SCHED_TX_WAIT,		/* a frame waits: sched_admit() refused it */
	SCHED_TX_GONE,		/* the transmitter broke (it left the ring) */
};

struct sched;

/* The transmitters' side: what the scheduler calls (qp_datapath.c for functions). */
struct sched_ops {
	/*
	 * e's turn on port: take its next frame and offer it to sched_admit();
	 * send it if admitted, put it back if not.  The one call per frame.
	 */
	enum sched_tx (*transmit)(struct sched *s, struct sched_entry *e, unsigned port);
	/* End of e's turn (publish what it sent). */
	void (*turn_done)(struct sched_entry *e);
	/* Work flagged for e (a doorbell or kick not looked at yet)? */
	bool (*pending)(const struct sched_entry *e);
	/* e had nothing flagged this pass: it may go to sleep (and leave the ring). */
	void (*idle)(struct sched_entry *e, uint64_t now_ns);
};

struct sched {
	struct sched_entry *ring;	/* any active entry; NULL when none */
	unsigned nr_active;
	struct sched_port port[SCHED_NR_PORTS];
	uint64_t wake_ns;		/* throttled work becomes sendable (0: none) */
	bool sleep_ok;			/* every active entry waits on a rate */
	bool sent;			/* the last pass sent a frame */
	const struct sched_ops *ops;
	uint64_t now_ns;		/* of the pass being served */
	unsigned turn_port;		/* the port whose turn is being served */
	enum sched_refusal refusal;	/* sched_admit()'s last no */
};

void sched_init(struct sched *s, const struct sched_ops *ops);
void sched_entry_init(struct sched_entry *e, uint64_t now_ns);
void sched_set_rate(struct sched *s, unsigned port, uint64_t bits, uint64_t now_ns);

/* An entry starts or stops being served. */
void sched_add(struct sched *s, struct sched_entry *e);
void sched_remove(struct sched *s, struct sched_entry *e);

/* Serve every port for one loop pass. */
void sched_pass(struct sched *s, uint64_t now_ns);

/*
 * From a transmit callback: may e send a len-byte frame bound for port out
 * now?  room: the port's buffers can take it.  true: charged, send it;
 * false: put it back (s->refusal says why).
 */
bool sched_admit(struct sched *s, struct sched_entry *e, unsigned out, uint32_t len, bool room);

static inline const char *sched_port_name(unsigned p)
{
	return p == SCHED_PORT_UPLINK ? "uplink" : "switch";
}

#endif
