// SPDX-License-Identifier: MIT
/*
 * Virtio PCI transport: the PCI function (IDs, capabilities, BAR0, MSI-X),
 * the eventfds between KVM and the back end, device reset, interrupts and
 * state.  The registers behind BAR0 are in virtio_pci_regs.c.
 */
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/virtio_pci.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/virtio/virtio_pci_int.h"
#include "migration/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define STATE_VERSION		1
#define RING_ERRORS_LOGGED	8
#define PCICFG_CAP_LEN		(sizeof(struct virtio_pci_cfg_cap))
#define PCICFG_DATA		offsetof(struct virtio_pci_cfg_cap, pci_cfg_data)

/* ---- interrupts: MSI-X vector -> eventfd -> KVM_IRQFD -> GSI ---- */

static int irqfd(struct virtio_pci *vp, unsigned v, int gsi, bool assign)
{
	int ret = vm_irqfd(vp->vm, vp->irq_fd[v], gsi, assign);

	if (ret < 0)
		pr_err("%s: KVM_IRQFD %s GSI %d: %s", vp->name, assign ? "to" : "from", gsi,
		       strerror(-ret));
	return ret;
}

/* Runs under the MSI-X lock: bind the vector's eventfd once it has a route. */
static void msix_update(void *opaque, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
	struct virtio_pci *vp = opaque;
	int gsi;

	if (!vp->kvm || masked || v >= vp->nr_vectors)
		return;
	gsi = pci_msix_gsi(&vp->msix, v);
	if (gsi < 0 || gsi == vp->irq_gsi[v])
		return;
	if (vp->irq_gsi[v] >= 0)
		irqfd(vp, v, vp->irq_gsi[v], false);
	vp->irq_gsi[v] = irqfd(vp, v, gsi, true) ? -1 : gsi;
}

static void signal_vector(struct virtio_pci *vp, unsigned v)
{
	uint64_t one = 1;

	if (write(vp->irq_fd[v], &one, sizeof(one)) < 0)
		pr_debug("%s: interrupt eventfd %u: %s", vp->name, v, strerror(errno));
}

/* A message that was pending while masked, now unmasked. */
static void msix_fire(void *opaque, unsigned v)
{
	struct virtio_pci *vp = opaque;

	if (v < vp->nr_vectors)
		signal_vector(vp, v);
}

static const struct pci_msix_ops msix_ops = { .update = msix_update, .fire = msix_fire };

void virtio_pci_irq(struct virtio_pci *vp, uint16_t vector)
{
	/* No INTx: without a vector the driver polls (the ISR still says why). */
	if (vector < vp->nr_vectors && pci_msix_raise(&vp->msix, vector))
		signal_vector(vp, vector);
}

void virtio_pci_queue_irq(struct virtio_pci *vp, unsigned q)
{
	atomic_fetch_or(&vp->isr, VIRTIO_ISR_QUEUE);
	virtio_pci_irq(vp, vp->vqs[q].msix_vector);
}

static void config_irq(struct virtio_pci *vp)
{
	atomic_fetch_or(&vp->isr, VIRTIO_ISR_CONFIG);
	virtio_pci_irq(vp, atomic_load(&vp->msix_config));
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	vp->config_generation++;
	config_irq(vp);
}

void virtio_pci_queue_broken(struct virtio_pci *vp, unsigned q, int err)
{
	uint8_t old;

	uint64_t nth;

	vp->vqs[q].broken = true;
	vq_detach(&vp->vqs[q]);
	nth = atomic_fetch_add(&vp->ring_errors, 1) + 1;
	old = atomic_fetch_or(&vp->status, VIRTIO_STATUS_NEEDS_RESET);
	if (old & VIRTIO_STATUS_NEEDS_RESET)
		return;
	/* a driver that breaks and resets in a loop must not flood the log */
	if (nth <= RING_ERRORS_LOGGED)
		pr_err("%s: the guest driver broke queue %u (%s): device needs a reset%s",
		       vp->name, q, vq_strerror(err),
		       nth == RING_ERRORS_LOGGED ? " (further ones are only counted)" : "");
	config_irq(vp);
}

bool virtio_pci_live(struct virtio_pci *vp)
{
	uint8_t s = virtio_pci_status(vp);

	return (s & VIRTIO_STATUS_DRIVER_OK) && !(s & VIRTIO_STATUS_NEEDS_RESET);
}

bool virtio_pci_has_feature(struct virtio_pci *vp, unsigned bit)
{
	return bit < 64 && (vp->driver_features & VIRTIO_FEATURE(bit));
}

