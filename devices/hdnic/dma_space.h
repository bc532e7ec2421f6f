/* SPDX-License-Identifier: MIT */
/*
 * A device's DMA address space: the IOVA ranges its client mapped with
 * DMA_MAP, each backed by an mmap of the client's fd, or, for a region
 * mapped without an fd, by a private shadow that the slow path
 * (dma_slow.h) fills with DMA_READ and writes back with DMA_WRITE.  It plays the part of
 * the IOMMU address space a PASID is bound to (iommu.h): one per function,
 * shared by that function's queue pairs.  Every device memory access goes
 * through dma_translate(), which refuses anything that is not wholly inside
 * one mapping with the needed permission (and everything when ds is NULL,
 * the space of an unbound PASID).
 */
#ifndef HDNIC_DMA_SPACE_H
#define HDNIC_DMA_SPACE_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/dma_dirty.h"

#define DMA_PROT_READ	(1u << 0)	/* device reads (driver-to-device buffers) */
#define DMA_PROT_WRITE	(1u << 1)	/* device writes */

#define DMA_PAGE_SIZE	4096ULL

struct dma_region {
	uint64_t iova;
	uint64_t size;
	uint8_t *host;		/* iova maps to host[0] */
	bool owned;		/* host is our mmap, unmap it on removal */
	bool nofd;		/* host is a shadow of client memory (no fd) */
	uint32_t prot;
};

struct dma_space {
	struct dma_region *regions;	/* sorted by iova, never overlapping */
	unsigned nr, cap, max;
	unsigned gen;			/* bumped on each change */
	uint64_t mapped_bytes;
	const struct dma_region *last;	/* lookup cache */
	struct dma_dirty *dirty;	/* DMA write log while on (dma_dirty.h) */
	struct dma_slow *slow;		/* the message path, once a region has no fd */
};

struct dma_slow;
/* The slow path learns of every device write (dma_slow_write.c). */
void dma_slow_written(struct dma_slow *s, uint64_t iova, uint64_t len);

void dma_space_init(struct dma_space *ds, unsigned max_regions);
void dma_space_destroy(struct dma_space *ds);	/* unmaps everything */

/*
 * Map [iova, iova+size) to fd at offset.  Page-aligned, no overlap with an
 * existing region (-EEXIST), within the fd's size.  Returns 0 or -errno.
 */
int dma_space_map_fd(struct dma_space *ds, uint64_t iova, uint64_t size,
		     int fd, uint64_t offset, uint32_t prot);
/*
 * A region the client mapped without an fd (vfio-user allows it: the server
 * reaches it with DMA_READ/DMA_WRITE messages).  It takes its place in the
 * address space with the same checks (alignment, overlap, count, prot) and
 * gets a private shadow (anonymous, reserved lazily): dma_translate()
 * returns pointers into the shadow, and the slow path (dma_slow.h) keeps
 * what the device reads fetched and what it writes written back.
 * Returns 0 or -errno.
 */
int dma_space_map_nofd(struct dma_space *ds, uint64_t iova, uint64_t size, uint32_t prot);
/* Same for memory the caller owns (tests, fuzzers). */
int dma_space_map_host(struct dma_space *ds, uint64_t iova, uint64_t size,
		       void *host, uint32_t prot);
/* Remove the region that is exactly [iova, iova+size): 0 or -ENOENT. */
int dma_space_unmap(struct dma_space *ds, uint64_t iova, uint64_t size);
void dma_space_unmap_all(struct dma_space *ds);

/* Host pointer for [iova, iova+len) if wholly inside one region with prot. */
void *dma_translate(struct dma_space *ds, uint64_t iova, uint64_t len, uint32_t prot);
/* The region [iova, iova+len) lies wholly inside, or NULL. */
const struct dma_region *dma_space_region(struct dma_space *ds, uint64_t iova, uint64_t len);

/*
 * The device wrote [iova, iova+len): the dirty log hears of it and, for a
 * function on the slow path, the write-back (DMA_WRITE or a copy).
 */
static inline void dma_written(struct dma_space *ds, uint64_t iova, uint64_t len)
{
	dma_dirty_mark(ds->dirty, iova, len);
	if (__builtin_expect(ds->slow != 0, 0))
		dma_slow_written(ds->slow, iova, len);
}

/*
 * A client can truncate the file behind a mapping after DMA_MAP, turning a
 * device access into SIGBUS.  Device code that touches DMA memory runs
 * inside a guard: a fault jumps back to the guard's sigsetjmp point, and the
 * device is put into an error state instead of killing hdnic.
 */
int dma_fault_guard_install(void);
extern __thread sigjmp_buf *dma_fault_jmp;

/*
 * Guards nest (a TX burst on one VF delivers into another VF's RX ring):
 *	sigjmp_buf jb, *prev;
 *	DMA_GUARD_ARM(jb, prev);
 *	if (sigsetjmp(jb, 0)) { DMA_UNGUARD(prev); ...fault...; return; }
 *	...touch DMA memory...
 *	DMA_UNGUARD(prev);
 */
#define DMA_GUARD_ARM(jb, prev)	((prev) = dma_fault_jmp, dma_fault_jmp = &(jb))
#define DMA_UNGUARD(prev)	(dma_fault_jmp = (prev))

#endif
