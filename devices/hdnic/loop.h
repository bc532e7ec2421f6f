/* SPDX-License-Identifier: MIT */
/*
 * hdnic's single event loop on io_uring.  Every completion carries a
 * pointer to a `struct loop_handler` plus the handler's generation, so
 * cancelling a request (closing a connection) only needs a generation bump:
 * completions still in flight for the old generation are ignored.
 * Each handler also counts its requests in flight, so an object that owns
 * handlers (an ADI being deleted) is freed only once the kernel has
 * finished with all of them (loop_handler_idle()).
 */
#ifndef HDNIC_LOOP_H
#define HDNIC_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/compiler.h"

struct loop_handler;
typedef void (*loop_fn)(struct loop_handler *h, int res, uint32_t cqe_flags);

struct loop_handler {
	loop_fn fn;
	uint16_t gen;
	bool armed;		/* a multishot poll is outstanding */
	uint32_t inflight;	/* requests whose final completion is still due */
};

struct loop {
	struct io_uring ring;
	unsigned queued;	/* SQEs prepared but not submitted */
	bool stop;
};

int loop_init(struct loop *l, unsigned entries);
void loop_exit(struct loop *l);

void loop_handler_init(struct loop_handler *h, loop_fn fn);
/* An SQE tagged for h (submits first when the ring is full). */
struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_handler *h);
/* Multishot poll for POLLIN on fd; re-armed automatically when it ends. */
void loop_watch(struct loop *l, struct loop_handler *h, int fd);
/* The same for other poll events (POLLOUT: a reply waits for a slow reader). */
void loop_watch_events(struct loop *l, struct loop_handler *h, int fd, unsigned events);
/* A multishot poll completion without F_MORE ended the poll: re-arm it. */
static inline bool loop_poll_ended(struct loop_handler *h, uint32_t cqe_flags)
{
	if (cqe_flags & IORING_CQE_F_MORE)
		return false;
	h->armed = false;
	return true;
}
/* Stop delivering h's completions and cancel its requests (before closing fd). */
void loop_unwatch(struct loop *l, struct loop_handler *h);
/*
 * Submit what is queued, wait for a completion when `block`, and dispatch
 * every completion available.  Returns the number dispatched or -errno.
 */
int loop_run_once(struct loop *l, bool block);
/* The same, blocking at most timeout_ns for the first completion. */
int loop_run_once_timeout(struct loop *l, uint64_t timeout_ns);
int loop_submit(struct loop *l);

/* No request of h is in flight: memory holding h may be freed. */
static inline bool loop_handler_idle(const struct loop_handler *h)
{
	return h->inflight == 0;
}

#endif
