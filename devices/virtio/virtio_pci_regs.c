// SPDX-License-Identifier: MIT
/*
 * BAR0 of the virtio PCI transport: the common configuration structure as a
 * table of registers (offset, width, get, set), the ISR, the device
 * configuration window, the notify area and the MSI-X table.
 *
 * Accesses must have the register's width (a 64-bit access to the common
 * config is split into two 32-bit ones, which is how drivers reach the queue
 * addresses); anything else reads 0 and writes nothing.  Writes to the
 * read-only registers, to queue registers of a queue that does not exist,
 * or to a queue's layout after it was enabled are ignored.
 */
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/virtio_pci_int.h"
#include "vmm/util.h"

struct common_reg {
	uint16_t off;
	uint8_t width;
	uint32_t (*get)(struct virtio_pci *vp);
	void (*set)(struct virtio_pci *vp, uint32_t v);	/* NULL: read-only */
};

static struct vq *selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->nr_queues ? &vp->vqs[vp->queue_select] : NULL;
}

static uint16_t valid_vector(struct virtio_pci *vp, uint32_t v)
{
	/* an impossible vector reads back as NO_VECTOR: the driver's error signal */
	return v < vp->nr_vectors ? (uint16_t)v : VQ_NO_VECTOR;
}

/* ---- features ---- */

static uint32_t get_dfselect(struct virtio_pci *vp) { return vp->dfselect; }
static void set_dfselect(struct virtio_pci *vp, uint32_t v) { vp->dfselect = v; }
static uint32_t get_gfselect(struct virtio_pci *vp) { return vp->gfselect; }
static void set_gfselect(struct virtio_pci *vp, uint32_t v) { vp->gfselect = v; }

static uint32_t get_device_feature(struct virtio_pci *vp)
{
	return vp->dfselect < 2 ? (uint32_t)(vp->device_features >> (32 * vp->dfselect)) : 0;
}

static uint32_t get_driver_feature(struct virtio_pci *vp)
{
	return vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect)) : 0;
}

static void set_driver_feature(struct virtio_pci *vp, uint32_t v)
{
	unsigned shift = 32 * vp->gfselect;

	/* frozen once FEATURES_OK was accepted */
	if (vp->gfselect >= 2 || (virtio_pci_status(vp) & VIRTIO_STATUS_FEATURES_OK))
		return;
	vp->driver_features = (vp->driver_features & ~(0xffffffffull << shift)) |
			      ((uint64_t)v << shift);
}

/* ---- device-wide ---- */

static uint32_t get_msix_config(struct virtio_pci *vp) { return atomic_load(&vp->msix_config); }

static void set_msix_config(struct virtio_pci *vp, uint32_t v)
{
	atomic_store(&vp->msix_config, valid_vector(vp, v));
}

static uint32_t get_num_queues(struct virtio_pci *vp) { return vp->nr_queues; }
static uint32_t get_status(struct virtio_pci *vp) { return virtio_pci_status(vp); }
static uint32_t get_generation(struct virtio_pci *vp) { return vp->config_generation; }

