// SPDX-License-Identifier: MIT
/*
 * The passthrough PCI device: a VFIO device (vfio-user or kernel) shown to
 * the guest as a function on hdvm's PCI bus.
 *
 *  - Config space: the header is virtualised (IDs copied from the device,
 *    BARs sized and placed by hdvm's bus, command register emulated and
 *    forwarded); capabilities are passed through to the device, except MSI-X,
 *    which is emulated at the device's own offset.
 *  - BARs: sparse-mmap areas are mapped straight into the guest as KVM memory
 *    slots (the doorbell page: no VM exit), the rest traps and is forwarded
 *    with REGION_READ/WRITE, except the MSI-X table and PBA, emulated here.
 *    The device's ioeventfds are registered with KVM_IOEVENTFD, so a guest
 *    notify reaches the device without a trip through hdvm.
 *  - Interrupts: one eventfd per MSI-X vector handed to the device with
 *    SET_IRQS; it is attached as a KVM irqfd while the guest has the vector
 *    unmasked, so interrupts never pass through hdvm either.  A vector
 *    masked while the device signals keeps the count in its eventfd, and
 *    re-attaching the irqfd delivers it (the pending bit semantics).
 *  - DMA: all guest RAM is DMA-mapped by memfd (IOVA = guest physical).
 *  - Pause/resume and the device's own state: the VFIO migration v2 state
 *    machine, in vfio_pci_mig.c.
 *
 * If the device's server goes away, hdvm reports it once and keeps the VM
 * running without the device: it behaves like a surprise-removed function
 * (config and trapped reads return all ones, writes are dropped).
 */
#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/platform.h"
#include "devices/pci/pci_msix.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_pci_int.h"
#include "vmm/loop.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static struct vfio_pci *to_vp(struct pci_dev *pd)
{
	return container_of(pd, struct vfio_pci, pd);
}

/* ---- the device going away ---- */

/*
 * Tell a sleeping guest at once, the way a hot-plug slot's presence-detect
 * interrupt would: raise every vector it has unmasked, so its driver looks
 * at the device and finds it gone instead of sleeping on.
 */
void vp_announce_removal(struct vfio_pci *vp)
{
	for (unsigned v = 0; vp->irq_efd && v < vp->nr_vectors; v++)
		if (vp->irqfd_on[v] && eventfd_write(vp->irq_efd[v], 1))
			pr_debug("removal interrupt on vector %u: %s", v, strerror(errno));
}

bool vp_alive(struct vfio_pci *vp)
{
	if (!vfio_device_dead(vp->vdev))
		return true;
	if (!atomic_exchange(&vp->gone_reported, true)) {
		pr_err("passthrough device %s stopped answering (server gone?): device removed, "
		       "the VM keeps running without it", vp->spec);
		vp_announce_removal(vp);
	}
	return false;
}


void vp_server_hup(void *opaque, int fd, unsigned revents)
{
	struct vfio_pci *vp = opaque;
	bool was_dead = atomic_exchange(&vp->vdev->dead, true);
	/* lost to a stall, and now it hangs up: the same server runs again */
	bool back = was_dead && vfio_user_lost_stalled(vp->vdev);

	if (!atomic_exchange(&vp->gone_reported, true)) {
		pr_err("passthrough device %s: %s; device removed, the VM keeps running "
		       "without it", vp->spec,
		       was_dead ? "it stopped answering" : "its server disconnected");
		vp_announce_removal(vp);
	}
	loop_unwatch(vp->vm->loop, vp->hup_watch);
	vp->hup_watch = NULL;
	if (back) {
		pr_info("passthrough device %s: its server answers again after a stall",
			vp->spec);
		if (vfio_pci_reattach(&vp->dev) == 0)
			return;
	}
	vp_reattach_arm(vp);	/* the server may come back on the same path */
}

void vp_server_event(void *opaque, int fd, unsigned revents)
{
	struct vfio_pci *vp = opaque;

	/* requests while no call of ours was in flight (calls answer them inline) */
	if (!(revents & (POLLRDHUP | POLLHUP | POLLERR)) && vfio_user_serve(vp->vdev) == 0)
		return;
	vp_server_hup(opaque, fd, revents);
}

/* IOVA = guest physical: reads and writes through vmm/memory.c (writes dirty-tracked). */
static int vp_dma_read(void *opaque, uint64_t iova, void *dst, uint64_t len)
{
	return guest_mem_read(opaque, iova, dst, len);
}

