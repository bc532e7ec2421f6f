// SPDX-License-Identifier: MIT
/*
 * Deficit-weighted round robin per output port (sched.h), the idle sweep
 * that lets quiet transmitters sleep, and the decision whether the loop may
 * sleep until throttled work becomes sendable.  The scheduler knows its
 * entries and ports only; frames move through the transmit callback.
 */
#include "devices/hdnic/sched.h"

#include <string.h>

#include "vmm/util.h"

#define SCHED_TURN_FRAMES	256	/* frames per turn before the port moves on */

enum turn_end {
	TURN_OVER,		/* credit spent, nothing for this port, throttled or broken */
	TURN_SUSPENDED,		/* the port is full (or the turn is long): resume it */
};

void sched_init(struct sched *s, const struct sched_ops *ops)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
}

void sched_entry_init(struct sched_entry *e, uint64_t now_ns)
{
	memset(e, 0, sizeof(*e));
	e->weight = QOS_WEIGHT_DEFAULT;
	tb_set(&e->tx, 0, now_ns);
	tb_set(&e->rx, 0, now_ns);
}

void sched_set_rate(struct sched *s, unsigned port, uint64_t bits, uint64_t now_ns)
{
	tb_set(&s->port[port].line, bits, now_ns);
}

void sched_add(struct sched *s, struct sched_entry *e)
{
	if (e->queued)
		return;
	if (!s->ring) {
		e->next = e->prev = e;
		s->ring = e;
	} else {
		/* At the tail: the entry waits one round like everyone else. */
		struct sched_entry *head = s->ring, *tail = head->prev;

		e->next = head;
		e->prev = tail;
		tail->next = e;
		head->prev = e;
	}
	memset(e->deficit, 0, sizeof(e->deficit));
	e->queued = true;
	s->nr_active++;
}

void sched_remove(struct sched *s, struct sched_entry *e)
{
	struct sched_entry *next = e->next;

	if (!e->queued)
		return;
	for (unsigned p = 0; p < SCHED_NR_PORTS; p++) {
		if (s->port[p].cursor == e) {
			s->port[p].cursor = next == e ? NULL : next;
			s->port[p].granted = false;
		}
	}
	if (next == e) {
		s->ring = NULL;
	} else {
		e->prev->next = next;
		next->prev = e->prev;
		if (s->ring == e)
			s->ring = next;
	}
	e->next = e->prev = NULL;
	e->queued = false;
	s->nr_active--;
}

static void wake_at(struct sched *s, uint64_t t)
{
	if (!s->wake_ns || t < s->wake_ns)
		s->wake_ns = t;
}

/* Can port p take a len-byte frame now?  If a rate says no, note when it will. */
static bool port_room(struct sched *s, unsigned p, uint32_t len, bool room)
{
	struct sched_port *port = &s->port[p];

	if (port->budget < len || !room)
		return false;	/* a buffer completion wakes the loop */
	if (!tb_conform(&port->line, len, s->now_ns)) {
		wake_at(s, s->now_ns + tb_delay_ns(&port->line, len));
		return false;
	}
	return true;
}

static bool refuse(struct sched *s, enum sched_refusal why)
{
	s->refusal = why;
	return false;
}

bool sched_admit(struct sched *s, struct sched_entry *e, unsigned out, uint32_t len, bool room)
{
	unsigned p = s->turn_port;
	struct sched_port *port = &s->port[p];

	if (out != p)
		return refuse(s, SCHED_REFUSED_OTHER_PORT);
	if (len > e->deficit[p])
		return refuse(s, SCHED_REFUSED_CREDIT);
	if (!tb_conform(&e->tx, len, s->now_ns)) {
		wake_at(s, s->now_ns + tb_delay_ns(&e->tx, len));
		return refuse(s, SCHED_REFUSED_THROTTLED);
	}
	if (!port_room(s, p, len, room))
		return refuse(s, SCHED_REFUSED_PORT_FULL);
	tb_charge(&e->tx, len);
	port->budget -= len;
	tb_charge(&port->line, len);
	port->frames++;
	port->bytes += len;
	e->deficit[p] -= len;
	return true;
}

