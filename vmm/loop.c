// SPDX-License-Identifier: MIT
#include "vmm/loop.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

struct loop_watch {
	struct loop_watch *next, *prev;	/* every live watch, for loop_destroy */
	int fd;
	unsigned events;
	loop_cb cb;
	void *opaque;
	bool cancelled;		/* freed when the poll's last completion arrives */
};

struct event_loop {
	struct io_uring ring;
	struct loop_watch *watches;
};

static void watch_link(struct event_loop *l, struct loop_watch *w)
{
	w->next = l->watches;
	if (w->next)
		w->next->prev = w;
	l->watches = w;
}

static void watch_free(struct event_loop *l, struct loop_watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

struct event_loop *loop_create(unsigned entries)
{
	struct event_loop *l = xzalloc(sizeof(*l));
	int ret = io_uring_queue_init(entries, &l->ring, 0);

	if (ret < 0) {
		pr_err("io_uring_queue_init: %s", strerror(-ret));
		free(l);
		return NULL;
	}
	return l;
}

void loop_destroy(struct event_loop *l)
{
	if (!l)
		return;
	while (l->watches)
		watch_free(l, l->watches);
	io_uring_queue_exit(&l->ring);
	free(l);
}

static struct io_uring_sqe *get_sqe(struct event_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static int arm(struct event_loop *l, struct loop_watch *w)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return -EBUSY;		/* submission queue full even after a submit */
	io_uring_prep_poll_multishot(sqe, w->fd, w->events);
	io_uring_sqe_set_data(sqe, w);
	return 0;
}

struct loop_watch *loop_watch(struct event_loop *l, int fd, unsigned events,
			      loop_cb cb, void *opaque)
{
	struct loop_watch *w = xzalloc(sizeof(*w));

	*w = (struct loop_watch){ .fd = fd, .events = events, .cb = cb, .opaque = opaque };
	if (arm(l, w) < 0) {
		free(w);
		return NULL;
	}
	watch_link(l, w);
	io_uring_submit(&l->ring);
	return w;
}

void loop_unwatch(struct event_loop *l, struct loop_watch *w)
{
	struct io_uring_sqe *sqe;

	if (!w || w->cancelled)
		return;
	w->cancelled = true;
	sqe = get_sqe(l);
	if (sqe) {
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)w);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(&l->ring);
	}
}

static void dispatch(struct event_loop *l, struct io_uring_cqe *cqe)
{
	struct loop_watch *w = io_uring_cqe_get_data(cqe);
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (!w)
		return;			/* completion of a poll_remove */
	if (w->cancelled) {
		if (!more)
			watch_free(l, w);
		return;
	}
	if (cqe->res >= 0)
		w->cb(w->opaque, w->fd, cqe->res);
	if (!more && !w->cancelled) {
		/* multishot ended (overflow or error): re-arm unless the fd is gone */
		if (cqe->res == -EBADF || arm(l, w) < 0)
			watch_free(l, w);
	} else if (!more && w->cancelled) {
		watch_free(l, w);
	}
}

int loop_run_once(struct event_loop *l, int timeout_ms)
{
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	int ret;

	io_uring_submit(&l->ring);
	ret = io_uring_wait_cqe_timeout(&l->ring, &cqe, timeout_ms < 0 ? NULL : &ts);
	if (ret == -ETIME || ret == -EINTR)
		return 0;
	if (ret < 0) {
		pr_err("io_uring wait: %s", strerror(-ret));
		return ret;
	}
	/* copy each CQE out before dispatch: callbacks may submit new work */
	while (n < 64 && io_uring_peek_cqe(&l->ring, &cqe) == 0) {
		struct io_uring_cqe c = *cqe;

		io_uring_cqe_seen(&l->ring, cqe);
		dispatch(l, &c);
		n++;
	}
	return (int)n;
}