void virtio_pci_attach_queue(struct virtio_pci *vp, unsigned q)
{
	struct vq_mem ram = vq_guest_ram(&vp->vm->mem);
	struct vq *vq = &vp->vqs[q];
	int err;

	if (vq->broken)
		return;
	err = vq_attach(vq, &ram, virtio_pci_has_feature(vp, VIRTIO_RING_F_EVENT_IDX),
			vp->device_writes & (1u << q) ? VQ_FROM_DEVICE : VQ_TO_DEVICE);
	if (err)
		virtio_pci_queue_broken(vp, q, err);
}

/* ---- notify: one ioeventfd per queue while BAR0 is decoded ---- */

static void ioeventfds(struct virtio_pci *vp, uint64_t base, bool assign)
{
	for (unsigned q = 0; q < vp->nr_queues; q++) {
		struct vm_ioeventfd req = {
			.addr = base + VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULT,
			.len = vp->ioeventfd_len,
			.fd = vp->kick_fd[q],
		};
		int ret = vm_ioeventfd(vp->vm, &req, assign);

		/* without it the write exits to hdvm and takes the slow path */
		if (ret < 0)
			pr_debug("%s: KVM_IOEVENTFD %s %#llx: %s", vp->name,
				 assign ? "at" : "off", (unsigned long long)req.addr,
				 strerror(-ret));
	}
}

/* Called by the PCI core (bus lock held) whenever BAR0 appears or goes away. */
static void bar_mapped(struct pci_dev *pd, int bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *vp = container_of(pd, struct virtio_pci, pd);

	if (bar != VIRTIO_PCI_BAR || !vp->kvm)
		return;
	if (vp->notify_mapped)
		ioeventfds(vp, vp->notify_base, false);
	vp->notify_mapped = mapped;
	vp->notify_base = addr;
	if (mapped)
		ioeventfds(vp, addr, true);
}

/* ---- VIRTIO_PCI_CAP_PCI_CFG: BAR0 through a config-space window ---- */

static bool window_hit(struct virtio_pci *vp, uint32_t off, unsigned len, uint32_t *boff,
		       unsigned *blen)
{
	uint32_t cap = vp->pcicfg_cap;
	uint8_t bar = pci_cfg_get(&vp->pd, cap + VIRTIO_PCI_CAP_BAR, 1);

	if (off + len <= cap + PCICFG_DATA || off >= cap + PCICFG_DATA + 4)
		return false;
	*boff = pci_cfg_get(&vp->pd, cap + VIRTIO_PCI_CAP_OFFSET, 4);
	*blen = pci_cfg_get(&vp->pd, cap + VIRTIO_PCI_CAP_LENGTH, 4);
	return bar == VIRTIO_PCI_BAR && (*blen == 1 || *blen == 2 || *blen == 4) &&
	       !(*boff % *blen) && *boff < VIRTIO_PCI_BAR_SIZE;
}

static void cfg_read(struct pci_dev *pd, uint32_t off, void *data, unsigned len)
{
	struct virtio_pci *vp = container_of(pd, struct virtio_pci, pd);
	uint32_t boff, v = 0;
	unsigned blen;

	if (window_hit(vp, off, len, &boff, &blen)) {
		pthread_mutex_lock(vp->lock);
		virtio_pci_bar_access_locked(vp, boff, &v, blen, false);
		pthread_mutex_unlock(vp->lock);
		pci_cfg_set(pd, vp->pcicfg_cap + PCICFG_DATA, v, 4);
	}
	pci_cfg_read(pd, off, data, len);
}

static void cfg_write(struct pci_dev *pd, uint32_t off, const void *data, unsigned len)
{
	struct virtio_pci *vp = container_of(pd, struct virtio_pci, pd);
	uint32_t boff, v;
	unsigned blen;

	pci_cfg_write(pd, off, data, len);
	if (window_hit(vp, off, len, &boff, &blen)) {
		v = pci_cfg_get(pd, vp->pcicfg_cap + PCICFG_DATA, 4);
		pthread_mutex_lock(vp->lock);
		virtio_pci_bar_access_locked(vp, boff, &v, blen, true);
		pthread_mutex_unlock(vp->lock);
	}
}

static const struct pci_dev_ops virtio_pci_dev_ops = {
	.cfg_read = cfg_read,
	.cfg_write = cfg_write,
	.bar_mapped = bar_mapped,
};

static void reset_registers(struct virtio_pci *vp)
{
	for (unsigned q = 0; q < vp->nr_queues; q++)
		vq_reset(&vp->vqs[q], vp->queue_max_size);
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	atomic_store(&vp->msix_config, VQ_NO_VECTOR);
	atomic_store(&vp->isr, 0);
	atomic_store(&vp->status, 0);
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	virtio_pci_backend_stop(vp);
	reset_registers(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp->opaque);
	virtio_pci_backend_start(vp);
}

