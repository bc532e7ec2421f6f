/* SPDX-License-Identifier: MIT */
/*
 * The one shape every hdvm device has (Cloud Hypervisor's Pausable,
 * Snapshottable and Migratable as one C shape).  A device embeds
 * `struct device`, fills in an ops table and is added to the VM with
 * device_add(); the VM then drives all devices through the same calls.
 *
 *  - Lifecycle (struct device_ops): realize, reset, pause, resume,
 *    unrealize.  pause and resume are mandatory: a paused device writes no
 *    guest memory, raises no interrupt and does no work until resumed.
 *    pause can fail (a VFIO STOP can); devices_pause() then resumes the
 *    devices it had already paused and reports which device refused and why.
 *  - Migration (struct device_mig_ops, optional): the device's own DMA dirty
 *    log, its state in iterations while running and the rest once paused,
 *    load and post-load.  A device without it has no state of its own.
 *
 * Every call returns 0 or -errno; a device may leave a sentence for the
 * user with device_set_error() before it fails.
 */
#ifndef HDVM_DEVICE_H
#define HDVM_DEVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/state.h"
#include "vmm/compiler.h"

struct vm;
struct device;

/* Called by dirty_log_sync for each guest-physical range the device wrote. */
typedef void device_dirty_fn(void *opaque, uint64_t gpa, uint64_t len);

struct device_mig_ops {
	uint32_t version;	/* of the format save_* write and load reads */
	/* The device's own DMA writes to guest RAM (passthrough devices). */
	int (*dirty_log_start)(struct device *dev);
	int (*dirty_log_stop)(struct device *dev);
	/* Report the pages written since start or the last sync through mark(). */
	int (*dirty_log_sync)(struct device *dev, device_dirty_fn *mark, void *opaque);
	/*
	 * Live save begins, before the first RAM pass (VFIO: RUNNING -> PRE_COPY
	 * when the device has it; a device without does nothing and gives its
	 * whole state in save_final).  save_cleanup ends it either way: after
	 * a failure or cancel the device runs as before.
	 */
	int (*save_setup)(struct device *dev);
	void (*save_cleanup)(struct device *dev);
	/* While running: an estimate of what save_iterate still has to send. */
	int (*pending_bytes)(struct device *dev, uint64_t *bytes);
	/* While running: append a part of the state; 1 = nothing pending now. */
	int (*save_iterate)(struct device *dev, struct state_buf *sb);
	/* Paused: everything not sent by save_iterate. */
	int (*save_final)(struct device *dev, struct state_buf *sb);
	/* Destination, while pre-copy runs: each part save_iterate wrote, in order. */
	int (*load_iterate)(struct device *dev, struct state_buf *sb);
	/* Destination: the stream failed after load_iterate; drop what arrived. */
	void (*load_abort)(struct device *dev);
	/* One call per saved section, in the order they were written. */
	int (*load)(struct device *dev, struct state_buf *sb);
	/* After every device loaded: re-drive what involves others (irqfds, lines). */
	int (*post_load)(struct device *dev);
	/* Optional, before a migration starts: 0, or why the device cannot move. */
	int (*can_migrate)(struct device *dev, unsigned flags);	/* DEVICE_MIG_* */
	/*
	 * Output commit (Remus): hold what the device sends per epoch.  op is
	 * enum holdq_op (devices/holdq.h); NULL: the device sends nothing out.
	 */
	int (*output_commit)(struct device *dev, uint32_t op, uint64_t epoch,
			     uint32_t max_frames);
	/* Frames held now, waiting for their epoch's commit (status). */
	int (*output_held)(struct device *dev, uint64_t *frames);
};

struct device_ops {
	const char *type;
	int (*realize)(struct device *dev, struct vm *vm);
	void (*reset)(struct device *dev);
	/*
	 * Optional first phase of pause: stop initiating peer-to-peer DMA (VFIO
	 * RUNNING_P2P).  Every device's pause_prepare runs before any device's
	 * pause, so no device is stopped while a peer may still write to it.
	 * A prepared device that is not paused after all gets resume.
	 */
	int (*pause_prepare)(struct device *dev);
	/*
	 * Optional, before the vCPUs are parked and without the device lock: a
	 * device whose guest driver must first leave its sections (CompSC's
	 * write lock, devices/compsc.md).  A device paused early and not paused
	 * after all gets resume.
	 */
	int (*pause_early)(struct device *dev);
	int (*pause)(struct device *dev);	/* mandatory */
	int (*resume)(struct device *dev);	/* mandatory */
	void (*unrealize)(struct device *dev);	/* release everything realize took */
	const struct device_mig_ops *mig;	/* NULL: no state of its own */
};

