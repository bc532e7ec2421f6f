/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user backend's device (vfio_user.c), shared by its parts:
 * vfio_user.c (open/close, device and region info, region access, DMA,
 * the backend ops), vfio_user_notify.c (ioeventfds and interrupts) and
 * vfio_user_mig.c (DEVICE_FEATURE and migration data).
 */
#ifndef HDVM_VFIO_USER_INT_H
#define HDVM_VFIO_USER_INT_H

#include <stdatomic.h>

#include "devices/vfio/vfio_internal.h"
#include "devices/vfio/vfio_user_conn.h"
#include "devices/vfio/vfio_user_dma.h"
#include "devices/vfio/vfio_user_version.h"
#include "vmm/compiler.h"

struct vfio_user_device {
	struct vfio_device dev;
	struct vfio_user_conn conn;
	struct vfio_user_caps caps;	/* agreed in VERSION */
	uint16_t minor;
	uint32_t xfer_max;		/* bytes of data per REGION/MIG message */
	atomic_uint nr_dma_maps;
	struct vfio_user_dma dma;	/* what the server's DMA_READ/WRITE may reach */
};

static inline struct vfio_user_device *to_udev(struct vfio_device *dev)
{
	return container_of(dev, struct vfio_user_device, dev);
}

/* vfio_user_notify.c: region ioeventfds (IO_FDS) and interrupts (IRQ_INFO, SET_IRQS) */
int vu_get_io_fds(struct vfio_device *dev, uint32_t index, struct vfio_ioeventfd **out,
		  unsigned *nr);
int vu_get_irq_info(struct vfio_device *dev, uint32_t index, struct vfio_irq *out);
int vu_set_irqs(struct vfio_device *dev, uint32_t index, uint32_t flags, uint32_t start,
		uint32_t count, const void *data);

/* vfio_user_mig.c: DEVICE_FEATURE, MIG_DATA_READ/WRITE, the pre-copy sizes */
int vu_feature(struct vfio_device *dev, uint32_t flags, const void *in, size_t in_len,
	       void *out, size_t out_cap, size_t *out_len);
ssize_t vu_mig_data_read(struct vfio_device *dev, void *buf, size_t len);
int vu_mig_data_write(struct vfio_device *dev, const void *buf, size_t len);
int vu_mig_precopy_info(struct vfio_device *dev, uint64_t *initial, uint64_t *dirty);

#endif
