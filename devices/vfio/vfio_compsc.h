/* SPDX-License-Identifier: MIT */
/*
 * CompSC in hdvm (devices/compsc.md): a passthrough function without
 * FEATURE_MIGRATION is offered the protocol through a vendor extended
 * capability in its virtual config space; once its guest driver opted in,
 * pause takes the shared page's write lock (before the vCPUs park, bounded),
 * then reads the device's read-clear counters into the page and resets the
 * device; save carries the page address and the PF-held state (MAC, trust,
 * QoS) read from the PF; load replays that state through the destination
 * NIC's management socket; post_load (and resume after a failed migration)
 * increments the counter and releases the lock.
 */
#ifndef HDVM_VFIO_COMPSC_H
#define HDVM_VFIO_COMPSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/vfio/compsc_abi.h"
#include "migration/state.h"

struct vfio_pci;

#define COMPSC_LOCK_TIMEOUT_MS	500

/* What the PF holds for a function (hdnic: pf.sock `list`). */
struct compsc_pf_state {
	bool valid;
	uint8_t mac[6];
	bool trusted;
	uint64_t tx_rate, rx_rate;
	uint32_t weight;
};

/* The PF driver's management interface, behind a seam for the unit tests. */
struct compsc_pf_ops {
	/* spec: the function's vfio-user socket path; why: the reason on failure */
	int (*get)(const char *spec, struct compsc_pf_state *st, char *why, size_t len);
	int (*set)(const char *spec, const struct compsc_pf_state *st, char *why, size_t len);
};

extern const struct compsc_pf_ops compsc_pf_hdnic;	/* DIR/pf.sock next to DIR/DEV.sock */
void compsc_set_pf_ops(const struct compsc_pf_ops *ops);	/* NULL: hdnic's */

struct vfio_compsc {
	bool offered;		/* the device has no FEATURE_MIGRATION: capability shown */
	uint16_t status;	/* COMPSC_ST_* */
	uint32_t page_lo, page_hi;
	uint64_t page_gpa;	/* valid while status has ACTIVE */
	uint32_t lock_timeout_ms;
	bool locked;		/* we hold COMPSC_LOCK_WRITER */
	bool was_reset;		/* ... and reset the device: the counter moves on release */
	uint64_t pauses, lock_waits_us;	/* how often, and how long the last wait took */
};

void compsc_offer(struct vfio_pci *vp);
static inline bool compsc_active(const struct vfio_compsc *cs)
{
	return cs->offered && (cs->status & COMPSC_ST_ACTIVE);
}

/* Config space at COMPSC_ECAP_POS: true if the access was the capability's. */
bool compsc_cfg_read(struct vfio_pci *vp, uint32_t off, void *data, unsigned len);
bool compsc_cfg_write(struct vfio_pci *vp, uint32_t off, const void *data, unsigned len);

/* 0 if the device can be migrated the CompSC way, else -EOPNOTSUPP and why on the device. */
int compsc_ready(struct vfio_pci *vp);
int compsc_lock(struct vfio_pci *vp);		/* before the vCPUs park */
int compsc_stop(struct vfio_pci *vp);		/* vCPUs parked: residual, reset */
int compsc_release(struct vfio_pci *vp);	/* counter (if reset) and unlock */
int compsc_save(struct vfio_pci *vp, struct state_buf *sb);
int compsc_load(struct vfio_pci *vp, struct state_buf *sb);
int compsc_post_load(struct vfio_pci *vp);

#endif
