// SPDX-License-Identifier: MIT
#include "devices/hdnic/dma_ring.h"

#include <errno.h>

#include "devices/hdnic/dma_slow.h"

/* Used-ring writes (entries, index, avail_event/flags) go to the function's dirty log. */
static void ops_written(void *ds, uint64_t iova, uint64_t len)
{
	dma_written(ds, iova, len);
}

static const struct vq_mem_ops dma_vq_ops = {
	.translate = dma_vq_translate,
	.written = ops_written,
};

static int resolve(struct vq *vq, struct dma_space *ds, bool event_idx, enum vq_dir dir)
{
	struct vq_mem mem = { .ops = &dma_vq_ops, .opaque = ds };
	int err;

	err = vq_attach(vq, &mem, event_idx, dir);
	if (err)
		return err;
	vq->mem_gen = ds->gen;	/* an unbound PASID (NULL) translates nothing: -EFAULT */
	if (ds->slow)
		dma_slow_bind(ds->slow, vq);	/* rings the fast path sees: private copies */
	return vq->attached ? 0 : -ENOMEM;
}

int dma_vq_attach(struct vq *vq, struct dma_space *ds, bool event_idx, enum vq_dir dir)
{
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	return resolve(vq, ds, event_idx, dir);
}

int dma_vq_revalidate(struct vq *vq, struct dma_space *ds)
{
	uint16_t published = vq->published;
	int err;

	if (!vq->attached || (vq->mem.opaque == ds && ds && vq->mem_gen == ds->gen))
		return 0;
	err = resolve(vq, ds, vq->event_idx, vq->dir);
	vq->published = published;	/* entries pushed before the change still get reported */
	return err;
}
