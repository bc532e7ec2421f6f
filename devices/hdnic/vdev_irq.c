// SPDX-License-Identifier: MIT
/*
 * Interrupts.  The VMM gives one eventfd per MSI-X vector (SET_IRQS); the
 * function's emulated MSI-X keeps them with the vector masks.  Queue-pair
 * interrupts do not go through the function: the VDCM programs each
 * queue's interrupt-message-store entry with the eventfd and mask of the
 * vector the driver chose for that queue (vdev_ims_sync), and the queue
 * pair signals its entry directly.  Only the function's own interrupts
 * (config change, control queue) go through the emulated table here.
 * Everything fires at the end of a loop pass, one eventfd write per
 * vector at most.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

static const uint64_t irq_one = 1;

static uint64_t bit(unsigned v)
{
	return v < 64 ? 1ULL << v : 0;
}

void vdev_irq_init(struct vdev *vd)
{
	for (unsigned v = 0; v < vd->nr_vectors; v++)
		vd->msix[v] = (struct vdev_msix_entry){ .ctrl = 1 };	/* masked */
	vd->irq_masked = 0;
	vd->msix_pba = 0;
	vd->irq_want = 0;
}

void vdev_raise(struct vdev *vd, uint16_t vector)
{
	if (vector >= vd->nr_vectors)
		return;		/* VIRTIO_MSI_NO_VECTOR: the driver polls */
	vd->irq_want |= bit(vector);
	nic_irq_pending(vd->nic, vd);
}

void vdev_raise_config(struct vdev *vd)
{
	vd->vn.isr |= VIRTIO_ISR_CONFIG;
	vd->vn.config_generation++;
	vdev_raise(vd, vd->vn.msix_config);
}

void qp_raise(struct qp *qp, unsigned q)
{
	qp->irq_want |= 1u << q;
	nic_irq_pending(qp->owner->nic, qp->owner);
}

static void signal_fd(struct vdev *vd, int fd)
{
	/*
	 * Through the ring: an eventfd whose counter the client pushed to the
	 * limit would block a plain write().
	 */
	struct io_uring_sqe *sqe = loop_sqe(&vd->nic->loop, NULL);

	io_uring_prep_write(sqe, fd, &irq_one, sizeof(irq_one), 0);
	vd->stats.irqs++;
}

void vdev_flush_irqs(struct vdev *vd)
{
	uint64_t want = vd->irq_want, fired = 0;

	if (vd->dev.paused)
		return;		/* quiesced: held until RUNNING (vdev_mig.c) */
	if (vd->as.slow && dma_slow_hold_irqs(vd->as.slow))
		return;		/* until the client has what they announce (dma_slow.h) */
	vd->irq_want = 0;
	for (unsigned v = 0; v < vd->nr_vectors; v++) {
		if (!(want & bit(v)))
			continue;
		if (vd->irq_masked & bit(v)) {
			vd->msix_pba |= bit(v);
		} else if (vd->irq_fd[v] >= 0) {
			signal_fd(vd, vd->irq_fd[v]);
			fired |= bit(v);
		}
	}
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];

		for (unsigned q = 0; qp->irq_want && q < QP_NR_QUEUES; q++) {
			struct qp_ims *ims = &qp->ims[q];

			if (!(qp->irq_want & (1u << q)))
				continue;
			if (ims->masked) {
				ims->pending = true;
			} else if (ims->fd >= 0 && !(fired & bit(ims->vector))) {
				signal_fd(vd, ims->fd);
				fired |= bit(ims->vector);
			}
		}
		qp->irq_want = 0;
	}
}

void vdev_ims_sync(struct vdev *vd)
{
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];

		for (unsigned q = 0; q < QP_NR_QUEUES; q++) {
			struct qp_ims *ims = &qp->ims[q];
			uint16_t v = qp->vq[q].msix_vector;

			ims->vector = v;
			ims->fd = v < vd->nr_vectors ? vd->irq_fd[v] : -1;
			ims->masked = v < vd->nr_vectors && (vd->irq_masked & bit(v));
		}
	}
}

bool vdev_irq_pending(const struct vdev *vd, unsigned vector)
{
	if (vd->msix_pba & bit(vector))
		return true;
	for (unsigned k = 0; k < vd->nr_qps; k++)
		for (unsigned q = 0; q < QP_NR_QUEUES; q++)
			if (vd->qps[k]->ims[q].pending && vd->qps[k]->ims[q].vector == vector)
				return true;
	return false;
}

void vdev_set_irq_mask(struct vdev *vd, unsigned vector, bool masked)
{
	if (vector >= vd->nr_vectors)
		return;
	if (masked) {
		vd->irq_masked |= bit(vector);
		vdev_ims_sync(vd);
		return;
	}
	vd->irq_masked &= ~bit(vector);
	vdev_ims_sync(vd);
	/* What fired while masked goes out now. */
	if (vd->msix_pba & bit(vector)) {
		vd->msix_pba &= ~bit(vector);
		vdev_raise(vd, (uint16_t)vector);
	}
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		for (unsigned q = 0; q < QP_NR_QUEUES; q++) {
			struct qp_ims *ims = &vd->qps[k]->ims[q];

			if (ims->pending && ims->vector == vector) {
				ims->pending = false;
				qp_raise(vd->qps[k], q);
			}
		}
	}
}

static bool fd_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:[eventfd]");
}

int vdev_set_irq_fds(struct vdev *vd, unsigned start, unsigned count, const int *fds)
{
	if (start > vd->nr_vectors || count > vd->nr_vectors - start)
		return -EINVAL;
	for (unsigned i = 0; fds && i < count; i++)
		if (!fd_is_eventfd(fds[i]))
			return -EINVAL;
	/* Queued signals name fds by number: send them before any is closed. */
	loop_submit(&vd->nic->loop);
	for (unsigned i = 0; i < count; i++) {
		unsigned v = start + i;

		if (vd->irq_fd[v] >= 0)
			close(vd->irq_fd[v]);
		vd->irq_fd[v] = fds ? fds[i] : -1;
	}
	vdev_ims_sync(vd);
	return 0;
}

void vdev_clear_irq_fds(struct vdev *vd)
{
	loop_submit(&vd->nic->loop);
	for (unsigned v = 0; v < vd->nr_vectors; v++) {
		if (vd->irq_fd[v] >= 0)
			close(vd->irq_fd[v]);
		vd->irq_fd[v] = -1;
	}
	vdev_ims_sync(vd);
}