static int vp_dma_write(void *opaque, uint64_t iova, const void *src, uint64_t len)
{
	return guest_mem_write(opaque, iova, src, len);
}

static const struct vfio_dma_mem_ops vp_dma_mem = {
	.read = vp_dma_read,
	.write = vp_dma_write,
};

void vp_guest_dma(struct vfio_pci *vp, struct vfio_device *d)
{
	vfio_user_set_dma_mem(d, &vp_dma_mem, &vp->vm->mem);
}

/* ---- config space ---- */

static bool in_msix_cap(struct vfio_pci *vp, uint32_t off, unsigned len)
{
	return vp->msix_cap && off + len > vp->msix_cap && off < (uint32_t)vp->msix_cap + PCI_CAP_MSIX_SIZEOF;
}

static void vp_cfg_read(struct pci_dev *pd, uint32_t off, void *data, unsigned len)
{
	struct vfio_pci *vp = to_vp(pd);

	if (off < PCI_STD_HEADER_SIZEOF || in_msix_cap(vp, off, len)) {
		pci_cfg_read(pd, off, data, len);
		return;
	}
	if (compsc_cfg_read(vp, off, data, len))
		return;
	if (!vp_alive(vp) ||
	    vp->vdev->ops->region_read(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, off, data, len) < 0)
		memset(data, 0xff, len);
}

static void vp_cfg_write(struct pci_dev *pd, uint32_t off, const void *data, unsigned len)
{
	struct vfio_pci *vp = to_vp(pd);

	if (compsc_cfg_write(vp, off, data, len))
		return;
	if (off < PCI_STD_HEADER_SIZEOF || in_msix_cap(vp, off, len)) {
		pci_cfg_write(pd, off, data, len);
		/* the device itself must see bus mastering and decode switched on/off */
		if (off <= PCI_COMMAND && off + len > PCI_COMMAND && vp_alive(vp)) {
			uint16_t cmd = pci_cfg_get(pd, PCI_COMMAND, 2);

			vp->vdev->ops->region_write(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX,
						    PCI_COMMAND, &cmd, 2);
		}
		return;
	}
	if (vp_alive(vp))
		vp->vdev->ops->region_write(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, off, data, len);
}

/* ---- BAR accesses that trap ---- */

static bool msix_access(struct vfio_pci_bar *b, uint64_t off, void *data, unsigned len,
			bool is_write)
{
	struct vfio_pci *vp = b->vp;

	if (!vp->msix_cap || b->index != vp->msix_bar)
		return false;
	return is_write ? pci_msix_mmio_write(&vp->msix, off, data, len)
			: pci_msix_mmio_read(&vp->msix, off, data, len);
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vfio_pci_bar *b = opaque;
	struct vfio_pci *vp = b->vp;

	if (msix_access(b, off, data, len, false))
		return;
	if (!vp_alive(vp) || vp->vdev->ops->region_read(vp->vdev, b->index, off, data, len) < 0)
		memset(data, 0xff, len);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vfio_pci_bar *b = opaque;
	struct vfio_pci *vp = b->vp;

	if (msix_access(b, off, (void *)data, len, true))
		return;
	if (vp_alive(vp))
		vp->vdev->ops->region_write(vp->vdev, b->index, off, data, len);
}

static const struct io_ops vfio_bar_ops = { .read = bar_read, .write = bar_write };

/* ---- BAR placement: memory slots and ioeventfds follow the BAR ---- */

static void ioeventfds_set(struct vfio_pci_bar *b, bool assign)
{
	for (unsigned i = 0; i < b->nr_evs; i++) {
		struct vfio_ioeventfd *e = &b->evs[i];
		struct vm_ioeventfd io = {
			.addr = b->addr + e->offset,
			.len = e->size,
			.fd = e->fd,
			.pio = b->vp->pd.bars[b->index].type == PCI_BAR_IO,
			.datamatch = e->flags & KVM_IOEVENTFD_FLAG_DATAMATCH,
			.value = e->datamatch,
		};
		int ret = vm_ioeventfd(b->vp->vm, &io, assign);

		if (ret < 0)
			pr_err("%s: BAR%d ioeventfd at +%#llx: %s", b->vp->spec, b->index,
			       (unsigned long long)e->offset, strerror(-ret));
	}
}

