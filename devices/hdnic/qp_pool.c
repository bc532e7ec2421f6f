// SPDX-License-Identifier: MIT
/* The queue-pair pool: allocation, release and reset. */
#include "devices/hdnic/qp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qp_pool_init(struct qp_pool *p, uint32_t nr, struct iommu *iommu)
{
	/* calloc: queue pairs nobody allocates stay untouched zero pages. */
	p->qps = calloc(nr ? nr : 1, sizeof(*p->qps));
	p->free = calloc(nr ? nr : 1, sizeof(*p->free));
	if (!p->qps || !p->free) {
		qp_pool_destroy(p);
		return -ENOMEM;
	}
	p->nr = nr;
	p->nr_free = 0;
	p->iommu = iommu;
	for (uint32_t i = nr; i-- > 0;)
		p->free[p->nr_free++] = i;
	return 0;
}

void qp_pool_destroy(struct qp_pool *p)
{
	free(p->qps);
	free(p->free);
	p->qps = NULL;
	p->free = NULL;
	p->nr = p->nr_free = 0;
}

void qp_reset(struct qp *qp)
{
	qp->pasid = 0;
	for (unsigned q = 0; q < QP_NR_QUEUES; q++) {
		vq_reset(&qp->vq[q], HDNIC_QUEUE_MAX_SIZE);
		qp->db[q] = NULL;
		qp->ims[q] = (struct qp_ims){ .fd = -1, .vector = VQ_NO_VECTOR };
	}
	qp->tx_db_seen = 0;
	qp->tx_kicked = false;
	qp->tx_pushed = false;
	qp->rx_pushed = false;
	qp->irq_want = 0;
}

int qp_pool_alloc(struct qp_pool *p, unsigned n, struct vdev *owner, struct qp **out)
{
	if (n > p->nr_free)
		return -ENOSPC;
	for (unsigned i = 0; i < n; i++) {
		struct qp *qp = &p->qps[p->free[--p->nr_free]];

		qp->index = (uint32_t)(qp - p->qps);
		qp->iommu = p->iommu;
		qp->owner = owner;
		qp->dma_faults = 0;
		qp_reset(qp);
		out[i] = qp;
	}
	return 0;
}

void qp_pool_release(struct qp_pool *p, struct qp *qp)
{
	if (!qp || !qp->owner)
		return;
	qp_reset(qp);
	qp->owner = NULL;
	p->free[p->nr_free++] = qp->index;
}
