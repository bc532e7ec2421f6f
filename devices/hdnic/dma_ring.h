/* SPDX-License-Identifier: MIT */
/*
 * hdnic's binding of the one split-ring library (devices/virtio/virtq.h):
 * a function's rings and buffers live in its PASID's DMA space, and every
 * address goes through dma_translate() with the access it needs.  The hot
 * path pops with dma_vq_pop(), the library's walker inlined around a direct
 * call of dma_translate().  What the library writes (used ring) reaches the
 * function's DMA dirty log through the written hook; buffers the device
 * fills are marked by their writer with dma_dirty_mark(iov.addr).
 */
#ifndef HDNIC_DMA_RING_H
#define HDNIC_DMA_RING_H

#include "devices/hdnic/dma_space.h"
#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/virtio/virtq.h"

_Static_assert(DMA_PROT_READ == VQ_ACCESS_READ && DMA_PROT_WRITE == VQ_ACCESS_WRITE,
	       "the ring library's access bits are passed to dma_translate as they are");
_Static_assert(HDNIC_QUEUE_MAX_SIZE <= VQ_MAX_SIZE, "a chain must fit a struct vq_chain");

static inline void *dma_vq_translate(void *ds, uint64_t iova, uint64_t len, uint32_t access)
{
	return dma_translate(ds, iova, len, access);
}

/*
 * Resolve vq's rings in ds and start at position 0 (a load sets the
 * position after this); -EINVAL/-EFAULT if they are malformed or not
 * mapped with the access they need.
 */
int dma_vq_attach(struct vq *vq, struct dma_space *ds, bool event_idx, enum vq_dir dir);
/* Re-resolve after ds's map changed (position kept); -EFAULT, detached, if the rings went away. */
int dma_vq_revalidate(struct vq *vq, struct dma_space *ds);

/* Take the next available chain: vq_pop() with dma_translate called directly. */
static inline int dma_vq_pop(struct vq *vq, struct dma_space *ds, struct vq_chain *c)
{
	return vq_pop_with(vq, c, dma_vq_translate, ds);
}

#endif
