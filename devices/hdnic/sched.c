// SPDX-License-Identifier: MIT
/*
 * Deficit-weighted round robin per output port (sched.h), the idle sweep
 * that lets quiet devices sleep, and the decision whether the loop may
 * sleep until throttled work becomes sendable.
 */
#include "devices/hdnic/sched.h"

#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

#define SCHED_TURN_FRAMES	256	/* frames per turn before the port moves on */

enum turn_end {
	TURN_OVER,		/* credit spent, nothing for this port, throttled or broken */
	TURN_SUSPENDED,		/* the port is full (or the turn is long): resume it */
};

void sched_init(struct sched *s)
{
	memset(s, 0, sizeof(*s));
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

void sched_add(struct sched *s, struct vdev *vd)
{
	struct sched_entry *e = &vd->sched;

	if (e->queued)
		return;
	if (!s->ring) {
		e->next = e->prev = vd;
		s->ring = vd;
	} else {
		/* At the tail: the device waits one round like everyone else. */
		struct vdev *head = s->ring, *tail = head->sched.prev;

		e->next = head;
		e->prev = tail;
		tail->sched.next = vd;
		head->sched.prev = vd;
	}
	memset(e->deficit, 0, sizeof(e->deficit));
	e->queued = true;
	s->nr_active++;
}

void sched_remove(struct sched *s, struct vdev *vd)
{
	struct sched_entry *e = &vd->sched;
	struct vdev *next = e->next;

	if (!e->queued)
		return;
	for (unsigned p = 0; p < SCHED_NR_PORTS; p++) {
		if (s->port[p].cursor == vd) {
			s->port[p].cursor = next == vd ? NULL : next;
			s->port[p].granted = false;
		}
	}
	if (next == vd) {
		s->ring = NULL;
	} else {
		e->prev->sched.next = next;
		next->sched.prev = e->prev;
		if (s->ring == vd)
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
static bool port_room(struct nic *nic, unsigned p, uint32_t len)
{
	struct sched_port *port = &nic->sched.port[p];

	if (port->budget < len)
		return false;
	if (p == SCHED_PORT_UPLINK && !uplink_tx_room(nic->uplink))
		return false;	/* a write completion wakes the loop */
	if (!tb_conform(&port->line, len, nic->now_ns)) {
		wake_at(&nic->sched, nic->now_ns + tb_delay_ns(&port->line, len));
		return false;
	}
	return true;
}

static void port_charge(struct sched_port *port, uint32_t len)
{
	port->budget -= len;
	tb_charge(&port->line, len);
	port->frames++;
	port->bytes += len;
}

/* vd's turn at port p: send what its credit, its shaper and the port allow. */
static enum turn_end serve(struct nic *nic, unsigned p, struct vdev *vd, bool *sent)
{
	struct sched_port *port = &nic->sched.port[p];
	struct sched_entry *e = &vd->sched;
	uint64_t quantum = (uint64_t)e->weight * SCHED_QUANTUM;
	enum turn_end end = TURN_OVER;
	unsigned n = 0;

	if (!port->granted) {
		/* Credit left over from a throttled turn never grows past one more frame. */
		e->deficit[p] = MIN(e->deficit[p] + quantum, quantum + SCHED_QUANTUM);
		port->granted = true;
	}
	for (;;) {
		struct tx_frame f;
		int r;

		if (n >= SCHED_TURN_FRAMES) {
			end = TURN_SUSPENDED;
			break;
		}
		r = vdev_tx_peek(vd, &f);
		if (r < 0)
			return TURN_OVER;	/* broke: already off the ring */
		if (!r) {
			e->deficit[p] = 0;	/* nothing queued: no credit saved up */
			break;
		}
		vd->last_work_ns = nic->now_ns;
		if (f.port != p) {
			vdev_tx_putback(&f);
			e->deficit[p] = 0;	/* not backlogged on this port */
			break;
		}
		if (f.len > e->deficit[p]) {
			vdev_tx_putback(&f);
			break;
		}
		if (!tb_conform(&e->tx, f.len, nic->now_ns)) {
			vdev_tx_putback(&f);
			vd->stats.tx_throttled++;
			wake_at(&nic->sched, nic->now_ns + tb_delay_ns(&e->tx, f.len));
			break;
		}
		if (!port_room(nic, p, f.len)) {
			vdev_tx_putback(&f);
			port->full++;
			end = TURN_SUSPENDED;
			break;
		}
		tb_charge(&e->tx, f.len);
		port_charge(port, f.len);
		e->deficit[p] -= f.len;
		vdev_tx_send(vd, &f);
		n++;
		if (!vd->running)
			return TURN_OVER;
	}
	if (vd->running)
		vdev_tx_done(vd);
	if (n)
		*sent = true;
	return end;
}

static void port_serve(struct nic *nic, unsigned p, bool *sent)
{
	struct sched *s = &nic->sched;
	struct sched_port *port = &s->port[p];
	unsigned quiet = 0, visits = 0, max_visits = 4 * s->nr_active + 4;

	/* Stop after a whole round in which nobody sent anything. */
	while (s->ring && quiet < s->nr_active && visits++ < max_visits) {
		struct vdev *vd;
		enum turn_end end;
		bool any = false;

		if (!port->cursor) {
			port->cursor = s->ring;
			port->granted = false;
		}
		vd = port->cursor;
		end = serve(nic, p, vd, &any);
		if (any)
			*sent = true;
		if (port->cursor != vd)
			continue;	/* vd left the ring: the cursor already moved on */
		if (end == TURN_SUSPENDED)
			return;		/* vd keeps its turn and resumes it first */
		quiet = any ? 0 : quiet + 1;
		port->cursor = vd->sched.next;
		port->granted = false;
	}
}

/*
 * Devices with nothing flagged may go to sleep.  Returns true if every
 * active device has work flagged (so none needs its doorbells polled).
 */
static bool idle_sweep(struct nic *nic)
{
	struct sched *s = &nic->sched;
	struct vdev *vd = s->ring;
	unsigned n = s->nr_active;
	bool all_pending = true;

	for (unsigned i = 0; i < n && vd; i++) {
		struct vdev *next = vd->sched.next;

		if (!vdev_tx_pending(vd)) {
			all_pending = false;
			vdev_try_idle(vd, nic->now_ns);
		}
		vd = next;
	}
	return all_pending;
}

void sched_pass(struct nic *nic)
{
	struct sched *s = &nic->sched;
	bool sent = false, all_pending;

	s->wake_ns = 0;
	s->sleep_ok = false;
	if (!s->ring)
		return;
	for (unsigned p = 0; p < SCHED_NR_PORTS; p++) {
		s->port[p].budget = SCHED_PASS_BYTES;
		port_serve(nic, p, &sent);
	}
	all_pending = idle_sweep(nic);
	/* Everyone is waiting on a rate: no doorbell to poll, sleep until it allows. */
	s->sleep_ok = !sent && all_pending && s->ring && s->wake_ns > nic->now_ns;
}
