/* SPDX-License-Identifier: MIT */
/*
 * The IOMMU in front of hdnic's DMA engines, in scalable mode: a PASID
 * table whose entries point at address spaces (struct dma_space, what a
 * VMM programs with DMA_MAP).  Every queue-pair DMA carries the queue
 * pair's PASID and is translated only through the space bound to it, so a
 * queue pair can never reach memory its function's client did not map,
 * whatever IOVA a descriptor names.  PASID 0 is never bound: DMA tagged
 * with it always faults.
 */
#ifndef HDNIC_IOMMU_H
#define HDNIC_IOMMU_H

#include <stddef.h>
#include <stdint.h>

#include "devices/hdnic/dma_space.h"

struct iommu {
	struct dma_space **space;	/* indexed by PASID */
	uint32_t nr;			/* PASIDs 1 .. nr-1 exist */
	uint32_t *free;			/* stack of unbound PASIDs */
	uint32_t nr_free;
	uint64_t faults;		/* translations refused, all PASIDs */
};

int iommu_init(struct iommu *m, uint32_t nr_pasids);
void iommu_destroy(struct iommu *m);
/* Bind a new PASID to as: the PASID, or 0 if the table is full. */
uint32_t iommu_pasid_bind(struct iommu *m, struct dma_space *as);
void iommu_pasid_unbind(struct iommu *m, uint32_t pasid);

/* The address space DMA tagged with pasid goes through, or NULL. */
static inline struct dma_space *iommu_space(const struct iommu *m, uint32_t pasid)
{
	return pasid < m->nr ? m->space[pasid] : NULL;
}

#endif
