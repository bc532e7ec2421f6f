// SPDX-License-Identifier: MIT
/*
 * The slow path (dma_slow.h): private ring copies refreshed with DMA_READ,
 * device writes written back with DMA_WRITE, interrupts held until the
 * client acknowledged the writes they announce.  One state machine per
 * function, driven by kicks, doorbells, loop passes and the replies.
 */
#include "devices/hdnic/dma_slow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

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

static struct vq_chain walk_chain;	/* single-threaded */

static inline uint32_t desc_bytes(uint16_t n) { return 16u * n; }
static inline uint32_t avail_bytes(uint16_t n) { return 6u + 2u * n; }
static inline uint32_t used_bytes(uint16_t n) { return 6u + 8u * n; }

static struct vfu_conn *conn(struct dma_slow *s)
{
	return &s->vd->vfu->conn;
}

static uint32_t xfer_max(struct dma_slow *s)
{
	uint32_t n = conn(s)->peer_max_xfer;

	return n ? n : 4096;
}

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
static void fail(struct dma_slow *s, int err, const struct vfu_req *r, const char *what)
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
static int guarded_copy(void *dst, const void *src, size_t len)
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

/* ---- reading client memory ---- */

static void step(struct dma_slow *s);

static void read_done(void *ctx, int err, const struct vfu_req *r)
{
	struct dma_slow *s = ctx;

	if (err) {
		fail(s, err, r, NULL);
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
			return guarded_copy(dst, r->host + (iova - r->iova), len);
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

static bool bound(const struct slow_q *q)
{
	return q->vq && q->vq->attached && q->vq->avail == q->avail;
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
			fail(s, s->walk_err, NULL, "fetching a buffer");
			return;
		}
		if (s->reads)
			return;
	}
	if (s->phase == SLOW_BUFS)
		commit(s);
}

static void refresh_start(struct dma_slow *s, uint64_t now)
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
			fail(s, err, NULL, "reading the rings");
			return;
		}
	}
	if (!s->reads)
		step(s);
}

/* ---- writing client memory ---- */

static void release(struct dma_slow *s, uint64_t vd_irqs, const uint8_t *qp_irqs)
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
		release(s, b.vd_irqs, b.qp_irqs);
	}
}

static void write_done(void *ctx, int err, const struct vfu_req *r)
{
	struct dma_slow *s = ctx;

	if (err) {
		fail(s, err, r, NULL);
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

		return dst != src ? guarded_copy(dst, src, len) : 0;
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
static void flush_writes(struct dma_slow *s)
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
			fail(s, -E2BIG, NULL, "writing back");
			return;
		}
		if (need + cost > room)
			break;
		need += cost;
		err = write_back(s, s->wr[done].iova, s->wr[done].len, &sent);
		if (epoch != s->epoch)
			return;
		if (err) {
			fail(s, err, NULL, "writing back");
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
					fail(s, -EFAULT, NULL, "writing back");
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
			fail(s, -ENOMEM, NULL, "recording a device write");
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
			fail(s, -ENOMEM, NULL, "copying the rings");
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
			refresh_start(s, s->vd->nic->now_ns);
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
	refresh_start(s, now);
	if (s->active && !s->broken)
		flush_writes(s);
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
	release(s, vd_irqs, qp_irqs);
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
