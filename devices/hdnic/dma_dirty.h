/* SPDX-License-Identifier: MIT */
/*
 * Device DMA dirty logging (VFIO DMA_LOGGING_START/REPORT/STOP): while a
 * function's client has logging on, every page hdnic writes through that
 * function's address space (RX buffers, used rings, control-queue acks) is
 * marked in a bitmap per logged IOVA range, 4 KiB pages.  REPORT reads and
 * clears a range.  Only writes are logged; reads never dirty anything.
 *
 * The log hangs off the address space (struct dma_space.dirty), so every
 * writer that has the space a pointer came from can mark; with logging off
 * that pointer is NULL and marking costs one test.
 */
#ifndef HDNIC_DMA_DIRTY_H
#define HDNIC_DMA_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#define DMA_DIRTY_PAGE_SHIFT	12
#define DMA_DIRTY_PAGE_SIZE	(1ULL << DMA_DIRTY_PAGE_SHIFT)
/* The kernel's bound on ranges per START (PAGE_SIZE / sizeof(range)). */
#define DMA_DIRTY_MAX_RANGES	256

struct dma_space;

struct dma_dirty_range {
	uint64_t iova, length;	/* page aligned */
	uint64_t *bits;		/* bit p: page iova + p * 4 KiB was written */
};

struct dma_dirty {
	struct dma_dirty_range *ranges;	/* sorted by iova, never overlapping */
	unsigned nr;
	unsigned last;			/* range the last mark hit */
	uint64_t marks;			/* pages marked (a page counts each time) */
};

/*
 * Start logging [ranges[i].iova, +length) on ds, or, with nr == 0, every
 * region mapped now (vfio-user's "log everything").  page_size is the
 * client's hint; the granule is always 4 KiB.  -EBUSY if logging is on,
 * -EINVAL for unaligned, empty or overlapping ranges, -E2BIG for too many,
 * -EOVERFLOW for a range that wraps.
 */
int dma_dirty_start(struct dma_space *ds, const uint64_t (*ranges)[2], unsigned nr);
/* Stop logging and drop the log: 0, or -EINVAL if it was not on. */
int dma_dirty_stop(struct dma_space *ds);
/*
 * Read and clear [iova, iova+length) at page_size granularity into bitmap
 * (bit i, LSB first in byte i / 8: a page of page_size bytes at
 * iova + i * page_size holds a written 4 KiB page).  The whole range must
 * lie inside logged ranges.  bitmap must hold dma_dirty_report_bytes()
 * (whole u64 words, as the kernel sizes it); they are overwritten.  0 or -errno.
 */
int dma_dirty_report(struct dma_space *ds, uint64_t iova, uint64_t length, uint64_t page_size,
		     uint8_t *bitmap);
/* Bytes a report of length at page_size needs. */
uint64_t dma_dirty_report_bytes(uint64_t length, uint64_t page_size);

void dma_dirty_mark_slow(struct dma_dirty *log, uint64_t iova, uint64_t len);

/* The device wrote [iova, iova+len): mark it if logging is on. */
static inline void dma_dirty_mark(struct dma_dirty *log, uint64_t iova, uint64_t len)
{
	if (__builtin_expect(log != 0, 0) && len)
		dma_dirty_mark_slow(log, iova, len);
}

#endif
