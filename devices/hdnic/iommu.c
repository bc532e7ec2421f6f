// SPDX-License-Identifier: MIT
#include "devices/hdnic/iommu.h"

#include <errno.h>
#include <stdlib.h>

int iommu_init(struct iommu *m, uint32_t nr_pasids)
{
	m->nr = nr_pasids + 1;
	m->space = calloc(m->nr, sizeof(*m->space));
	m->free = calloc(nr_pasids ? nr_pasids : 1, sizeof(*m->free));
	m->nr_free = 0;
	m->faults = 0;
	if (!m->space || !m->free) {
		iommu_destroy(m);
		return -ENOMEM;
	}
	/* Hand out low PASIDs first: pop from the end. */
	for (uint32_t p = nr_pasids; p >= 1; p--)
		m->free[m->nr_free++] = p;
	return 0;
}

void iommu_destroy(struct iommu *m)
{
	free(m->space);
	free(m->free);
	m->space = NULL;
	m->free = NULL;
	m->nr = 0;
	m->nr_free = 0;
}

uint32_t iommu_pasid_bind(struct iommu *m, struct dma_space *as)
{
	uint32_t pasid;

	if (!m->nr_free || !as)
		return 0;
	pasid = m->free[--m->nr_free];
	m->space[pasid] = as;
	return pasid;
}

void iommu_pasid_unbind(struct iommu *m, uint32_t pasid)
{
	if (!pasid || pasid >= m->nr || !m->space[pasid])
		return;
	m->space[pasid] = NULL;
	m->free[m->nr_free++] = pasid;
}
