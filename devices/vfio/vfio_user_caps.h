/* SPDX-License-Identifier: MIT */
/*
 * vfio-user VERSION capabilities: the one parser and formatter hdvm's client
 * and hdnic's server share, so both sides read the same JSON the same way.
 * Keys this side does not know are ignored (the spec lets either side add
 * capabilities); a known key with a wrong type or an insane value is an error.
 */
#ifndef HDVM_VFIO_USER_CAPS_H
#define HDVM_VFIO_USER_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds for a peer's values (one set for client and server). */
#define VFIO_USER_CAP_FDS_MAX		253	/* SCM_MAX_FD: more never fit one message */
#define VFIO_USER_CAP_XFER_MIN		8	/* one 64-bit register access must fit */
#define VFIO_USER_CAP_XFER_MAX		UINT32_MAX	/* count fields are u32 */
#define VFIO_USER_CAP_MIG_PGSIZE_MIN	4096
#define VFIO_USER_CAP_MIG_PGSIZE_MAX	(1u << 30)

/* Which keys a capability object named (absent ones hold the defaults). */
#define VFIO_USER_CAP_MAX_MSG_FDS	(1u << 0)
#define VFIO_USER_CAP_MAX_DATA_XFER	(1u << 1)
#define VFIO_USER_CAP_PGSIZES		(1u << 2)
#define VFIO_USER_CAP_MAX_DMA_MAPS	(1u << 3)
#define VFIO_USER_CAP_WRITE_MULTIPLE	(1u << 4)
#define VFIO_USER_CAP_MIGRATION		(1u << 5)

struct vfio_user_caps {
	uint32_t max_msg_fds;		/* fds the sender takes in one message */
	uint32_t max_data_xfer_size;	/* largest REGION/DMA read or write count */
	uint64_t pgsizes;		/* DMA map page sizes (bit set) */
	uint32_t max_dma_maps;
	uint32_t migration_pgsize;	/* "migration":{"pgsize"}; 0 when absent */
	bool write_multiple;		/* REGION_WRITE_MULTI allowed */
	unsigned present;		/* VFIO_USER_CAP_* */
};

/* The protocol's defaults: what a side that names nothing means. */
void vfio_user_caps_default(struct vfio_user_caps *caps);

/*
 * Parse version data: len bytes after major/minor, a NUL-terminated JSON
 * text ending the message (len 0 or "" mean all defaults).  On error returns
 * -EINVAL (malformed, wrong type, out of bounds) or -ENOTSUP (no 4 KiB DMA
 * pages: neither hdvm nor hdnic can work without them) and says why in why.
 */
int vfio_user_caps_parse(const char *data, size_t len, struct vfio_user_caps *out,
			 char *why, size_t why_len);

/*
 * {"capabilities":{...}} for caps: the four limits always, write_multiple
 * and migration when set.  Returns the length with the NUL, or -ENOSPC.
 */
int vfio_user_caps_format(const struct vfio_user_caps *caps, char *out, size_t cap);

#endif
