// SPDX-License-Identifier: MIT
/* MSI-X: one table entry routed to a local APIC (see pci.h). */
#include "devices/platform.h"
#include "guest/drivers/pci.h"
#include "guest/io.h"

#define MSIX_FLAGS		2	/* Message Control */
#define MSIX_TABLE		4	/* offset | BIR */
#define MSIX_FLAGS_QSIZE	0x07ff
#define MSIX_FLAGS_MASKALL	0x4000
#define MSIX_FLAGS_ENABLE	0x8000
#define MSIX_TABLE_BIR		0x7
#define MSIX_ENTRY_SIZE		16
#define MSIX_ENTRY_ADDR_LO	0
#define MSIX_ENTRY_ADDR_HI	4
#define MSIX_ENTRY_DATA		8
#define MSIX_ENTRY_CTRL		12
#define MSIX_ENTRY_MASKED	0x1

/* Message address: the LAPIC window, destination ID in bits 19:12, physical mode. */
#define MSI_ADDR_BASE		PLAT_LAPIC_ADDR
#define MSI_ADDR_DEST_SHIFT	12

int pci_msix_route(const struct pci_device *d, unsigned entry, uint8_t apic_id,
		   uint8_t vector, const char **why)
{
	uint8_t cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
	uint16_t flags;
	uint32_t table;
	uint64_t base, addr;

	if (!cap) {
		*why = "no MSI-X capability";
		return -1;
	}
	flags = pci_read16(d, cap + MSIX_FLAGS);
	table = pci_read32(d, cap + MSIX_TABLE);
	if (entry > (flags & MSIX_FLAGS_QSIZE)) {
		*why = "MSI-X table too small";
		return -1;
	}
	if (!pci_mem_bar(d, table & MSIX_TABLE_BIR, &base)) {
		*why = "MSI-X table BAR is not a memory BAR";
		return -1;
	}
	addr = base + (table & ~MSIX_TABLE_BIR) + (uint64_t)entry * MSIX_ENTRY_SIZE;
	if (base < PLAT_MMIO_HOLE_START || addr < base ||
	    addr > PLAT_MMIO_HOLE_END - MSIX_ENTRY_SIZE) {
		*why = "MSI-X table is outside the MMIO hole";
		return -1;
	}
	/* Enabled with the whole function masked while the entry is written. */
	pci_write16(d, cap + MSIX_FLAGS, flags | MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL);
	mmio_write32(addr + MSIX_ENTRY_CTRL, MSIX_ENTRY_MASKED);
	mmio_write32(addr + MSIX_ENTRY_ADDR_LO,
		     (uint32_t)MSI_ADDR_BASE | (uint32_t)apic_id << MSI_ADDR_DEST_SHIFT);
	mmio_write32(addr + MSIX_ENTRY_ADDR_HI, 0);
	mmio_write32(addr + MSIX_ENTRY_DATA, vector);	/* fixed delivery, edge */
	mmio_write32(addr + MSIX_ENTRY_CTRL, 0);
	pci_write16(d, cap + MSIX_FLAGS, (flags | MSIX_FLAGS_ENABLE) & ~MSIX_FLAGS_MASKALL);
	if ((pci_read16(d, cap + MSIX_FLAGS) & (MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL)) !=
	    MSIX_FLAGS_ENABLE) {
		*why = "MSI-X enable bit did not stick";
		return -1;
	}
	return 0;
}
