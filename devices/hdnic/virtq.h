/* SPDX-License-Identifier: MIT */
/*
 * Device side of a virtio split virtqueue whose rings live in DMA memory.
 * The walker trusts nothing it reads from the rings: every index is range
 * checked, every buffer goes through dma_translate(), a chain longer than
 * the queue is a loop.  Any violation is reported as a negative errno and
 * the caller puts the device into NEEDS_RESET.
 */
#ifndef HDNIC_VIRTQ_H
#define HDNIC_VIRTQ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/dma_space.h"
#include "devices/hdnic/hdnic_vf_abi.h"

#define VIRTQ_NO_VECTOR	0xffff

/* Which way a queue's buffers go. */
enum virtq_dir {
	VIRTQ_TO_DEVICE,	/* TX: every descriptor device-readable */
	VIRTQ_FROM_DEVICE,	/* RX: every descriptor device-writable */
	VIRTQ_BOTH,		/* control: readable ones, then writable ones */
};

struct virtq {
	/* Programmed by the driver through the common config. */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc_addr, avail_addr, used_addr;

	/* Runtime, valid while attached. */
	bool attached;
	bool event_idx;
	enum virtq_dir dir;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	const struct dma_space *as;	/* address space the pointers came from */
	unsigned dma_gen;	/* and its generation */
	uint16_t last_avail;	/* next avail entry to consume */
	uint16_t avail_ahead;	/* entries past last_avail known available: no re-read */
	uint16_t used_idx;	/* our copy of used->idx */
	uint16_t signalled_used;	/* used idx at the last interrupt */
	bool signalled_valid;
	bool notify_enabled;
};

struct virtq_iov {
	uint8_t *base;
	uint32_t len;
	uint64_t iova;		/* where base came from: what a write dirties */
};

struct virtq_chain {
	uint16_t head;
	uint16_t nr;
	uint16_t nr_out;	/* leading device-readable descriptors */
	uint64_t total;
	struct virtq_iov iov[HDNIC_QUEUE_MAX_SIZE];
};

/* Reset the driver-visible registers to their power-on values. */
void virtq_reset(struct virtq *vq);
/* Resolve the rings in ds; -EFAULT/-EINVAL if they are not mapped or malformed. */
int virtq_attach(struct virtq *vq, struct dma_space *ds, bool event_idx, enum virtq_dir dir);
void virtq_detach(struct virtq *vq);
/* Re-resolve after the DMA map changed; -EFAULT if the rings went away. */
int virtq_revalidate(struct virtq *vq, struct dma_space *ds);

/*
 * Take the next available chain.  1 = got one, 0 = ring empty, negative
 * errno = the driver broke the ring (bad index, bad address, loop, wrong
 * direction, avail index impossibly far ahead).
 */
int virtq_pop(struct virtq *vq, struct dma_space *ds, struct virtq_chain *c);
/* Give back the chain virtq_pop() just took (the device decided to wait). */
static inline void virtq_unpop(struct virtq *vq)
{
	vq->last_avail--;
	vq->avail_ahead++;
}
/* Number of entries the driver has made available; negative if impossible. */
int virtq_avail_pending(const struct virtq *vq);
/* Return a chain to the driver; visible after virtq_publish(). */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* Take back the entry virtq_push() just wrote, before it was published. */
static inline void virtq_unpush(struct virtq *vq)
{
	vq->used_idx--;
}
void virtq_publish(struct virtq *vq);
/* Does the driver want an interrupt for what we published? Updates state. */
bool virtq_should_interrupt(struct virtq *vq);
/*
 * Ask the driver to notify (enable) or not (disable).  After enabling, the
 * caller must recheck virtq_avail_pending(): this closes the lost-wakeup race.
 */
void virtq_set_notify(struct virtq *vq, bool enable);

#endif
