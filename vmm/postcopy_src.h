/* SPDX-License-Identifier: MIT */
/*
 * The source's side of post-copy: after the switchover its VM stays paused
 * and this serves the destination -- the pages it faults on first (PCRQ
 * answered before the next background page), the rest pushed in page order
 * -- until the destination says every page is present (PCDN).
 *
 * Single-threaded: between two pushed pages it polls the connection for
 * requests, so a request waits for at most the one page being written plus
 * what already sits in the socket buffers.  A page is sent at most once:
 * the needed bitmap is cleared as pages go, a request for a page already
 * sent is ignored (it is on its way).
 */
#ifndef HDVM_POSTCOPY_SRC_H
#define HDVM_POSTCOPY_SRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_io;
struct mig_writer;
struct guest_mem;
struct vm;

struct postcopy_src {
	struct mig_io *io;
	const uint8_t *ram;		/* the source's RAM (paused: it does not change) */
	uint64_t npages;
	uint64_t *needed;		/* cleared as pages go out (caller's) */
	uint64_t max_bandwidth;		/* bytes/s for the push, 0: unlimited */
	bool no_push;			/* benchmark: answer requests only */
	/* out */
	uint64_t served, pushed, zero_pages, ignored_requests;
	uint64_t t_done_ns;
};

/* 0 once the destination has every page; else -errno, why (the VM is lost). */
int postcopy_serve(struct postcopy_src *s, char *why, size_t len);

/* The pages the destination needs when it got nothing yet: every page with data. */
int postcopy_needed_all(const struct guest_mem *m, uint64_t *needed);
/* After pre-copy passes: the pages dirtied since they were sent (the last sync). */
int postcopy_needed_dirty(struct vm *vm, uint64_t *needed);
/* The switchover section (MIG_TAG_POSTCOPY) out on the stream. */
int postcopy_put_switch(struct mig_writer *w, const uint64_t *needed, uint64_t npages);

#endif
