// SPDX-License-Identifier: MIT
/*
 * The slow path's reading side (dma_slow.h): a refresh fetches a queue's
 * rings with DMA_READ, walks the new chains fetching every buffer the
 * device will read, and only then shows the new avail entries to the fast
 * path and kicks it.
 */
#include "devices/hdnic/dma_slow_int.h"

#include <errno.h>
#include <string.h>

#include "vmm/util.h"

static struct vq_chain walk_chain;	/* single-threaded */

/* Requests to move len bytes; more than the table ever holds cannot be done (-E2BIG). */
static int chunks(struct dma_slow *s, uint64_t len, unsigned *n)
{
	uint32_t max = xfer_max(s);
	uint64_t c = (len + max - 1) / max;

	if (c > VFU_REQ_MAX)
		return -E2BIG;
	*n = (unsigned)c;
	return 0;
}

static void step(struct dma_slow *s);

static void read_done(void *ctx, int err, const struct vfu_req *r)
{
	struct dma_slow *s = ctx;

	if (err) {
		slow_fail(s, err, r, NULL);
		return;
	}
	if (s->reads && !--s->reads)
		step(s);
}

/*
 * Copy [iova, iova+len) of the function's space into dst: at once from
 * fd-backed memory, with DMA_READs (answered later) from fd-less memory.
 * 0, -EBUSY (no room for the requests now), -E2BIG (more requests than
 * the table holds: the client's max_data_xfer_size is too small), or -errno.
 */
static int fetch(struct dma_slow *s, uint64_t iova, uint32_t len, uint8_t *dst)
{
	const struct dma_region *r = dma_space_region(&s->vd->as, iova, len);
	uint32_t max = xfer_max(s);
	unsigned n;
	int err;

	if (!r)
		return -EFAULT;
	if (!r->nofd) {
		if (dst != r->host + (iova - r->iova))
			return slow_guarded_copy(dst, r->host + (iova - r->iova), len);
		return 0;
	}
	err = chunks(s, len, &n);
	if (err)
		return err;
	if (vfu_reqs_room(&conn(s)->reqs) < n)
		return -EBUSY;
	for (uint32_t off = 0; off < len;) {
		uint32_t n = MIN(len - off, max);
		int err = vfu_req_send(conn(s), VFIO_USER_DMA_READ, iova + off, n, NULL,
				       dst + off, read_done, s);

		if (err)
			return err;
		s->vd->stats.dma_msgs++;
		s->reads++;
		off += n;
	}
	return 0;
}

/* The walker's translate: check as the fast path will, fetch what the device reads. */
static void *collect(void *opaque, uint64_t addr, uint64_t len, uint32_t access)
{
	struct dma_slow *s = opaque;
	const struct dma_region *r;
	uint8_t *p = dma_translate(&s->vd->as, addr, len, access);

	if (!p || s->walk_full || !(access & VQ_ACCESS_READ))
		return p;
	r = dma_space_region(&s->vd->as, addr, len);
	if (r && r->nofd) {
		int err = fetch(s, addr, (uint32_t)len, p);

		if (err)
			s->walk_full = true;	/* this chain waits for the next refresh */
		if (err && err != -EBUSY && !s->walk_err)
			s->walk_err = err;	/* ... or can never be fetched */
	}
	return p;
}

/* The rings are in: walk the new chains, fetching their readable buffers. */
static void walk(struct dma_slow *s, struct slow_q *q)
{
	struct vq scratch = *q->vq;
	unsigned epoch = s->epoch;

	scratch.desc = q->tdesc;
	scratch.avail = q->tavail;
	scratch.last_avail = q->seen;
	scratch.avail_ahead = 0;
	q->commit = q->seen;
	for (unsigned n = 0; n < q->size; n++) {
		int r;

		s->walk_full = false;
		r = vq_pop_with(&scratch, &walk_chain, collect, s);
		if (epoch != s->epoch)
			return;
		if (!r)
			break;
		if (r < 0) {
			/* broken: the fast path meets the same chain and says why */
			q->commit = READ_ONCE(q->tavail->idx);
			break;
		}
		if (s->walk_full) {
			q->want = true;
			break;
		}
		q->commit = scratch.last_avail;
	}
}

/* Everything fetched: the fast path sees the new entries, then looks. */
static void commit(struct dma_slow *s)
{
	struct vdev *vd = s->vd;
	unsigned epoch = s->epoch;
	bool kick[VDEV_MAX_QUEUES] = { false };

	s->phase = SLOW_IDLE;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		struct slow_q *q = &s->q[i];

		if (!q->busy)
			continue;
		q->busy = false;
		if (!bound(q))
			continue;
		kick[i] = true;
		memcpy(q->desc, q->tdesc, desc_bytes(q->size));
		q->avail->flags = q->tavail->flags;
		memcpy(q->avail->ring, q->tavail->ring, 2u * q->size + 2);	/* + used_event */
		smp_wmb();
		WRITE_ONCE(q->avail->idx, q->commit);
		q->seen = q->commit;
	}
	for (unsigned i = 0; i < VDEV_MAX_QUEUES && epoch == s->epoch; i++) {
		struct slow_q *q = &s->q[i];

		if (!kick[i] || !bound(q))
			continue;
		if (q->qp)
			vdev_kick_now(vd, q->queue);
		else
			vdev_ctrlq_kick(vd);
	}
}

static void step(struct dma_slow *s)
{
	unsigned epoch = s->epoch;

	if (s->phase == SLOW_RINGS) {
		s->phase = SLOW_BUFS;
		s->walk_err = 0;
		for (unsigned i = 0; i < VDEV_MAX_QUEUES && epoch == s->epoch; i++)
			if (s->q[i].busy && bound(&s->q[i]))
				walk(s, &s->q[i]);
		if (epoch != s->epoch)
			return;
		if (s->walk_err) {
			slow_fail(s, s->walk_err, NULL, "fetching a buffer");
			return;
		}
		if (s->reads)
			return;
	}
	if (s->phase == SLOW_BUFS)
		commit(s);
}

void slow_refresh_start(struct dma_slow *s, uint64_t now)
{
	unsigned want = 0, epoch = s->epoch;

	if (!s->active || s->broken || s->phase != SLOW_IDLE || !s->vd->running)
		return;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++)
		want += s->q[i].want && bound(&s->q[i]);
	if (!want || vfu_reqs_room(&conn(s)->reqs) < 2 * want)
		return;
	s->phase = SLOW_RINGS;
	s->reads = 0;
	s->last_refresh_ns = now;
	for (unsigned i = 0; i < VDEV_MAX_QUEUES; i++) {
		struct slow_q *q = &s->q[i];
		int err;

		if (!q->want || !bound(q))
			continue;
		q->want = false;
		q->busy = true;
		err = fetch(s, q->avail_addr, avail_bytes(q->size), (uint8_t *)q->tavail);
		if (!err)
			err = fetch(s, q->desc_addr, desc_bytes(q->size), (uint8_t *)q->tdesc);
		if (epoch != s->epoch)
			return;		/* the client went away under the send */
		if (err == -EBUSY) {
			q->busy = false;	/* next time: the table is full now */
			q->want = true;
		} else if (err) {
			slow_fail(s, err, NULL, "reading the rings");
			return;
		}
	}
	if (!s->reads)
		step(s);
}
