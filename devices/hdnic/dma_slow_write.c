// SPDX-License-Identifier: MIT
/*
 * The slow path's writing side (dma_slow.h): what the device wrote is
 * recorded (dma_slow_written) and written back at the end of a loop pass
 * with DMA_WRITE, data first, used indexes last, as a batch that carries
 * the interrupts held in that pass; they are released once the client
 * acknowledged the whole batch.
 */
#include "devices/hdnic/dma_slow_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

void slow_release(struct dma_slow *s, uint64_t vd_irqs, const uint8_t *qp_irqs)
{
	struct vdev *vd = s->vd;

	vd->irq_want |= vd_irqs;
	for (unsigned k = 0; k < vd->nr_qps; k++)
		vd->qps[k]->irq_want |= qp_irqs[k];
	s->releasing = true;
	vdev_flush_irqs(vd);
	s->releasing = false;
}

/* Batches complete in order: release the interrupts of those fully acknowledged. */
static void batches_reap(struct dma_slow *s)
{
	while (s->b_nr && !s->batch[s->b_head].left) {
		struct slow_batch b = s->batch[s->b_head];

		s->b_head = (s->b_head + 1) % SLOW_BATCHES;
		s->b_nr--;
		slow_release(s, b.vd_irqs, b.qp_irqs);
	}
}

static void write_done(void *ctx, int err, const struct vfu_req *r)
{
	struct dma_slow *s = ctx;

	if (err) {
		slow_fail(s, err, r, NULL);
		return;
	}
	for (unsigned i = 0; i < s->b_nr; i++) {
		struct slow_batch *b = &s->batch[(s->b_head + i) % SLOW_BATCHES];

		if (r->seq >= b->first_seq && r->seq <= b->last_seq && b->left) {
			b->left--;
			break;
		}
	}
	batches_reap(s);
}

/* The queue whose used ring holds [iova, iova+len) wholly, or -1. */
static int used_ring_of(const struct dma_slow *s, uint64_t iova, uint64_t len)
{
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		const struct slow_q *q = &s->q[i];

		if (q->vq && iova >= q->used_addr && iova + len <= q->used_addr + used_bytes(q->size))
			return (int)i;
	}
	return -1;
}

/* Where the bytes the device wrote at iova are now: a private used ring, or the space. */
static const uint8_t *written_source(struct dma_slow *s, uint64_t iova, uint64_t len)
{
	int i = used_ring_of(s, iova, len);

	if (i >= 0 && bound(&s->q[i]))
		return (const uint8_t *)s->q[i].used + (iova - s->q[i].used_addr);
	return dma_translate(&s->vd->as, iova, len, DMA_PROT_WRITE);
}

/* Requests a write-back of [iova, iova+len) needs (0: copied in place or nothing). */
static unsigned write_cost(struct dma_slow *s, uint64_t iova, uint64_t len)
{
	const struct dma_region *r = dma_space_region(&s->vd->as, iova, len);
	uint32_t max = xfer_max(s);

	return r && r->nofd ? (unsigned)((len + max - 1) / max) : 0;
}

/* Write [iova, iova+len) back to the client; -errno only if the connection failed. */
static int write_back(struct dma_slow *s, uint64_t iova, uint64_t len, unsigned *sent)
{
	const struct dma_region *r = dma_space_region(&s->vd->as, iova, len);
	const uint8_t *src = written_source(s, iova, len);
	uint32_t max = xfer_max(s);

	if (!r || !src || !(r->prot & DMA_PROT_WRITE))
		return 0;	/* unmapped since: nothing to write to */
	dma_dirty_mark(s->vd->as.dirty, iova, len);
	if (!r->nofd) {
		uint8_t *dst = r->host + (iova - r->iova);

		return dst != src ? slow_guarded_copy(dst, src, len) : 0;
	}
	for (uint64_t off = 0; off < len;) {
		uint32_t n = (uint32_t)MIN(len - off, (uint64_t)max);
		int err = vfu_req_send(conn(s), VFIO_USER_DMA_WRITE, iova + off, n, src + off,
				       NULL, write_done, s);

		if (err)
			return err;
		s->vd->stats.dma_msgs++;
		(*sent)++;
		off += n;
	}
	return 0;
}

/*
 * End of a loop pass: write back what the device wrote, in order (data,
 * used entries, avail_event), the used indexes last, as one batch that
 * carries the interrupts held in this pass.
 */
