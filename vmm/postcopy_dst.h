/* SPDX-License-Identifier: MIT */
/*
 * The destination's side of post-copy: guest RAM registered with
 * userfaultfd, one thread that turns faults into page requests and installs
 * the pages the source sends (requested first, then its background push).
 *
 * RAM is the VM's memfd mapping (MAP_SHARED shmem).  The pages the
 * switchover list marks as needed are punched out of the memfd (a stale
 * pre-copy copy must not be read), then the whole mapping is registered in
 * MISSING mode: a touch of a page absent from the memfd stops the toucher
 * (vCPU in KVM, hdvm thread, kernel on its behalf) until UFFDIO_COPY puts
 * the page in.  A page that is absent but not needed is a zero page on the
 * source too: it is resolved here with UFFDIO_ZEROPAGE, no round trip.
 *
 * Why MISSING + UFFDIO_COPY and not MINOR + UFFDIO_CONTINUE: COPY fills the
 * memfd's page cache and maps the page atomically, and refuses (-EEXIST) a
 * page someone else already put in the memfd -- so a page written outside
 * post-copy (device DMA through another mapping) is detected, not silently
 * kept.  MINOR mode (UFFD_FEATURE_MINOR_SHMEM, present on 6.18) would only
 * be needed if another process filled the memfd for us.
 *
 * One thread does everything (poll on the uffd and the connection), so the
 * connection is read and written from one place (a TLS session needs that).
 * All pages present: PCDN to the source, the range unregistered, the thread
 * ends.  The source gone, a corrupt page, a page that was already there:
 * the VM cannot continue (its memory exists nowhere else) -- `finished` is
 * called with the reason and faulting threads stay stopped; the VMM stops
 * the VM.
 */
#ifndef HDVM_POSTCOPY_DST_H
#define HDVM_POSTCOPY_DST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_io;

struct postcopy_stats {
	uint64_t needed;		/* pages the source had to send */
	uint64_t faults;		/* uffd fault events */
	uint64_t requests;		/* PCRQ sent (one per page at most) */
	uint64_t on_demand;		/* pages that arrived as answers to requests */
	uint64_t pushed;		/* pages that arrived by the background push */
	uint64_t zero_local;		/* absent, not needed: zero-filled here */
	uint64_t dup_faults;		/* faults on a page already requested */
	uint64_t t_start_ns, t_done_ns;
};

enum postcopy_state { PC_RUNNING, PC_DONE, PC_FAILED };

struct postcopy_dst;
typedef void postcopy_finished_fn(struct postcopy_dst *pc, int err, const char *why,
				  void *opaque);

struct postcopy_dst {
	struct mig_io *io;
	uint8_t *base;			/* the registered mapping */
	uint64_t size, npages;
	int memfd;
	int uffd, stop_efd;
	uint64_t *needed;		/* owned: from the switchover */
	uint64_t *present, *requested;	/* the thread's */
	uint64_t nr_present;
	uint8_t *rx;			/* what the source sent, read in bulk, parsed here */
	size_t rx_head, rx_tail;
	pthread_t thread;
	bool started;
	postcopy_finished_fn *finished;
	void *opaque;
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum postcopy_state state;
	int err;
	char why[320];
	struct postcopy_stats stats;
};

/*
 * Punch the needed pages out of memfd and register [base, base+size) with a
 * new userfaultfd; takes `needed` (freed by destroy).  0 or -errno with why
 * (nothing registered, `needed` still the caller's, on failure).  Faults
 * wait from here until run() starts the thread.
 */
int postcopy_dst_prepare(struct postcopy_dst *pc, struct mig_io *io, int memfd, uint8_t *base,
			 uint64_t size, uint64_t *needed, postcopy_finished_fn *finished,
			 void *opaque, char *why, size_t len);
int postcopy_dst_run(struct postcopy_dst *pc, char *why, size_t len);
/* Both. */
int postcopy_dst_start(struct postcopy_dst *pc, struct mig_io *io, int memfd, uint8_t *base,
		       uint64_t size, uint64_t *needed, postcopy_finished_fn *finished,
		       void *opaque, char *why, size_t len);
/* Until every page is present (0) or post-copy failed (-errno, why). */
int postcopy_dst_wait(struct postcopy_dst *pc, char *why, size_t len);
/*
 * hdvm's own write to [off, off+len) of RAM is about to happen: bring those
 * pages in first (a touch through the registered mapping faults them in).
 * -EHOSTDOWN at once once post-copy failed: the write must not land on a
 * page that will never come.
 */
int postcopy_dst_fault_in(struct postcopy_dst *pc, uint64_t off, uint64_t len);
enum postcopy_state postcopy_dst_state(struct postcopy_dst *pc);
void postcopy_dst_stats(struct postcopy_dst *pc, struct postcopy_stats *out);
/* Stop the thread, unregister, close the uffd (threads still faulting are released). */
void postcopy_dst_destroy(struct postcopy_dst *pc);

/* A userfaultfd (the syscall, else /dev/userfaultfd): fd or -errno. */
int postcopy_uffd_open(void);

#endif
