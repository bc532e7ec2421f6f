/* SPDX-License-Identifier: MIT */
/*
 * hdvm's PCI: one bus (bus 0) behind a host bridge, reached through the
 * 0xCF8/0xCFC port pair and through ECAM at PLAT_PCI_ECAM_START.  Devices
 * embed a struct pci_dev, describe their config header, BARs and
 * capabilities with the helpers below and register on the bus; the bus then
 * emulates config space (BAR sizing, command-register decode, capability
 * list) and maps each BAR on the VM's MMIO or port bus while it is enabled.
 *
 * hdvm firmware does not exist, so BARs are placed when a device registers
 * (from PLAT_PCI_MMIO_START, naturally aligned) and memory/IO decode starts
 * enabled; a guest that re-programs them is followed.
 */
#ifndef HDVM_PCI_H
#define HDVM_PCI_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/iobus.h"

struct vm;
struct pci_dev;
struct pci_msix;
struct state_buf;

#define PCI_CFG_SIZE		256	/* emulated; ECAM's extended space reads 0 */
#define PCI_NUM_BARS		6
#define PCI_DEVFN(slot, fn)	((uint8_t)(((slot) << 3) | (fn)))
#define PCI_ANY_SLOT		(-1)

#define PCI_IO_ALLOC_START	0xc000
#define PCI_IO_ALLOC_END	0x10000

#define PCI_HOST_VENDOR		0x8086
#define PCI_HOST_DEVICE		0x0d57

enum pci_bar_type {
	PCI_BAR_NONE,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64,		/* takes this BAR and the next */
	PCI_BAR_IO,
};

struct pci_bar {
	enum pci_bar_type type;
	bool prefetch;
	uint64_t size;			/* power of two */
	/* handler while mapped; NULL if the device maps it itself (bar_mapped hook) */
	const struct io_ops *ops;
	void *opaque;
	/* current decode, owned by the bus */
	bool mapped;
	uint64_t addr;
};

struct pci_dev_ops {
	/*
	 * Optional: take over config accesses (passthrough forwards most of them
	 * to the real device).  They may call pci_cfg_read/pci_cfg_write for the
	 * parts they emulate.  Called with the bus lock held.
	 */
	void (*cfg_read)(struct pci_dev *pd, uint32_t off, void *data, unsigned len);
	void (*cfg_write)(struct pci_dev *pd, uint32_t off, const void *data, unsigned len);
	/* Optional: a BAR appeared at addr or went away (mmap'd slots, ioeventfds). */
	void (*bar_mapped)(struct pci_dev *pd, int bar, uint64_t addr, bool mapped);
};

struct pci_dev {
	const struct pci_dev_ops *ops;
	struct pci_bus *bus;		/* set on registration */
	uint8_t devfn;
	const char *name;
	uint8_t cfg[PCI_CFG_SIZE];	/* the image the guest sees */
	uint8_t wmask[PCI_CFG_SIZE];	/* guest-writable bits */
	uint8_t w1cmask[PCI_CFG_SIZE];	/* write-1-to-clear bits */
	uint8_t cfg_reset[PCI_CFG_SIZE];	/* power-on image, for reset */
	uint8_t cap_end;		/* next free byte for a capability */
	uint8_t last_cap;		/* offset of the last capability, 0 if none */
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_msix *msix;		/* set by pci_msix_init() */
};

/* ---- config-space helper (pci_config.c) ---- */

/* Type 0 header with the given IDs; class_code is 24-bit (class, subclass, prog-if). */
void pci_dev_init(struct pci_dev *pd, const char *name, const struct pci_dev_ops *ops,
		  uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision,
		  uint16_t subsys_vendor, uint16_t subsys_id);
/* Describe BAR n before registering; size is rounded up to a power of two (min 16 / 4). */
int pci_dev_set_bar(struct pci_dev *pd, int n, enum pci_bar_type type, uint64_t size,
		    bool prefetch, const struct io_ops *ops, void *opaque);
/* Add a capability of len bytes (header included); returns its offset or -ENOSPC. */
int pci_dev_add_cap(struct pci_dev *pd, uint8_t id, uint8_t len);
/* Mark bits of [off, off+len) writable by the guest (little-endian mask). */
void pci_dev_set_wmask(struct pci_dev *pd, uint32_t off, uint32_t mask, unsigned len);
/* Little-endian accessors on the config image (no side effects). */
uint32_t pci_cfg_get(const struct pci_dev *pd, uint32_t off, unsigned len);
void pci_cfg_set(struct pci_dev *pd, uint32_t off, uint32_t val, unsigned len);

/* Default emulation of a guest config access (masks, W1C, BAR/command effects). */
void pci_cfg_read(struct pci_dev *pd, uint32_t off, void *data, unsigned len);
void pci_cfg_write(struct pci_dev *pd, uint32_t off, const void *data, unsigned len);
/* Re-evaluate every BAR's decode after the config image changed. */
void pci_dev_update_bars(struct pci_dev *pd);
/* Guest address of a BAR, decode aside. */
uint64_t pci_bar_address(const struct pci_dev *pd, int n);

/* ---- the bus (pci_bus.c) ---- */

struct pci_bus {
	struct vm *vm;
	pthread_mutex_t lock;		/* config space of every device, the CF8 latch */
	uint32_t cf8;
	struct pci_dev *devs[256];	/* by devfn */
	uint64_t mmio_next;		/* BAR allocation cursors */
	uint32_t io_next;
	struct pci_dev host;		/* 00:00.0 */
};

/*
 * Create the bus and its host bridge and add the bridge to the VM's device
 * list (it realizes the config mechanisms, resets/saves config space).
 */
struct pci_bus *pci_bus_create(struct vm *vm);
/* Put pd at slot (PCI_ANY_SLOT: the first free), function 0; place its BARs. */
int pci_bus_register(struct pci_bus *bus, struct pci_dev *pd, int slot);
void pci_bus_unregister(struct pci_bus *bus, struct pci_dev *pd);
struct pci_dev *pci_bus_find(struct pci_bus *bus, uint8_t devfn);

/* Config access as the guest does it (exported for tests and tools). */
void pci_bus_cfg_access(struct pci_bus *bus, uint8_t devfn, uint32_t off, void *data,
			unsigned len, bool is_write);

#endif
