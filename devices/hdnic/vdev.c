// SPDX-License-Identifier: MIT
/*
 * Function lifecycle: the device ops, the virtqueue numbering over queue
 * pairs, and what a client connection brings and takes away.  Attaching a
 * client is where the VDCM (or, for a VF, the PF) programs the hardware:
 * a PASID bound to the client's address space, the doorbell page the queue
 * pairs read, the notify ioeventfds and, through vdev_irq.c, IMS entries.
 */
#include "devices/hdnic/vdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/nic.h"
#include "vmm/util.h"

#define DB_MEMFD_SIZE	(HDNIC_BAR0_DOORBELL_OFF + HDNIC_PAGE_SIZE)

struct vdev *vdev_create(struct nic *nic, enum vdev_kind kind, unsigned index, unsigned port,
			 const char *id, const uint8_t mac[6], struct qp **qps, unsigned nr_qps)
{
	struct vdev *vd = xzalloc(sizeof(*vd));

	vd->dev.ops = &vdev_ops;
	snprintf(vd->dev.id, sizeof(vd->dev.id), "%s", id);
	vd->nic = nic;
	vd->kind = kind;
	vd->index = index;
	vd->port = port;
	memcpy(vd->mac, mac, 6);
	memcpy(vd->mac_pf, mac, 6);
	vd->nr_qps = nr_qps;
	memcpy(vd->qps, qps, nr_qps * sizeof(*qps));
	vd->vfu = vfu_endpoint_create(&vdev_vfu_ops, vd, vd->dev.id, &nic->loop,
				      nic->conn_timeout_ns, &vd->stats.connects,
				      &vd->stats.proto_errors);
	vd->vfu->req_timeout_ns = nic->dma_timeout_ns;
	vd->db_fd = -1;
	/* One pair: config, RX, TX.  More: one per virtqueue plus config. */
	vd->nr_vectors = nr_qps > 1 ? HDNIC_MQ_MSIX_VECTORS(nr_qps) : HDNIC_MSIX_VECTORS;
	vd->msix = xzalloc(vd->nr_vectors * sizeof(*vd->msix));
	vd->irq_fd = xzalloc(vd->nr_vectors * sizeof(*vd->irq_fd));
	for (unsigned v = 0; v < vd->nr_vectors; v++)
		vd->irq_fd[v] = -1;
	vd->nr_kicks = MIN(vdev_nr_kick_queues(vd), (unsigned)VDEV_MAX_KICKS);
	vd->kick_fold = vd->nr_kicks;
	vd->kick = xzalloc(vd->nr_kicks * sizeof(*vd->kick));
	for (unsigned i = 0; i < vd->nr_kicks; i++) {
		vd->kick[i].fd = -1;
		vd->kick[i].slot = (uint16_t)i;
		vd->kick[i].vd = vd;
	}
	dma_space_init(&vd->as, HDNIC_VFU_MAX_DMA_MAPS);
	holdq_init(&vd->holdq, &vdev_holdq_ops, vd);
	sched_entry_init(&vd->sched, nic->now_ns);
	vdev_mig_init(vd);
	vdev_function_reset(vd);
	return vd;
}

bool vdev_idle(const struct vdev *vd)
{
	if (!vfu_endpoint_idle(vd->vfu))
		return false;
	for (unsigned i = 0; i < vd->nr_kicks; i++)
		if (!loop_handler_idle(&vd->kick[i].h))
			return false;
	return true;
}

void vdev_free(struct vdev *vd)
{
	if (!vd)
		return;
	if (vd->dev.realized)
		vd->dev.ops->unrealize(&vd->dev);
	if (vd->as.dirty)
		dma_dirty_stop(&vd->as);
	dma_space_destroy(&vd->as);
	holdq_destroy(&vd->holdq);
	rxw_release(vd);
	vdev_mig_destroy(vd);
	vfu_endpoint_free(vd->vfu);
	dma_slow_free(vd->slow);
	free(vd->msix);
	free(vd->irq_fd);
	free(vd->kick);
	free(vd);
}