void vp_bar_mapped(struct pci_dev *pd, int bar, uint64_t addr, bool mapped)
{
	struct vfio_pci *vp = to_vp(pd);
	struct vfio_pci_bar *b = &vp->bars[bar];

	if (b->mapped) {
		ioeventfds_set(b, false);
		for (unsigned i = 0; i < b->nr_areas; i++) {
			guest_mem_slot_del(&vp->vm->mem, b->areas[i].slot);
			b->areas[i].slot = -1;
		}
		b->mapped = false;
	}
	if (!mapped)
		return;
	b->addr = addr;
	b->mapped = true;
	for (unsigned i = 0; i < b->nr_areas; i++)
		b->areas[i].slot = guest_mem_slot_add(&vp->vm->mem, addr + b->areas[i].offset,
						      b->areas[i].size, b->areas[i].host);
	ioeventfds_set(b, true);
}

static const struct pci_dev_ops vfio_pci_dev_ops = {
	.cfg_read = vp_cfg_read,
	.cfg_write = vp_cfg_write,
	.bar_mapped = vp_bar_mapped,
};

/* ---- MSI-X: eventfds from the device, irqfds into KVM ---- */

static void irqfd_set(struct vfio_pci *vp, unsigned v, int gsi, bool on)
{
	int ret;

	if (vp->irqfd_on[v] == on || gsi < 0)
		return;
	ret = vm_irqfd(vp->vm, vp->irq_efd[v], gsi, on);
	if (ret < 0) {
		pr_err("%s: MSI-X vector %u irqfd: %s", vp->spec, v, strerror(-ret));
		return;
	}
	vp->irqfd_on[v] = on;
}

static void msix_update(void *opaque, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
	struct vfio_pci *vp = opaque;

	irqfd_set(vp, v, pci_msix_gsi(&vp->msix, v), !masked);
}

static const struct pci_msix_ops vfio_msix_ops = { .update = msix_update };

static int find_cap(const uint8_t *cfg, uint8_t id)
{
	unsigned off = cfg[PCI_CAPABILITY_LIST] & ~3u;

	if (!(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST))
		return 0;
	for (int hops = 0; off >= PCI_STD_HEADER_SIZEOF && off < PCI_CFG_SIZE - 1 && hops < 48;
	     hops++) {
		if (cfg[off] == id)
			return off;
		off = cfg[off + 1] & ~3u;
	}
	return 0;
}

static int msix_setup(struct vfio_pci *vp)
{
	uint8_t cap = find_cap(vp->phys_cfg, PCI_CAP_ID_MSIX);
	struct vfio_irq irq;
	uint32_t table, pba;
	uint16_t ctrl;
	int32_t *fds;
	int ret;

	if (!cap)
		return 0;	/* poll-mode devices need no interrupts */
	memcpy(&ctrl, vp->phys_cfg + cap + PCI_MSIX_FLAGS, 2);
	memcpy(&table, vp->phys_cfg + cap + PCI_MSIX_TABLE, 4);
	memcpy(&pba, vp->phys_cfg + cap + PCI_MSIX_PBA, 4);
	vp->nr_vectors = (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1;
	vp->msix_bar = table & PCI_MSIX_TABLE_BIR;
	vp->msix_table_off = table & PCI_MSIX_TABLE_OFFSET;
	vp->msix_pba_off = pba & PCI_MSIX_PBA_OFFSET;
	if ((pba & PCI_MSIX_PBA_BIR) != (uint32_t)vp->msix_bar ||
	    vp->pd.bars[vp->msix_bar].type == PCI_BAR_NONE) {
		pr_err("%s: MSI-X table and PBA must share one memory BAR", vp->spec);
		return -EINVAL;
	}
	ret = vp->vdev->ops->get_irq_info(vp->vdev, VFIO_PCI_MSIX_IRQ_INDEX, &irq);
	if (ret < 0 || irq.count < vp->nr_vectors || !(irq.flags & VFIO_IRQ_INFO_EVENTFD)) {
		pr_err("%s: device offers no eventfd MSI-X interrupts for its %u vectors%s%s",
		       vp->spec, vp->nr_vectors, ret < 0 ? ": " : "", ret < 0 ? strerror(-ret) : "");
		return ret < 0 ? ret : -ENOTSUP;
	}
	/* Emulate the capability at the device's own offset, keeping its list. */
	vp->pd.cap_end = cap;
	vp->pd.last_cap = 0;
	ret = pci_msix_init(&vp->msix, &vp->pd, vp->vm, vp->nr_vectors, vp->msix_bar,
			    vp->msix_table_off, vp->msix_pba_off, &vfio_msix_ops, vp);
	if (ret < 0) {
		pr_err("%s: MSI-X emulation setup failed: %s", vp->spec, strerror(-ret));
		return ret;
	}
	vp->msix_cap = cap;
	vp->pd.cfg[PCI_CAPABILITY_LIST] = vp->phys_cfg[PCI_CAPABILITY_LIST];
	vp->pd.cfg[cap + PCI_CAP_LIST_NEXT] = vp->phys_cfg[cap + PCI_CAP_LIST_NEXT];

	vp->irq_efd = xzalloc(vp->nr_vectors * sizeof(int));
	vp->irqfd_on = xzalloc(vp->nr_vectors * sizeof(bool));
	fds = xzalloc(vp->nr_vectors * sizeof(int32_t));
	for (unsigned v = 0; v < vp->nr_vectors; v++)
		vp->irq_efd[v] = -1;
	for (unsigned v = 0; v < vp->nr_vectors; v++) {
		vp->irq_efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->irq_efd[v] < 0) {
			ret = -errno;
			pr_err("%s: eventfd: %s", vp->spec, strerror(-ret));
			free(fds);
			return ret;
		}
		fds[v] = vp->irq_efd[v];
	}
	ret = vp->vdev->ops->set_irqs(vp->vdev, VFIO_PCI_MSIX_IRQ_INDEX,
				      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				      0, vp->nr_vectors, fds);
	free(fds);
	if (ret < 0) {
		pr_err("%s: handing MSI-X eventfds to the device: %s", vp->spec, strerror(-ret));
		return ret;
	}
	return 0;
}

