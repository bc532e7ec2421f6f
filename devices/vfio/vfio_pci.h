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

#endif
