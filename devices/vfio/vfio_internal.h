/* SPDX-License-Identifier: MIT */
/* Helpers shared by the VFIO backends (not part of the device interface). */
#ifndef HDVM_VFIO_INTERNAL_H
#define HDVM_VFIO_INTERNAL_H

#include "devices/vfio/vfio.h"

/* Sanity bounds on what a device may report (protects against a hostile peer). */
#define VFIO_MAX_REGIONS	64
#define VFIO_MAX_IRQ_INDEXES	64
#define VFIO_MAX_SPARSE_AREAS	256
#define VFIO_MAX_INFO_ARGSZ	(64 * 1024)	/* region info with caps, io fds */

/*
 * Parse a struct vfio_region_info of len bytes plus its capability chain
 * into *out (mmap_fd is left at -1).  -EPROTO names the defect.
 */
int vfio_region_parse(const char *who, const void *buf, size_t len, uint32_t index,
		      struct vfio_region *out);
/* Is [offset, offset+size) of r something we may mmap? */
int vfio_region_check_mmap(const struct vfio_region *r, uint64_t offset, uint64_t size);
/* Flags of a SET_IRQS call: exactly one DATA_* and one ACTION_* bit. */
int vfio_irq_set_flags_valid(uint32_t flags);
void vfio_device_base_init(struct vfio_device *dev, const struct vfio_backend_ops *ops,
			   const char *name);
/* Mark dead once, with one message naming the device and the reason. */
void vfio_device_mark_dead(struct vfio_device *dev, const char *why, int err);

#endif