/* ---- BARs from the device's regions ---- */

static enum pci_bar_type bar_type(const uint8_t *cfg, int n, bool *prefetch)
{
	uint32_t v;

	memcpy(&v, cfg + PCI_BASE_ADDRESS_0 + 4 * n, 4);
	*prefetch = v & PCI_BASE_ADDRESS_MEM_PREFETCH;
	if (v & PCI_BASE_ADDRESS_SPACE_IO)
		return PCI_BAR_IO;
	if ((v & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64)
		return PCI_BAR_MEM64;
	return PCI_BAR_MEM32;
}

int vp_bar_map_areas(struct vfio_pci *vp, struct vfio_pci_bar *b)
{
	struct vfio_region *r = &b->region;
	struct vfio_sparse_area whole = { 0, r->size };
	const struct vfio_sparse_area *areas = r->nr_sparse ? r->sparse : &whole;
	unsigned n = r->nr_sparse ? r->nr_sparse : 1;

	if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP) || (r->mmap_fd < 0 && !vp->kernel))
		return 0;
	for (unsigned i = 0; i < n && b->nr_areas < MAX_AREAS; i++) {
		struct vfio_pci_area *a = &b->areas[b->nr_areas];
		int ret;

		if (areas[i].size == 0 || areas[i].offset % 4096 || areas[i].size % 4096 ||
		    areas[i].offset + areas[i].size > r->size || areas[i].offset > r->size) {
			pr_err("%s: BAR%d: ignoring a mmap area that is not page aligned or "
			       "lies outside the BAR", vp->spec, b->index);
			continue;
		}
		/* The MSI-X table must stay trapped even if the device offers it. */
		if (vp->msix_cap && b->index == vp->msix_bar &&
		    areas[i].offset < vp->msix_pba_off + 4096 &&
		    areas[i].offset + areas[i].size > vp->msix_table_off)
			continue;
		ret = vp->vdev->ops->region_mmap(vp->vdev, r, areas[i].offset, areas[i].size,
						 PROT_READ | PROT_WRITE, &a->host);
		if (ret < 0) {
			pr_err("%s: BAR%d: mmap of +%#llx: %s", vp->spec, b->index,
			       (unsigned long long)areas[i].offset, strerror(-ret));
			return ret;
		}
		a->offset = areas[i].offset;
		a->size = areas[i].size;
		a->slot = -1;
		b->nr_areas++;
	}
	return 0;
}

