/* SPDX-License-Identifier: MIT */
/*
 * The one device side of a virtio 1.x split virtqueue, used by hdvm's
 * virtio devices (rings in guest RAM) and by hdnic's functions (rings in a
 * client's DMA space).  What differs between them is how a ring address
 * becomes a host pointer and what a device write must record, so both come
 * in as a struct vq_mem: a translate callback (hdvm: guest RAM; hdnic: the
 * PASID's checked DMA space) and a "written" hook (dirty tracking for
 * migration; NULL when nothing tracks).
 *
 * The walker trusts nothing it reads from the rings: each field of a
 * descriptor is read once, every index is range checked, every buffer is
 * translated with the access it needs (so it lies entirely inside memory
 * the device may touch that way), a chain with more descriptors than the
 * queue has is a loop, and a chain whose lengths add up beyond 32 bits is
 * refused.  A violation comes back as a negative errno; the device then
 * sets NEEDS_RESET and stops using the queue.
 *
 * Hot paths: the avail index is read once per batch (avail_ahead), used
 * entries become visible in one store per batch (vq_publish), notifications
 * are suppressed with EVENT_IDX or the flags.  vq_pop() calls the translate
 * through the queue's ops; a device that wants a direct call instead
 * passes its translate function to vq_pop_with(), which is inlined.
 */
#ifndef HDVM_VIRTQ_H
#define HDVM_VIRTQ_H

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/compiler.h"

struct state_buf;

#define VQ_MAX_SIZE	2048
#define VQ_NO_VECTOR	0xffff

/* The access a translation is asked for (hdnic's DMA_PROT_* have the same values). */
#define VQ_ACCESS_READ	(1u << 0)	/* the device reads: rings, driver-to-device buffers */
#define VQ_ACCESS_WRITE	(1u << 1)	/* the device writes: used ring, device-to-driver buffers */

/* Host pointer for [addr, addr+len) if the device may access all of it that way, else NULL. */
typedef void *vq_translate_fn(void *opaque, uint64_t addr, uint64_t len, uint32_t access);
/* The device wrote [addr, addr+len) (after the write). */
typedef void vq_written_fn(void *opaque, uint64_t addr, uint64_t len);

struct vq_mem_ops {
	vq_translate_fn *translate;
	vq_written_fn *written;		/* NULL: no dirty tracking */
};

/* The memory a queue's rings and buffers live in. */
struct vq_mem {
	const struct vq_mem_ops *ops;
	void *opaque;
};

/* Which way a queue's buffers go. */
enum vq_dir {
	VQ_TO_DEVICE,		/* TX: every descriptor device-readable */
	VQ_FROM_DEVICE,		/* RX: every descriptor device-writable */
	VQ_BOTH,		/* control: readable ones, then writable ones */
};

struct vq_iov {
	uint8_t *base;
	uint64_t addr;			/* in the queue's memory, for the written hook */
	uint32_t len;
};

/* One available chain, translated; zero-length descriptors are left out. */
struct vq_chain {
	uint16_t head;
	uint16_t nr;
	uint16_t nr_out;		/* the leading device-readable ones */
	uint32_t total;			/* sum of the lengths */
	struct vq_iov iov[VQ_MAX_SIZE];
};

struct vq {
	/* Registers the driver programs through the common config. */
	uint16_t size;
	uint16_t max_size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc_addr, avail_addr, used_addr;

	/* Ring position: this is what a migration must carry. */
	uint16_t last_avail;		/* next avail entry to consume */
	uint16_t used_idx;		/* our copy of used->idx */
	uint16_t signalled_used;	/* used idx at the last interrupt decision */
	bool signalled_valid;
	bool broken;			/* the driver broke the ring: never touched again */

