// SPDX-License-Identifier: MIT
/*
 * Device DMA dirty logging: DEVICE_FEATURE DMA_LOGGING_START (6), STOP (7)
 * and REPORT (8).  Both backends carry them through ops->feature; only the
 * payloads differ, so each backend points at its encoding here:
 *
 *  - kernel VFIO: START names its ranges and REPORT its bitmap by user
 *    pointer (struct vfio_device_feature_dma_logging_control / _report);
 *    the kernel only sets bits, the caller clears the bitmap.
 *  - vfio-user: START carries the ranges inline after a 16-byte header;
 *    REPORT's reply carries the bitmap inline after the 24-byte request.
 *
 * REPORT reads and clears the log for the range.  Bit p of the bitmap
 * (byte p / 8, bit p % 8) is the page at iova + p * page_size.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio.h"
#include "vmm/util.h"

#define LOG_START	(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START)
#define LOG_STOP	(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)
#define LOG_REPORT	(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT)

static int log_stop(struct vfio_device *dev)
{
	return dev->ops->feature(dev, LOG_STOP, NULL, 0, NULL, 0, NULL);
}

/* ---- kernel: pointers ---- */

static int kernel_start(struct vfio_device *dev, uint64_t page_size,
			const struct vfio_dirty_range *r, unsigned nr)
{
	struct vfio_device_feature_dma_logging_range *kr = xzalloc((nr ? nr : 1) * sizeof(*kr));
	struct vfio_device_feature_dma_logging_control ctl = {
		.page_size = page_size, .num_ranges = nr, .ranges = (uintptr_t)kr,
	};
	int ret;

	for (unsigned i = 0; i < nr; i++)
		kr[i] = (struct vfio_device_feature_dma_logging_range){ r[i].iova, r[i].length };
	ret = dev->ops->feature(dev, LOG_START, &ctl, sizeof(ctl), NULL, 0, NULL);
	free(kr);
	return ret;
}

static int kernel_report(struct vfio_device *dev, uint64_t iova, uint64_t length,
			 uint64_t page_size, uint8_t *bitmap, size_t bytes)
{
	/* the kernel writes whole u64s: give it room for them, hand back the bytes */
	size_t words = (bytes + 7) / 8;
	uint64_t *bits = xzalloc(words * 8);
	struct vfio_device_feature_dma_logging_report rep = {
		.iova = iova, .length = length, .page_size = page_size, .bitmap = (uintptr_t)bits,
	};
	int ret = dev->ops->feature(dev, LOG_REPORT, &rep, sizeof(rep), NULL, 0, NULL);

	if (!ret)
		memcpy(bitmap, bits, bytes);
	free(bits);
	return ret;
}

const struct vfio_dirty_ops vfio_kernel_dirty_ops = {
	.start = kernel_start, .stop = log_stop, .report = kernel_report,
};

/* ---- vfio-user: inline ---- */

struct vu_log_start {
	uint64_t page_size;
	uint32_t num_ranges;
	uint32_t reserved;
	struct vfio_dirty_range ranges[];
};

struct vu_log_report {
	uint64_t iova, length, page_size;
	uint8_t bitmap[];
};

static int user_start(struct vfio_device *dev, uint64_t page_size,
		      const struct vfio_dirty_range *r, unsigned nr)
{
	size_t len = sizeof(struct vu_log_start) + nr * sizeof(*r);
	struct vu_log_start *q = xzalloc(len);
	int ret;

	q->page_size = page_size;
	q->num_ranges = nr;
	memcpy(q->ranges, r, nr * sizeof(*r));
	ret = dev->ops->feature(dev, LOG_START, q, len, NULL, 0, NULL);
	free(q);
	return ret;
}

static int user_report(struct vfio_device *dev, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint8_t *bitmap, size_t bytes)
{
	struct vu_log_report q = { .iova = iova, .length = length, .page_size = page_size };
	size_t cap = sizeof(q) + bytes, got = 0;
	struct vu_log_report *r = xzalloc(cap);
	int ret = dev->ops->feature(dev, LOG_REPORT, &q, sizeof(q), r, cap, &got);

	/* a server that sends whole bytes instead of u64 words is still understood */
	if (!ret && (got < sizeof(q) + (length / page_size + 7) / 8 ||
		     r->iova != iova || r->length != length))
		ret = -EPROTO;	/* a bitmap for another range, or cut short */
	if (!ret)
		memcpy(bitmap, r->bitmap, got - sizeof(q));
	free(r);
	return ret;
}

const struct vfio_dirty_ops vfio_user_dirty_ops = {
	.start = user_start, .stop = log_stop, .report = user_report,
};

/* ---- the interface ---- */

int vfio_dirty_start(struct vfio_device *dev, uint64_t page_size,
		     const struct vfio_dirty_range *r, unsigned nr)
{
	if (!dev->ops->dirty)
		return -ENOTSUP;
	if (!page_size || (page_size & (page_size - 1)))
		return -EINVAL;
	return dev->ops->dirty->start(dev, page_size, r, nr);
}

int vfio_dirty_stop(struct vfio_device *dev)
{
	return dev->ops->dirty ? dev->ops->dirty->stop(dev) : -ENOTSUP;
}

/* Whole u64 words, as the kernel writes them and libvfio-user sends them. */
size_t vfio_dirty_bitmap_bytes(uint64_t length, uint64_t page_size)
{
	return (length / page_size + 63) / 64 * 8;
}

int vfio_dirty_report(struct vfio_device *dev, uint64_t iova, uint64_t length,
		      uint64_t page_size, uint8_t *bitmap)
{
	if (!dev->ops->dirty)
		return -ENOTSUP;
	if (!page_size || (page_size & (page_size - 1)) || !length || length % page_size ||
	    iova % page_size)
		return -EINVAL;
	memset(bitmap, 0, vfio_dirty_bitmap_bytes(length, page_size));
	return dev->ops->dirty->report(dev, iova, length, page_size, bitmap,
				       vfio_dirty_bitmap_bytes(length, page_size));
}
