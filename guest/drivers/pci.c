// SPDX-License-Identifier: MIT
/* PCI configuration space on bus 0 (ECAM or mechanism #1): scan, BARs, capability list. */
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/drivers/pci.h"
#include "guest/io.h"

#define PCI_CONFIG_ADDRESS	0xcf8
#define PCI_CONFIG_DATA		0xcfc
#define PCI_CONFIG_ENABLE	0x80000000u
#define PCI_SLOTS		32
#define PCI_FUNCS		8
/* 256 bytes hold at most 48 capabilities of 4 bytes after the header */
#define PCI_CAP_MAX		48
#define PCI_CAP_MIN_POS		0x40

#define PCI_BAR_IO		0x1
#define PCI_BAR_MEM_TYPE_MASK	0x6
#define PCI_BAR_MEM_TYPE_64	0x4
#define PCI_BAR_MEM_ADDR_MASK	(~0xfULL)

static struct pci_device devices[PCI_MAX_DEVICES];
static int nr_devices = -1;	/* not scanned yet */

/*
 * Configuration access.  Mechanism #1 costs two port exits per access (the
 * address, then the data); ECAM, where the VMM decodes it (hdvm, at
 * PLAT_PCI_ECAM_START), one MMIO exit.  ECAM is used once it reads back the
 * host bridge's ID that mechanism #1 gives; a VMM without it keeps #1.
 */
struct cfg_ops {
	uint32_t (*read)(const struct pci_device *d, uint8_t off, int size);
	void (*write)(const struct pci_device *d, uint8_t off, int size, uint32_t v);
};

static void select_reg(const struct pci_device *d, uint8_t off)
{
	outl(PCI_CONFIG_ENABLE | (uint32_t)d->bus << 16 | (uint32_t)d->slot << 11 |
	     (uint32_t)d->func << 8 | (off & 0xfc), PCI_CONFIG_ADDRESS);
}

static uint32_t cf8_read(const struct pci_device *d, uint8_t off, int size)
{
	select_reg(d, off);
	if (size == 1)
		return inb(PCI_CONFIG_DATA + (off & 3));
	if (size == 2)
		return inw(PCI_CONFIG_DATA + (off & 2));
	return inl(PCI_CONFIG_DATA);
}

static void cf8_write(const struct pci_device *d, uint8_t off, int size, uint32_t v)
{
	select_reg(d, off);
	if (size == 1)
		outb((uint8_t)v, PCI_CONFIG_DATA + (off & 3));
	else if (size == 2)
		outw((uint16_t)v, PCI_CONFIG_DATA + (off & 2));
	else
		outl(v, PCI_CONFIG_DATA);
}

static uint64_t ecam_addr(const struct pci_device *d, uint8_t off)
{
	return PLAT_PCI_ECAM_START | (uint64_t)d->bus << 20 | (uint64_t)d->slot << 15 |
	       (uint64_t)d->func << 12 | off;
}

static uint32_t ecam_read(const struct pci_device *d, uint8_t off, int size)
{
	if (size == 1)
		return mmio_read8(ecam_addr(d, off));
	if (size == 2)
		return mmio_read16(ecam_addr(d, off & ~1));
	return mmio_read32(ecam_addr(d, off & ~3));
}

static void ecam_write(const struct pci_device *d, uint8_t off, int size, uint32_t v)
{
	if (size == 1)
		mmio_write8(ecam_addr(d, off), (uint8_t)v);
	else if (size == 2)
		mmio_write16(ecam_addr(d, off & ~1), (uint16_t)v);
	else
		mmio_write32(ecam_addr(d, off & ~3), v);
}

static const struct cfg_ops cf8_ops = { .read = cf8_read, .write = cf8_write };
static const struct cfg_ops ecam_ops = { .read = ecam_read, .write = ecam_write };
static const struct cfg_ops *cfg = &cf8_ops;

static void choose_cfg_access(void)
{
	const struct pci_device bridge = { 0 };
	uint32_t id = cf8_read(&bridge, PCI_VENDOR_ID, 4);

	if ((id & 0xffff) != 0xffff && (id & 0xffff) != 0 &&
	    ecam_read(&bridge, PCI_VENDOR_ID, 4) == id)
		cfg = &ecam_ops;
}

static uint32_t raw_read32(uint8_t bus, uint8_t slot, uint8_t func, uint8_t off)
{
	const struct pci_device d = { .bus = bus, .slot = slot, .func = func };

	return cfg->read(&d, off, 4);
}

uint8_t pci_read8(const struct pci_device *d, uint8_t off)
{
	return (uint8_t)cfg->read(d, off, 1);
}