#define DEVICE_ERROR_MAX	160

/* Embed as the FIRST member of the device struct: teardown frees the container. */
struct device {
	const struct device_ops *ops;
	char id[32];		/* from the machine config: the same on both ends */
	pthread_mutex_t lock;	/* serialises vCPU accesses and the main loop */
	char error[DEVICE_ERROR_MAX];	/* why the last failed call failed */
	struct device *next;
};

/* Aborts on an ops table without pause or resume: that is a bug, not input. */
void device_init(struct device *dev, const struct device_ops *ops, const char *id);
/* Append to the VM's list; realize happens in devices_realize(). */
void device_add(struct vm *vm, struct device *dev);
struct device *device_find(struct vm *vm, const char *id);
/* Leave the user-facing reason of a failure (printf-like). */
void device_set_error(struct device *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * pause/resume of a device that only vCPU accesses drive (no thread, no
 * timer, no host input): with the vCPUs parked it is already stopped.
 */
int device_vcpu_driven_pause(struct device *dev);
int device_vcpu_driven_resume(struct device *dev);

int devices_realize(struct vm *vm);
void devices_reset(struct vm *vm);
/*
 * All or nothing: on failure the devices already paused are resumed and
 * why (may be NULL) says which device refused and its reason.
 */
int devices_pause(struct vm *vm, char *why, size_t len);
/* Every pause_early, vCPUs still running; all or nothing, like devices_pause. */
int devices_pause_early(struct vm *vm, char *why, size_t len);
/* resume for every device that has pause_early (after a failed pause; idempotent). */
void devices_pause_early_undo(struct vm *vm);
/* Every can_migrate: "device ID (TYPE) cannot migrate: REASON" for the first that cannot. */
#define DEVICE_MIG_POSTCOPY	0x1u	/* the destination runs before all RAM arrived */
int devices_can_migrate(struct vm *vm, unsigned flags, char *why, size_t len);
/* Resumes every device; the first failure is returned and described. */
int devices_resume(struct vm *vm, char *why, size_t len);

int devices_dirty_log_start(struct vm *vm);	/* stops the started ones on failure */
int devices_dirty_log_stop(struct vm *vm);
int devices_dirty_log_sync(struct vm *vm, device_dirty_fn *mark, void *opaque);
int devices_pending_bytes(struct vm *vm, uint64_t *bytes);
/*
 * Device pre-copy (devices_precopy.c).  save_setup is all or nothing (the
 * started ones are cleaned up); save_iterate appends one tagged section per
 * device that had something (*bytes: how much), load_iterate takes those
 * sections on the destination, naming the device in why on a refusal.
 */
int devices_save_setup(struct vm *vm, char *why, size_t len);
void devices_save_cleanup(struct vm *vm);
int devices_save_iterate(struct vm *vm, struct state_buf *sb, uint64_t *bytes);
int devices_load_iterate(struct vm *vm, struct state_buf *sb, char *why, size_t len);
void devices_load_abort(struct vm *vm);
/* Section tag: a hash of the id, so load can tell a stream for another machine. */
static inline uint32_t device_id_tag(const char *id)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}
/*
 * One output commit op (enum holdq_op) on every device that sends out: all
 * are asked even after a failure; the first failure is returned and logged.
 */
int devices_output_commit(struct vm *vm, uint32_t op, uint64_t epoch, uint32_t max_frames);
/* Frames all devices hold now (hdvm status); 0 or the first -errno. */
int devices_output_held(struct vm *vm, uint64_t *frames);

/*
 * Device state stream: a manifest (id, type and state version of every
 * device, in list order), then one tagged section per device with state.
 * The loader checks the manifest against its own list and names the first
 * mismatch in why (may be NULL); after every section loaded, post_load runs
 * on every device.
 */
#define DEVICES_MANIFEST_MAGIC	0x4d414e31	/* "MAN1" */
int devices_save(struct vm *vm, struct state_buf *sb);
int devices_load(struct vm *vm, struct state_buf *sb, char *why, size_t len);
void devices_unrealize(struct vm *vm);

#endif
