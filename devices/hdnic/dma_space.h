/* SPDX-License-Identifier: MIT */
/*
 * A device's DMA address space: the IOVA ranges its client mapped with
 * DMA_MAP, each backed by an mmap of the client's fd.  It plays the part of
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
	uint8_t *host;		/* iova maps to host[0]; NULL: mapped without an fd */
	bool owned;		/* host is our mmap, unmap it on removal */
	uint32_t prot;
};

struct dma_space {
	struct dma_region *regions;	/* sorted by iova, never overlapping */
	unsigned nr, cap, max;
	unsigned gen;			/* bumped on each change */
	uint64_t mapped_bytes;
	const struct dma_region *last;	/* lookup cache */
	struct dma_dirty *dirty;	/* DMA write log while on (dma_dirty.h) */
};

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
 * would reach it with DMA_READ/DMA_WRITE messages).  It takes its place in
 * the address space with the same checks (alignment, overlap, count, prot),
 * but hdnic's DMA engine works on shared memory only: dma_translate() never
 * returns a pointer into it, so a queue or buffer placed there faults like
 * unmapped memory.  Returns 0 or -errno.
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
