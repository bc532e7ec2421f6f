// SPDX-License-Identifier: MIT
#include "devices/holdq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/failpoint.h"

void holdq_init(struct holdq *q, const struct holdq_ops *ops, void *ctx)
{
	memset(q, 0, sizeof(*q));
	q->ops = ops;
	q->ctx = ctx;
	q->open_from = UINT64_MAX;
}

void holdq_destroy(struct holdq *q)
{
	free(q->ring);
	free(q->arena);
	holdq_init(q, q->ops, q->ctx);
}

static struct holdq_entry *entry(const struct holdq *q, unsigned i)
{
	return &q->ring[(q->head + i) % q->ring_size];
}

/* Where a len-byte frame goes in the arena, or -1 (frames are contiguous, oldest first). */
static int64_t arena_place(const struct holdq *q, size_t len)
{
	uint32_t oldest;

	if (!q->count)
		return len <= q->arena_size ? 0 : -1;
	oldest = entry(q, 0)->off;
	if (q->tail > oldest) {	/* used: [oldest, tail) */
		if (len <= q->arena_size - q->tail)
			return (int64_t)q->tail;
		return len <= oldest ? 0 : -1;	/* wrap to the start */
	}
	/* tail <= oldest with frames queued: the free gap is [tail, oldest) */
	return len <= (size_t)(oldest - q->tail) ? (int64_t)q->tail : -1;
}

bool holdq_room(const struct holdq *q, size_t len)
{
	if (!q->holding && !q->count)
		return true;
	return q->count < q->cap && arena_place(q, len) >= 0;
}

int holdq_submit(struct holdq *q, const uint8_t *frame, size_t len)
{
	struct holdq_entry *e;
	int64_t off;

	if (!q->holding && !q->count) {
		q->ops->output(q->ctx, frame, len);
		return 0;
	}
	if (q->count >= q->cap)
		return -ENOBUFS;
	off = arena_place(q, len);
	if (off < 0)
		return -ENOBUFS;
	e = entry(q, q->count);
	e->off = (uint32_t)off;
	e->len = (uint32_t)len;
	e->epoch = q->epoch;
	memcpy(q->arena + off, frame, len);
	q->tail = (uint32_t)(off + len);
	q->count++;
	q->held_bytes += len;
	q->stats.held++;
	return 0;
}

int holdq_hold(struct holdq *q, uint64_t epoch, unsigned max_frames)
{
	if (max_frames > HOLDQ_MAX_FRAMES)
		return -EINVAL;
	if (q->count && epoch < entry(q, q->count - 1)->epoch)
		return -EINVAL;		/* frames still queued carry a later tag */
	if (!q->ring) {
		q->ring = calloc(HOLDQ_MAX_FRAMES, sizeof(*q->ring));
		q->arena = malloc(HOLDQ_BYTES);
		if (!q->ring || !q->arena) {
			free(q->ring);
			free(q->arena);
			q->ring = NULL;
			q->arena = NULL;
			return -ENOMEM;
		}
		q->ring_size = HOLDQ_MAX_FRAMES;
		q->arena_size = HOLDQ_BYTES;
	}
	q->cap = max_frames ? max_frames : HOLDQ_DEFAULT_FRAMES;
	q->holding = true;
	q->epoch = epoch;
	/* Frames still queued from before (a stop not yet drained) stay releasable. */
	q->open_from = epoch;
	return 0;
}

int holdq_next_epoch(struct holdq *q, uint64_t epoch)
{
	if (!q->holding || epoch <= q->epoch)
		return -EINVAL;
	q->epoch = epoch;
	return 0;
}

int holdq_commit(struct holdq *q, uint64_t epoch)
{
	if (!q->holding || epoch >= q->epoch)
		return -EINVAL;
	if (epoch + 1 > q->open_from)
		q->open_from = epoch + 1;
	failpoint("after-commit", epoch);
	holdq_release(q);
	return 0;
}

static void drop_tail(struct holdq *q)
{
	q->held_bytes -= entry(q, q->count - 1)->len;
	q->count--;
	q->tail = 0;
	if (q->count) {
		struct holdq_entry *prev = entry(q, q->count - 1);

		q->tail = prev->off + prev->len;
	}
}

void holdq_discard(struct holdq *q)
{
	while (q->count && entry(q, q->count - 1)->epoch >= q->open_from) {
		drop_tail(q);
		q->stats.discarded++;
	}
}

void holdq_pass(struct holdq *q)
{
	q->holding = false;
	q->open_from = UINT64_MAX;
	holdq_release(q);
}

int holdq_control(struct holdq *q, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	switch (op) {
	case HOLDQ_OP_START:
		return holdq_hold(q, epoch, max_frames);
	case HOLDQ_OP_EPOCH:
		return holdq_next_epoch(q, epoch);
	case HOLDQ_OP_COMMIT:
		return holdq_commit(q, epoch);
	case HOLDQ_OP_STOP:
		holdq_pass(q);
		return 0;
	case HOLDQ_OP_DISCARD:
		holdq_discard(q);
		return 0;
	}
	return -EINVAL;
}

bool holdq_releasable(const struct holdq *q)
{
	return q->count && entry(q, 0)->epoch < q->open_from;
}

bool holdq_release(struct holdq *q)
{
	unsigned sent = 0;

	while (holdq_releasable(q)) {
		struct holdq_entry *e = entry(q, 0);

		if (q->ops->ready && !q->ops->ready(q->ctx))
			return true;
		q->ops->output(q->ctx, q->arena + e->off, e->len);
		q->held_bytes -= e->len;
		q->stats.released++;
		q->head = (q->head + 1) % q->ring_size;
		q->count--;
		if (!q->count)
			q->tail = 0;
		if (!sent++)
			failpoint("release", q->open_from - 1);
	}
	return false;
}
