/* SPDX-License-Identifier: MIT */
/*
 * hdvm's VFIO client: one device interface, two backends.
 *
 *  - vfio-user: a UNIX socket to a device server (hdnic).  Every reply is
 *    validated; a server that misbehaves, stalls past the reply timeout or
 *    disconnects gets the device marked dead and every later call fails
 *    with -ENOTCONN.  Nothing a server sends can crash hdvm.
 *  - kernel VFIO: legacy container/group (type1v2 IOMMU) or the iommufd
 *    cdev.  All syscalls go through struct vfio_sys_ops so the ioctl
 *    contract is unit-tested against a fake kernel.
 *
 * All calls return 0 (or a byte count where stated) or -errno.  They are
 * thread-safe: vCPU threads forward trapped region accesses concurrently.
 */
#ifndef HDVM_VFIO_H
#define HDVM_VFIO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/vfio/vfio_compat.h"
#include "devices/vfio/vfio_user_caps.h"

struct vfio_device;

/* A part of a region that may be mmap'd (sparse-mmap capability). */
struct vfio_sparse_area {
	uint64_t offset;	/* within the region */
	uint64_t size;
};

/*
 * Plain-data description of one region.  VFIO_REGION_INFO_FLAG_MMAP is set
 * only if the region can really be mapped (vfio-user: the server sent an fd).
 * Without sparse areas a mappable region is mappable as a whole.
 */
struct vfio_region {
	uint32_t index;
	uint32_t flags;		/* VFIO_REGION_INFO_FLAG_* */
	uint64_t size;
	uint64_t offset;	/* file offset of the region in mmap_fd */
	int mmap_fd;		/* -1 if not mappable */
	bool owns_fd;		/* mmap_fd is closed by vfio_region_release() */
	bool msix_mappable;	/* VFIO_REGION_INFO_CAP_MSIX_MAPPABLE */
	bool has_type;		/* VFIO_REGION_INFO_CAP_TYPE present */
	uint32_t type, subtype;
	unsigned nr_sparse;
	struct vfio_sparse_area *sparse;
};

struct vfio_irq {
	uint32_t index;
	uint32_t flags;		/* VFIO_IRQ_INFO_* */
	uint32_t count;
};

/* A doorbell the server wants written straight to an eventfd (KVM_IOEVENTFD). */
struct vfio_ioeventfd {
	uint64_t offset;	/* within the region */
	uint64_t size;		/* access width 1/2/4/8, 0 = any */
	int fd;			/* owned by the array, see vfio_ioeventfds_free() */
	uint32_t flags;		/* KVM_IOEVENTFD_FLAG_DATAMATCH / _PIO */
	uint64_t datamatch;
};

#define VFIO_DMA_PROT_READ	(1u << 0)
#define VFIO_DMA_PROT_WRITE	(1u << 1)

/*
 * One DMA window.  vfio-user passes fd + fd_offset to the server; the kernel
 * backends pin vaddr.  Callers always fill in all of them (guest RAM is a
 * memfd mapped in hdvm).
 */
struct vfio_dma_map {
	uint64_t iova;
	uint64_t size;
	int fd;
	uint64_t fd_offset;
	void *vaddr;
	uint32_t prot;		/* VFIO_DMA_PROT_* */
};

/* An IOVA range whose device writes DMA_LOGGING_START should log. */
struct vfio_dirty_range {
	uint64_t iova, length;
};

/* The backend's encoding of DMA_LOGGING_* (vfio_dirty.c). */
struct vfio_dirty_ops {
	int (*start)(struct vfio_device *dev, uint64_t page_size,
		     const struct vfio_dirty_range *r, unsigned nr);
	int (*stop)(struct vfio_device *dev);
	/* bitmap has bytes bytes, cleared by the caller */
	int (*report)(struct vfio_device *dev, uint64_t iova, uint64_t length,
		      uint64_t page_size, uint8_t *bitmap, size_t bytes);
};

struct vfio_backend_ops {
	const char *name;
	/* Connect to / open the device named by spec. */
	int (*open)(const char *spec, struct vfio_device **out);
	void (*close)(struct vfio_device *dev);