/* ---- construction ---- */

static int add_cap(struct virtio_pci *vp, uint8_t type, uint32_t off, uint32_t len,
		   uint8_t cap_len)
{
	int pos = pci_dev_add_cap(&vp->pd, PCI_CAP_ID_VNDR, cap_len);

	if (pos < 0)
		return pos;
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_CAP_LEN, cap_len, 1);
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_CAP_CFG_TYPE, type, 1);
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_BAR, 1);
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_CAP_OFFSET, off, 4);
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_CAP_LENGTH, len, 4);
	return pos;
}

static int add_caps(struct virtio_pci *vp)
{
	int pos;

	if (add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN,
		    sizeof(struct virtio_pci_cap)) < 0 ||
	    add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN,
		    sizeof(struct virtio_pci_cap)) < 0 ||
	    add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVCFG_OFF, vp->devcfg_len,
		    sizeof(struct virtio_pci_cap)) < 0)
		return -ENOSPC;
	pos = add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
		      vp->nr_queues * VIRTIO_PCI_NOTIFY_MULT, sizeof(struct virtio_pci_notify_cap));
	if (pos < 0)
		return pos;
	pci_cfg_set(&vp->pd, pos + VIRTIO_PCI_NOTIFY_CAP_MULT, VIRTIO_PCI_NOTIFY_MULT, 4);
	/* the window's BAR/offset/length/data are the driver's to write */
	pos = add_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, PCICFG_CAP_LEN);
	if (pos < 0)
		return pos;
	vp->pcicfg_cap = (uint8_t)pos;
	pci_dev_set_wmask(&vp->pd, pos + VIRTIO_PCI_CAP_BAR, 0xff, 1);
	pci_dev_set_wmask(&vp->pd, pos + VIRTIO_PCI_CAP_OFFSET, 0xffffffff, 4);
	pci_dev_set_wmask(&vp->pd, pos + VIRTIO_PCI_CAP_LENGTH, 0xffffffff, 4);
	pci_dev_set_wmask(&vp->pd, pos + PCICFG_DATA, 0xffffffff, 4);
	return 0;
}

static int make_eventfds(struct virtio_pci *vp)
{
	for (unsigned q = 0; q < vp->nr_queues; q++) {
		vp->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->kick_fd[q] < 0)
			return -errno;
	}
	for (unsigned v = 0; v < vp->nr_vectors; v++) {
		vp->irq_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->irq_fd[v] < 0)
			return -errno;
	}
	return 0;
}

int virtio_pci_init(struct virtio_pci *vp, struct vm *vm, const struct virtio_pci_params *p)
{
	int err;

	memset(vp, 0, sizeof(*vp));
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++)
		vp->kick_fd[i] = -1;
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++) {
		vp->irq_fd[i] = -1;
		vp->irq_gsi[i] = -1;
	}
	if (!p->nr_queues || p->nr_queues > VIRTIO_PCI_MAX_QUEUES || !p->queue_max_size ||
	    p->queue_max_size > VQ_MAX_SIZE || p->devcfg_len > VIRTIO_PCI_DEVCFG_MAX)
		return -EINVAL;
	vp->vm = vm;
	vp->kvm = vm->irq != NULL;	/* unit tests build buses without KVM */
	vp->ops = p->ops;
	vp->opaque = p->opaque;
	vp->lock = p->lock;
	vp->name = p->name;
	vp->device_features = p->features;
	vp->devcfg_len = p->devcfg_len;
	vp->nr_queues = p->nr_queues;
	vp->nr_vectors = p->nr_queues + 1;
	vp->queue_max_size = p->queue_max_size;
	vp->device_writes = p->device_writes;
	/* a notify of any width goes to the eventfd if KVM can match that */
	vp->ioeventfd_len = vp->kvm &&
		ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0 ? 0 : 2;
	reset_registers(vp);

	err = make_eventfds(vp);
	if (err) {
		pr_err("%s: eventfd: %s", p->name, strerror(-err));
		return err;
	}
	pci_dev_init(&vp->pd, p->name, &virtio_pci_dev_ops, VIRTIO_PCI_VENDOR_ID,
		     VIRTIO_PCI_DEVICE_ID_BASE + p->device_type, p->class_code,
		     VIRTIO_PCI_REVISION, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_DEVICE_ID_BASE + p->device_type);
	err = pci_dev_set_bar(&vp->pd, VIRTIO_PCI_BAR, PCI_BAR_MEM32, VIRTIO_PCI_BAR_SIZE, false,
			      &virtio_pci_bar_ops, vp);
	if (!err)
		err = add_caps(vp);
	if (!err)
		err = pci_msix_init(&vp->msix, &vp->pd, vp->kvm ? vm : NULL, vp->nr_vectors,
				    VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
				    VIRTIO_PCI_MSIX_PBA_OFF, &msix_ops, vp);
	if (err)
		pr_err("%s: building the PCI function failed: %s", p->name, strerror(-err));
	return err;
}

