/* SPDX-License-Identifier: MIT */
/*
 * Per-device egress hold queue (Remus output commit, ReNIC), shared by
 * hdnic's functions (devices/hdnic/vdev_output.c) and hdvm's paravirtual
 * NIC (devices/virtio/net_output.c).  Every frame a
 * device sends goes through it.  In pass mode (the default) frames go
 * straight to the output; in hold mode they are copied, tagged with the
 * current epoch, and leave only when that epoch is committed, oldest first:
 * nothing a client can see escapes before the checkpoint holding the state
 * that produced it.  Memory is bounded (frames and bytes, allocated once when
 * holding starts): the caller asks holdq_room() before taking a frame off
 * the guest's ring and leaves it there when there is none, so the TX ring
 * backs up instead of frames being dropped.  Release also waits for the
 * output's room (ready callback): committed frames not yet out stay queued,
 * in order, and holdq_release() continues later.
 */
#ifndef HDVM_HOLDQ_H
#define HDVM_HOLDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct holdq_ops {
	void (*output)(void *ctx, const uint8_t *frame, size_t len);
	/* The output takes a frame now (NULL: always). */
	bool (*ready)(void *ctx);
};

struct holdq_entry {
	uint64_t epoch;
	uint32_t off, len;	/* in the arena */
};

struct holdq_stats {
	uint64_t held;		/* frames ever queued */
	uint64_t released;	/* frames that left after their commit (or a stop) */
	uint64_t discarded;	/* uncommitted frames thrown away (client gone, discard) */
};

struct holdq {
	const struct holdq_ops *ops;
	void *ctx;
	bool holding;
	uint64_t epoch;		/* epoch new frames are tagged with */
	uint64_t open_from;	/* frames tagged >= open_from are not committed */
	struct holdq_entry *ring;
	uint8_t *arena;
	unsigned head, count, cap;	/* cap: frame limit while holding */
	unsigned ring_size;		/* entries allocated */
	uint32_t tail;			/* arena offset of the next frame */
	uint64_t held_bytes, arena_size;
	struct holdq_stats stats;
};

#define HOLDQ_MAX_FRAMES	4096	/* a client may ask for fewer */
#define HOLDQ_DEFAULT_FRAMES	1024
#define HOLDQ_BYTES		(4u << 20)

void holdq_init(struct holdq *q, const struct holdq_ops *ops, void *ctx);
void holdq_destroy(struct holdq *q);
/* Can a frame of len bytes be submitted now without waiting? */
bool holdq_room(const struct holdq *q, size_t len);
/* Pass or queue one frame: 0, or -ENOBUFS when there is no room (ask first). */
int holdq_submit(struct holdq *q, const uint8_t *frame, size_t len);
/*
 * Start holding, frames tagged from `epoch` on, at most max_frames of them
 * (0: the default); -ENOMEM, or -EINVAL for a limit over HOLDQ_MAX_FRAMES
 * or an epoch below one already committed.
 */
int holdq_hold(struct holdq *q, uint64_t epoch, unsigned max_frames);
/* Later frames are tagged epoch: -EINVAL unless holding and epoch > the current one. */
int holdq_next_epoch(struct holdq *q, uint64_t epoch);
/*
 * Epoch `epoch` and all before it are committed: their frames leave, in
 * order.  -EINVAL unless holding and epoch < the current one (the epoch
 * still producing frames cannot be committed).
 */
int holdq_commit(struct holdq *q, uint64_t epoch);
/* Drop every frame not yet committed (a checkpoint was abandoned, the client died). */
void holdq_discard(struct holdq *q);
/* Back to pass mode: everything still held is released (after what is queued). */
void holdq_pass(struct holdq *q);
/*
 * The operations a checkpoint driver sends, by number (hdnic's vendor
 * feature carries these values: hdnic_vf_abi.h HDNIC_OUTPUT_*).
 */
enum holdq_op {
	HOLDQ_OP_START = 1,	/* holdq_hold(epoch, max_frames) */
	HOLDQ_OP_EPOCH = 2,	/* holdq_next_epoch(epoch) */
	HOLDQ_OP_COMMIT = 3,	/* holdq_commit(epoch) */
	HOLDQ_OP_STOP = 4,	/* holdq_pass() */
	HOLDQ_OP_DISCARD = 5,	/* holdq_discard() */
};

/* One of the above: 0 or -errno (-EINVAL for an unknown op). */
int holdq_control(struct holdq *q, uint32_t op, uint64_t epoch, uint32_t max_frames);
/* Send what is committed while the output has room; true if some is left waiting. */
bool holdq_release(struct holdq *q);
/* Committed (or passed) frames wait for the output's room. */
bool holdq_releasable(const struct holdq *q);

#endif
