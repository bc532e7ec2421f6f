// SPDX-License-Identifier: MIT
#include "devices/hdnic/loop.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "vmm/util.h"

#define UD_PTR_MASK	((1ULL << 48) - 1)

static uint64_t encode(const struct loop_handler *h)
{
	return ((uint64_t)h->gen << 48) | ((uintptr_t)h & UD_PTR_MASK);
}

int loop_init(struct loop *l, unsigned entries)
{
	int err;

	struct io_uring_params p = {
		.flags = IORING_SETUP_CQSIZE,
		.cq_entries = entries * 4,
	};

	memset(l, 0, sizeof(*l));
	err = io_uring_queue_init_params(entries, &l->ring, &p);
	if (err < 0) {
		pr_err("io_uring_queue_init: %s", strerror(-err));
		return err;
	}
	return 0;
}

void loop_exit(struct loop *l)
{
	io_uring_queue_exit(&l->ring);
}

void loop_handler_init(struct loop_handler *h, loop_fn fn)
{
	h->fn = fn;
	h->armed = false;
}

int loop_submit(struct loop *l)
{
	int ret;

	if (!l->queued)
		return 0;
	do {
		ret = io_uring_submit(&l->ring);
	} while (ret == -EINTR);
	if (ret >= 0)
		l->queued = 0;
	return ret;
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_handler *h)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	while (!sqe) {
		/* Ring full: push what we have and reap to make room. */
		if (io_uring_submit(&l->ring) < 0)
			io_uring_submit_and_wait(&l->ring, 1);
		l->queued = 0;
		sqe = io_uring_get_sqe(&l->ring);
	}
	io_uring_sqe_set_data64(sqe, h ? encode(h) : 0);
	if (h)
		h->inflight++;
	l->queued++;
	return sqe;
}

void loop_watch_events(struct loop *l, struct loop_handler *h, int fd, unsigned events)
{
	struct io_uring_sqe *sqe = loop_sqe(l, h);

	io_uring_prep_poll_multishot(sqe, fd, events);
	h->armed = true;
}

void loop_watch(struct loop *l, struct loop_handler *h, int fd)
{
	loop_watch_events(l, h, fd, POLLIN);
}

void loop_unwatch(struct loop *l, struct loop_handler *h)
{
	struct io_uring_sqe *sqe = loop_sqe(l, NULL);

	/* Cancels a poll or a read alike; stale completions fail the gen check. */
	io_uring_prep_cancel64(sqe, encode(h), IORING_ASYNC_CANCEL_ALL);
	h->armed = false;
	h->gen++;
}

static void dispatch(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct loop_handler *h = (struct loop_handler *)(uintptr_t)(ud & UD_PTR_MASK);

	if (!h)
		return;		/* a cancel or fire-and-forget request */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		h->inflight--;	/* the request's last completion */
	if ((uint16_t)(ud >> 48) != h->gen)
		return;		/* cancelled */
	h->fn(h, cqe->res, cqe->flags);
}

static int reap(struct loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	/*
	 * Handlers may queue SQEs and even submit; they never reap, so
	 * walking the CQ here is safe.
	 */
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		dispatch(cqe);
		n++;
		if (n >= 256)
			break;
	}
	io_uring_cq_advance(&l->ring, n);
	return n;
}

int loop_run_once(struct loop *l, bool block)
{
	int ret;

	if (block) {
		ret = io_uring_submit_and_wait(&l->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -ETIME)
			return ret;
		l->queued = 0;
	} else {
		ret = loop_submit(l);
		if (ret < 0 && ret != -EBUSY && ret != -EINTR)
			return ret;
	}
	return reap(l);
}

int loop_run_once_timeout(struct loop *l, uint64_t timeout_ns)
{
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(timeout_ns / 1000000000ULL),
		.tv_nsec = (long long)(timeout_ns % 1000000000ULL),
	};
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -EINTR && ret != -ETIME)
		return ret;
	l->queued = 0;
	return reap(l);
}