/* ---- virtqueue numbering ---- */

int vdev_ctrlq_index(const struct vdev *vd)
{
	uint64_t f = vd->vn.driver_features;

	if (!(f & VF_F_CTRL_VQ))
		return -1;
	return f & VF_F_MQ ? (int)(2 * vd->nr_qps) : 2;
}

int vdev_queue_qp(const struct vdev *vd, unsigned q, struct qp **qp)
{
	unsigned pairs = vd->vn.driver_features & VF_F_MQ ? vd->nr_qps : 1;

	if (q >= 2 * pairs)
		return -1;
	*qp = vd->qps[q / 2];
	return (int)(q % 2);
}

struct vq *vdev_queue(struct vdev *vd, unsigned q)
{
	struct qp *qp;
	int dir = vdev_queue_qp(vd, q, &qp);

	if (dir >= 0)
		return &qp->vq[dir];
	if ((int)q == vdev_ctrlq_index(vd))
		return &vd->vn.ctrlq;
	return NULL;
}

/* ---- notify ioeventfds ---- */

static void kick_arm(struct vdev_kick *k);

/* Each ioeventfd has a read outstanding on the ring; its completion is the kick. */
static void kick_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct vdev_kick *k = container_of(h, struct vdev_kick, h);
	struct vdev *vd = k->vd;

	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		pr_err("%s: ioeventfd read: %s", vd->dev.id, strerror(-res));
		return;
	}
	/* Fewer fds than queues: fd j stands for every queue q = j mod fold. */
	if (res > 0)
		for (unsigned q = k->slot; q < vdev_nr_kick_queues(vd); q += vd->kick_fold)
			vdev_kick(vd, q);
	kick_arm(k);
}

static void kick_arm(struct vdev_kick *k)
{
	struct io_uring_sqe *sqe = loop_sqe(&k->vd->nic->loop, &k->h);

	/* A read, not a poll: the client holds this fd and may clear O_NONBLOCK. */
	io_uring_prep_read(sqe, k->fd, &k->buf, sizeof(k->buf), 0);
}

static void kicks_close(struct vdev *vd)
{
	for (unsigned i = 0; i < vd->nr_kicks; i++) {
		struct vdev_kick *k = &vd->kick[i];

		if (k->fd < 0)
			continue;
		loop_unwatch(&vd->nic->loop, &k->h);
		close(k->fd);
		k->fd = -1;
	}
}

static int kicks_open(struct vdev *vd)
{
	for (unsigned i = 0; i < vd->nr_kicks; i++) {
		struct vdev_kick *k = &vd->kick[i];

		k->fd = eventfd(0, EFD_CLOEXEC);
		if (k->fd < 0) {
			int err = -errno;

			pr_err("%s: eventfd: %s", vd->dev.id, strerror(errno));
			kicks_close(vd);
			return err;
		}
		loop_handler_init(&k->h, kick_event);
		kick_arm(k);
	}
	vd->kick_fold = vd->nr_kicks;
	return 0;
}

/* ---- the doorbell page ---- */

static int doorbell_create(struct vdev *vd)
{
	char name[48];
	void *p;
	int fd;

	snprintf(name, sizeof(name), "hdnic-%s-doorbell", vd->dev.id);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		pr_err("%s: memfd_create: %s", vd->dev.id, strerror(errno));
		return -errno;
	}
	/* Sealed so a client cannot shrink it under our mapping. */
	if (ftruncate(fd, DB_MEMFD_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		pr_err("%s: doorbell memfd: %s", vd->dev.id, strerror(errno));
		close(fd);
		return -errno;
	}
	p = mmap(NULL, HDNIC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 HDNIC_BAR0_DOORBELL_OFF);
	if (p == MAP_FAILED) {
		pr_err("%s: doorbell mmap: %s", vd->dev.id, strerror(errno));
		close(fd);
		return -errno;
	}
	vd->db_fd = fd;
	vd->db = p;
	return 0;
}

