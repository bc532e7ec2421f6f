/* SPDX-License-Identifier: MIT */
/*
 * Queue pairs: the NIC's hardware.  hdnic has a pool of them (--qps N),
 * each an RX and a TX queue with their own doorbell registers, a DMA engine
 * whose every access carries the queue pair's PASID (iommu.h) and two
 * interrupt-message-store entries, one per queue, each an eventfd.  A
 * function (a VF, or an ADI's virtual device built by the VDCM) owns one or
 * more queue pairs; nothing on the data path goes through the function's
 * emulated registers: the guest rings doorbells the queue pair reads
 * directly, the queue pair DMAs through its PASID and signals its IMS
 * entries directly.  The function's control plane (config space, common
 * config, MSI-X table) programs the queue pair: ring addresses, PASID,
 * doorbell location, IMS entries.
 */
#ifndef HDNIC_QP_H
#define HDNIC_QP_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/iommu.h"
#include "devices/hdnic/dma_ring.h"

struct vdev;

enum { QP_RX = 0, QP_TX = 1, QP_NR_QUEUES = 2 };

/* An interrupt message store entry: where the queue's interrupt goes. */
struct qp_ims {
	int fd;			/* eventfd, -1: none (the driver polls) */
	uint16_t vector;	/* the function's MSI-X vector it stands for */
	bool masked;
	bool pending;		/* fired while masked */
};

struct qp {
	struct vdev *owner;	/* NULL while in the free pool */
	struct iommu *iommu;
	uint32_t index;		/* in the pool */
	uint32_t pasid;		/* tags every DMA; 0 = none bound, all DMA faults */
	struct vq vq[QP_NR_QUEUES];
	/* Doorbell registers: the driver's avail index per queue, stored by the guest. */
	const volatile uint16_t *db[QP_NR_QUEUES];
	uint16_t tx_db_seen;	/* TX doorbell value when TX was last found empty */
	bool tx_kicked;		/* look at TX whatever the doorbell says */
	bool tx_pushed;		/* TX used entries not yet published */
	bool rx_pushed;		/* RX used entries not yet published */
	uint8_t irq_want;	/* bit per queue: signal its IMS entry this pass */
	struct qp_ims ims[QP_NR_QUEUES];
	uint64_t dma_faults;	/* accesses the IOMMU refused */
};

struct qp_pool {
	struct qp *qps;
	struct iommu *iommu;
	uint32_t nr;
	uint32_t *free;		/* stack of free indexes */
	uint32_t nr_free;
};

int qp_pool_init(struct qp_pool *p, uint32_t nr, struct iommu *iommu);
void qp_pool_destroy(struct qp_pool *p);
/* Take n queue pairs for owner into out[]: 0 or -ENOSPC. */
int qp_pool_alloc(struct qp_pool *p, unsigned n, struct vdev *owner, struct qp **out);
void qp_pool_release(struct qp_pool *p, struct qp *qp);

/* Power-on state: queues reset, no PASID, doorbells and IMS unprogrammed. */
void qp_reset(struct qp *qp);

/* The DMA engine's view: the address space bound to the queue pair's PASID. */
static inline struct dma_space *qp_dma_space(const struct qp *qp)
{
	return iommu_space(qp->iommu, qp->pasid);
}

/* A refused access: counted per queue pair and in the IOMMU. */
static inline void qp_dma_fault(struct qp *qp)
{
	qp->dma_faults++;
	qp->iommu->faults++;
}

/* TX doorbell value (0 when no doorbell page is bound). */
static inline uint16_t qp_tx_doorbell(const struct qp *qp)
{
	return qp->db[QP_TX] ? *qp->db[QP_TX] : 0;
}

/* Something to look at on TX: a kick, or a doorbell store since TX ran dry. */
static inline bool qp_tx_pending(const struct qp *qp)
{
	return qp->vq[QP_TX].attached && (qp->tx_kicked || qp_tx_doorbell(qp) != qp->tx_db_seen);
}

#endif
