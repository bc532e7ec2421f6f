/* SPDX-License-Identifier: MIT */
#ifndef HDVM_VFIO_PCI_H
#define HDVM_VFIO_PCI_H

#include <stdbool.h>

struct vm;

/*
 * Add a passthrough PCI device to the VM: spec is a vfio-user socket path
 * (kernel = false) or a kernel VFIO device (cdev path or PCI address).  The
 * device attaches when the VM's devices are realized.  id comes from the
 * machine config (its place on the command line), so a restored or migrated
 * VM names the device the same way.
 */
int vfio_pci_add(struct vm *vm, const char *spec, bool kernel, const char *id);

/*
 * The vfio-user server of a lost device is back on the same socket path:
 * connect again and redo the setup (regions, BAR mappings and ioeventfds,
 * MSI-X eventfds, DMA), then raise the guest's vectors so its driver finds
 * a freshly reset function.  0, or -errno (the device stays removed; the
 * main loop tries again every VFIO_REATTACH_MS while the socket file is new).
 */
#define VFIO_REATTACH_MS	500
int vfio_pci_reattach(struct device *dev);

#endif
