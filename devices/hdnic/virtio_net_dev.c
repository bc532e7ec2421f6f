// SPDX-License-Identifier: MIT
/*
 * BAR0 of a function: the virtio PCI common configuration, ISR and
 * virtio-net device configuration (page 0), the notify area (page 1), the
 * doorbell page (page 2) and the MSI-X table and PBA (page 3).  Queue
 * registers written here program the queue pairs behind the function.
 */
#include <errno.h>
#include <linux/virtio_pci.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/rx_wait.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

/* Copy the part of [off, off+len) that falls inside window [base, base+size). */
static void window_read(uint8_t *dst, uint64_t off, uint32_t len,
			const void *src, uint64_t base, uint64_t size)
{
	uint64_t lo = MAX(off, base), hi = MIN(off + len, base + size);

	if (lo < hi)
		memcpy(dst + (lo - off), (const uint8_t *)src + (lo - base), hi - lo);
}

static bool inside(uint64_t off, uint32_t len, uint64_t base, uint64_t size)
{
	return off >= base && off - base < size && len <= size - (off - base);
}

/* ---- common configuration ---- */

static struct vq *selected_vq(struct vdev *vd)
{
	return vdev_queue(vd, vd->vn.queue_select);
}

static void common_snapshot(struct vdev *vd, struct virtio_pci_common_cfg *cc)
{
	struct virtio_net_state *vn = &vd->vn;
	struct vq *vq = selected_vq(vd);

	memset(cc, 0, sizeof(*cc));
	cc->device_feature_select = vn->dfselect;
	cc->device_feature = vn->dfselect < 2 ?
			     (uint32_t)(vdev_features(vd) >> (32 * vn->dfselect)) : 0;
	cc->guest_feature_select = vn->gfselect;
	cc->guest_feature = vn->gfselect < 2 ?
			    (uint32_t)(vn->driver_features >> (32 * vn->gfselect)) : 0;
	cc->msix_config = vn->msix_config;
	cc->num_queues = (uint16_t)vdev_nr_queues(vd);
	cc->device_status = vn->status;
	cc->config_generation = vn->config_generation;
	cc->queue_select = vn->queue_select;
	if (vq) {
		cc->queue_size = vq->size;
		cc->queue_msix_vector = vq->msix_vector;
		cc->queue_enable = vq->enabled;
		cc->queue_notify_off = vn->queue_select;
		cc->queue_desc_lo = (uint32_t)vq->desc_addr;
		cc->queue_desc_hi = (uint32_t)(vq->desc_addr >> 32);
		cc->queue_avail_lo = (uint32_t)vq->avail_addr;
		cc->queue_avail_hi = (uint32_t)(vq->avail_addr >> 32);
		cc->queue_used_lo = (uint32_t)vq->used_addr;
		cc->queue_used_hi = (uint32_t)(vq->used_addr >> 32);
	}
}

static bool driver_ok(const struct vdev *vd)
{
	return vd->vn.status & VST_DRIVER_OK;
}

static void set_dfselect(struct vdev *vd, uint64_t v) { vd->vn.dfselect = (uint32_t)v; }
static void set_gfselect(struct vdev *vd, uint64_t v) { vd->vn.gfselect = (uint32_t)v; }

static void set_gf(struct vdev *vd, uint64_t v)
{
	struct virtio_net_state *vn = &vd->vn;
	unsigned shift;

	if (vn->gfselect >= 2 || (vn->status & VST_FEATURES_OK))
		return;		/* features are frozen once accepted */
	shift = 32 * vn->gfselect;
	vn->driver_features &= ~(0xffffffffULL << shift);
	vn->driver_features |= (v & 0xffffffffULL) << shift;
}

static uint16_t valid_vector(const struct vdev *vd, uint64_t v)
{
	/* A vector we cannot map reads back as NO_VECTOR (virtio 4.1.5.1.2). */
	return v < vd->nr_vectors ? (uint16_t)v : VQ_NO_VECTOR;
}

