// SPDX-License-Identifier: MIT
#include "devices/hdnic/holdq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HOLDQ_FRAMES	1024
#define HOLDQ_BYTES	(4u << 20)

void holdq_init(struct holdq *q, holdq_output_fn output, void *ctx)
{
	memset(q, 0, sizeof(*q));
	q->output = output;
	q->ctx = ctx;
}

void holdq_discard(struct holdq *q)
{
	while (q->count) {
		free(q->ring[q->head].data);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	q->held_bytes = 0;
}

void holdq_destroy(struct holdq *q)
{
	holdq_discard(q);
	free(q->ring);
	q->ring = NULL;
	q->cap = 0;
	q->holding = false;
}

int holdq_submit(struct holdq *q, const uint8_t *frame, size_t len)
{
	struct holdq_entry *e;

	if (!q->holding) {
		q->output(q->ctx, frame, len);
		return 0;
	}
	if (q->count == q->cap || q->held_bytes + len > q->max_bytes) {
		q->dropped++;
		return -ENOBUFS;
	}
	e = &q->ring[(q->head + q->count) % q->cap];
	e->data = malloc(len);
	if (!e->data) {
		q->dropped++;
		return -ENOBUFS;
	}
	memcpy(e->data, frame, len);
	e->len = len;
	e->epoch = q->epoch;
	q->count++;
	q->held_bytes += len;
	return 0;
}

int holdq_hold(struct holdq *q, uint64_t epoch)
{
	if (!q->ring) {
		q->ring = calloc(HOLDQ_FRAMES, sizeof(*q->ring));
		if (!q->ring)
			return -ENOMEM;
		q->cap = HOLDQ_FRAMES;
		q->max_bytes = HOLDQ_BYTES;
	}
	q->holding = true;
	q->epoch = epoch;
	return 0;
}

void holdq_next_epoch(struct holdq *q, uint64_t epoch)
{
	q->epoch = epoch;
}

void holdq_commit(struct holdq *q, uint64_t epoch)
{
	while (q->count && q->ring[q->head].epoch <= epoch) {
		struct holdq_entry *e = &q->ring[q->head];

		q->output(q->ctx, e->data, e->len);
		q->held_bytes -= e->len;
		q->released++;
		free(e->data);
		e->data = NULL;
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
}

void holdq_pass(struct holdq *q)
{
	holdq_commit(q, UINT64_MAX);
	q->holding = false;
}