void slow_flush_writes(struct dma_slow *s)
{
	struct slow_batch *b;
	unsigned room = vfu_reqs_room(&conn(s)->reqs), need = 0, done = 0, sent = 0;
	unsigned epoch = s->epoch;
	bool hdrs = false;

	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
		hdrs |= s->q[i].hdr_dirty && bound(&s->q[i]);
	if (!s->nr_wr && !hdrs && !s->held)
		return;
	if (s->b_nr == SLOW_BATCHES)
		return;		/* the client is behind: wait for its replies */
	b = &s->batch[(s->b_head + s->b_nr) % SLOW_BATCHES];
	memset(b, 0, sizeof(*b));
	b->first_seq = conn(s)->reqs.seq + 1;
	for (; done < s->nr_wr; done++) {
		unsigned cost = write_cost(s, s->wr[done].iova, s->wr[done].len);
		int err;

		if (cost > VFU_REQ_MAX) {
			slow_fail(s, -E2BIG, NULL, "writing back");
			return;
		}
		if (need + cost > room)
			break;
		need += cost;
		err = write_back(s, s->wr[done].iova, s->wr[done].len, &sent);
		if (epoch != s->epoch)
			return;
		if (err) {
			slow_fail(s, err, NULL, "writing back");
			return;
		}
	}
	memmove(s->wr, s->wr + done, (s->nr_wr - done) * sizeof(*s->wr));
	s->nr_wr -= done;
	if (!s->nr_wr) {
		for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
			struct slow_q *q = &s->q[i];

			if (!q->hdr_dirty || !bound(q))
				continue;
			if (need + write_cost(s, q->used_addr, 4) > room)
				break;
			need += write_cost(s, q->used_addr, 4);
			q->hdr_dirty = false;
			if (write_back(s, q->used_addr, 4, &sent) || epoch != s->epoch) {
				if (epoch == s->epoch)
					slow_fail(s, -EFAULT, NULL, "writing back");
				return;
			}
		}
		hdrs = false;
		for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
			hdrs |= s->q[i].hdr_dirty && bound(&s->q[i]);
		if (!hdrs) {
			/* what was written before the interrupts is all in this batch or earlier */
			b->vd_irqs = s->held_vd;
			memcpy(b->qp_irqs, s->held_qp, sizeof(b->qp_irqs));
			s->held = false;
			s->held_vd = 0;
			memset(s->held_qp, 0, sizeof(s->held_qp));
		}
	}
	b->last_seq = conn(s)->reqs.seq;
	b->left = sent;
	s->b_nr++;
	batches_reap(s);
}

void dma_slow_written(struct dma_slow *s, uint64_t iova, uint64_t len)
{
	struct slow_wr *last;

	if (!s->active || s->broken || !len)
		return;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		struct slow_q *q = &s->q[i];

		if (q->vq && iova == q->used_addr && len <= 4) {
			q->hdr_dirty = true;	/* flags/idx: after everything else */
			return;
		}
	}
	last = s->nr_wr ? &s->wr[s->nr_wr - 1] : NULL;
	if (last && iova >= last->iova && iova <= last->iova + last->len) {
		uint64_t merged = MAX(last->len, iova + len - last->iova);

		/* one range is one region, and a used ring (the private copy) or not */
		if (dma_space_region(&s->vd->as, last->iova, merged) &&
		    used_ring_of(s, last->iova, last->len) == used_ring_of(s, iova, len)) {
			last->len = merged;
			return;
		}
	}
	if (s->nr_wr == s->cap_wr) {
		unsigned cap = s->cap_wr ? 2 * s->cap_wr : 64;
		struct slow_wr *wr = realloc(s->wr, cap * sizeof(*wr));

		if (!wr) {
			slow_fail(s, -ENOMEM, NULL, "recording a device write");
			return;
		}
		s->wr = wr;
		s->cap_wr = cap;
	}
	s->wr[s->nr_wr++] = (struct slow_wr){ .iova = iova, .len = len };
}

bool dma_slow_hold_irqs(struct dma_slow *s)
{
	struct vdev *vd = s->vd;

	if (!s->active || s->broken || s->releasing)
		return false;
	s->held_vd |= vd->irq_want;
	vd->irq_want = 0;
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		s->held_qp[k] |= vd->qps[k]->irq_want;
		vd->qps[k]->irq_want = 0;
	}
	s->held = true;
	return true;
}