static void set_msix_config(struct vdev *vd, uint64_t v)
{
	vd->vn.msix_config = valid_vector(vd, v);
}

/* The address space a queue's DMA goes through: its queue pair's PASID. */
static struct dma_space *queue_space(struct vdev *vd, unsigned q, enum vq_dir *dir)
{
	struct qp *qp;
	int d = vdev_queue_qp(vd, q, &qp);

	if (d >= 0) {
		*dir = d == QP_RX ? VQ_FROM_DEVICE : VQ_TO_DEVICE;
		return qp_dma_space(qp);
	}
	/* The control queue is the VDCM's: it reads through the same PASID. */
	*dir = VQ_BOTH;
	return iommu_space(&vd->nic->iommu, vd->pasid);
}

static int attach_queues(struct vdev *vd)
{
	bool ev = vd->vn.driver_features & VF_F_EVENT_IDX;

	for (unsigned i = 0; i < vdev_nr_queues(vd); i++) {
		struct vq *vq = vdev_queue(vd, i);
		enum vq_dir dir = VQ_TO_DEVICE;
		struct dma_space *as;
		int err;

		if (!vq || !vq->enabled || vq->attached)
			continue;
		as = queue_space(vd, i, &dir);
		err = dma_vq_attach(vq, as, ev, dir);
		if (err) {
			vdev_needs_reset(vd, "queue %u rings at %#llx/%#llx/%#llx size %u: %s", i,
					 (unsigned long long)vq->desc_addr,
					 (unsigned long long)vq->avail_addr,
					 (unsigned long long)vq->used_addr, vq->size,
					 strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Features the driver may accept: a subset of ours with VERSION_1; MQ, CTRL_RX need CTRL_VQ. */
static bool features_ok(const struct vdev *vd, uint64_t f)
{
	if ((f & ~vdev_features(vd)) || !(f & VF_F_VERSION_1))
		return false;
	return !(f & (VF_F_MQ | VF_F_CTRL_RX)) || (f & VF_F_CTRL_VQ);
}

static void set_status(struct vdev *vd, uint64_t v)
{
	struct virtio_net_state *vn = &vd->vn;
	uint8_t old = vn->status, st = (uint8_t)v;

	if (!st) {
		vdev_virtio_reset(vd);
		return;
	}
	st &= ~VST_NEEDS_RESET;		/* device-owned */
	st |= old & VST_NEEDS_RESET;
	if ((st & VST_FEATURES_OK) && !(old & VST_FEATURES_OK)) {
		if (!features_ok(vd, vn->driver_features))
			st &= ~VST_FEATURES_OK;
	}
	if ((st & VST_DRIVER_OK) && !(st & VST_FEATURES_OK))
		st &= ~VST_DRIVER_OK;	/* DRIVER_OK before FEATURES_OK is ignored */
	vn->status = st;
	if ((st & VST_DRIVER_OK) && !(old & VST_DRIVER_OK))
		attach_queues(vd);
	vdev_update_running(vd);
}

static void set_queue_select(struct vdev *vd, uint64_t v) { vd->vn.queue_select = (uint16_t)v; }

static void set_queue_size(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	/* Split rings need a power of two; anything else is ignored. */
	if (vq && !vq->enabled && v && v <= HDNIC_QUEUE_MAX_SIZE && !(v & (v - 1)))
		vq->size = (uint16_t)v;
}

static void set_queue_vector(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	if (!vq)
		return;
	vq->msix_vector = valid_vector(vd, v);
	vdev_ims_sync(vd);	/* the queue pair's IMS entry follows the vector */
}

static void set_queue_enable(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	if (!vq || v != 1 || vq->enabled)
		return;		/* writing 0 is not allowed (virtio 4.1.4.3.2) */
	vq->enabled = true;
	if (driver_ok(vd) && !(vd->vn.status & VST_NEEDS_RESET)) {
		attach_queues(vd);
		vdev_update_running(vd);
	}
}

static void set_queue_desc(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	if (vq && !vq->enabled)
		vq->desc_addr = v;
}

static void set_queue_avail(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	if (vq && !vq->enabled)
		vq->avail_addr = v;
}

static void set_queue_used(struct vdev *vd, uint64_t v)
{
	struct vq *vq = selected_vq(vd);

	if (vq && !vq->enabled)
		vq->used_addr = v;
}

struct common_field {
	uint16_t off, len;
	void (*set)(struct vdev *vd, uint64_t v);
};

static const struct common_field common_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4, set_dfselect },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4, set_gfselect },
	{ VIRTIO_PCI_COMMON_GF, 4, set_gf },
	{ VIRTIO_PCI_COMMON_MSIX, 2, set_msix_config },
	{ VIRTIO_PCI_COMMON_STATUS, 1, set_status },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2, set_queue_select },
	{ VIRTIO_PCI_COMMON_Q_SIZE, 2, set_queue_size },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2, set_queue_vector },
	{ VIRTIO_PCI_COMMON_Q_ENABLE, 2, set_queue_enable },
	{ VIRTIO_PCI_COMMON_Q_DESCLO, 8, set_queue_desc },
	{ VIRTIO_PCI_COMMON_Q_AVAILLO, 8, set_queue_avail },
	{ VIRTIO_PCI_COMMON_Q_USEDLO, 8, set_queue_used },
};

