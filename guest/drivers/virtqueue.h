/* SPDX-License-Identifier: MIT */
/*
 * Driver side of a split virtqueue (virtio 1.x, 2.7) for poll-mode use
 * (interrupts only while the idle mode sleeps).
 * Each buffer is one descriptor whose index doubles as the buffer id.
 * Everything read from the device side of the ring (used->idx, used
 * elements) is checked before use; a violation marks the queue broken
 * and is never acted upon.
 *
 * Kicks: the avail index is published, then written to the queue's doorbell
 * slot when the device has one (hdnic: shared memory, no VM exit), and the
 * notify register is written only when the device's suppression state asks
 * for it (EVENT_IDX: vring_need_event with "old" = the avail index at the
 * previous kick; otherwise used->flags without NO_NOTIFY).
 */
#ifndef HDGUEST_VIRTQUEUE_H
#define HDGUEST_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The largest ring the driver uses: deep rings let a receiver whose vCPU the
 * host deschedules for a few ms find its backlog waiting instead of dropped
 * (the device offers its own maximum; the smaller one wins).  2048 buffers of
 * 2 KiB each way fit below the DMA area's 16 MiB limit; only the entries of
 * the negotiated size are ever touched.
 */
#define VQ_MAX_SIZE		2048

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

/* One queue's rings, each on its own page; laid out for VQ_MAX_SIZE entries. */
struct vring_area {
	struct vring_desc desc[VQ_MAX_SIZE];
	struct {
		uint16_t flags;
		uint16_t idx;
		uint16_t ring[VQ_MAX_SIZE + 1];	/* + used_event at ring[size] */
	} avail __attribute__((aligned(4096)));
	struct {
		uint16_t flags;
		uint16_t idx;
		struct vring_used_elem ring[VQ_MAX_SIZE];
		uint16_t avail_event_max;	/* avail_event lives at ring[size] */
	} used __attribute__((aligned(4096)));
} __attribute__((aligned(4096)));

struct virtq {
	const char *name;		/* "rx", "tx": for messages */
	uint16_t index;
	uint16_t size;			/* power of two, <= VQ_MAX_SIZE */
	bool event_idx;
	struct vring_area *ring;
	uint64_t notify_addr;
	uint64_t doorbell_addr;		/* 0: no doorbell */

	uint16_t avail_idx;		/* our next avail index (published or not) */
	uint16_t kicked_idx;		/* avail index at the previous kick */
	uint16_t last_used;		/* next used entry to consume */
	uint16_t used_ahead;		/* used entries past last_used already checked */
	uint16_t used_event_base;	/* last_used when used_event was last pushed ahead */
	bool irq_armed;			/* used_event asks for an interrupt */
	uint16_t inflight;		/* buffers the device holds */
	bool owned[VQ_MAX_SIZE];	/* descriptor i is with the device */
	const char *error;		/* set once the device broke the ring */

	uint64_t kicks, notifies;
};

/* Clear the state; size/notify come from the transport, which clears the rings. */
void virtq_init(struct virtq *vq, const char *name, uint16_t index, struct vring_area *ring,
		bool event_idx);
void virtq_set_transport(struct virtq *vq, uint16_t size, uint64_t notify_addr,
			 uint64_t doorbell_addr);

/* Make buffer `id` (descriptor id) available; -1 if id is bad or already posted. */
int virtq_post(struct virtq *vq, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags);
/*
 * A two-descriptor chain at ids id, id + 1: a device-readable buffer, then a
 * device-writable one (a control command and its ack).  The used entry names
 * id.  -1 if the ids are bad or either is posted.
 */
int virtq_post_out_in(struct virtq *vq, uint16_t id, uint64_t out, uint32_t out_len,
		      uint64_t in, uint32_t in_len);
/* Publish what was posted since the last kick, ring the doorbell, notify if asked. */
void virtq_kick(struct virtq *vq);
/* Publish and always notify: for a queue the device does not poll (control). */
void virtq_kick_notify(struct virtq *vq);
/*
 * Next used buffer: 1 (id, len filled), 0 (none), -1 (the device broke the
 * ring; vq->error says how, and the queue is dead from then on).
 */
int virtq_get_used(struct virtq *vq, uint16_t *id, uint32_t *len);

/*
 * Used-buffer interrupts (idle mode): ask the device to interrupt on the next
 * used buffer (EVENT_IDX: used_event = last_used; else clear NO_INTERRUPT),
 * then look again.  False if a used buffer is already there: do not sleep.
 * virtq_irq_disable() (and every virtq_get_used) turns them off again.
 */
bool virtq_irq_enable(struct virtq *vq);
void virtq_irq_disable(struct virtq *vq);

/* The notification-suppression test of virtio 2.7.10 (same as Linux's). */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/*
 * Raw access for the robustness tests (app hostile): write descriptors and
 * avail entries with no checks at all, then kick with a forced notify.
 */
struct vring_desc *virtq_raw_desc(struct virtq *vq, uint16_t i);
void virtq_raw_avail_put(struct virtq *vq, uint16_t head);
void virtq_raw_avail_advance(struct virtq *vq, uint16_t n);
void virtq_raw_kick(struct virtq *vq);

#endif
