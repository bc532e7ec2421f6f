// SPDX-License-Identifier: MIT
/*
 * The virtio-net control queue of a multi-queue ADI.  It is part of the
 * control plane, so the VDCM runs it in software when the driver notifies
 * it, reading and writing guest memory through the function's PASID like
 * the queue pairs do.  The one command hdnic implements is
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (receive steering spreads flows over that
 * many pairs); everything else is answered VIRTIO_NET_ERR, since the
 * features it would need are not offered.
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

#define CTRL_CLASS_MQ		4
#define CTRL_MQ_VQ_PAIRS_SET	0
#define CTRL_OK			0
#define CTRL_ERR		1
#define CTRL_MAX_CMD		64	/* bytes of a command we look at */

static struct virtq_chain ctrl_chain;

static uint8_t ctrl_execute(struct vdev *vd, const uint8_t *cmd, uint32_t len)
{
	uint16_t pairs;

	if (len < 4 || cmd[0] != CTRL_CLASS_MQ || cmd[1] != CTRL_MQ_VQ_PAIRS_SET)
		return CTRL_ERR;
	if (!(vd->vn.driver_features & VF_F_MQ))
		return CTRL_ERR;
	memcpy(&pairs, cmd + 2, sizeof(pairs));
	if (pairs < 1 || pairs > vd->nr_qps)
		return CTRL_ERR;
	vd->vn.active_pairs = pairs;
	return CTRL_OK;
}

/* One command: gather what the driver wrote, answer in its first writable byte. */
static void ctrl_one(struct vdev *vd, const struct virtq_chain *c)
{
	uint8_t cmd[CTRL_MAX_CMD];
	uint32_t got = 0, written = 0;
	uint8_t ack;

	for (unsigned i = 0; i < c->nr_out && got < sizeof(cmd); i++) {
		uint32_t n = MIN(c->iov[i].len, (uint32_t)sizeof(cmd) - got);

		if (n)
			memcpy(cmd + got, c->iov[i].base, n);
		got += n;
	}
	ack = ctrl_execute(vd, cmd, got);
	for (unsigned i = c->nr_out; i < c->nr; i++) {
		if (c->iov[i].len) {
			c->iov[i].base[0] = ack;
			written = 1;
			break;
		}
	}
	virtq_push(&vd->vn.ctrlq, c->head, written);
}

/* Execute what the driver queued: the number done, or a ring error. */
static int ctrl_drain(struct vdev *vd, struct virtq *vq, struct dma_space *as)
{
	int done = 0;

	while (done < vq->size) {
		int r = virtq_pop(vq, as, &ctrl_chain);

		if (r <= 0)
			return r < 0 ? r : done;
		ctrl_one(vd, &ctrl_chain);
		done++;
	}
	return done;
}

void vdev_ctrlq_kick(struct vdev *vd)
{
	struct virtq *vq = &vd->vn.ctrlq;
	struct dma_space *as = iommu_space(&vd->nic->iommu, vd->pasid);
	sigjmp_buf jb, *prev;
	int done;

	if (!vq->attached)
		return;
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the control queue");
		return;
	}
	done = ctrl_drain(vd, vq, as);
	if (done > 0) {
		virtq_publish(vq);
		if (virtq_should_interrupt(vq)) {
			vd->vn.isr |= VIRTIO_ISR_QUEUE;
			vdev_raise(vd, vq->msix_vector);
		}
	}
	DMA_UNGUARD(prev);
	if (done < 0) {
		if (done == -EFAULT) {
			vd->nic->iommu.faults++;
			vd->stats.dma_faults++;
		}
		vdev_needs_reset(vd, "control queue: bad chain (%s)", strerror(-done));
	}
}
