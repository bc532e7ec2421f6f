/* SPDX-License-Identifier: MIT */
/*
 * Remus on the standby (issue 11): `hdvm run --standby URI --name NAME`.
 * The VM is built from the primary's manifest (its own passthrough devices
 * attached and idle, no vCPU running), then every checkpoint is received
 * whole into a staging area (migration/checkpoint_proto.h), verified, and
 * only then applied: RAM into the VM's memfd, device state kept for
 * activation.  A checkpoint that fails a check is refused (REFUSE N) and the
 * previous one stays; the standby never holds a half-applied checkpoint.
 *
 * It activates from the last complete checkpoint when the primary's
 * connection ends without a stop (CKST) or nothing arrives for the
 * primary's --failover-ms: vCPU/VM and device state loaded (a passthrough
 * device goes RESUMING then RUNNING in its own VF/ADI, which announces the
 * guest's MAC), vCPUs started; the VM then runs unprotected until
 * `hdvm checkpoint` protects it again.  A stop from the primary ends the
 * standby without activating.
 */
#ifndef HDVM_STANDBY_H
#define HDVM_STANDBY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/checkpoint_proto.h"
#include "vmm/migrate.h"

struct vm;

enum standby_outcome {
	STANDBY_ACTIVATE = 1,	/* the primary is gone: run from the last checkpoint */
	STANDBY_STOPPED,	/* the primary ended protection: do not run */
	STANDBY_BROKEN,		/* the stream is unusable: do not run (not a dead primary) */
};

struct standby {
	struct migrate_incoming in;	/* header and manifest (vmm/migrate.h) */
	struct mig_io *inner;		/* the accepted connection (the caller's) */
	struct mig_io bounded;		/* inner with the failover time on each read */
	struct ckpt_hello hello;
	struct ckpt_stage stage;
	bool skipping;			/* a refused checkpoint: ignore until the next CKBG */
	bool have_base;
	uint8_t *devs;			/* the applied checkpoint's device state */
	uint64_t devs_len;
	/* under lock: what `hdvm status` shows */
	pthread_mutex_t lock;
	uint64_t applied;		/* the last complete checkpoint (0: none yet) */
	uint64_t refused, bytes, t_applied, t_heard;
	bool active;			/* activated: the VM runs */
	char why[256];			/* why it activated or ended */
};

/* Header, manifest and hello from the primary (io accepted); why on failure. */
int standby_begin(struct standby *sb, struct mig_io *io, char *why, size_t len);
/*
 * Receive checkpoints into vm (its devices checked against the manifest
 * first) until the primary is gone, stops, or the stream breaks.
 */
enum standby_outcome standby_receive(struct standby *sb, struct vm *vm);
/* Load the last complete checkpoint's vCPU/VM and device state into vm. */
int standby_activate(struct standby *sb, struct vm *vm, char *why, size_t len);
void standby_end(struct standby *sb);

#endif
