/* SPDX-License-Identifier: MIT */
/*
 * The slow path's state (dma_slow.h), shared by its three parts:
 * dma_slow.c (binding, triggers, lifecycle, errors), dma_slow_read.c
 * (refreshing the private ring copies with DMA_READ) and dma_slow_write.c
 * (writing device writes back with DMA_WRITE, holding interrupts).
 */
#ifndef HDNIC_DMA_SLOW_INT_H
#define HDNIC_DMA_SLOW_INT_H

#include "devices/hdnic/dma_slow.h"
#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"

#define SLOW_BATCHES	32	/* write-backs in flight, each with the interrupts it holds */

/* One queue of the function, with the copies of its rings the fast path uses. */
struct slow_q {
	struct vq *vq;			/* NULL: slot free */
	struct qp *qp;			/* NULL: the control queue */
	unsigned dir;			/* QP_RX / QP_TX */
	unsigned queue;			/* the driver's number */
	uint16_t db_seen;
	uint16_t size;
	uint64_t desc_addr, avail_addr, used_addr;
	struct vring_desc *desc, *tdesc;	/* private copy, the one being fetched */
	struct vring_avail *avail, *tavail;
	struct vring_used *used;
	uint16_t seen;			/* avail index the private copy shows */
	uint16_t commit;		/* ... will show when the fetches are in */
	bool want;			/* refresh asked */
	bool busy;			/* in the refresh under way */
	bool hdr_dirty;			/* used flags/idx to write back, after the rest */
};

struct slow_wr {
	uint64_t iova, len;
};

struct slow_batch {
	uint64_t first_seq, last_seq;	/* its requests */
	unsigned left;			/* not acknowledged yet */
	uint64_t vd_irqs;		/* interrupts released when it is complete */
	uint8_t qp_irqs[HDNIC_MAX_QPS_PER_DEV];
};

enum slow_phase { SLOW_IDLE, SLOW_RINGS, SLOW_BUFS };

struct dma_slow {
	struct vdev *vd;
	bool active;			/* a client with fd-less memory is attached */
	bool broken;			/* NEEDS_RESET for a message error: nothing is sent */
	bool releasing;			/* vdev_flush_irqs() called to release held ones */
	unsigned epoch;			/* bumped when state is thrown away under a caller */
	struct slow_q q[VDEV_MAX_QUEUES];
	enum slow_phase phase;
	unsigned reads;			/* DMA_READs of this refresh not answered yet */
	bool walk_full;			/* the request table filled during a walk */
	int walk_err;			/* a buffer that cannot be fetched at all */
	uint64_t last_refresh_ns;
	struct slow_wr *wr;		/* device writes since the last write-back, in order */
	unsigned nr_wr, cap_wr;
	struct slow_batch batch[SLOW_BATCHES];
	unsigned b_head, b_nr;
	uint64_t held_vd;		/* interrupts waiting for the next write-back */
	uint8_t held_qp[HDNIC_MAX_QPS_PER_DEV];
	bool held;
	char error[160];
};

static inline uint32_t desc_bytes(uint16_t n) { return 16u * n; }
static inline uint32_t avail_bytes(uint16_t n) { return 6u + 2u * n; }
static inline uint32_t used_bytes(uint16_t n) { return 6u + 8u * n; }

static inline struct vfu_conn *conn(struct dma_slow *s)
{
	return &s->vd->vfu->conn;
}

static inline uint32_t xfer_max(struct dma_slow *s)
{
	uint32_t n = conn(s)->peer_max_xfer;

	return n ? n : 4096;
}

/* The queue's rings are the private copies (the fast path uses them). */
static inline bool bound(const struct slow_q *q)
{
	return q->vq && q->vq->attached && q->vq->avail == q->avail;
}

/* dma_slow.c */
void slow_fail(struct dma_slow *s, int err, const struct vfu_req *r, const char *what);
int slow_guarded_copy(void *dst, const void *src, size_t len);
/* dma_slow_read.c: start a refresh of the queues that want one */
void slow_refresh_start(struct dma_slow *s, uint64_t now);
/* dma_slow_write.c */
void slow_release(struct dma_slow *s, uint64_t vd_irqs, const uint8_t *qp_irqs);
void slow_flush_writes(struct dma_slow *s);

#endif
