/* SPDX-License-Identifier: MIT */
/*
 * The main thread's event loop on io_uring: multishot poll on file
 * descriptors, each with a callback.  Used for the control socket, console
 * input, signals and the VM's exit eventfd.
 */
#ifndef HDVM_LOOP_H
#define HDVM_LOOP_H

#include <stdbool.h>

struct event_loop;
struct loop_watch;

typedef void (*loop_cb)(void *opaque, int fd, unsigned revents);

struct event_loop *loop_create(unsigned entries);
void loop_destroy(struct event_loop *l);
/* Call cb whenever fd has any of the poll events; NULL on failure. */
struct loop_watch *loop_watch(struct event_loop *l, int fd, unsigned events,
			      loop_cb cb, void *opaque);
/* Stop watching; the callback is never called again (fd is not closed). */
void loop_unwatch(struct event_loop *l, struct loop_watch *w);
/* Wait up to timeout_ms (-1: forever) and dispatch; -1 on a ring error. */
int loop_run_once(struct event_loop *l, int timeout_ms);

#endif