static int bars_setup(struct vfio_pci *vp)
{
	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct vfio_pci_bar *b = &vp->bars[n];
		enum pci_bar_type type;
		bool prefetch;
		int ret;

		b->vp = vp;
		b->index = n;
		b->region.mmap_fd = -1;
		ret = vp->vdev->ops->get_region_info(vp->vdev, n, &b->region);
		if (ret < 0) {
			pr_err("%s: BAR%d info: %s", vp->spec, n, strerror(-ret));
			return ret;
		}
		if (!b->region.size)
			continue;
		type = bar_type(vp->phys_cfg, n, &prefetch);
		ret = pci_dev_set_bar(&vp->pd, n, type, b->region.size, prefetch,
				      &vfio_bar_ops, b);
		if (ret < 0) {
			pr_err("%s: BAR%d of %#llx bytes cannot be placed: %s", vp->spec, n,
			       (unsigned long long)b->region.size, strerror(-ret));
			return ret;
		}
		ret = vp->vdev->ops->get_io_fds(vp->vdev, n, &b->evs, &b->nr_evs);
		if (ret < 0 && ret != -ENOTSUP && ret != -EOPNOTSUPP && ret != -ENOSYS) {
			pr_err("%s: BAR%d ioeventfds: %s", vp->spec, n, strerror(-ret));
			return ret;
		}
		if (type == PCI_BAR_MEM64)
			n++;	/* the upper half is part of this BAR */
	}
	return 0;
}

/* ---- DMA: guest RAM by memfd, IOVA = guest physical ---- */

/* One DMA mapping per RAM slot of the layout vmm/memory.c owns. */
static int dma_map_slot(const struct mem_slot *s, void *opaque)
{
	struct vfio_pci *vp = opaque;
	struct vfio_dma_map map = {
		.iova = s->gpa, .size = s->size, .fd = vp->vm->mem.memfd,
		.fd_offset = s->offset, .vaddr = s->hva,
		.prot = VFIO_DMA_PROT_READ | VFIO_DMA_PROT_WRITE,
	};
	int ret = vp->vdev->ops->dma_map(vp->vdev, &map);

	if (ret < 0)
		pr_err("%s: DMA-mapping guest RAM [%#llx, +%#llx): %s", vp->spec,
		       (unsigned long long)map.iova, (unsigned long long)map.size,
		       strerror(-ret));
	return ret;
}

int vp_dma_setup(struct vfio_pci *vp)
{
	return guest_mem_for_each_ram(&vp->vm->mem, dma_map_slot, vp);
}

/* ---- re-attach: the device server restarted on the same socket path ---- */

/* Which socket file is at path (inode numbers are reused: the change time too); 0: none. */
void vp_bar_teardown(struct vfio_pci_bar *b)
{
	if (b->mapped) {
		uint64_t addr = b->addr;

		vp_bar_mapped(&b->vp->pd, b->index, 0, false);
		b->addr = addr;		/* where the guest put it: mapped again after */
		b->mapped = true;
	}
	for (unsigned i = 0; i < b->nr_areas; i++)
		munmap(b->areas[i].host, b->areas[i].size);
	b->nr_areas = 0;
	vfio_ioeventfds_free(b->evs, b->nr_evs);
	b->evs = NULL;
	b->nr_evs = 0;
	vfio_region_release(&b->region);
}

