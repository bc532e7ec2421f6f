/* SPDX-License-Identifier: MIT */
/*
 * Per-device egress hold queue.  Every frame a device sends goes through
 * it.  In pass mode (the default) frames go straight to the output; in hold
 * mode they are copied and tagged with the current epoch and only leave
 * when that epoch is committed (Remus output commit: nothing a client can
 * see escapes before the checkpoint holding the state that produced it).
 */
#ifndef HDNIC_HOLDQ_H
#define HDNIC_HOLDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*holdq_output_fn)(void *ctx, const uint8_t *frame, size_t len);

struct holdq_entry {
	uint64_t epoch;
	uint32_t len;
	uint8_t *data;
};

struct holdq {
	holdq_output_fn output;
	void *ctx;
	bool holding;
	uint64_t epoch;		/* epoch new frames are tagged with */
	struct holdq_entry *ring;	/* allocated when holding starts */
	unsigned head, count, cap;
	uint64_t held_bytes, max_bytes;
	uint64_t dropped;	/* frames refused because the queue was full */
	uint64_t released;
};

void holdq_init(struct holdq *q, holdq_output_fn output, void *ctx);
void holdq_destroy(struct holdq *q);
/* Pass or queue one frame: 0, or -ENOBUFS when a held queue is full. */
int holdq_submit(struct holdq *q, const uint8_t *frame, size_t len);
/* Start holding (frames tagged from epoch `epoch` on); -ENOMEM on failure. */
int holdq_hold(struct holdq *q, uint64_t epoch);
/* Later frames get a new epoch tag. */
void holdq_next_epoch(struct holdq *q, uint64_t epoch);
/* Send every held frame tagged <= epoch, in order. */
void holdq_commit(struct holdq *q, uint64_t epoch);
/* Drop every held frame (a checkpoint was abandoned). */
void holdq_discard(struct holdq *q);
/* Back to pass mode, releasing everything still held. */
void holdq_pass(struct holdq *q);

#endif
