/* SPDX-License-Identifier: MIT */
/*
 * Remus on the primary (issue 11): continuous checkpoints of a running VM to
 * a standby (`hdvm run --standby`) over the checkpoint stream
 * (migration/checkpoint_proto.h), with its devices' output held per epoch
 * until the standby has the checkpoint that produced it.
 *
 * ckpt_primary_run() is the driver; it runs on a thread of its own (the
 * checkpoint job, vmm/checkpoint_job.c) until protection stops or the
 * standby is lost.  An epoch:
 *   1. pause: vCPUs parked, devices RUNNING_P2P then STOP      [after-pause]
 *   2. harvest the dirty pages: KVM | hdvm's devices | device DMA  [harvest]
 *   3. vCPU/VM and device state (devices_save: a fresh STOP_COPY) [stop-copy]
 *   4. copy the dirty pages into the staging buffer
 *   5. devices "epoch N+1" (frames from now on are N+1's), resume
 *   6. ship checkpoint N while the guest runs                          [send]
 *   7. on the standby's ACK N: devices "commit N"    [after-ack-before-release,
 *      release]: the frames of epochs <= N leave, in order
 * At most one checkpoint is unacknowledged: epoch N+1 pauses only once N
 * is acknowledged (or refused, then N's pages go again with N+1's).
 * An epoch ends at --epoch-ms, or earlier once --dirty-budget pages were
 * written (harvested while the guest runs), so a write burst does not make
 * one pause unbounded.  Heartbeats go every --heartbeat-ms; the standby is
 * lost when it says nothing for --failover-ms or its connection breaks:
 * then --on-standby-loss continue (release what is held, run unprotected)
 * or pause (keep it held, VM paused).
 * [name]: fail points (HDVM_FAILPOINT=name:EPOCH, vmm/failpoint.h).
 */
#ifndef HDVM_CHECKPOINT_H
#define HDVM_CHECKPOINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mig_io;
struct vm;

#define CKPT_DEFAULT_EPOCH_MS		20
#define CKPT_DEFAULT_HEARTBEAT_MS	10
#define CKPT_DEFAULT_FAILOVER_MS	100
#define CKPT_PAUSE_SAMPLES		1024

enum ckpt_role {
	CKPT_UNPROTECTED,	/* never protected, or protection ended/lost */
	CKPT_PRIMARY,		/* checkpoints going to a standby */
	CKPT_STANDBY,		/* holding checkpoints (vmm/standby.c) */
};

struct ckpt_opts {
	uint32_t epoch_ms, heartbeat_ms, failover_ms;	/* 0: the defaults */
	/*
	 * --epoch-phase-ms: epochs begin at this offset past each multiple of
	 * epoch_ms on CLOCK_MONOTONIC (one clock for every VM of a host), so
	 * tools/protect spreads many VMs' pauses over the epoch; !phased: each
	 * epoch epoch_ms after the last resume (phases drift)
	 */
	bool phased;
	uint32_t epoch_phase_ms;
	bool pause_on_loss;		/* --on-standby-loss pause */
	uint64_t dirty_budget;		/* pages; 0: the timer only */
	uint32_t max_frames;		/* per device hold queue; 0: default */
	uint64_t first_epoch;		/* 0: 1 (re-protection continues numbering) */
	atomic_bool *stop;		/* set from elsewhere: end protection cleanly */
	/* --etcd: the owner key, held (vmm/owner_helper.h); NULL: no arbiter */
	struct owner_helper *owner;
	/* tests: stand-ins for vm_pause/vm_resume (the fake KVM runs no vCPU) */
	int (*pause)(struct vm *vm, char *why, size_t len);
	int (*resume)(struct vm *vm, char *why, size_t len);
	/* tests: after each epoch resumed (the guest "runs" here) */
	void (*epoch_done)(uint64_t epoch, void *opaque);
	void *opaque;
};

/* What `hdvm status` shows; written by the driver under lock. */
struct ckpt_stats {
	pthread_mutex_t lock;
	enum ckpt_role role;
	bool paused_by_loss;
	bool fenced;			/* etcd: this side lost the right to release */
	bool gave_up_owner;		/* etcd, pause: key abandoned for the standby */
	uint64_t epoch;			/* the last checkpoint taken */
	uint64_t committed;		/* the last one acknowledged and released */
	uint64_t refused;		/* checkpoints the standby refused */
	uint64_t last_bytes, total_bytes, last_pages;
	uint64_t t_last_ack;		/* ns */
	uint32_t pause_us[CKPT_PAUSE_SAMPLES];
	uint64_t nr_pauses;
	char why[256];			/* why protection ended, or "" */
};

void ckpt_stats_init(struct ckpt_stats *st);
/* Pause percentile (0..100) over the last CKPT_PAUSE_SAMPLES epochs, µs. */
uint64_t ckpt_pause_pct(struct ckpt_stats *st, unsigned pct);

/*
 * When the epoch after a resume at resumed_ns (CLOCK_MONOTONIC) begins:
 * phase_ms < 0: epoch_ms later; else the first instant that is phase_ms
 * (mod epoch_ms) past a multiple of epoch_ms and at least half an epoch after
 * the resume (a late epoch keeps its phase; the next one is not cut short).
 */
uint64_t ckpt_epoch_due(uint64_t resumed_ns, uint32_t epoch_ms, int64_t phase_ms);

/*
 * Protect vm over io (connected, the stream not yet begun) until *o->stop,
 * the standby is lost, or an error.  Returns 0 when stopped on request,
 * -EPIPE/-ETIMEDOUT (why says) when the standby was lost and the loss
 * policy was applied, other -errno when protection could not start.
 */
int ckpt_primary_run(struct vm *vm, struct mig_io *io, const struct ckpt_opts *o,
		     struct ckpt_stats *st, char *why, size_t len);

#endif