	int (*get_info)(struct vfio_device *dev, struct vfio_device_info *info);
	/* Fills *out; release with vfio_region_release(). */
	int (*get_region_info)(struct vfio_device *dev, uint32_t index, struct vfio_region *out);
	int (*region_read)(struct vfio_device *dev, uint32_t index, uint64_t offset,
			   void *buf, size_t len);
	int (*region_write)(struct vfio_device *dev, uint32_t index, uint64_t offset,
			    const void *buf, size_t len);
	/* Map [offset, offset+size) of a region described by get_region_info. */
	int (*region_mmap)(struct vfio_device *dev, const struct vfio_region *r,
			   uint64_t offset, uint64_t size, int prot, void **addr);
	/* ioeventfds of a region; *out is NULL when there are none. */
	int (*get_io_fds)(struct vfio_device *dev, uint32_t index,
			  struct vfio_ioeventfd **out, unsigned *nr);
	int (*get_irq_info)(struct vfio_device *dev, uint32_t index, struct vfio_irq *out);
	/*
	 * VFIO_DEVICE_SET_IRQS semantics.  data: NULL for DATA_NONE, uint8_t[count]
	 * for DATA_BOOL, int32_t[count] eventfds for DATA_EVENTFD (-1 de-assigns).
	 */
	int (*set_irqs)(struct vfio_device *dev, uint32_t index, uint32_t flags,
			uint32_t start, uint32_t count, const void *data);
	int (*dma_map)(struct vfio_device *dev, const struct vfio_dma_map *map);
	int (*dma_unmap)(struct vfio_device *dev, uint64_t iova, uint64_t size);
	int (*reset)(struct vfio_device *dev);
	/*
	 * VFIO_DEVICE_FEATURE: flags = feature index | GET/SET/PROBE.  in/in_len is
	 * the request data, out/out_cap receives a GET's data; *out_len (may be
	 * NULL) is how much arrived.  MIG_DEVICE_STATE data_fd values are never
	 * handed out: the backend keeps the transfer session for mig_data_*.
	 */
	int (*feature)(struct vfio_device *dev, uint32_t flags, const void *in, size_t in_len,
		       void *out, size_t out_cap, size_t *out_len);
	/*
	 * Device-state stream of the current migration session.  read returns the
	 * number of bytes (0 = end of stream, -ENOMSG = nothing right now in
	 * PRE_COPY); write consumes everything or fails.
	 */
	ssize_t (*mig_data_read)(struct vfio_device *dev, void *buf, size_t len);
	int (*mig_data_write)(struct vfio_device *dev, const void *buf, size_t len);
	/*
	 * VFIO_MIG_GET_PRECOPY_INFO of the PRE_COPY session: what read would
	 * give now (initial) and what the device changed since (dirty).
	 * -EINVAL outside PRE_COPY*, -ENOTSUP if the device cannot tell.
	 */
	int (*mig_precopy_info)(struct vfio_device *dev, uint64_t *initial, uint64_t *dirty);
	const struct vfio_dirty_ops *dirty;	/* device DMA dirty logging */
};

struct vfio_device {
	const struct vfio_backend_ops *ops;
	char name[108];			/* socket path, BDF or cdev path */
	struct vfio_device_info info;	/* read at open */
	atomic_bool dead;		/* peer gone or broke the protocol */
};

extern const struct vfio_backend_ops vfio_user_backend;
extern const struct vfio_backend_ops vfio_kernel_backend;
extern const struct vfio_dirty_ops vfio_user_dirty_ops;
extern const struct vfio_dirty_ops vfio_kernel_dirty_ops;

static inline bool vfio_device_dead(struct vfio_device *dev)
{
	return atomic_load(&dev->dead);
}

static inline void vfio_device_close(struct vfio_device *dev)
{
	if (dev)
		dev->ops->close(dev);
}

/* vfio-user: connect to a socket path, or adopt a connected socket. */
int vfio_user_open(const char *socket_path, struct vfio_device **out);
int vfio_user_open_fd(int sock, const char *name, struct vfio_device **out);
#define VFIO_USER_DEFAULT_TIMEOUT_MS	5000
void vfio_user_set_timeout(struct vfio_device *dev, int timeout_ms);
/*
 * Arms the stall once the guest can reach the device: how long a guest's
 * access waits for a slow server before reading all-ones (0: the default).
 * Unarmed, region accesses wait for their reply like any request.
 */
