/* SPDX-License-Identifier: MIT */
/*
 * Requests hdnic sends to its client: DMA_READ and DMA_WRITE, how a server
 * reaches memory the client mapped without an fd.  They share the socket
 * with the client's own commands, in the other direction: each gets a
 * message id of hdnic's own (slot index + the slot's generation, so a late
 * reply to a reused slot is recognised as unknown), goes out through the
 * connection's non-blocking output queue, and waits in a bounded table
 * with a deadline.  The client's replies (the reply flag set) are routed
 * here by the transport instead of being dispatched as commands, and are
 * checked before anything is used: the command, the id, the address, the
 * count and the exact size.  A DMA_READ's data is copied to the
 * requester's buffer only when all of that holds.  The requester learns
 * the outcome through its done callback: 0, the client's errno, -EPROTO
 * for a malformed reply, -ETIMEDOUT when the deadline passed.
 */
#ifndef HDNIC_VFU_REQ_H
#define HDNIC_VFU_REQ_H

#include <stdbool.h>
#include <stdint.h>

struct vfu_conn;
struct vfu_msg;

#define VFU_REQ_MAX	256	/* requests in flight per connection */

struct vfu_req;
/* A request finished: 0, or why not. */
typedef void vfu_req_done_fn(void *ctx, int err, const struct vfu_req *r);

struct vfu_req {
	bool used;
	bool cancelled;		/* the requester is gone: the reply is only checked */
	uint8_t gen;		/* bumped at each use of the slot: the id's high byte */
	uint16_t id, command;
	uint64_t seq;		/* order of sending, for the requester */
	uint64_t deadline;
	uint64_t address, count;
	uint8_t *dst;		/* DMA_READ: where the data goes */
	vfu_req_done_fn *done;
	void *ctx;
};

struct vfu_reqs {
	struct vfu_req *slot;	/* VFU_REQ_MAX, allocated at the first request */
	unsigned nr;		/* in use */
	uint64_t seq;		/* of the last request sent */
	uint64_t timeout_ns;
	/* counters (the function's stats) */
	uint64_t sent, unknown_replies, bad_replies, timeouts;
};

void vfu_reqs_init(struct vfu_reqs *t, uint64_t timeout_ns);
/* Free slots (a requester that needs several checks first). */
static inline unsigned vfu_reqs_room(const struct vfu_reqs *t)
{
	return VFU_REQ_MAX - t->nr;
}

/*
 * Send DMA_READ (count bytes at address into dst) or DMA_WRITE (count
 * bytes of data to address).  count at most the client's
 * max_data_xfer_size.  0 sent (done is called later, exactly once),
 * -EBUSY table full, -E2BIG too long, -ENOTCONN no client, -errno when
 * the connection failed (it is then dropped).
 */
int vfu_req_send(struct vfu_conn *c, uint16_t command, uint64_t address, uint32_t count,
		 const void *data, uint8_t *dst, vfu_req_done_fn *done, void *ctx);
/* A reply from the client (the transport calls this): 0, or -errno why it was refused. */
int vfu_req_reply(struct vfu_conn *c, const struct vfu_msg *m);
/* ctx's requests: their replies are still checked but nothing is copied or called. */
void vfu_req_cancel(struct vfu_conn *c, void *ctx);
/* Fail what is past its deadline; true while a request is pending. */
bool vfu_req_check_deadlines(struct vfu_conn *c, uint64_t now);
/* The connection is gone: forget everything (no callbacks). */
void vfu_reqs_clear(struct vfu_reqs *t);
/* The endpoint is freed. */
void vfu_reqs_free(struct vfu_reqs *t);

#endif