static int common_write(struct vdev *vd, uint64_t off, const uint8_t *data, uint32_t len)
{
	for (unsigned i = 0; i < ARRAY_SIZE(common_fields); i++) {
		const struct common_field *f = &common_fields[i];
		struct virtio_pci_common_cfg cc;
		uint64_t v = 0;

		if (!inside(off, len, f->off, f->len))
			continue;
		/* Merge partial writes (e.g. the 32-bit halves of an address). */
		common_snapshot(vd, &cc);
		memcpy(&v, (uint8_t *)&cc + f->off, f->len);
		memcpy((uint8_t *)&v + (off - f->off), data, len);
		f->set(vd, v);
		return 0;
	}
	pr_debug("%s: ignored %u-byte write to common config %#llx", vd->dev.id, len,
		 (unsigned long long)off);
	return 0;
}

/* ---- device configuration ---- */

struct vnet_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

static void devcfg_snapshot(struct vdev *vd, struct vnet_config *c)
{
	memcpy(c->mac, vd->mac, 6);
	c->status = 1;	/* VIRTIO_NET_S_LINK_UP: the internal switch is always up */
	c->max_virtqueue_pairs = (uint16_t)vd->nr_qps;
	c->mtu = 1500;
}

/* ---- page handlers ---- */

static void page0_read(struct vdev *vd, uint64_t off, uint8_t *buf, uint32_t len)
{
	struct virtio_pci_common_cfg cc;
	struct vnet_config dc;

	common_snapshot(vd, &cc);
	window_read(buf, off, len, &cc, HDNIC_BAR0_COMMON_OFF, sizeof(cc));
	devcfg_snapshot(vd, &dc);
	window_read(buf, off, len, &dc, HDNIC_BAR0_DEVCFG_OFF, sizeof(dc));
	if (off <= HDNIC_BAR0_ISR_OFF && off + len > HDNIC_BAR0_ISR_OFF) {
		buf[HDNIC_BAR0_ISR_OFF - off] = vd->vn.isr;
		vd->vn.isr = 0;		/* reading the ISR acknowledges it */
	}
}

static int page0_write(struct vdev *vd, uint64_t off, const uint8_t *buf, uint32_t len)
{
	if (inside(off, len, HDNIC_BAR0_COMMON_OFF, HDNIC_BAR0_COMMON_LEN))
		return common_write(vd, off - HDNIC_BAR0_COMMON_OFF, buf, len);
	/* ISR and device config are read-only; the rest is reserved. */
	return 0;
}

