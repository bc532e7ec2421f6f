// SPDX-License-Identifier: MIT
/* Split virtqueue, driver side (see virtqueue.h). */
#include "guest/drivers/virtqueue.h"
#include "guest/io.h"
#include "guest/lib.h"


/* Keeps the device's used-buffer interrupts off: never crossed while we poll. */
#define USED_EVENT_AHEAD	0x8000
/*
 * ...refreshed only after this many used entries: the device is never more
 * than a ring (<= VQ_MAX_SIZE) ahead of last_used, so it stays far ahead,
 * and the cache line the device reads it from is not written per packet.
 */
#define USED_EVENT_REFRESH	0x1000

static uint16_t *used_event(struct virtq *vq)
{
	return &vq->ring->avail.ring[vq->size];
}

static uint16_t *avail_event(struct virtq *vq)
{
	return (uint16_t *)&vq->ring->used.ring[vq->size];
}

void virtq_init(struct virtq *vq, const char *name, uint16_t index, struct vring_area *ring,
		bool event_idx)
{
	memset(vq, 0, sizeof(*vq));
	vq->name = name;
	vq->index = index;
	vq->ring = ring;
	vq->event_idx = event_idx;
}

void virtq_set_transport(struct virtq *vq, uint16_t size, uint64_t notify_addr,
			 uint64_t doorbell_addr)
{
	struct vring_area *r = vq->ring;

	/* Only what `size` entries use: a small ring leaves the rest untouched. */
	memset(r->desc, 0, size * sizeof(r->desc[0]));
	memset(&r->avail, 0, 4 + 2 * (size + 1));
	memset(&r->used, 0, 4 + size * sizeof(r->used.ring[0]) + 2);
	vq->size = size;
	vq->notify_addr = notify_addr;
	vq->doorbell_addr = doorbell_addr;
	/* We poll: no interrupts, whichever way the device reads our wishes. */
	vq->ring->avail.flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event(vq) = USED_EVENT_AHEAD;
	vq->used_event_base = 0;
}

int virtq_post(struct virtq *vq, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vring_desc *d;

	if (vq->error || id >= vq->size || vq->owned[id])
		return -1;
	d = &vq->ring->desc[id];
	/* A reposted RX buffer has the same descriptor: leave the device's cached copy be. */
	if (d->addr != addr || d->len != len || d->flags != flags || d->next)
		*d = (struct vring_desc){ .addr = addr, .len = len, .flags = flags };
	vq->ring->avail.ring[vq->avail_idx & (vq->size - 1)] = id;
	vq->avail_idx++;
	vq->owned[id] = true;
	vq->inflight++;
	return 0;
}

int virtq_post_out_in(struct virtq *vq, uint16_t id, uint64_t out, uint32_t out_len,
		      uint64_t in, uint32_t in_len)
{
	struct vring_desc *d;

	if (vq->error || id + 1 >= vq->size || vq->owned[id] || vq->owned[id + 1])
		return -1;
	d = vq->ring->desc;
	d[id] = (struct vring_desc){ .addr = out, .len = out_len, .flags = VRING_DESC_F_NEXT,
				     .next = (uint16_t)(id + 1) };
	d[id + 1] = (struct vring_desc){ .addr = in, .len = in_len, .flags = VRING_DESC_F_WRITE };
	vq->ring->avail.ring[vq->avail_idx & (vq->size - 1)] = id;
	vq->avail_idx++;
	vq->owned[id] = true;	/* the head: the used entry names it */
	vq->inflight++;
	return 0;
}

/* used_event far ahead of last_used: no used-buffer interrupts while we poll. */
static void push_used_event(struct virtq *vq)
{
	vq->used_event_base = vq->last_used;
	vq->irq_armed = false;
	WRITE_ONCE(*used_event(vq), (uint16_t)(vq->last_used + USED_EVENT_AHEAD));
}

