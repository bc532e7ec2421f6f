// SPDX-License-Identifier: MIT
/*
 * Config-space emulation for one function: a 256-byte image plus masks of
 * guest-writable and write-1-to-clear bits.  BAR sizing falls out of the
 * masks (writing all ones reads back ~(size-1) | type bits); command-register
 * and BAR writes re-evaluate where each BAR decodes.
 */
#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_msix.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define CMD_WRITABLE	(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | \
			 PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
#define STATUS_W1C	(PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | \
			 PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT | \
			 PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)

uint32_t pci_cfg_get(const struct pci_dev *pd, uint32_t off, unsigned len)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
		v |= (uint32_t)pd->cfg[off + i] << (8 * i);
	return v;
}

void pci_cfg_set(struct pci_dev *pd, uint32_t off, uint32_t val, unsigned len)
{
	for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
		pd->cfg[off + i] = (uint8_t)(val >> (8 * i));
}

void pci_dev_set_wmask(struct pci_dev *pd, uint32_t off, uint32_t mask, unsigned len)
{
	for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
		pd->wmask[off + i] = (uint8_t)(mask >> (8 * i));
}

static void set_w1cmask(struct pci_dev *pd, uint32_t off, uint32_t mask, unsigned len)
{
	for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
		pd->w1cmask[off + i] = (uint8_t)(mask >> (8 * i));
}

void pci_dev_init(struct pci_dev *pd, const char *name, const struct pci_dev_ops *ops,
		  uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision,
		  uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(pd, 0, sizeof(*pd));
	pd->name = name;
	pd->ops = ops;
	pci_cfg_set(pd, PCI_VENDOR_ID, vendor, 2);
	pci_cfg_set(pd, PCI_DEVICE_ID, device, 2);
	pci_cfg_set(pd, PCI_REVISION_ID, revision, 1);
	pci_cfg_set(pd, PCI_CLASS_PROG, class_code, 3);
	pci_cfg_set(pd, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL, 1);
	pci_cfg_set(pd, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor, 2);
	pci_cfg_set(pd, PCI_SUBSYSTEM_ID, subsys_id, 2);
	pci_dev_set_wmask(pd, PCI_COMMAND, CMD_WRITABLE, 2);
	set_w1cmask(pd, PCI_STATUS, STATUS_W1C, 2);
	pci_dev_set_wmask(pd, PCI_CACHE_LINE_SIZE, 0xff, 1);
	pci_dev_set_wmask(pd, PCI_LATENCY_TIMER, 0xff, 1);
	pci_dev_set_wmask(pd, PCI_INTERRUPT_LINE, 0xff, 1);
	pd->cap_end = PCI_STD_HEADER_SIZEOF;
}

static uint32_t bar_reg(int n)
{
	return PCI_BASE_ADDRESS_0 + 4 * n;
}

