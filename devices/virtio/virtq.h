/* SPDX-License-Identifier: MIT */
/*
 * Device side of a virtio 1.x split virtqueue whose rings live in guest RAM.
 *
 * The walker trusts nothing it reads from the rings: each field of a
 * descriptor is read once, every index is range checked, every buffer is
 * translated with gpa_to_hva() (so it lies entirely inside one RAM range),
 * a chain with more descriptors than the queue has is a loop, and a chain
 * whose lengths add up beyond 32 bits is refused.  A violation comes back as
 * a negative errno; the transport then sets DEVICE_NEEDS_RESET and stops
 * using the queue.  Nothing outside guest RAM is ever read or written.
 */
#ifndef HDVM_VIRTQ_H
#define HDVM_VIRTQ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

struct guest_mem;
struct state_buf;

#define VQ_MAX_SIZE	2048
#define VQ_NO_VECTOR	0xffff

struct vq_iov {
	uint8_t *base;
	uint32_t len;
};

/* One available chain, translated; zero-length descriptors are left out. */
struct vq_chain {
	uint16_t head;
	uint16_t nr;
	uint32_t total;			/* sum of the lengths */
	struct vq_iov iov[VQ_MAX_SIZE];
};

struct vq {
	/* Registers the driver programs through the common config. */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Ring position: this is what a migration must carry. */
	uint16_t last_avail;		/* next avail entry to consume */
	uint16_t used_idx;		/* our copy of used->idx */
	uint16_t signalled_used;	/* used idx at the last interrupt decision */
	bool signalled_valid;
	bool broken;			/* the driver broke the ring: never touched again */

	/* Runtime, valid while ready. */
	bool ready;
	bool event_idx;
	bool device_writes;		/* RX: every buffer is device-writable */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

/* Power-on registers and position (size = max_size, no vector, disabled). */
void vq_reset(struct vq *q, uint16_t max_size);
/*
 * Translate the rings (the position is kept, so this also resumes a loaded
 * queue).  -EINVAL for a bad size or misaligned ring, -EFAULT if a ring is
 * not entirely inside guest RAM.
 */
int vq_attach(struct vq *q, const struct guest_mem *m, bool event_idx, bool device_writes);
void vq_detach(struct vq *q);

/* Entries the driver has made available; -ERANGE if it claims more than the queue holds. */
int vq_pending(const struct vq *q);
/*
 * Take the next available chain.  1 = got one, 0 = ring empty, or the
 * driver broke the ring:
 *   -ERANGE      avail index more than the queue size ahead
 *   -ECHRNG      head or next index out of range
 *   -ELOOP       more descriptors than the queue has
 *   -EFAULT      buffer not entirely inside guest RAM
 *   -EOVERFLOW   lengths add up beyond 32 bits
 *   -EOPNOTSUPP  indirect descriptor (not offered)
 *   -EACCES      device-writable TX buffer or read-only RX buffer
 */
int vq_pop(struct vq *q, const struct guest_mem *m, struct vq_chain *c);
/* What an error of vq_attach()/vq_pop() means, for messages. */
const char *vq_strerror(int err);
/* Give back the chain vq_pop() just returned (nothing was pushed since). */
void vq_unpop(struct vq *q);
/* Return a chain; visible to the driver after vq_publish(). */
void vq_push(struct vq *q, uint16_t head, uint32_t len);
void vq_publish(struct vq *q);
/* Does the driver want an interrupt for what was published (EVENT_IDX or NO_INTERRUPT)? */
bool vq_should_interrupt(struct vq *q);
/*
 * Ask the driver for notifications (enable) or not.  After enabling, the
 * caller must look at vq_pending() again: that closes the lost-kick race.
 */
void vq_set_notify(struct vq *q, bool enable);

/* Registers and position; the runtime part is rebuilt by vq_attach(). */
void vq_save(const struct vq *q, struct state_buf *sb);
int vq_load(struct vq *q, struct state_buf *sb, uint16_t max_size);

#endif