static void doorbell_destroy(struct vdev *vd)
{
	if (vd->db)
		munmap((void *)vd->db, HDNIC_PAGE_SIZE);
	if (vd->db_fd >= 0)
		close(vd->db_fd);
	vd->db = NULL;
	vd->db_fd = -1;
}

/*
 * Program the queue pairs for the current client: its PASID tags their
 * DMA, and queue q's doorbell register is slot q of the function's
 * doorbell page, which the guest maps and stores to directly.
 */
static void program_qps(struct vdev *vd)
{
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];

		qp->pasid = vd->pasid;
		for (unsigned q = 0; q < QP_NR_QUEUES; q++)
			qp->db[q] = vd->db ? (const volatile uint16_t *)(vd->db +
				    (2 * k + q) * HDNIC_DB_STRIDE + HDNIC_DB_SLOT_AVAIL_IDX) : NULL;
	}
	vdev_ims_sync(vd);
}

/* ---- client attach / detach ---- */

int vdev_client_attach(struct vdev *vd)
{
	/* A fresh doorbell page and kick fds per client: an old VM can't poke the new one. */
	int err = doorbell_create(vd);

	if (err)
		return err;
	err = kicks_open(vd);
	if (err)
		goto fail;
	vd->pasid = iommu_pasid_bind(&vd->nic->iommu, &vd->as);
	if (!vd->pasid) {
		pr_err("%s: no free PASID", vd->dev.id);
		err = -ENOSPC;
		goto fail;
	}
	if (nic_mac_rebind(vd->nic, vd)) {
		char mac[18];

		mac_format(vd->mac, mac);
		pr_info("%s: MAC %s went to %s with its guest: this function receives nothing "
			"until set-mac gives it another", vd->dev.id, mac,
			nic_mac_owner(vd->nic, vd->mac) ? nic_mac_owner(vd->nic, vd->mac)->dev.id
							 : "another function");
	}
	vdev_function_reset(vd);
	return 0;
fail:
	kicks_close(vd);
	doorbell_destroy(vd);
	return err;
}

void vdev_client_detach(struct vdev *vd)
{
	vdev_stop_polling(vd);
	vdev_clear_irq_fds(vd);
	iommu_pasid_unbind(&vd->nic->iommu, vd->pasid);
	vd->pasid = 0;
	if (vd->as.dirty)
		dma_dirty_stop(&vd->as);	/* the client's logging ends with it */
	dma_space_unmap_all(&vd->as);
	dma_slow_destroy(vd);
	kicks_close(vd);
	doorbell_destroy(vd);
	nic_mac_client_gone(vd->nic, vd);
	vd->handed_off = false;
	vdev_function_reset(vd);
	vdev_output_client_gone(vd);
}

/* ---- reset ---- */

void vdev_virtio_reset(struct vdev *vd)
{
	struct virtio_net_state *vn = &vd->vn;

	vdev_stop_polling(vd);
	if (vd->as.slow)
		dma_slow_reset(vd->as.slow);	/* before the queues it copied go */
	memset(vn, 0, sizeof(*vn));
	vn->msix_config = VQ_NO_VECTOR;
	vn->active_pairs = 1;
	vq_reset(&vn->ctrlq, HDNIC_QUEUE_MAX_SIZE);
	vdev_rx_filter_reset(vd);
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];

		for (unsigned q = 0; q < QP_NR_QUEUES; q++) {
			vq_reset(&qp->vq[q], HDNIC_QUEUE_MAX_SIZE);
			qp->ims[q].pending = false;
		}
		qp->tx_db_seen = 0;
		qp->tx_kicked = false;
		qp->tx_pushed = false;
		qp->rx_pushed = false;
		qp->irq_want = 0;
	}
	vd->tx_rr = 0;
	vd->irq_want = 0;
	if (vd->db)
		memset((void *)vd->db, 0, HDNIC_PAGE_SIZE);
	program_qps(vd);
	vdev_update_running(vd);
}