uint16_t pci_read16(const struct pci_device *d, uint8_t off)
{
	return (uint16_t)cfg->read(d, off, 2);
}

uint32_t pci_read32(const struct pci_device *d, uint8_t off)
{
	return cfg->read(d, off, 4);
}

void pci_write16(const struct pci_device *d, uint8_t off, uint16_t v)
{
	cfg->write(d, off, 2, v);
}

/* Extended config space (0x100..0xfff) exists only through ECAM. */
bool pci_ext_read32(const struct pci_device *d, uint16_t off, uint32_t *v)
{
	if (cfg != &ecam_ops || off >= 4096 || off % 4)
		return false;
	*v = mmio_read32(ecam_addr(d, 0) + off);
	return true;
}

bool pci_ext_write32(const struct pci_device *d, uint16_t off, uint32_t v)
{
	if (cfg != &ecam_ops || off >= 4096 || off % 4)
		return false;
	mmio_write32(ecam_addr(d, 0) + off, v);
	return true;
}

/* Record function (slot, func) if present; returns its raw header type, or -1. */
static int probe_function(uint8_t slot, uint8_t func)
{
	uint32_t id = raw_read32(0, slot, func, PCI_VENDOR_ID);
	struct pci_device *d;
	uint8_t hdr;

	if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
		return -1;
	hdr = (raw_read32(0, slot, func, PCI_HEADER_TYPE & 0xfc) >> 16) & 0xff;
	if (nr_devices == PCI_MAX_DEVICES) {
		printf("pci: more than %d functions, ignoring 00:%02x.%x\n", PCI_MAX_DEVICES,
		       slot, func);
		return hdr;
	}
	d = &devices[nr_devices++];
	*d = (struct pci_device){
		.bus = 0, .slot = slot, .func = func,
		.vendor = id & 0xffff, .device = id >> 16,
		.class_code = raw_read32(0, slot, func, PCI_CLASS_REVISION) >> 8,
		.header_type = hdr & PCI_HEADER_TYPE_MASK,
	};
	printf("pci: 00:%02x.%x %04x:%04x class %06x\n", slot, func, d->vendor, d->device,
	       d->class_code);
	return hdr;
}

int pci_scan(const struct pci_device **list)
{
	uint8_t slot, func;
	int hdr;

	if (nr_devices < 0) {
		nr_devices = 0;
		choose_cfg_access();
		for (slot = 0; slot < PCI_SLOTS; slot++) {
			hdr = probe_function(slot, 0);
			if (hdr < 0 || !(hdr & PCI_HEADER_MULTI_FUNC))
				continue;
			for (func = 1; func < PCI_FUNCS; func++)
				probe_function(slot, func);
		}
	}
	*list = devices;
	return nr_devices;
}

const struct pci_device *pci_find(uint16_t vendor, uint16_t device, int n)
{
	const struct pci_device *list;
	int i, count = pci_scan(&list);

	for (i = 0; i < count; i++)
		if (list[i].vendor == vendor && list[i].device == device && n-- == 0)
			return &list[i];
	return NULL;
}

bool pci_present(const struct pci_device *d)
{
	uint32_t id = pci_read32(d, PCI_VENDOR_ID);

	return (id & 0xffff) == d->vendor && (id >> 16) == d->device;
}

void pci_enable_mem_master(const struct pci_device *d)
{
	uint16_t cmd = pci_read16(d, PCI_COMMAND);

	if ((cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) !=
	    (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER))
		pci_write16(d, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

bool pci_mem_bar(const struct pci_device *d, int n, uint64_t *addr)
{
	uint32_t lo, hi = 0;

	if (d->header_type != 0 || n < 0 || n > 5)
		return false;
	lo = pci_read32(d, PCI_BAR0 + 4 * n);
	if (lo & PCI_BAR_IO)
		return false;
	if ((lo & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_TYPE_64) {
		if (n == 5)
			return false;
		hi = pci_read32(d, PCI_BAR0 + 4 * (n + 1));
	}
	*addr = ((uint64_t)hi << 32 | lo) & PCI_BAR_MEM_ADDR_MASK;
	return *addr != 0;
}

uint8_t pci_find_cap(const struct pci_device *d, uint8_t id, uint8_t pos)
{
	int i;

	if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	pos = pos ? pci_read8(d, pos + 1) : pci_read8(d, PCI_CAPABILITY_LIST);
	for (i = 0; i < PCI_CAP_MAX; i++) {
		pos &= 0xfc;	/* the bottom two bits are reserved */
		if (pos < PCI_CAP_MIN_POS)
			return 0;
		if (pci_read8(d, pos) == id)
			return pos;
		pos = pci_read8(d, pos + 1);
	}
	return 0;
}
