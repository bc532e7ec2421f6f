/* SPDX-License-Identifier: MIT */
/*
 * vfio-user wire format (QEMU docs/interop/vfio-user.rst), shared by hdvm's
 * client backend and hdnic's server.  Host endianness, packed structures.
 * Payload structs that mirror kernel VFIO ones reuse <linux/vfio.h>.
 */
#ifndef HDVM_VFIO_USER_PROTO_H
#define HDVM_VFIO_USER_PROTO_H

#include <stdint.h>
#include <linux/vfio.h>

#define VFIO_USER_MAJOR			0
#define VFIO_USER_MINOR			2

enum vfio_user_command {
	VFIO_USER_VERSION		= 1,
	VFIO_USER_DMA_MAP		= 2,
	VFIO_USER_DMA_UNMAP		= 3,
	VFIO_USER_DEVICE_GET_INFO	= 4,
	VFIO_USER_DEVICE_GET_REGION_INFO = 5,
	VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
	VFIO_USER_DEVICE_GET_IRQ_INFO	= 7,
	VFIO_USER_DEVICE_SET_IRQS	= 8,
	VFIO_USER_REGION_READ		= 9,
	VFIO_USER_REGION_WRITE		= 10,
	VFIO_USER_DMA_READ		= 11,
	VFIO_USER_DMA_WRITE		= 12,
	VFIO_USER_DEVICE_RESET		= 13,
	VFIO_USER_REGION_WRITE_MULTI	= 15,
	VFIO_USER_DEVICE_FEATURE	= 16,
	VFIO_USER_MIG_DATA_READ		= 17,
	VFIO_USER_MIG_DATA_WRITE	= 18,
	VFIO_USER_MAX_COMMAND		= 19,
};

#define VFIO_USER_F_TYPE_MASK		0xf
#define VFIO_USER_F_TYPE_COMMAND	0
#define VFIO_USER_F_TYPE_REPLY		1
#define VFIO_USER_F_NO_REPLY		0x10
#define VFIO_USER_F_ERROR		0x20

struct vfio_user_header {
	uint16_t msg_id;
	uint16_t command;
	uint32_t msg_size;	/* including this header */
	uint32_t flags;
	uint32_t error_no;
} __attribute__((packed));

struct vfio_user_version {
	uint16_t major;
	uint16_t minor;
	char caps[];		/* NUL-terminated JSON, optional */
} __attribute__((packed));

#define VFIO_USER_DMA_MAP_F_READ	(1u << 0)
#define VFIO_USER_DMA_MAP_F_WRITE	(1u << 1)

struct vfio_user_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset;	/* into the passed fd */
	uint64_t address;	/* IOVA (guest physical for hdvm) */
	uint64_t size;
} __attribute__((packed));

struct vfio_user_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t address;
	uint64_t size;
} __attribute__((packed));

#define VFIO_USER_DMA_UNMAP_F_ALL	(1u << 1)

/* DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS: struct vfio_device_info,
 * vfio_region_info (+ caps), vfio_irq_info and vfio_irq_set from <linux/vfio.h>. */

struct vfio_user_region_io_fds_request {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} __attribute__((packed));

#define VFIO_USER_IO_FD_TYPE_IOEVENTFD	0
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD	1
#define VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW 2	/* libvfio-user only */

/* The spec's entry: 40 bytes. */
struct vfio_user_sub_region_ioeventfd {
	uint64_t offset;	/* within the region */
	uint64_t size;		/* access width: 1, 2, 4 or 8 */
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;		/* KVM_IOEVENTFD_FLAG_DATAMATCH etc. */
	uint32_t padding;
	uint64_t datamatch;
} __attribute__((packed));

/*
 * libvfio-user's entry: 48 bytes, a shadow memory fd and offset before
 * datamatch (for KVM's out-of-tree shadow ioeventfds).  A client tells the
 * two apart by the stride, (argsz - sizeof(reply header)) / count.
 */
struct vfio_user_sub_region_ioeventfd_shadow {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;
	uint32_t shadow_mem_fd_index;
	uint64_t shadow_offset;
	uint64_t datamatch;
} __attribute__((packed));

struct vfio_user_region_io_fds_reply {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
	struct vfio_user_sub_region_ioeventfd sub_regions[];
} __attribute__((packed));

struct vfio_user_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[];
} __attribute__((packed));

/*
 * DMA_READ / DMA_WRITE (server to client): the request, the DMA_READ reply
 * (followed by count bytes) and the DMA_WRITE request (followed by the
 * data).  The DMA_WRITE reply is address + count; the spec's table gives
 * count 4 bytes there, libvfio-user sends 8: a server takes either.
 */
struct vfio_user_dma_rw {
	uint64_t address;
	uint64_t count;
	uint8_t data[];
} __attribute__((packed));
#define VFIO_USER_DMA_WRITE_REPLY_SPEC	12	/* address + u32 count */

struct vfio_user_dma_access {
	uint64_t address;
	uint64_t count;
	uint8_t data[];
} __attribute__((packed));

struct vfio_user_device_feature {
	uint32_t argsz;
	uint32_t flags;		/* VFIO_DEVICE_FEATURE_* */
	uint8_t data[];
} __attribute__((packed));

struct vfio_user_mig_data {
	uint32_t argsz;
	uint32_t size;
	uint8_t data[];
} __attribute__((packed));

/* Limits both sides announce and enforce. */
#define VFIO_USER_MAX_MSG_FDS		16
#define VFIO_USER_MAX_DATA_XFER		(1u << 20)
#define VFIO_USER_MAX_MSG_SIZE		(VFIO_USER_MAX_DATA_XFER + 4096)
#define VFIO_USER_MAX_DMA_MAPS		65535

#endif