void vdev_function_reset(struct vdev *vd)
{
	vdev_mig_reset(vd);	/* a reset is the way out of every migration state */
	vdev_pci_init(vd);
	vdev_irq_init(vd);
	vdev_virtio_reset(vd);
}

void vdev_needs_reset(struct vdev *vd, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (vd->vn.status & VST_NEEDS_RESET)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_err("%s: %s: device needs reset", vd->dev.id, why);
	vd->stats.needs_reset++;
	vd->vn.status |= VST_NEEDS_RESET;
	vdev_update_running(vd);
	vdev_raise_config(vd);
}

void vdev_set_mac(struct vdev *vd, const uint8_t mac[6])
{
	memcpy(vd->mac, mac, 6);
	vdev_raise_config(vd);
}

const char *vdev_state_name(const struct vdev *vd)
{
	uint8_t st = vd->vn.status;

	if (!vdev_has_client(vd))
		return "no-client";
	if (st & VST_NEEDS_RESET)
		return "needs-reset";
	if (st & VST_FAILED)
		return "failed";
	if (vd->dev.paused)
		return vdev_mig_state_name(vd->mig.state);
	if (st & VST_DRIVER_OK)
		return "running";
	if (st)
		return "initialising";
	return "reset";
}

const char *vdev_kind_name(const struct vdev *vd)
{
	return vd->kind == VDEV_VF ? "vf" : "adi";
}

/* ---- what the vfio-user transport calls ---- */

static int vfu_attach(void *dev)
{
	return vdev_client_attach(dev);
}

static void vfu_detach(void *dev)
{
	vdev_client_detach(dev);
}

static void vfu_deadline_set(void *dev)
{
	struct vdev *vd = dev;

	mgmt_arm_timer(vd->nic->mgmt);	/* its tick runs vfu_check_deadlines() */
}

const struct vfu_dev_ops vdev_vfu_ops = {
	.attach = vfu_attach,
	.detach = vfu_detach,
	.dispatch = vfu_dispatch,
	.deadline_set = vfu_deadline_set,
};

/* ---- device ops ---- */

static int vdev_realize(struct hdnic_dev *dev, struct nic *nic)
{
	struct vdev *vd = container_of(dev, struct vdev, dev);
	char path[PATH_MAX];
	int err;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.sock", nic->dir, dev->id) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	err = vfu_listen(vd->vfu, path);
	if (err)
		return err;
	dev->realized = true;
	return 0;
}

static void vdev_unrealize(struct hdnic_dev *dev)
{
	struct vdev *vd = container_of(dev, struct vdev, dev);

	vfu_unlisten(vd->vfu);	/* drops the client: kicks, IRQs, PASID, maps */
	doorbell_destroy(vd);
	dev->realized = false;
}

static void vdev_reset_op(struct hdnic_dev *dev)
{
	vdev_function_reset(container_of(dev, struct vdev, dev));
}

/* Pause and resume are the migration FSM's STOP and RUNNING. */
static void vdev_pause(struct hdnic_dev *dev)
{
	vdev_mig_set_state(container_of(dev, struct vdev, dev), VFIO_DEVICE_STATE_STOP);
}

static void vdev_resume(struct hdnic_dev *dev)
{
	vdev_mig_set_state(container_of(dev, struct vdev, dev), VFIO_DEVICE_STATE_RUNNING);
}

static int vdev_save_op(struct hdnic_dev *dev, struct state_buf *sb)
{
	return vdev_save(container_of(dev, struct vdev, dev), sb);
}

static int vdev_load_op(struct hdnic_dev *dev, struct state_buf *sb)
{
	return vdev_load(container_of(dev, struct vdev, dev), sb);
}

const struct hdnic_dev_ops vdev_ops = {
	.type = "virtio-net",
	.realize = vdev_realize,
	.reset = vdev_reset_op,
	.pause = vdev_pause,
	.resume = vdev_resume,
	.save = vdev_save_op,
	.load = vdev_load_op,
	.unrealize = vdev_unrealize,
};