/* e's turn at port p: it sends what its credit, its shaper and the port allow. */
static enum turn_end serve(struct sched *s, unsigned p, struct sched_entry *e, bool *sent)
{
	struct sched_port *port = &s->port[p];
	uint64_t quantum = (uint64_t)e->weight * SCHED_QUANTUM;
	enum turn_end end = TURN_OVER;
	unsigned n = 0;

	if (!port->granted) {
		/* Credit left over from a throttled turn never grows past one more frame. */
		e->deficit[p] = MIN(e->deficit[p] + quantum, quantum + SCHED_QUANTUM);
		port->granted = true;
	}
	s->turn_port = p;
	for (;;) {
		enum sched_tx r;

		if (n >= SCHED_TURN_FRAMES) {
			end = TURN_SUSPENDED;
			break;
		}
		s->refusal = SCHED_REFUSED_NONE;
		r = s->ops->transmit(s, e, p);
		if (r == SCHED_TX_SENT) {
			n++;
			if (!e->queued)
				break;	/* sending stopped it */
			continue;
		}
		if (r == SCHED_TX_GONE)
			return TURN_OVER;	/* broke: already off the ring */
		if (r == SCHED_TX_EMPTY) {
			e->deficit[p] = 0;	/* nothing queued: no credit saved up */
			break;
		}
		if (s->refusal == SCHED_REFUSED_OTHER_PORT)
			e->deficit[p] = 0;	/* not backlogged on this port */
		if (s->refusal == SCHED_REFUSED_PORT_FULL) {
			port->full++;
			end = TURN_SUSPENDED;
		}
		break;
	}
	if (e->queued)
		s->ops->turn_done(e);
	if (n)
		*sent = true;
	return e->queued ? end : TURN_OVER;
}

static void port_serve(struct sched *s, unsigned p, bool *sent)
{
	struct sched_port *port = &s->port[p];
	unsigned quiet = 0, visits = 0, max_visits = 4 * s->nr_active + 4;

	/* Stop after a whole round in which nobody sent anything. */
	while (s->ring && quiet < s->nr_active && visits++ < max_visits) {
		struct sched_entry *e;
		enum turn_end end;
		bool any = false;

		if (!port->cursor) {
			port->cursor = s->ring;
			port->granted = false;
		}
		e = port->cursor;
		end = serve(s, p, e, &any);
		if (any)
			*sent = true;
		if (port->cursor != e)
			continue;	/* e left the ring: the cursor already moved on */
		if (end == TURN_SUSPENDED)
			return;		/* e keeps its turn and resumes it first */
		quiet = any ? 0 : quiet + 1;
		port->cursor = e->next;
		port->granted = false;
	}
}

/*
 * Entries with nothing flagged may go to sleep.  Returns true if every
 * active entry has work flagged (so none needs its doorbells polled).
 */
static bool idle_sweep(struct sched *s)
{
	struct sched_entry *e = s->ring;
	unsigned n = s->nr_active;
	bool all_pending = true;

	for (unsigned i = 0; i < n && e; i++) {
		struct sched_entry *next = e->next;

		if (!s->ops->pending(e)) {
			all_pending = false;
			s->ops->idle(e, s->now_ns);
		}
		e = next;
	}
	return all_pending;
}

void sched_pass(struct sched *s, uint64_t now_ns)
{
	bool sent = false, all_pending;

	s->now_ns = now_ns;
	s->wake_ns = 0;
	s->sleep_ok = false;
	s->sent = false;
	if (!s->ring)
		return;
	for (unsigned p = 0; p < SCHED_NR_PORTS; p++) {
		s->port[p].budget = SCHED_PASS_BYTES;
		port_serve(s, p, &sent);
	}
	s->sent = sent;
	all_pending = idle_sweep(s);
	/* Everyone is waiting on a rate: no doorbell to poll, sleep until it allows. */
	s->sleep_ok = !sent && all_pending && s->ring && s->wake_ns > now_ns;
}