static int vp_realize(struct device *dev, struct vm *vm)
{
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct vfio_device_info info;
	uint16_t vendor, device, subv, subd;
	uint32_t class;
	int ret;

	vp->vm = vm;
	ret = vp->kernel ? vfio_kernel_open(vp->spec, &vp->vdev)
			 : vfio_user_open(vp->spec, &vp->vdev);
	if (ret < 0) {
		pr_err("passthrough device %s: cannot attach: %s", vp->spec, strerror(-ret));
		return ret;
	}
	if (!vp->kernel && vm->cfg.vfio_timeout_ms)
		vfio_user_set_timeout(vp->vdev, vm->cfg.vfio_timeout_ms);
	if (!vp->kernel)
		vp_guest_dma(vp, vp->vdev);
	info = vp->vdev->info;
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
		pr_err("passthrough device %s: not a PCI device", vp->spec);
		return -ENODEV;
	}
	ret = vp->vdev->ops->region_read(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, 0,
					 vp->phys_cfg, sizeof(vp->phys_cfg));
	if (ret < 0) {
		pr_err("passthrough device %s: reading config space: %s", vp->spec, strerror(-ret));
		return ret;
	}
	memcpy(&vendor, vp->phys_cfg + PCI_VENDOR_ID, 2);
	memcpy(&device, vp->phys_cfg + PCI_DEVICE_ID, 2);
	memcpy(&subv, vp->phys_cfg + PCI_SUBSYSTEM_VENDOR_ID, 2);
	memcpy(&subd, vp->phys_cfg + PCI_SUBSYSTEM_ID, 2);
	memcpy(&class, vp->phys_cfg + PCI_CLASS_REVISION, 4);
	if (vendor == 0xffff || vendor == 0) {
		pr_err("passthrough device %s: no device behind it (vendor %#x)", vp->spec, vendor);
		return -ENODEV;
	}
	pci_dev_init(&vp->pd, vp->dev.id, &vfio_pci_dev_ops, vendor, device, class >> 8,
		     class & 0xff, subv, subd);
	ret = bars_setup(vp);
	if (!ret)
		ret = msix_setup(vp);
	for (int n = 0; n < PCI_NUM_BARS && !ret; n++)
		if (vp->bars[n].region.size)
			ret = vp_bar_map_areas(vp, &vp->bars[n]);
	if (!ret)
		ret = vp_dma_setup(vp);
	if (ret < 0)
		return ret;
	ret = pci_bus_register(vm->pci, &vp->pd, PCI_ANY_SLOT);
	if (ret < 0) {
		pr_err("passthrough device %s: no free PCI slot", vp->spec);
		return ret;
	}
	vp->mig_err = vfio_mig_get_flags(vp->vdev, &vp->mig_flags);
	vp->mig_state = VFIO_DEVICE_STATE_RUNNING;
	if (vp->mig_err == -ENOTSUP)
		compsc_offer(vp);	/* its guest driver may still move it (devices/compsc.md) */
	if (!vp->kernel)
		vfio_user_set_stall(vp->vdev, 0);	/* the guest's from here on */
	if (!vp->kernel && vm->loop)
		vp->hup_watch = loop_watch(vm->loop, vfio_user_socket(vp->vdev),
					   VP_SERVER_EVENTS, vp_server_event, vp);
	vp->sock_ino = vp->kernel ? 0 : vp_socket_ino(vp->spec);
	pr_debug("passthrough %s at 00:%02x.0, %u MSI-X vectors", vp->spec,
		 vp->pd.devfn >> 3, vp->nr_vectors);
	return 0;
}

static void vp_reset(struct device *dev)
{
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);

	if (vp->vdev && vp_alive(vp))
		vp->vdev->ops->reset(vp->vdev);
	vp->mig_state = VFIO_DEVICE_STATE_RUNNING;	/* VFIO reset leaves it there */
	/* MSI-X is the bus's to reset, with every function's */
}

static void vp_unrealize(struct device *dev)
{
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);

	if (vp->hup_watch)
		loop_unwatch(vp->vm->loop, vp->hup_watch);
	vp_reattach_disarm(vp);
	while (vp->nr_retired)
		vfio_device_close(vp->retired[--vp->nr_retired]);
	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct vfio_pci_bar *b = &vp->bars[n];

		if (b->mapped && vp->vm)
			vp_bar_mapped(&vp->pd, n, 0, false);
		for (unsigned i = 0; i < b->nr_areas; i++)
			munmap(b->areas[i].host, b->areas[i].size);
		vfio_ioeventfds_free(b->evs, b->nr_evs);
		vfio_region_release(&b->region);
	}
	for (unsigned v = 0; vp->irq_efd && v < vp->nr_vectors; v++) {
		irqfd_set(vp, v, pci_msix_gsi(&vp->msix, v), false);
		if (vp->irq_efd[v] >= 0)
			close(vp->irq_efd[v]);
	}
	if (vp->msix_cap)
		pci_msix_destroy(&vp->msix);
	free(vp->irq_efd);
	free(vp->irqfd_on);
	vfio_device_close(vp->vdev);
	vp->vdev = NULL;
}

static const struct device_ops vfio_pci_ops = {
	.type = "vfio-pci",
	.realize = vp_realize,
	.reset = vp_reset,
	.pause_prepare = vp_pause_prepare,
	.pause_early = vp_pause_early,
	.pause = vp_pause,
	.resume = vp_resume,
	.unrealize = vp_unrealize,
	.mig = &vfio_pci_mig_ops,
};

int vfio_pci_add(struct vm *vm, const char *spec, bool kernel, const char *id)
{
	struct vfio_pci *vp = xzalloc(sizeof(*vp));

	vp->retry_fd = -1;
	device_init(&vp->dev, &vfio_pci_ops, id);
	snprintf(vp->spec, sizeof(vp->spec), "%s", spec);
	vp->kernel = kernel;
	device_add(vm, &vp->dev);
	return 0;
}
