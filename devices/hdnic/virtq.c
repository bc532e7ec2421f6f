// SPDX-License-Identifier: MIT
#include "devices/hdnic/virtq.h"

#include <errno.h>
#include <string.h>

#include "vmm/compiler.h"

void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
	vq->size = HDNIC_QUEUE_MAX_SIZE;
	vq->msix_vector = VIRTQ_NO_VECTOR;
}

static size_t desc_bytes(uint16_t n) { return 16u * n; }
/* flags, idx, ring[n], used_event */
static size_t avail_bytes(uint16_t n) { return 6u + 2u * n; }
/* flags, idx, ring[n], avail_event */
static size_t used_bytes(uint16_t n) { return 6u + 8u * n; }

static int resolve(struct virtq *vq, struct dma_space *ds)
{
	uint16_t n = vq->size;

	if (!n || n > HDNIC_QUEUE_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if (vq->desc_addr % 16 || vq->avail_addr % 2 || vq->used_addr % 4)
		return -EINVAL;
	vq->desc = dma_translate(ds, vq->desc_addr, desc_bytes(n), DMA_PROT_READ);
	vq->avail = dma_translate(ds, vq->avail_addr, avail_bytes(n), DMA_PROT_READ);
	vq->used = dma_translate(ds, vq->used_addr, used_bytes(n),
				 DMA_PROT_READ | DMA_PROT_WRITE);
	if (!vq->desc || !vq->avail || !vq->used)
		return -EFAULT;
	vq->as = ds;
	vq->dma_gen = ds->gen;
	return 0;
}

int virtq_attach(struct virtq *vq, struct dma_space *ds, bool event_idx, enum virtq_dir dir)
{
	int err;

	vq->attached = false;
	err = resolve(vq, ds);
	if (err)
		return err;
	vq->event_idx = event_idx;
	vq->dir = dir;
	vq->last_avail = 0;
	vq->avail_ahead = 0;
	vq->used_idx = 0;
	vq->signalled_valid = false;
	vq->notify_enabled = true;
	vq->attached = true;
	return 0;
}

void virtq_detach(struct virtq *vq)
{
	vq->attached = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
}

int virtq_revalidate(struct virtq *vq, struct dma_space *ds)
{
	int err;

	if (!vq->attached || (vq->as == ds && ds && vq->dma_gen == ds->gen))
		return 0;
	err = resolve(vq, ds);
	if (err)
		virtq_detach(vq);
	return err;
}

int virtq_avail_pending(const struct virtq *vq)
{
	uint16_t pending = (uint16_t)(READ_ONCE(vq->avail->idx) - vq->last_avail);

	return pending > vq->size ? -ERANGE : pending;
}

/* Descriptor flags against the queue's direction: the access needed, or 0 if wrong. */
static uint32_t desc_access(const struct virtq *vq, const struct virtq_chain *c, uint16_t flags)
{
	bool writable = flags & VRING_DESC_F_WRITE;

	switch (vq->dir) {
	case VIRTQ_TO_DEVICE:
		return writable ? 0 : DMA_PROT_READ;
	case VIRTQ_FROM_DEVICE:
		return writable ? DMA_PROT_WRITE : 0;
	default:
		/* Readable descriptors first, then writable ones (virtio 2.7.4). */
		if (!writable && c->nr > c->nr_out)
			return 0;
		return writable ? DMA_PROT_WRITE : DMA_PROT_READ;
	}
}

int virtq_pop(struct virtq *vq, struct dma_space *ds, struct virtq_chain *c)
{
	uint16_t idx;

	if (!vq->avail_ahead) {
		/* One index read per batch: the driver's cache line stays put meanwhile. */
		int pending = virtq_avail_pending(vq);

		if (pending <= 0)
			return pending;
		vq->avail_ahead = (uint16_t)pending;
		smp_rmb();	/* ring entries after the index */
	}
	idx = READ_ONCE(vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	if (idx >= vq->size)
		return -EINVAL;

	c->head = idx;
	c->nr = 0;
	c->nr_out = 0;
	c->total = 0;
	for (;;) {
		struct vring_desc d;
		uint32_t need;
		uint8_t *p;

		if (c->nr >= vq->size)
			return -ELOOP;
		d.addr = READ_ONCE(vq->desc[idx].addr);
		d.len = READ_ONCE(vq->desc[idx].len);
		d.flags = READ_ONCE(vq->desc[idx].flags);
		d.next = READ_ONCE(vq->desc[idx].next);
		if (d.flags & VRING_DESC_F_INDIRECT)
			return -EINVAL;	/* not negotiated */
		need = desc_access(vq, c, d.flags);
		if (!need)
			return -EINVAL;
		p = dma_translate(ds, d.addr, d.len, need);
		if (!p && d.len)
			return -EFAULT;
		c->iov[c->nr].base = p;
		c->iov[c->nr].len = d.len;
		c->iov[c->nr].iova = d.addr;
		if (need == DMA_PROT_READ)
			c->nr_out++;
		c->nr++;
		c->total += d.len;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->size)
			return -EINVAL;
		idx = d.next;
	}
	vq->last_avail++;
	vq->avail_ahead--;
	return 1;
}

/* The device wrote len bytes at offset off of the used ring. */
static inline void used_written(const struct virtq *vq, uint64_t off, uint64_t len)
{
	dma_dirty_mark(vq->as->dirty, vq->used_addr + off, len);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	uint16_t slot = vq->used_idx & (vq->size - 1);
	struct vring_used_elem *e = &vq->used->ring[slot];

	WRITE_ONCE(e->id, head);
	WRITE_ONCE(e->len, len);
	used_written(vq, 4 + 8 * (uint64_t)slot, 8);
	vq->used_idx++;
}

void virtq_publish(struct virtq *vq)
{
	smp_wmb();	/* entries before the index */
	WRITE_ONCE(vq->used->idx, vq->used_idx);
	used_written(vq, 2, 2);
}

bool virtq_should_interrupt(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;
	bool valid = vq->signalled_valid;

	smp_mb();	/* used->idx store before reading the driver's wishes */
	vq->signalled_used = now;
	vq->signalled_valid = true;
	if (!vq->event_idx)
		return !(READ_ONCE(vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	return vring_need_event(READ_ONCE(vq->avail->ring[vq->size]), now, old);
}

void virtq_set_notify(struct virtq *vq, bool enable)
{
	vq->notify_enabled = enable;
	if (vq->event_idx) {
		/* Far ahead: the driver never crosses it while we poll. */
		uint16_t ev = enable ? vq->last_avail : (uint16_t)(vq->last_avail + 0x8000);

		WRITE_ONCE(*(uint16_t *)&vq->used->ring[vq->size], ev);
		used_written(vq, 4 + 8 * (uint64_t)vq->size, 2);
	} else {
		WRITE_ONCE(vq->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY);
		used_written(vq, 0, 2);
	}
	smp_mb();	/* publish before the caller rechecks avail->idx */
}
