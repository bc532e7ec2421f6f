// SPDX-License-Identifier: MIT
/*
 * The slow path (dma_slow.h): private ring copies refreshed with DMA_READ
 * (dma_slow_read.c), device writes written back with DMA_WRITE, interrupts
 * held until the client acknowledged the writes they announce
 * (dma_slow_write.c).  One state machine per function, driven by kicks,
 * doorbells, loop passes and the replies; this file binds queues to it,
 * triggers it, records its errors and runs its lifecycle.
 */
#include "devices/hdnic/dma_slow_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

static const char *cmd_name(uint16_t cmd)
{
	return cmd == VFIO_USER_DMA_READ ? "DMA_READ" : "DMA_WRITE";
}

static void slot_free(struct slow_q *q)
{
	if (q->vq && q->vq->avail == q->avail && q->avail)
		vq_detach(q->vq);	/* never left pointing at freed copies */
	free(q->desc);
	free(q->tdesc);
	free(q->avail);
	free(q->tavail);
	free(q->used);
	memset(q, 0, sizeof(*q));
}

/* Forget everything in flight (the caller decides about the queues). */
static void drop_flight(struct dma_slow *s)
{
	if (vfu_has_client(s->vd->vfu))
		vfu_req_cancel(conn(s), s);
	s->epoch++;
	s->phase = SLOW_IDLE;
	s->reads = 0;
	s->nr_wr = 0;
	s->b_head = s->b_nr = 0;
	s->held = false;
	s->held_vd = 0;
	memset(s->held_qp, 0, sizeof(s->held_qp));
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		s->q[i].busy = false;
		s->q[i].hdr_dirty = false;
	}
}

/* A message went wrong: the function stops with the reason, others go on. */
void slow_fail(struct dma_slow *s, int err, const struct vfu_req *r, const char *what)
{
	struct vdev *vd = s->vd;
	char why[96];

	if (s->broken)
		return;
	if (err == -ETIMEDOUT)
		snprintf(why, sizeof(why), "no reply within %llu ms",
			 (unsigned long long)(conn(s)->reqs.timeout_ns / 1000000));
	else if (err == -EPROTO)
		snprintf(why, sizeof(why), "malformed reply");
	else
		snprintf(why, sizeof(why), "%s", strerror(-err));
	if (r)
		snprintf(s->error, sizeof(s->error), "%s %#llx+%llu: %s", cmd_name(r->command),
			 (unsigned long long)r->address, (unsigned long long)r->count, why);
	else
		snprintf(s->error, sizeof(s->error), "%s: %s", what, why);
	s->broken = true;
	vd->stats.dma_msg_errors++;
	drop_flight(s);
	vdev_needs_reset(vd, "slow path (memory without an fd): %s", s->error);
}

/*
 * Copy from or into fd-backed client memory: a client that truncated the
 * file under its map turns the access into SIGBUS, caught here (dma_space.h).
 */
int slow_guarded_copy(void *dst, const void *src, size_t len)
{
	sigjmp_buf jb, *prev;

	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		return -EFAULT;
	}
	memcpy(dst, src, len);
	DMA_UNGUARD(prev);
	return 0;
}

/* ---- binding, triggers, lifecycle ---- */

void dma_slow_bind(struct dma_slow *s, struct vq *vq)
{
	struct vdev *vd = s->vd;
	struct slow_q *q = NULL, *free_q = NULL;
	struct qp *qp = NULL;
	unsigned dir = 0, queue = 0;

	if (!s->active)
		return;
	for (unsigned k = 0; k < vd->nr_qps && !qp; k++)
		for (unsigned d = 0; d < QP_NR_QUEUES; d++)
			if (&vd->qps[k]->vq[d] == vq) {
				qp = vd->qps[k];
				dir = d;
				queue = 2 * k + d;
			}
	if (!qp && vq != &vd->vn.ctrlq)
		return;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		if (s->q[i].vq == vq)
			q = &s->q[i];
		else if (!s->q[i].vq && !free_q)
			free_q = &s->q[i];
	}
	if (q && q->size != vq->size) {
		if (s->phase != SLOW_IDLE)
			dma_slow_map_changed(s);	/* reads in flight land in these copies */
		slot_free(q);
	}
	if (!q || !q->vq) {
		q = q ? q : free_q;
		if (!q)
			return;
		q->desc = calloc(1, desc_bytes(vq->size));
		q->tdesc = calloc(1, desc_bytes(vq->size));
		q->avail = calloc(1, avail_bytes(vq->size));
		q->tavail = calloc(1, avail_bytes(vq->size));
		q->used = calloc(1, used_bytes(vq->size));
		if (!q->desc || !q->tdesc || !q->avail || !q->tavail || !q->used) {
			slot_free(q);
			vq_detach(vq);	/* the fast path must not touch what we could not copy */
			slow_fail(s, -ENOMEM, NULL, "copying the rings");
			return;
		}
		q->vq = vq;
		q->size = vq->size;
		q->seen = vq->last_avail;
		q->avail->idx = vq->last_avail;
		q->used->idx = vq->published;
	}
	q->qp = qp;
	q->dir = dir;
	q->queue = qp ? queue : (unsigned)vdev_ctrlq_index(vd);
	q->desc_addr = vq->desc_addr;
	q->avail_addr = vq->avail_addr;
	q->used_addr = vq->used_addr;
	q->want = true;
	vq->desc = q->desc;
	vq->avail = q->avail;
	vq->used = q->used;
}