int pci_dev_set_bar(struct pci_dev *pd, int n, enum pci_bar_type type, uint64_t size,
		    bool prefetch, const struct io_ops *ops, void *opaque)
{
	struct pci_bar *b;
	uint64_t sz = 1, mask;
	uint32_t flags;

	if (n < 0 || n >= PCI_NUM_BARS || (type == PCI_BAR_MEM64 && n == PCI_NUM_BARS - 1) ||
	    type == PCI_BAR_NONE || !size)
		return -EINVAL;
	/* pages for memory (so BARs can be mmap'd), the spec minimum for I/O */
	sz = type == PCI_BAR_IO ? 4 : 4096;
	while (sz < size)
		sz <<= 1;
	if ((type == PCI_BAR_IO && sz > 256) || (type == PCI_BAR_MEM32 && sz > (1ull << 31)))
		return -E2BIG;
	b = &pd->bars[n];
	if (b->type != PCI_BAR_NONE || (n > 0 && pd->bars[n - 1].type == PCI_BAR_MEM64) ||
	    (type == PCI_BAR_MEM64 && pd->bars[n + 1].type != PCI_BAR_NONE))
		return -EBUSY;
	*b = (struct pci_bar){ .type = type, .prefetch = prefetch, .size = sz,
			       .ops = ops, .opaque = opaque };
	mask = ~(sz - 1);
	switch (type) {
	case PCI_BAR_IO:
		flags = PCI_BASE_ADDRESS_SPACE_IO;
		pci_dev_set_wmask(pd, bar_reg(n), (uint32_t)mask & ~3u, 4);
		break;
	case PCI_BAR_MEM64:
		flags = PCI_BASE_ADDRESS_MEM_TYPE_64 | (prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
		pci_dev_set_wmask(pd, bar_reg(n), (uint32_t)mask & ~15u, 4);
		pci_dev_set_wmask(pd, bar_reg(n + 1), (uint32_t)(mask >> 32), 4);
		break;
	default:
		flags = prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
		pci_dev_set_wmask(pd, bar_reg(n), (uint32_t)mask & ~15u, 4);
		break;
	}
	pci_cfg_set(pd, bar_reg(n), flags, 4);
	return 0;
}

int pci_dev_add_cap(struct pci_dev *pd, uint8_t id, uint8_t len)
{
	unsigned off = ALIGN_UP(pd->cap_end, 4u);

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	pd->cfg[off] = id;
	pd->cfg[off + PCI_CAP_LIST_NEXT] = 0;
	if (pd->last_cap)
		pd->cfg[pd->last_cap + PCI_CAP_LIST_NEXT] = off;
	else
		pd->cfg[PCI_CAPABILITY_LIST] = off;
	pci_cfg_set(pd, PCI_STATUS, pci_cfg_get(pd, PCI_STATUS, 2) | PCI_STATUS_CAP_LIST, 2);
	pd->last_cap = off;
	pd->cap_end = off + len;
	return off;
}

uint64_t pci_bar_address(const struct pci_dev *pd, int n)
{
	const struct pci_bar *b = &pd->bars[n];
	uint64_t lo = pci_cfg_get(pd, bar_reg(n), 4);

	switch (b->type) {
	case PCI_BAR_IO:
		return lo & ~3ull;
	case PCI_BAR_MEM64:
		return (lo & ~15ull) | (uint64_t)pci_cfg_get(pd, bar_reg(n + 1), 4) << 32;
	case PCI_BAR_MEM32:
		return lo & ~15ull;
	default:
		return 0;
	}
}

/* Where BAR n should decode now, or false if nowhere. */
static bool bar_target(const struct pci_dev *pd, int n, uint64_t *addr)
{
	const struct pci_bar *b = &pd->bars[n];
	uint16_t cmd = pci_cfg_get(pd, PCI_COMMAND, 2);
	uint64_t a = pci_bar_address(pd, n), limit, sizing;

	switch (b->type) {
	case PCI_BAR_IO:
		if (!(cmd & PCI_COMMAND_IO))
			return false;
		limit = 0xffff;
		sizing = ~(b->size - 1) & 0xfffffffcull;
		break;
	case PCI_BAR_MEM32:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		limit = 0xffffffffull;
		sizing = ~(b->size - 1) & 0xfffffff0ull;
		break;
	case PCI_BAR_MEM64:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		limit = UINT64_MAX;
		sizing = ~(b->size - 1) & ~15ull;
		break;
	default:
		return false;
	}
	/* 0 means unassigned; all ones is a sizing probe in progress */
	if (!a || a == sizing || a + b->size - 1 < a || a + b->size - 1 > limit)
		return false;
	*addr = a;
	return true;
}

static struct iobus *bar_bus(struct pci_dev *pd, int n)
{
	return pd->bars[n].type == PCI_BAR_IO ? &pd->bus->vm->pio : &pd->bus->vm->mmio;
}

void pci_dev_update_bars(struct pci_dev *pd)
{
	if (!pd->bus)
		return;
	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct pci_bar *b = &pd->bars[n];
		uint64_t addr = 0;
		bool want = b->type != PCI_BAR_NONE && bar_target(pd, n, &addr);

		if (want == b->mapped && (!want || addr == b->addr))
			continue;
		if (b->mapped) {
			if (b->ops)
				iobus_unregister(bar_bus(pd, n), b->addr);
			b->mapped = false;
			if (pd->ops && pd->ops->bar_mapped)
				pd->ops->bar_mapped(pd, n, b->addr, false);
		}
		if (!want)
			continue;
		if (b->ops && iobus_register(bar_bus(pd, n), addr, b->size, b->ops, b->opaque)) {
			/* e.g. a guest put two BARs on top of each other: decode neither twice */
			pr_debug("pci %s: BAR%d at %#llx overlaps another range, not decoded",
				 pd->name, n, (unsigned long long)addr);
			continue;
		}
		b->mapped = true;
		b->addr = addr;
		if (pd->ops && pd->ops->bar_mapped)
			pd->ops->bar_mapped(pd, n, addr, true);
	}
}

void pci_cfg_read(struct pci_dev *pd, uint32_t off, void *data, unsigned len)
{
	uint8_t *out = data;

	for (unsigned i = 0; i < len; i++)
		out[i] = off + i < PCI_CFG_SIZE ? pd->cfg[off + i] : 0;
}

static bool overlaps(uint32_t off, unsigned len, uint32_t start, uint32_t end)
{
	return off < end && off + len > start;
}

void pci_cfg_write(struct pci_dev *pd, uint32_t off, const void *data, unsigned len)
{
	const uint8_t *in = data;

	for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++) {
		uint32_t o = off + i;
		uint8_t v = in[i];

		pd->cfg[o] = ((pd->cfg[o] & ~pd->wmask[o]) | (v & pd->wmask[o])) &
			     ~(v & pd->w1cmask[o]);
	}
	if (overlaps(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
	    overlaps(off, len, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_5 + 4))
		pci_dev_update_bars(pd);
	if (pd->msix && overlaps(off, len, pd->msix->cap, pd->msix->cap + PCI_CAP_MSIX_SIZEOF))
		pci_msix_cfg_written(pd->msix);
}
