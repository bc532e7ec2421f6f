// SPDX-License-Identifier: MIT
/*
 * The per-function DMA dirty log (dma_dirty.h): a bitmap of 4 KiB pages per
 * logged IOVA range, set by the writers, read and cleared by REPORT.
 */
#include "devices/hdnic/dma_dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/dma_space.h"

#define PAGE	DMA_DIRTY_PAGE_SIZE

static uint64_t range_pages(const struct dma_dirty_range *r)
{
	return r->length >> DMA_DIRTY_PAGE_SHIFT;
}

static void log_free(struct dma_dirty *log)
{
	if (!log)
		return;
	for (unsigned i = 0; i < log->nr; i++)
		free(log->ranges[i].bits);
	free(log->ranges);
	free(log);
}

static int cmp_range(const void *a, const void *b)
{
	const struct dma_dirty_range *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

int dma_dirty_start(struct dma_space *ds, const uint64_t (*ranges)[2], unsigned nr)
{
	struct dma_dirty *log;
	unsigned n = nr ? nr : ds->nr;

	if (ds->dirty)
		return -EBUSY;
	if (n > DMA_DIRTY_MAX_RANGES)
		return -E2BIG;
	if (!n)
		return -EINVAL;		/* nothing mapped: nothing to log */
	log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	log->ranges = calloc(n, sizeof(*log->ranges));
	if (!log->ranges) {
		free(log);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct dma_dirty_range *r = &log->ranges[i];

		r->iova = nr ? ranges[i][0] : ds->regions[i].iova;
		r->length = nr ? ranges[i][1] : ds->regions[i].size;
		log->nr = i + 1;
		if (!r->length || r->iova % PAGE || r->length % PAGE) {
			log_free(log);
			return -EINVAL;
		}
		if (r->iova + r->length < r->iova) {
			log_free(log);
			return -EOVERFLOW;
		}
		r->bits = calloc((range_pages(r) + 63) / 64, sizeof(uint64_t));
		if (!r->bits) {
			log_free(log);
			return -ENOMEM;
		}
	}
	qsort(log->ranges, n, sizeof(*log->ranges), cmp_range);
	for (unsigned i = 1; i < n; i++) {
		if (log->ranges[i - 1].iova + log->ranges[i - 1].length > log->ranges[i].iova) {
			log_free(log);
			return -EINVAL;
		}
	}
	ds->dirty = log;
	return 0;
}

int dma_dirty_stop(struct dma_space *ds)
{
	if (!ds->dirty)
		return -EINVAL;
	log_free(ds->dirty);
	ds->dirty = NULL;
	return 0;
}

/* The range holding iova, or NULL (binary search after the last hit). */
static struct dma_dirty_range *find(struct dma_dirty *log, uint64_t iova)
{
	struct dma_dirty_range *r = &log->ranges[log->last];
	unsigned lo = 0, hi = log->nr;

	if (iova - r->iova < r->length)
		return r;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		r = &log->ranges[mid];
		if (r->iova + r->length <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= log->nr || iova < log->ranges[lo].iova)
		return NULL;
	log->last = lo;
	return &log->ranges[lo];
}

void dma_dirty_mark_slow(struct dma_dirty *log, uint64_t iova, uint64_t len)
{
	uint64_t page = iova & ~(PAGE - 1), end = iova + len;

	/* A write outside every logged range is not asked about. */
	for (; page < end; page += PAGE) {
		struct dma_dirty_range *r = find(log, page);
		uint64_t p;

		if (!r)
			continue;
		p = (page - r->iova) >> DMA_DIRTY_PAGE_SHIFT;
		r->bits[p / 64] |= 1ULL << (p % 64);
		log->marks++;
	}
}

/* Whole u64 words, as the kernel and libvfio-user size it (a reference client wants exactly that). */
uint64_t dma_dirty_report_bytes(uint64_t length, uint64_t page_size)
{
	uint64_t pages = length / page_size;

	return (pages + 63) / 64 * 8;
}

/* Bytes of [iova, iova+length) the ranges cover. */
static uint64_t covered(const struct dma_dirty *log, uint64_t iova, uint64_t length)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < log->nr; i++) {
		const struct dma_dirty_range *r = &log->ranges[i];
		uint64_t lo = r->iova > iova ? r->iova : iova;
		uint64_t hi_r = r->iova + r->length, hi_q = iova + length;
		uint64_t hi = hi_r < hi_q ? hi_r : hi_q;

		if (hi > lo)
			sum += hi - lo;
	}
	return sum;
}

int dma_dirty_report(struct dma_space *ds, uint64_t iova, uint64_t length, uint64_t page_size,
		     uint8_t *bitmap)
{
	struct dma_dirty *log = ds->dirty;

	if (!log)
		return -EINVAL;
	if (page_size < PAGE || (page_size & (page_size - 1)))
		return -EINVAL;
	if (!length || iova % page_size || length % page_size)
		return -EINVAL;
	if (iova + length < iova)
		return -EOVERFLOW;
	if (covered(log, iova, length) != length)
		return -EINVAL;
	memset(bitmap, 0, dma_dirty_report_bytes(length, page_size));
	for (unsigned i = 0; i < log->nr; i++) {
		struct dma_dirty_range *r = &log->ranges[i];
		uint64_t lo = r->iova > iova ? r->iova : iova;
		uint64_t hi = r->iova + r->length < iova + length ? r->iova + r->length :
								      iova + length;

		for (uint64_t a = lo; a < hi; a += PAGE) {
			uint64_t p = (a - r->iova) >> DMA_DIRTY_PAGE_SHIFT, bit;
			uint64_t *w = &r->bits[p / 64];

			if (!*w) {	/* a clean word: skip to the next one */
				a = r->iova + ((p | 63) << DMA_DIRTY_PAGE_SHIFT);
				continue;
			}
			if (!(*w & (1ULL << (p % 64))))
				continue;
			*w &= ~(1ULL << (p % 64));
			bit = (a - iova) / page_size;
			bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
		}
	}
	return 0;
}