void vfio_user_set_stall(struct vfio_device *dev, int stall_ms);
/* What the server agreed to in VERSION (struct in vfio_user_caps.h). */
void vfio_user_get_caps(struct vfio_device *dev, struct vfio_user_caps *caps, uint16_t *minor);
/* The connection socket, to watch for the server going away (POLLRDHUP) and its requests (POLLIN). */
int vfio_user_socket(struct vfio_device *dev);
/*
 * Memory a vfio-user server reaches with DMA_READ/DMA_WRITE (IOVA in, the
 * owner translates; 0 or -errno).  Requests are answered only inside what
 * was DMA-mapped to that server, with the access the map allowed
 * (vfio_user_dma.h); without memory set every request gets EFAULT.
 */
struct vfio_dma_mem_ops {
	int (*read)(void *opaque, uint64_t iova, void *dst, uint64_t len);
	int (*write)(void *opaque, uint64_t iova, const void *src, uint64_t len);
};
void vfio_user_set_dma_mem(struct vfio_device *dev, const struct vfio_dma_mem_ops *ops,
			   void *opaque);
/* Answer what the server has asked while none of our requests was in flight (on POLLIN). */
int vfio_user_serve(struct vfio_device *dev);
/* Server requests answered, and refused (error replies). */
void vfio_user_dma_counts(struct vfio_device *dev, uint64_t *answered, uint64_t *refused);
/*
 * The device was declared lost because its server went silent (not because
 * it hung up or broke the protocol): the connection was shut for writing
 * only, and its hang-up means the same server runs again.
 */
bool vfio_user_lost_stalled(struct vfio_device *dev);

/*
 * Kernel VFIO.  spec is "/dev/vfio/devices/vfioN" (iommufd cdev) or a PCI
 * address "DDDD:BB:DD.F" (group found through sysfs, type1v2 container).
 */
struct vfio_sys_ops;
int vfio_kernel_open(const char *spec, struct vfio_device **out);
int vfio_kernel_open_sys(const char *spec, const struct vfio_sys_ops *sys,
			 struct vfio_device **out);

/*
 * VFIO migration v2 state machine over either backend (vfio_mig.c).
 * get_flags: the device's VFIO_MIGRATION_* flags, -ENOTSUP without
 * FEATURE_MIGRATION.  goto: walk from `from` to `target` one arc at a time
 * (RUNNING -> RUNNING_P2P -> STOP with P2P); on a refused arc the device is
 * walked back to `from` (reset if that fails), why names the arc.
 */
int vfio_mig_get_flags(struct vfio_device *dev, uint64_t *flags);
int vfio_mig_get_state(struct vfio_device *dev, uint32_t *state);
int vfio_mig_set_state(struct vfio_device *dev, uint32_t state);
uint32_t vfio_mig_next_state(uint64_t flags, uint32_t cur, uint32_t target);
int vfio_mig_goto(struct vfio_device *dev, uint64_t flags, uint32_t from, uint32_t target,
		  char *why, size_t len);
const char *vfio_mig_state_name(uint32_t state);

/*
 * Device DMA dirty logging over either backend (vfio_dirty.c).  report
 * reads and clears the log of [iova, iova+length): bit p of bitmap
 * (vfio_dirty_bitmap_bytes long) is the page at iova + p * page_size.
 */
int vfio_dirty_start(struct vfio_device *dev, uint64_t page_size,
		     const struct vfio_dirty_range *r, unsigned nr);
int vfio_dirty_stop(struct vfio_device *dev);
size_t vfio_dirty_bitmap_bytes(uint64_t length, uint64_t page_size);
int vfio_dirty_report(struct vfio_device *dev, uint64_t iova, uint64_t length,
		      uint64_t page_size, uint8_t *bitmap);

/* Helpers shared by backends and users. */
void vfio_region_release(struct vfio_region *r);
void vfio_ioeventfds_free(struct vfio_ioeventfd *evs, unsigned nr);
/* True if spec names a kernel VFIO device (cdev path or PCI address). */
bool vfio_spec_is_kernel(const char *spec);

#endif
