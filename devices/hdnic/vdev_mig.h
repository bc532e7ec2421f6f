/* SPDX-License-Identifier: MIT */
/*
 * A function's VFIO migration v2 state machine (VFIO_DEVICE_FEATURE
 * MIG_DEVICE_STATE over vfio-user).  hdnic reports STOP_COPY | P2P:
 * RUNNING, RUNNING_P2P, STOP, STOP_COPY (the function's state, vdev_save,
 * read with MIG_DATA_READ) and RESUMING (written with MIG_DATA_WRITE,
 * loaded and validated on RESUMING -> STOP), and PRE_COPY / PRE_COPY_P2P:
 * the session starts while the function runs with what can go ahead
 * (format version, shape, features: the destination checks compatibility
 * before the source stops), STOP_COPY appends the whole state to the same
 * stream.  PRE_COPY runs like RUNNING, PRE_COPY_P2P is quiesced.
 *
 * A request walks the kernel's shortest-path table one hop at a time; each
 * hop is a direct arc from a table of arcs.  Every state but RUNNING and
 * PRE_COPY is quiesced: no DMA at all (hdnic cannot tell peer-to-peer DMA from memory,
 * so RUNNING_P2P stops all of it, as the uAPI asks), frames for the function
 * are dropped at the NIC and counted in rx_stopped, the TX rings are not
 * read, interrupts are held until RUNNING.  Config space and MSI-X still
 * answer.  A reset (DEVICE_RESET, a new client) returns to RUNNING.
 */
#ifndef HDNIC_VDEV_MIG_H
#define HDNIC_VDEV_MIG_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vfio/vfio_compat.h"
#include "migration/state.h"

struct vdev;

/* What FEATURE_MIGRATION reports. */
#define VDEV_MIG_FLAGS		(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | \
				 VFIO_MIGRATION_PRE_COPY)
#define VDEV_MIG_NR_STATES	8	/* enum vfio_device_mig_state incl. PRE_COPY_P2P */
/* The tag of the section PRE_COPY sends ahead (vdev_state.c). */
#define VDEV_PRECOPY_TAG	0x31505648u	/* "HVP1" */
/* A RESUMING stream larger than this is refused: a function's state is a few KiB. */
#define VDEV_MIG_MAX_STREAM	(1u << 20)

struct vdev_mig {
	uint32_t state;		/* enum vfio_device_mig_state */
	struct state_buf data;	/* STOP_COPY: what is read; RESUMING: what was written */
	bool session;		/* data is in use */
	uint64_t arcs;		/* direct arcs taken */
	bool announce;		/* loaded: announce the guest's MAC on RUNNING */
	bool prechecked;	/* RESUMING: the pre-copy section was checked */
	uint64_t announces;	/* announcements sent */
	char error[128];	/* why the last RESUMING stream was refused, or "" */
};

void vdev_mig_init(struct vdev *vd);
/* Reset: back to RUNNING, any session ends. */
void vdev_mig_reset(struct vdev *vd);
/* Free the session buffer (function freed). */
void vdev_mig_destroy(struct vdev *vd);

/*
 * Move to target along the shortest path: 0, -EINVAL for a target the
 * device does not offer (or from ERROR), -EOPNOTSUPP for an arc hdnic does
 * not implement, or the error of the arc that failed (the state is then
 * the last one reached, or ERROR if the failed arc says so).
 */
int vdev_mig_set_state(struct vdev *vd, uint32_t target);
uint32_t vdev_mig_get_state(const struct vdev *vd);
const char *vdev_mig_state_name(uint32_t state);

/* Session data: MIG_DATA_READ (STOP_COPY) and MIG_DATA_WRITE (RESUMING). */
int vdev_mig_read(struct vdev *vd, void *buf, uint32_t len, uint32_t *got);
int vdev_mig_write(struct vdev *vd, const void *buf, uint32_t len);
/*
 * VFIO_MIG_GET_PRECOPY_INFO's numbers (PRE_COPY* only, else -EINVAL):
 * bytes of the session not read yet; dirty is always 0 (the state is a few
 * KiB and goes whole in STOP_COPY).
 */
int vdev_mig_precopy_info(struct vdev *vd, uint64_t *initial, uint64_t *dirty);
/* MIG_DATA_SIZE: what STOP_COPY would still give, in any state. */
uint64_t vdev_mig_stop_copy_size(struct vdev *vd);

#endif