	/* Runtime, valid while attached. */
	bool attached;
	bool event_idx;
	enum vq_dir dir;
	uint16_t avail_ahead;		/* entries past last_avail known available: no re-read */
	uint16_t published;		/* used->idx as last stored */
	struct vq_mem mem;
	unsigned mem_gen;		/* for the owner: generation of the map the rings came from */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

/* Power-on registers and position (size = max_size, no vector, disabled). */
void vq_reset(struct vq *q, uint16_t max_size);
/*
 * Translate the rings in mem (the position is kept, so this also resumes a
 * loaded queue).  -EINVAL for a bad size or misaligned ring, -EFAULT if a
 * ring is not entirely inside memory the device may access.
 */
int vq_attach(struct vq *q, const struct vq_mem *mem, bool event_idx, enum vq_dir dir);
void vq_detach(struct vq *q);

/* Entries the driver has made available; -ERANGE if it claims more than the queue holds. */
static inline int vq_pending(const struct vq *q)
{
	uint16_t pending = (uint16_t)(READ_ONCE(q->avail->idx) - q->last_avail);

	return pending > q->size ? -ERANGE : pending;
}

/* The access a descriptor asks for in this queue, or 0 if its direction is wrong. */
static inline uint32_t vq_desc_access(const struct vq *q, uint16_t flags, bool *seen_write)
{
	bool writable = flags & VRING_DESC_F_WRITE;

	switch (q->dir) {
	case VQ_TO_DEVICE:
		return writable ? 0 : VQ_ACCESS_READ;
	case VQ_FROM_DEVICE:
		return writable ? VQ_ACCESS_WRITE : 0;
	default:
		/* Readable descriptors first, then writable ones (virtio 2.7.4). */
		if (!writable)
			return *seen_write ? 0 : VQ_ACCESS_READ;
		*seen_write = true;
		return VQ_ACCESS_WRITE;
	}
}

/*
 * Take the next available chain, translating with translate(opaque, ...).
 * 1 = got one, 0 = ring empty, or the driver broke the ring (nothing is
 * consumed then):
 *   -ERANGE      avail index more than the queue size ahead
 *   -ECHRNG      head or next index out of range
 *   -ELOOP       more descriptors than the queue has
 *   -EFAULT      buffer not entirely inside memory the device may access
 *   -EOVERFLOW   lengths add up beyond 32 bits
 *   -EOPNOTSUPP  indirect descriptor (not offered)
 *   -EACCES      a buffer with the wrong direction
 */
static inline __attribute__((always_inline)) int
vq_pop_with(struct vq *q, struct vq_chain *c, vq_translate_fn *translate, void *opaque)
{
	bool seen_write = false;
	uint16_t idx, seen = 0;
	uint64_t total = 0;

	if (!q->avail_ahead) {
		/* One index read per batch: the driver's cache line stays put meanwhile. */
		int pending = vq_pending(q);

		if (pending <= 0)
			return pending;
		q->avail_ahead = (uint16_t)pending;
		smp_rmb();	/* ring entries after the index that published them */
	}
	idx = READ_ONCE(q->avail->ring[q->last_avail & (q->size - 1)]);
	if (idx >= q->size)
		return -ECHRNG;
	c->head = idx;
	c->nr = 0;
	c->nr_out = 0;
	for (;;) {
		uint64_t addr = READ_ONCE(q->desc[idx].addr);
		uint32_t len = READ_ONCE(q->desc[idx].len);
		uint16_t flags = READ_ONCE(q->desc[idx].flags);
		uint16_t next = READ_ONCE(q->desc[idx].next);
		uint32_t access;

		if (++seen > q->size)
			return -ELOOP;
		if (flags & VRING_DESC_F_INDIRECT)
			return -EOPNOTSUPP;	/* not offered */
		access = vq_desc_access(q, flags, &seen_write);
		if (!access)
			return -EACCES;
		total += len;
		if (total > UINT32_MAX)
			return -EOVERFLOW;
		if (len) {
			uint8_t *p = translate(opaque, addr, len, access);

			if (!p)
				return -EFAULT;
			c->iov[c->nr].base = p;
			c->iov[c->nr].addr = addr;
			c->iov[c->nr].len = len;
			c->nr_out += access == VQ_ACCESS_READ;
			c->nr++;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= q->size)
			return -ECHRNG;
		idx = next;
	}
	c->total = (uint32_t)total;
	q->last_avail++;
	q->avail_ahead--;
	return 1;
}

/* vq_pop_with() through the queue's own memory ops. */
int vq_pop(struct vq *q, struct vq_chain *c);
/* What an error of vq_attach()/vq_pop() means, for messages. */
const char *vq_strerror(int err);

/* Give back the chain vq_pop() just returned (nothing was pushed since). */
static inline void vq_unpop(struct vq *q)
{
	q->last_avail--;
	q->avail_ahead++;
}
/* Return a chain; visible to the driver after vq_publish(). */
void vq_push(struct vq *q, uint16_t head, uint32_t len);
/* Take back the entry vq_push() just wrote, before it was published. */
static inline void vq_unpush(struct vq *q)
{
	q->used_idx--;
}
/* Make the pushed entries visible (one index store), telling the written hook. */
void vq_publish(struct vq *q);
/* Does the driver want an interrupt for what was published (EVENT_IDX or NO_INTERRUPT)? */
bool vq_should_interrupt(struct vq *q);
/*
 * Ask the driver for notifications (enable) or not.  After enabling, the
 * caller must look at vq_pending() again: that closes the lost-kick race.
 */
void vq_set_notify(struct vq *q, bool enable);
/* The device wrote the first len bytes of c's writable buffers: tell the written hook. */
void vq_chain_written(const struct vq *q, const struct vq_chain *c, uint32_t len);

/* hdvm's devices: rings and buffers in guest RAM (devices/virtio/virtq_ram.c). */
struct guest_mem;
struct vq_mem vq_guest_ram(struct guest_mem *m);

/* Registers and position; the runtime part is rebuilt by vq_attach(). */
void vq_save(const struct vq *q, struct state_buf *sb);
int vq_load(struct vq *q, struct state_buf *sb, uint16_t max_size);

#endif