static bool features_acceptable(struct virtio_pci *vp)
{
	return !(vp->driver_features & ~vp->device_features) &&
	       (vp->driver_features & VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
}

static void driver_ok(struct virtio_pci *vp, uint8_t status)
{
	virtio_pci_backend_stop(vp);
	atomic_store(&vp->status, status);
	for (unsigned q = 0; q < vp->nr_queues; q++)
		if (vp->vqs[q].enabled)
			virtio_pci_attach_queue(vp, q);
	virtio_pci_backend_start(vp);
}

static void set_status(struct virtio_pci *vp, uint32_t v)
{
	uint8_t old = virtio_pci_status(vp), now;

	if (!(v & 0xff)) {
		virtio_pci_reset(vp);
		return;
	}
	/* the driver only adds bits; NEEDS_RESET is the device's to set */
	now = old | (v & 0xff & ~VIRTIO_STATUS_NEEDS_RESET);
	if ((now & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_acceptable(vp))
		now &= ~VIRTIO_STATUS_FEATURES_OK;	/* the driver reads it back and gives up */
	if ((now & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!(now & VIRTIO_STATUS_FEATURES_OK)) {
			/* a legacy-style driver that skipped negotiation: not for a modern device */
			pr_debug("%s: DRIVER_OK without FEATURES_OK", vp->name);
			now = (now & ~VIRTIO_STATUS_DRIVER_OK) | VIRTIO_STATUS_NEEDS_RESET;
		} else {
			driver_ok(vp, now);
			return;
		}
	}
	atomic_fetch_or(&vp->status, now);
}

/* ---- the selected queue ---- */

static uint32_t get_queue_select(struct virtio_pci *vp) { return vp->queue_select; }
static void set_queue_select(struct virtio_pci *vp, uint32_t v) { vp->queue_select = v; }

static uint32_t get_queue_size(struct virtio_pci *vp)
{
	struct vq *q = selected(vp);

	return q ? q->size : 0;		/* 0: no such queue */
}

static void set_queue_size(struct virtio_pci *vp, uint32_t v)
{
	struct vq *q = selected(vp);

	/* split rings need a power of two; anything else keeps the old size */
	if (q && !q->enabled && v && v <= vp->queue_max_size && !(v & (v - 1)))
		q->size = v;
}

static uint32_t get_queue_vector(struct virtio_pci *vp)
{
	struct vq *q = selected(vp);

	return q ? q->msix_vector : VQ_NO_VECTOR;
}

static void set_queue_vector(struct virtio_pci *vp, uint32_t v)
{
	struct vq *q = selected(vp);

	if (!q)
		return;
	virtio_pci_backend_stop(vp);
	q->msix_vector = valid_vector(vp, v);
	virtio_pci_backend_start(vp);
}

static uint32_t get_queue_enable(struct virtio_pci *vp)
{
	struct vq *q = selected(vp);

	return q && q->enabled;
}

static void set_queue_enable(struct virtio_pci *vp, uint32_t v)
{
	struct vq *q = selected(vp);

	if (!q || v != 1 || q->enabled)
		return;		/* only a reset disables a queue */
	virtio_pci_backend_stop(vp);
	q->enabled = true;
	if (virtio_pci_status(vp) & VIRTIO_STATUS_DRIVER_OK)
		virtio_pci_attach_queue(vp, vp->queue_select);
	virtio_pci_backend_start(vp);
}

static uint32_t get_queue_notify_off(struct virtio_pci *vp)
{
	return selected(vp) ? vp->queue_select : 0;
}

#define QUEUE_ADDR_REG(field, half, shift)					\
static uint32_t get_##field##_##half(struct virtio_pci *vp)			\
{										\
	struct vq *q = selected(vp);						\
										\
	return q ? (uint32_t)(q->field >> (shift)) : 0;				\
}										\
static void set_##field##_##half(struct virtio_pci *vp, uint32_t v)		\
{										\
	struct vq *q = selected(vp);						\
										\
	if (q && !q->enabled)							\
		q->field = (q->field & ~(0xffffffffull << (shift))) |		\
			   ((uint64_t)v << (shift));				\
}

QUEUE_ADDR_REG(desc_addr, lo, 0)
QUEUE_ADDR_REG(desc_addr, hi, 32)
QUEUE_ADDR_REG(avail_addr, lo, 0)
QUEUE_ADDR_REG(avail_addr, hi, 32)
QUEUE_ADDR_REG(used_addr, lo, 0)
QUEUE_ADDR_REG(used_addr, hi, 32)

static const struct common_reg common_regs[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4, get_dfselect, set_dfselect },
	{ VIRTIO_PCI_COMMON_DF, 4, get_device_feature, NULL },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4, get_gfselect, set_gfselect },
	{ VIRTIO_PCI_COMMON_GF, 4, get_driver_feature, set_driver_feature },
	{ VIRTIO_PCI_COMMON_MSIX, 2, get_msix_config, set_msix_config },
	{ VIRTIO_PCI_COMMON_NUMQ, 2, get_num_queues, NULL },
	{ VIRTIO_PCI_COMMON_STATUS, 1, get_status, set_status },
	{ VIRTIO_PCI_COMMON_CFGGENERATION, 1, get_generation, NULL },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2, get_queue_select, set_queue_select },
	{ VIRTIO_PCI_COMMON_Q_SIZE, 2, get_queue_size, set_queue_size },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2, get_queue_vector, set_queue_vector },
	{ VIRTIO_PCI_COMMON_Q_ENABLE, 2, get_queue_enable, set_queue_enable },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2, get_queue_notify_off, NULL },
	{ VIRTIO_PCI_COMMON_Q_DESCLO, 4, get_desc_addr_lo, set_desc_addr_lo },
	{ VIRTIO_PCI_COMMON_Q_DESCHI, 4, get_desc_addr_hi, set_desc_addr_hi },
	{ VIRTIO_PCI_COMMON_Q_AVAILLO, 4, get_avail_addr_lo, set_avail_addr_lo },
	{ VIRTIO_PCI_COMMON_Q_AVAILHI, 4, get_avail_addr_hi, set_avail_addr_hi },
	{ VIRTIO_PCI_COMMON_Q_USEDLO, 4, get_used_addr_lo, set_used_addr_lo },
	{ VIRTIO_PCI_COMMON_Q_USEDHI, 4, get_used_addr_hi, set_used_addr_hi },
};

