/* SPDX-License-Identifier: MIT */
/*
 * MSI-X emulation for a PCI device: the capability in config space, the
 * vector table and pending-bit array in one of the device's BARs.  Every
 * change of a vector's message or mask state (table write, enable or
 * function-mask bit) reaches the device as update(vector, addr, data,
 * masked); with a VM given, the helper also keeps one KVM MSI route (GSI)
 * per vector that has been unmasked once.
 *
 * Callbacks run with the helper's (recursive) lock held and, for config
 * writes, with the PCI bus lock held: they may query the helper but must
 * not touch config space.
 */
#ifndef HDVM_PCI_MSIX_H
#define HDVM_PCI_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/iobus.h"

struct pci_dev;
struct state_buf;
struct vm;

#define PCI_MSIX_MAX_VECTORS	2048

struct pci_msix_ops {
	void (*update)(void *opaque, unsigned vector, uint64_t addr, uint32_t data, bool masked);
	/* Optional: deliver a message that became pending while masked, now unmasked. */
	void (*fire)(void *opaque, unsigned vector);
};

struct pci_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct pci_msix {
	struct pci_dev *pd;
	struct vm *vm;			/* NULL: no KVM routes */
	unsigned nr;
	uint8_t cap;			/* config offset of the capability */
	int bar;
	uint32_t table_off, pba_off;	/* within the BAR */
	pthread_mutex_t lock;
	struct pci_msix_entry *table;
	uint64_t *pba;
	int *gsi;			/* per vector, -1 = no route yet */
	bool enabled, fmask;		/* cached Message Control bits */
	const struct pci_msix_ops *ops;
	void *opaque;
};

/*
 * Add the capability to pd (before it registers on the bus) and allocate the
 * table.  table_off and pba_off are 8-byte aligned offsets into BAR bar,
 * which the device sizes to hold both.
 */
int pci_msix_init(struct pci_msix *m, struct pci_dev *pd, struct vm *vm, unsigned nr,
		  int bar, uint32_t table_off, uint32_t pba_off,
		  const struct pci_msix_ops *ops, void *opaque);
void pci_msix_destroy(struct pci_msix *m);

/* BAR access; false if off is outside the table and the PBA. */
bool pci_msix_mmio_read(struct pci_msix *m, uint64_t off, void *data, unsigned len);
bool pci_msix_mmio_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len);
/* For a BAR that holds nothing but the table and PBA (opaque = the pci_msix). */
extern const struct io_ops pci_msix_bar_ops;

bool pci_msix_enabled(struct pci_msix *m);
bool pci_msix_masked(struct pci_msix *m, unsigned vector);
/* A device wants to signal: true if it may deliver now, else the PBA bit is set. */
bool pci_msix_raise(struct pci_msix *m, unsigned vector);
bool pci_msix_message(struct pci_msix *m, unsigned vector, uint64_t *addr, uint32_t *data);
/* The KVM GSI routing the vector, -ENOENT if none, -EINVAL past the table. */
int pci_msix_gsi(struct pci_msix *m, unsigned vector);

/* Called by the config core after the capability was written. */
void pci_msix_cfg_written(struct pci_msix *m);
/* Function reset: every vector masked, no message, nothing pending. */
void pci_msix_reset(struct pci_msix *m);
void pci_msix_save(struct pci_msix *m, struct state_buf *sb);
int pci_msix_load(struct pci_msix *m, struct state_buf *sb);

#endif