static void notify(struct virtq *vq)
{
	mmio_write16(vq->notify_addr, vq->index);
	vq->notifies++;
}

/* Publish avail_idx and tell the device; force skips the suppression check. */
static void kick(struct virtq *vq, bool force)
{
	uint16_t new = vq->avail_idx, old = vq->kicked_idx;
	bool need;

	barrier();		/* ring entries before the index (x86: stores in order) */
	WRITE_ONCE(vq->ring->avail.idx, new);
	if (vq->doorbell_addr)
		mmio_write16(vq->doorbell_addr, new);
	smp_mb();			/* the index store before reading the device's wishes */
	if (vq->event_idx)
		need = vring_need_event(READ_ONCE(*avail_event(vq)), new, old);
	else
		need = !(READ_ONCE(vq->ring->used.flags) & VRING_USED_F_NO_NOTIFY);
	vq->kicked_idx = new;
	vq->kicks++;
	if (need || force)
		notify(vq);
}

void virtq_kick(struct virtq *vq)
{
	if (vq->error || vq->avail_idx == vq->kicked_idx)
		return;
	kick(vq, false);
}

void virtq_kick_notify(struct virtq *vq)
{
	if (!vq->error)
		kick(vq, true);
}

static int broken(struct virtq *vq, const char *what)
{
	vq->error = what;
	return -1;
}

int virtq_get_used(struct virtq *vq, uint16_t *id, uint32_t *len)
{
	struct vring_used_elem e;
	uint16_t pending;

	if (vq->error)
		return -1;
	if (!vq->used_ahead) {
		/* One index read per batch of used entries. */
		pending = READ_ONCE(vq->ring->used.idx) - vq->last_used;
		if (!pending)
			return 0;
		if (pending > vq->inflight)
			return broken(vq, "used index ahead of the buffers it holds");
		vq->used_ahead = pending;
		barrier();	/* the entries after the index (x86: loads in order) */
	}
	e.id = READ_ONCE(vq->ring->used.ring[vq->last_used & (vq->size - 1)].id);
	e.len = READ_ONCE(vq->ring->used.ring[vq->last_used & (vq->size - 1)].len);
	if (e.id >= vq->size)
		return broken(vq, "used id out of range");
	if (!vq->owned[e.id])
		return broken(vq, "used id not held by the device");
	vq->owned[e.id] = false;
	vq->inflight--;
	vq->used_ahead--;
	vq->last_used++;
	if (vq->irq_armed || (uint16_t)(vq->last_used - vq->used_event_base) >= USED_EVENT_REFRESH)
		push_used_event(vq);
	*id = (uint16_t)e.id;
	*len = e.len;
	return 1;
}

bool virtq_irq_enable(struct virtq *vq)
{
	vq->irq_armed = true;
	if (vq->event_idx)
		WRITE_ONCE(*used_event(vq), vq->last_used);
	else
		WRITE_ONCE(vq->ring->avail.flags, 0);
	smp_mb();			/* our wish before the re-check: else a wake-up is lost */
	return !vq->error && READ_ONCE(vq->ring->used.idx) == vq->last_used;
}

void virtq_irq_disable(struct virtq *vq)
{
	WRITE_ONCE(vq->ring->avail.flags, VRING_AVAIL_F_NO_INTERRUPT);
	push_used_event(vq);
}

struct vring_desc *virtq_raw_desc(struct virtq *vq, uint16_t i)
{
	return &vq->ring->desc[i & (vq->size - 1)];
}

void virtq_raw_avail_put(struct virtq *vq, uint16_t head)
{
	vq->ring->avail.ring[vq->avail_idx & (vq->size - 1)] = head;
	vq->avail_idx++;
}

void virtq_raw_avail_advance(struct virtq *vq, uint16_t n)
{
	vq->avail_idx += n;
}

void virtq_raw_kick(struct virtq *vq)
{
	kick(vq, true);
}