static void common_access(struct virtio_pci *vp, uint32_t off, void *data, unsigned len,
			  bool is_write)
{
	if (len == 8 && !(off % 8)) {
		common_access(vp, off, data, 4, is_write);
		common_access(vp, off + 4, (uint8_t *)data + 4, 4, is_write);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(common_regs); i++) {
		const struct common_reg *r = &common_regs[i];
		uint32_t v = 0;

		if (r->off != off || r->width != len)
			continue;
		if (is_write) {
			memcpy(&v, data, len);
			if (r->set)
				r->set(vp, v);
		} else {
			v = r->get(vp);
			memcpy(data, &v, len);
		}
		return;
	}
}

/* ---- the other structures ---- */

static void isr_access(struct virtio_pci *vp, uint32_t off, void *data, unsigned len,
		       bool is_write)
{
	/* reading byte 0 acknowledges: the bits clear (there is no INTx line to drop) */
	if (!is_write && off == 0)
		*(uint8_t *)data = atomic_exchange(&vp->isr, 0);
}

static void devcfg_access(struct virtio_pci *vp, uint32_t off, void *data, unsigned len,
			  bool is_write)
{
	if (off + len > vp->devcfg_len)
		return;
	if (is_write) {
		if (vp->ops->cfg_write)
			vp->ops->cfg_write(vp->opaque, off, data, len);
	} else if (vp->ops->cfg_read) {
		vp->ops->cfg_read(vp->opaque, off, data, len);
	}
}

static void notify_access(struct virtio_pci *vp, uint32_t off, void *data, unsigned len,
			  bool is_write)
{
	unsigned q = off / VIRTIO_PCI_NOTIFY_MULT;
	uint64_t one = 1;

	if (!is_write || q >= vp->nr_queues)
		return;
	/* a kick KVM did not catch in the kernel: same eventfd, same effect */
	atomic_fetch_add(&vp->notify_exits, 1);
	if (write(vp->kick_fd[q], &one, sizeof(one)) < 0)
		pr_debug("%s: kick eventfd: write failed", vp->name);
}

struct bar_region {
	uint32_t off;
	uint32_t (*len)(const struct virtio_pci *vp);
	void (*access)(struct virtio_pci *vp, uint32_t off, void *data, unsigned len,
		       bool is_write);
};

static uint32_t common_len(const struct virtio_pci *vp) { return VIRTIO_PCI_COMMON_LEN; }
static uint32_t isr_len(const struct virtio_pci *vp) { return VIRTIO_PCI_ISR_LEN; }
static uint32_t devcfg_len(const struct virtio_pci *vp) { return vp->devcfg_len; }
static uint32_t notify_len(const struct virtio_pci *vp)
{
	return vp->nr_queues * VIRTIO_PCI_NOTIFY_MULT;
}

static const struct bar_region bar_regions[] = {
	{ VIRTIO_PCI_COMMON_OFF, common_len, common_access },
	{ VIRTIO_PCI_ISR_OFF, isr_len, isr_access },
	{ VIRTIO_PCI_DEVCFG_OFF, devcfg_len, devcfg_access },
	{ VIRTIO_PCI_NOTIFY_OFF, notify_len, notify_access },
};

void virtio_pci_bar_access_locked(struct virtio_pci *vp, uint64_t off, void *data,
				  unsigned len, bool is_write)
{
	if (!is_write)
		memset(data, 0, len);
	for (size_t i = 0; i < ARRAY_SIZE(bar_regions); i++) {
		const struct bar_region *r = &bar_regions[i];

		if (off >= r->off && off - r->off < r->len(vp)) {
			r->access(vp, off - r->off, data, len, is_write);
			return;
		}
	}
}

/* The MSI-X table has its own lock: no device lock around it. */
static void bar_access(struct virtio_pci *vp, uint64_t off, void *data, unsigned len,
		       bool is_write)
{
	if (is_write ? pci_msix_mmio_write(&vp->msix, off, data, len)
		     : pci_msix_mmio_read(&vp->msix, off, data, len))
		return;
	pthread_mutex_lock(vp->lock);
	virtio_pci_bar_access_locked(vp, off, data, len, is_write);
	pthread_mutex_unlock(vp->lock);
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	bar_access(opaque, off, data, len, false);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	bar_access(opaque, off, (void *)data, len, true);
}

const struct io_ops virtio_pci_bar_ops = { .read = bar_read, .write = bar_write };
