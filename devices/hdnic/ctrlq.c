// SPDX-License-Identifier: MIT
/*
 * The virtio-net control queue every function has (virtqueue 2 * pairs).
 * It is part of the control plane, so the VDCM runs it in software when the
 * driver notifies it, reading and writing guest memory through the
 * function's PASID like the queue pairs do.  Commands: the receive filter
 * (VIRTIO_NET_CTRL_RX PROMISC/ALLMULTI, VIRTIO_NET_CTRL_MAC_TABLE_SET;
 * rx_filter.c) and VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (receive steering
 * spreads flows over that many pairs).  Anything else, or a command of the
 * wrong size, is answered VIRTIO_NET_ERR.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

/* Class, command, then a MAC table of up to 128 entries per list. */
#define CTRL_MAX_CMD		(2 + 2 * (4 + 128 * 6))

static struct vq_chain ctrl_chain;

static uint8_t ctrl_mq(struct vdev *vd, uint8_t cmd, const uint8_t *data, uint32_t len)
{
	uint16_t pairs;

	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != sizeof(pairs))
		return VIRTIO_NET_ERR;
	if (!(vd->vn.driver_features & VF_F_MQ))
		return VIRTIO_NET_ERR;
	memcpy(&pairs, data, sizeof(pairs));
	if (pairs < 1 || pairs > vd->nr_qps)
		return VIRTIO_NET_ERR;
	vd->vn.active_pairs = pairs;
	return VIRTIO_NET_OK;
}

typedef uint8_t (*ctrl_class_fn)(struct vdev *vd, uint8_t cmd, const uint8_t *data,
				 uint32_t len);

static const ctrl_class_fn ctrl_classes[] = {
	[VIRTIO_NET_CTRL_RX] = vdev_ctrl_rx,
	[VIRTIO_NET_CTRL_MAC] = vdev_ctrl_mac,
	[VIRTIO_NET_CTRL_MQ] = ctrl_mq,
};

static uint8_t ctrl_execute(struct vdev *vd, const uint8_t *cmd, uint32_t len)
{
	if (len < 2 || cmd[0] >= ARRAY_SIZE(ctrl_classes) || !ctrl_classes[cmd[0]])
		return VIRTIO_NET_ERR;
	return ctrl_classes[cmd[0]](vd, cmd[1], cmd + 2, len - 2);
}

/* One command: gather what the driver wrote, answer in its first writable byte. */
static void ctrl_one(struct vdev *vd, struct dma_space *as, const struct vq_chain *c)
{
	static uint8_t cmd[CTRL_MAX_CMD];	/* single-threaded */
	uint32_t got = 0, written = 0;
	bool too_long = false;
	uint8_t ack;

	for (unsigned i = 0; i < c->nr_out; i++) {
		if (c->iov[i].len > sizeof(cmd) - got) {
			too_long = true;
			break;
		}
		if (c->iov[i].len)
			memcpy(cmd + got, c->iov[i].base, c->iov[i].len);
		got += c->iov[i].len;
	}
	ack = too_long ? VIRTIO_NET_ERR : ctrl_execute(vd, cmd, got);
	for (unsigned i = c->nr_out; i < c->nr; i++) {
		if (c->iov[i].len) {
			c->iov[i].base[0] = ack;
			dma_written(as, c->iov[i].addr, 1);
			written = 1;
			break;
		}
	}
	vq_push(&vd->vn.ctrlq, c->head, written);
}

/* Execute what the driver queued: the number done, or a ring error. */
static int ctrl_drain(struct vdev *vd, struct vq *vq, struct dma_space *as)
{
	int done = 0;

	while (done < vq->size) {
		int r = dma_vq_pop(vq, as, &ctrl_chain);

		if (r <= 0)
			return r < 0 ? r : done;
		ctrl_one(vd, as, &ctrl_chain);
		done++;
	}
	return done;
}

void vdev_ctrlq_kick(struct vdev *vd)
{
	struct vq *vq = &vd->vn.ctrlq;
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
		vq_publish(vq);
		if (vq_should_interrupt(vq) || vd->as.slow) {
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
		vdev_needs_reset(vd, "control queue: bad chain (%s)", vq_strerror(done));
	}
}