void dma_slow_kick(struct dma_slow *s, unsigned queue)
{
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		struct slow_q *q = &s->q[i];

		if (bound(q) && q->queue == queue) {
			q->want = true;
			slow_refresh_start(s, s->vd->nic->now_ns);
			return;
		}
	}
	vdev_kick_now(s->vd, queue);	/* not on the slow path (yet) */
}

void dma_slow_pass(struct dma_slow *s, uint64_t now)
{
	bool periodic;

	if (!s->active || s->broken)
		return;
	periodic = s->vd->running && now - s->last_refresh_ns >= SLOW_REFRESH_NS;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		struct slow_q *q = &s->q[i];
		uint16_t db;

		if (!bound(q))
			continue;
		db = q->qp && q->qp->db[q->dir] ? *q->qp->db[q->dir] : q->db_seen;
		if (db != q->db_seen || periodic) {
			q->db_seen = db;
			q->want = true;
		}
	}
	slow_refresh_start(s, now);
	if (s->active && !s->broken)
		slow_flush_writes(s);
}

void dma_slow_map_changed(struct dma_slow *s)
{
	uint8_t qp_irqs[HDNIC_MAX_QPS_PER_DEV];
	uint64_t vd_irqs;

	if (!s->active)
		return;
	/* reads in flight land in shadows that may be gone; writes need not be waited for */
	vd_irqs = s->held_vd;
	memcpy(qp_irqs, s->held_qp, sizeof(qp_irqs));
	for (unsigned i = 0; i < s->b_nr; i++) {
		const struct slow_batch *b = &s->batch[(s->b_head + i) % SLOW_BATCHES];

		vd_irqs |= b->vd_irqs;
		for (unsigned k = 0; k < HDNIC_MAX_QPS_PER_DEV; k++)
			qp_irqs[k] |= b->qp_irqs[k];
	}
	drop_flight(s);
	slow_release(s, vd_irqs, qp_irqs);
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
		s->q[i].want = s->q[i].vq != NULL;
}

void dma_slow_reset(struct dma_slow *s)
{
	drop_flight(s);
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
		slot_free(&s->q[i]);
	s->broken = false;
	s->error[0] = 0;
}

const char *dma_slow_error(const struct dma_slow *s)
{
	return s && s->error[0] ? s->error : NULL;
}

int dma_slow_create(struct vdev *vd)
{
	struct dma_slow *s = vd->slow;

	if (vd->as.slow)
		return 0;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->vd = vd;
		vd->slow = s;
	}
	dma_slow_reset(s);
	s->active = true;
	s->last_refresh_ns = vd->nic->now_ns;
	vd->as.slow = s;
	vd->nic->nr_slow++;
	pr_info("%s: memory without an fd mapped: this function's DMA goes through "
		"DMA_READ/DMA_WRITE messages (slow path)", vd->dev.id);
	return 0;
}

void dma_slow_free(struct dma_slow *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
		slot_free(&s->q[i]);
	free(s->wr);
	free(s);
}

void dma_slow_destroy(struct vdev *vd)
{
	struct dma_slow *s = vd->slow;

	if (!s || !vd->as.slow)
		return;
	dma_slow_reset(s);
	s->active = false;
	vd->as.slow = NULL;
	vd->nic->nr_slow--;
}