static void notify_write(struct vdev *vd, uint64_t off, uint32_t len)
{
	uint64_t rel = off - HDNIC_BAR0_NOTIFY_OFF;

	if (rel % HDNIC_NOTIFY_MULTIPLIER == 0 &&
	    rel / HDNIC_NOTIFY_MULTIPLIER < vdev_nr_queues(vd))
		vdev_kick(vd, (unsigned)(rel / HDNIC_NOTIFY_MULTIPLIER));
}

static void msix_read(struct vdev *vd, uint64_t off, uint8_t *buf, uint32_t len)
{
	uint64_t pba = 0;

	for (unsigned v = 0; v < vd->nr_vectors; v++)
		if (vdev_irq_pending(vd, v))
			pba |= 1ULL << v;
	window_read(buf, off, len, vd->msix, HDNIC_BAR0_MSIX_TABLE_OFF,
		    vd->nr_vectors * sizeof(*vd->msix));
	window_read(buf, off, len, &pba, HDNIC_BAR0_MSIX_PBA_OFF, sizeof(pba));
}

static void msix_write(struct vdev *vd, uint64_t off, const uint8_t *buf, uint32_t len)
{
	/* hdvm emulates the table; we keep what it writes so reads agree. */
	if (inside(off, len, HDNIC_BAR0_MSIX_TABLE_OFF, vd->nr_vectors * sizeof(*vd->msix)))
		memcpy((uint8_t *)vd->msix + (off - HDNIC_BAR0_MSIX_TABLE_OFF), buf, len);
}

int vdev_bar0_read(struct vdev *vd, uint64_t off, void *data, uint32_t len)
{
	uint8_t *buf = data;

	memset(buf, 0, len);
	while (len) {
		uint64_t page = off & ~(uint64_t)(HDNIC_PAGE_SIZE - 1);
		uint32_t n = (uint32_t)MIN((uint64_t)len, page + HDNIC_PAGE_SIZE - off);

		switch (page) {
		case 0:
			page0_read(vd, off, buf, n);
			break;
		case HDNIC_BAR0_DOORBELL_OFF:
			if (vd->db)
				memcpy(buf, (const uint8_t *)vd->db + (off - page), n);
			break;
		case HDNIC_BAR0_MSIX_TABLE_OFF:
			msix_read(vd, off, buf, n);
			break;
		default:	/* the notify page reads as zero */
			break;
		}
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

int vdev_bar0_write(struct vdev *vd, uint64_t off, const void *data, uint32_t len)
{
	const uint8_t *buf = data;

	while (len) {
		uint64_t page = off & ~(uint64_t)(HDNIC_PAGE_SIZE - 1);
		uint32_t n = (uint32_t)MIN((uint64_t)len, page + HDNIC_PAGE_SIZE - off);

		switch (page) {
		case 0:
			page0_write(vd, off, buf, n);
			break;
		case HDNIC_BAR0_NOTIFY_OFF:
			notify_write(vd, off, n);
			break;
		case HDNIC_BAR0_DOORBELL_OFF:
			if (vd->db)
				memcpy((uint8_t *)vd->db + (off - page), buf, n);
			break;
		default:
			msix_write(vd, off, buf, n);
			break;
		}
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

void vdev_update_running(struct vdev *vd)
{
	uint8_t st = vd->vn.status;
	bool run = (st & VST_DRIVER_OK) && !(st & (VST_NEEDS_RESET | VST_FAILED)) &&
		   !vd->dev.paused && vdev_has_client(vd);

	vd->running = run;
	if (run)
		vd->handed_off = false;	/* it runs again: its state is here after all */
	sw_port_set_live(&vd->nic->sw, vd->port, vdev_live(vd));
	if (vd->nic->rxw_list)
		rxw_update_block(vd->nic);	/* who can take a frame changed */
	if (run)
		vdev_start_polling(vd);
	else
		vdev_stop_polling(vd);
}
