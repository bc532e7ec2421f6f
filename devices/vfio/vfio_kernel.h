/* SPDX-License-Identifier: MIT */
/*
 * Kernel VFIO backend internals.  Two ways to reach a device and its IOMMU:
 * the legacy container/group with a type1v2 IOMMU, and an iommufd cdev with
 * an IOAS.  Both end in a device fd on which the VFIO device ioctls are the
 * same, so only attach/map/unmap/detach differ (struct vfio_iommu_ops).
 *
 * Built and unit-tested against the ioctl contract (numbers, argsz, struct
 * fields, call order) with a fake kernel; untested on hardware, since the
 * build hosts have no /dev/vfio.
 */
#ifndef HDVM_VFIO_KERNEL_H
#define HDVM_VFIO_KERNEL_H

#include <pthread.h>

#include "devices/vfio/vfio_internal.h"
#include "devices/vfio/vfio_sys.h"

#define VFIO_CONTAINER_PATH	"/dev/vfio/vfio"
#define VFIO_GROUP_PATH_FMT	"/dev/vfio/%u"
#define VFIO_CDEV_PREFIX	"/dev/vfio/devices/"
#define IOMMUFD_PATH		"/dev/iommu"
#define SYSFS_PCI_DEVICES	"/sys/bus/pci/devices/"

struct vfio_kernel_device;

struct vfio_iommu_ops {
	const char *name;
	/* Open the device (k->device_fd) with DMA translation set up. */
	int (*attach)(struct vfio_kernel_device *k, const char *spec);
	int (*map)(struct vfio_kernel_device *k, const struct vfio_dma_map *m);
	int (*unmap)(struct vfio_kernel_device *k, uint64_t iova, uint64_t size);
	/* Close the device fd and everything attach opened, in kernel order. */
	void (*detach)(struct vfio_kernel_device *k);
};

extern const struct vfio_iommu_ops vfio_iommu_type1;
extern const struct vfio_iommu_ops vfio_iommu_iommufd;

struct vfio_kernel_region {
	uint32_t flags;
	uint64_t size;
	uint64_t offset;	/* of the region in the device fd */
};

struct vfio_kernel_device {
	struct vfio_device dev;
	const struct vfio_sys_ops *sys;
	const struct vfio_iommu_ops *iommu;
	int device_fd;
	/* type1 */
	int container_fd, group_fd;
	unsigned group;
	/* iommufd */
	int iommufd;
	uint32_t devid, ioas_id;
	/* migration transfer session (data_fd of the current saving/resuming state) */
	pthread_mutex_t mig_lock;
	int mig_fd;
	struct vfio_kernel_region regions[VFIO_MAX_REGIONS];
};

/* "DDDD:BB:DD.F" with hex digits, function 0-7. */
bool vfio_parse_bdf(const char *s);

#endif