int virtio_pci_register(struct virtio_pci *vp)
{
	int ret = pci_bus_register(vp->vm->pci, &vp->pd, PCI_ANY_SLOT);

	if (ret < 0)
		return ret;
	vp->registered = true;
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (vp->registered) {
		pci_bus_unregister(vp->vm->pci, &vp->pd);	/* drops the ioeventfds */
		vp->registered = false;
	}
	for (unsigned v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++) {
		if (vp->irq_gsi[v] >= 0)
			irqfd(vp, v, vp->irq_gsi[v], false);
		vp->irq_gsi[v] = -1;
		if (vp->irq_fd[v] >= 0)
			close(vp->irq_fd[v]);
		vp->irq_fd[v] = -1;
	}
	pci_msix_destroy(&vp->msix);
	for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++) {
		if (vp->kick_fd[q] >= 0)
			close(vp->kick_fd[q]);
		vp->kick_fd[q] = -1;
	}
}


/* ---- state ---- */

void virtio_pci_save(struct virtio_pci *vp, struct state_buf *sb)
{
	state_put_u32(sb, STATE_VERSION);
	state_put_u64(sb, vp->driver_features);
	state_put_u32(sb, vp->dfselect);
	state_put_u32(sb, vp->gfselect);
	state_put_u16(sb, vp->queue_select);
	state_put_u16(sb, atomic_load(&vp->msix_config));
	state_put_u8(sb, atomic_load(&vp->status));
	state_put_u8(sb, atomic_load(&vp->isr));
	state_put_u8(sb, vp->config_generation);
	state_put_u32(sb, vp->nr_queues);
	for (unsigned q = 0; q < vp->nr_queues; q++)
		vq_save(&vp->vqs[q], sb);
}

int virtio_pci_load(struct virtio_pci *vp, struct state_buf *sb)
{
	uint32_t version = state_get_u32(sb);
	uint64_t features = state_get_u64(sb);
	uint32_t dfselect = state_get_u32(sb), gfselect = state_get_u32(sb);
	uint16_t queue_select = state_get_u16(sb), msix_config = state_get_u16(sb);
	uint8_t status = state_get_u8(sb), isr = state_get_u8(sb), gen = state_get_u8(sb);
	uint32_t nr = state_get_u32(sb);
	struct vq vqs[VIRTIO_PCI_MAX_QUEUES];

	if (!state_ok(sb) || version != STATE_VERSION) {
		pr_err("%s: unknown device state version %u", vp->name, version);
		return -EINVAL;
	}
	if (nr != vp->nr_queues || (features & ~vp->device_features)) {
		pr_err("%s: saved state does not fit this device (%u queues, features %#llx)",
		       vp->name, nr, (unsigned long long)features);
		return -EINVAL;
	}
	for (unsigned q = 0; q < nr; q++) {
		if (vq_load(&vqs[q], sb, vp->queue_max_size) < 0) {
			pr_err("%s: saved state of queue %u is invalid", vp->name, q);
			return -EINVAL;
		}
		if (vqs[q].msix_vector != VQ_NO_VECTOR && vqs[q].msix_vector >= vp->nr_vectors)
			return -EINVAL;
	}
	if (msix_config != VQ_NO_VECTOR && msix_config >= vp->nr_vectors)
		return -EINVAL;

	virtio_pci_backend_stop(vp);
	vp->driver_features = features;
	vp->dfselect = dfselect;
	vp->gfselect = gfselect;
	vp->queue_select = queue_select;
	atomic_store(&vp->msix_config, msix_config);
	atomic_store(&vp->status, status);
	atomic_store(&vp->isr, isr);
	vp->config_generation = gen;
	for (unsigned q = 0; q < nr; q++) {
		vp->vqs[q] = vqs[q];
		/* the rings are translated against this VM's memory */
		if (vqs[q].enabled && (status & VIRTIO_STATUS_DRIVER_OK))
			virtio_pci_attach_queue(vp, q);
	}
	virtio_pci_backend_start(vp);
	return 0;
}
