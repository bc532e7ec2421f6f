/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a VM over a migration stream (migration/stream.h).
 *
 * Source, vm_migrate_send(): manifest; then pre-copy -- every non-zero page,
 * then pass after pass the pages the dirty log (KVM | hdvm | device DMA)
 * reports, until the pages left would go in --downtime-ms at the measured
 * bandwidth; then the VM is paused (devices RUNNING_P2P, then STOP), the
 * last dirty pages, the device state (save_final) and the end marker go
 * out, and the destination's answer is awaited.  Any failure resumes the
 * VM (devices RUNNING) and says why; success leaves it paused for the
 * caller to stop.
 *
 * Destination: migrate_recv_begin() reads the header and manifest (and the
 * RAM memfd on unix:) so the VM can be built from it; migrate_recv_finish()
 * checks the VM's devices against the manifest, then takes RAM batches,
 * device state and the end marker, each section checked before it is
 * applied, loads the device state, and migrate_recv_answer() tells the
 * source whether the VM runs.
 */
#ifndef HDVM_MIGRATE_H
#define HDVM_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/manifest.h"
#include "migration/stream.h"

struct vm;
struct vm_config;
struct postcopy_dst;

struct migrate_progress {
	uint32_t pass;
	uint64_t sent_bytes;		/* so far, all passes */
	uint64_t remaining_bytes;	/* dirty when this pass started */
	uint64_t dirty_rate;		/* bytes/s dirtied during the last pass */
	uint64_t bandwidth;		/* bytes/s measured during the last pass */
	uint64_t device_pending_bytes;	/* devices' PRE_COPY estimate (PRECOPY_INFO) */
	uint64_t expected_downtime_ms;
	uint32_t throttle_pct;		/* auto-converge, 0: vCPUs run free */
};

struct migrate_opts {
	uint64_t downtime_ms;		/* 0: 300 */
	uint64_t max_bandwidth;		/* bytes/s, 0: unlimited */
	uint64_t timeout_ms;		/* 0: none */
	bool ram_by_fd;			/* unix: the memfd travels, not the pages */
	bool net_by_fd;			/* unix: the --net devices' TAP fds travel */
	bool no_answer;			/* file: nobody answers */
	bool whole;			/* a snapshot: the VM is paused, RAM goes once */
	bool no_auto_converge;		/* never throttle the vCPUs */
	atomic_bool *cancel;		/* set from elsewhere: stop and resume */
	const char *cancel_reason;	/* who cancelled, for the messages ("Ctrl-C") */
	/*
	 * Post-copy (vmm/postcopy_vm.h): switch over at once (postcopy_after
	 * 0) or when pre-copy has not converged after postcopy_after passes;
	 * the destination runs and fetches the pages it lacks.  From the
	 * switchover on, the death of either end loses the VM.
	 */
	bool postcopy;
	uint32_t postcopy_after;
	/* after each pass; may dirty guest RAM in tests */
	void (*progress)(const struct migrate_progress *p, void *opaque);
	void *opaque;
};

struct migrate_result {
	uint64_t total_ms, downtime_ms;
	uint32_t passes;
	uint64_t bytes;			/* on the wire */
	uint64_t pages, zero_pages;	/* RAM pages sent as data / elided as zero */
	uint64_t device_bytes;		/* the DEVS section */
	uint64_t device_precopy_bytes;	/* DEVP sections: device state sent while running */
	uint32_t throttle_pct;		/* the highest auto-converge throttle used */
	/* post-copy: whether it switched, and how the pages went after it */
	bool postcopy, vm_lost;		/* vm_lost: failed after the switchover */
	uint64_t pc_needed, pc_served, pc_pushed, pc_ms;
};

#define MIGRATE_DEFAULT_DOWNTIME_MS	300

int vm_migrate_send(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		    struct migrate_result *res, char *why, size_t len);

struct migrate_incoming {
	struct mig_io *io;
	struct mig_reader r;
	struct manifest m;
	int memfd;			/* the source's RAM (unix:), or -1 */
	int net_fds[16];		/* the source's TAPs (unix:), in --net order */
	int nr_net_fds;
	bool answered;			/* the source was told */
	/* post-copy: the pages still to come (the PCSW section) and their server */
	uint64_t *pc_needed;
	struct postcopy_dst *pc;
	uint64_t device_precopy_bytes;	/* DEVP bodies taken while the source ran */
	uint64_t t_start;
};

int migrate_recv_begin(struct migrate_incoming *in, struct mig_io *io, char *why, size_t len);
/* The VM config from the manifest; the command line gave the passthrough devices. */
int migrate_config_from_manifest(const struct manifest *m, struct vm_config *cfg,
				 char *why, size_t len);
/* The source's RAM memfd (unix:) for the VM being built, or -1; the caller owns it. */
int migrate_recv_take_memfd(struct migrate_incoming *in);
int migrate_recv_finish(struct migrate_incoming *in, struct vm *vm, char *why, size_t len);
/* Tell the source: 0 = the VM runs here, else why it does not. */
int migrate_recv_answer(struct migrate_incoming *in, int ret, const char *why);
void migrate_recv_end(struct migrate_incoming *in);

#endif
