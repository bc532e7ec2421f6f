/* SPDX-License-Identifier: MIT */
/* Between the two halves of the virtio PCI transport (setup and registers). */
#ifndef HDVM_VIRTIO_PCI_INT_H
#define HDVM_VIRTIO_PCI_INT_H

#include "devices/virtio/virtio_pci.h"
#include "vmm/iobus.h"

/* BAR0 as the guest sees it (opaque = the virtio_pci). */
extern const struct io_ops virtio_pci_bar_ops;
/* One BAR0 access with the device lock already held (PCI config window). */
void virtio_pci_bar_access_locked(struct virtio_pci *vp, uint64_t off, void *data,
				  unsigned len, bool is_write);

/* Translate queue q's rings; on failure the queue is broken (NEEDS_RESET). */
void virtio_pci_attach_queue(struct virtio_pci *vp, unsigned q);
/* Deliver MSI-X vector v unless it is masked (then it stays pending). */
void virtio_pci_irq(struct virtio_pci *vp, uint16_t vector);

static inline void virtio_pci_backend_stop(struct virtio_pci *vp)
{
	if (vp->ops->stop)
		vp->ops->stop(vp->opaque);
}

static inline void virtio_pci_backend_start(struct virtio_pci *vp)
{
	if (vp->ops->start)
		vp->ops->start(vp->opaque);
}

#endif
