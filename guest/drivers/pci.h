/* SPDX-License-Identifier: MIT */
/*
 * PCI bus 0 through configuration mechanism #1 (ports 0xCF8/0xCFC).  hdvm
 * has no firmware: BARs arrive placed (in the MMIO hole) with decode on, so
 * the driver only reads them and turns on Memory Space and Bus Master.
 */
#ifndef HDGUEST_PCI_H
#define HDGUEST_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVICES		64

#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define PCI_STATUS		0x06
#define PCI_CLASS_REVISION	0x08
#define PCI_HEADER_TYPE		0x0e
#define PCI_BAR0		0x10
#define PCI_CAPABILITY_LIST	0x34

#define PCI_COMMAND_MEMORY	0x0002
#define PCI_COMMAND_MASTER	0x0004
#define PCI_STATUS_CAP_LIST	0x0010
#define PCI_HEADER_MULTI_FUNC	0x80
#define PCI_HEADER_TYPE_MASK	0x7f
#define PCI_CAP_ID_VNDR		0x09
#define PCI_CAP_ID_MSIX		0x11

struct pci_device {
	uint8_t bus, slot, func;
	uint16_t vendor, device;
	uint32_t class_code;	/* class, subclass, prog-if */
	uint8_t header_type;	/* without the multi-function bit */
};

uint8_t pci_read8(const struct pci_device *d, uint8_t off);
uint16_t pci_read16(const struct pci_device *d, uint8_t off);
uint32_t pci_read32(const struct pci_device *d, uint8_t off);
void pci_write16(const struct pci_device *d, uint8_t off, uint16_t v);
/* Extended config space through ECAM: false when there is no ECAM. */
bool pci_ext_read32(const struct pci_device *d, uint16_t off, uint32_t *v);
bool pci_ext_write32(const struct pci_device *d, uint16_t off, uint32_t v);

/*
 * Scan bus 0 (32 slots, every function of a multi-function device) once;
 * later calls return the same list.  Prints one line per function found,
 * "pci: 00:SS.F VVVV:DDDD class CCCCCC", the first time.
 */
int pci_scan(const struct pci_device **list);
/* The n-th (0-based) function with these IDs, or NULL. */
const struct pci_device *pci_find(uint16_t vendor, uint16_t device, int n);
/* Still there? (a surprise-removed function reads all ones) */
bool pci_present(const struct pci_device *d);

/* Set Memory Space and Bus Master in the command register. */
void pci_enable_mem_master(const struct pci_device *d);

/*
 * Memory BAR n's address (64-bit BARs take n and n+1).  False for an I/O
 * BAR, an unimplemented one, a 64-bit BAR in slot 5 or a type 0 header index
 * out of range.
 */
bool pci_mem_bar(const struct pci_device *d, int n, uint64_t *addr);

/*
 * Walk the capability list: the first capability after pos (0: from the
 * start) with this ID, or 0.  Bounded against loops and stray pointers.
 */
uint8_t pci_find_cap(const struct pci_device *d, uint8_t id, uint8_t pos);

/*
 * MSI-X (drivers/pci_msix.c): point table entry `entry` at the local APIC
 * `apic_id` with interrupt vector `vector` (fixed delivery, edge), unmask it
 * and enable MSI-X on the function; every other entry keeps its mask.  The
 * table must lie in the MMIO hole.  0, or -1 with *why naming the problem.
 */
int pci_msix_route(const struct pci_device *d, unsigned entry, uint8_t apic_id,
		   uint8_t vector, const char **why);

#endif
