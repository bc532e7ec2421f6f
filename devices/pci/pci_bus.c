// SPDX-License-Identifier: MIT
/*
 * PCI bus 0 and its host bridge: the device-slot registry, BAR placement,
 * and the two config mechanisms a guest may use:
 *  - configuration mechanism #1: address latch at 0xCF8, data at 0xCFC-0xCFF
 *    (256 bytes per function);
 *  - ECAM at PLAT_PCI_ECAM_START: bus << 20 | devfn << 12 | register.
 * The host bridge is a struct device so the VM resets, saves and loads the
 * config space of every function (and their MSI-X state) in one section.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_msix.h"
#include "devices/platform.h"
#include "migration/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define CF8_PORT	0xcf8
#define CFC_PORT	0xcfc
#define CF8_ENABLE	0x80000000u
#define PCI_CLASS_HOST_BRIDGE	0x060000	/* bridge, host, prog-if 0 */

struct pci_host {
	struct device dev;
	struct pci_bus bus;
	bool realized;
};

static struct pci_host *to_host(struct device *dev)
{
	return container_of(dev, struct pci_host, dev);
}

/* ---- config access ---- */

static void cfg_access_locked(struct pci_bus *bus, uint8_t devfn, uint32_t off, void *data,
			      unsigned len, bool is_write)
{
	struct pci_dev *pd = bus->devs[devfn];

	if (!pd) {			/* master abort: reads all ones */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write) {
		if (pd->ops && pd->ops->cfg_write)
			pd->ops->cfg_write(pd, off, data, len);
		else
			pci_cfg_write(pd, off, data, len);
	} else {
		if (pd->ops && pd->ops->cfg_read)
			pd->ops->cfg_read(pd, off, data, len);
		else
			pci_cfg_read(pd, off, data, len);
	}
}

void pci_bus_cfg_access(struct pci_bus *bus, uint8_t devfn, uint32_t off, void *data,
			unsigned len, bool is_write)
{
	/* accesses never straddle an aligned dword (4 KiB of ECAM at most) */
	if ((len != 1 && len != 2 && len != 4) || off % len || off >= 4096) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	cfg_access_locked(bus, devfn, off, data, len, is_write);
	pthread_mutex_unlock(&bus->lock);
}

static void cf8_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bus *bus = opaque;

	if (len != 4 || off) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	memcpy(data, &bus->cf8, 4);
	pthread_mutex_unlock(&bus->lock);
}

static void cf8_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bus *bus = opaque;

	/* byte writes to 0xCF9 are a reset-control register elsewhere: ignored */
	if (len != 4 || off)
		return;
	pthread_mutex_lock(&bus->lock);
	memcpy(&bus->cf8, data, 4);
	pthread_mutex_unlock(&bus->lock);
}

static void cfc_access(struct pci_bus *bus, uint64_t off, void *data, unsigned len,
		       bool is_write)
{
	uint32_t a;

	pthread_mutex_lock(&bus->lock);
	a = bus->cf8;
	/* enabled, bus 0, and the access stays inside the data dword */
	if (!(a & CF8_ENABLE) || ((a >> 16) & 0xff) || off + len > 4 ||
	    (len != 1 && len != 2 && len != 4) || off % len) {
		if (!is_write)
			memset(data, 0xff, len);
	} else {
		cfg_access_locked(bus, (a >> 8) & 0xff, (a & 0xfc) + off, data, len, is_write);
	}
	pthread_mutex_unlock(&bus->lock);
}

static void cfc_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	cfc_access(opaque, off, data, len, false);
}

static void cfc_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	cfc_access(opaque, off, (void *)data, len, true);
}

static void ecam_access(struct pci_bus *bus, uint64_t off, void *data, unsigned len,
			bool is_write)
{
	uint8_t devfn = (off >> 12) & 0xff;
	uint32_t reg = off & 0xfff;

	if (off >> 20) {		/* only bus 0 exists */
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (len == 8 && !(reg % 8)) {	/* a qword is two dwords */
		pci_bus_cfg_access(bus, devfn, reg, data, 4, is_write);
		pci_bus_cfg_access(bus, devfn, reg + 4, (uint8_t *)data + 4, 4, is_write);
		return;
	}
	pci_bus_cfg_access(bus, devfn, reg, data, len, is_write);
}

static void ecam_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	ecam_access(opaque, off, data, len, false);
}

static void ecam_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	ecam_access(opaque, off, (void *)data, len, true);
}

static const struct io_ops cf8_ops = { .read = cf8_read, .write = cf8_write };
static const struct io_ops cfc_ops = { .read = cfc_read, .write = cfc_write };
static const struct io_ops ecam_ops = { .read = ecam_read, .write = ecam_write };

/* ---- registry and BAR placement ---- */

struct pci_dev *pci_bus_find(struct pci_bus *bus, uint8_t devfn)
{
	struct pci_dev *pd;

	pthread_mutex_lock(&bus->lock);
	pd = bus->devs[devfn];
	pthread_mutex_unlock(&bus->lock);
	return pd;
}

/* Give every BAR an address; commits the cursors only if all fit. */
static int place_bars(struct pci_bus *bus, struct pci_dev *pd, uint16_t *decode)
{
	uint64_t mmio = bus->mmio_next, io = bus->io_next;

	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct pci_bar *b = &pd->bars[n];
		uint64_t a;

		if (b->type == PCI_BAR_NONE)
			continue;
		if (b->type == PCI_BAR_IO) {
			a = ALIGN_UP(io, b->size);
			if (a + b->size > PCI_IO_ALLOC_END)
				return -ENOSPC;
			io = a + b->size;
			*decode |= PCI_COMMAND_IO;
		} else {
			a = ALIGN_UP(mmio, b->size);
			if (a + b->size > PLAT_PCI_MMIO_START + PLAT_PCI_MMIO_SIZE)
				return -ENOSPC;
			mmio = a + b->size;
			*decode |= PCI_COMMAND_MEMORY;
		}
		/* the register holds only its type bits so far */
		pci_cfg_set(pd, PCI_BASE_ADDRESS_0 + 4 * n,
			    pci_cfg_get(pd, PCI_BASE_ADDRESS_0 + 4 * n, 4) | (uint32_t)a, 4);
		if (b->type == PCI_BAR_MEM64)
			pci_cfg_set(pd, PCI_BASE_ADDRESS_0 + 4 * (n + 1), (uint32_t)(a >> 32), 4);
	}
	bus->mmio_next = mmio;
	bus->io_next = (uint32_t)io;
	return 0;
}

int pci_bus_register(struct pci_bus *bus, struct pci_dev *pd, int slot)
{
	uint16_t decode = 0;
	int ret;

	pthread_mutex_lock(&bus->lock);
	if (slot == PCI_ANY_SLOT) {
		for (slot = 1; slot < 32 && bus->devs[PCI_DEVFN(slot, 0)]; slot++)
			;
		if (slot == 32) {
			ret = -ENOSPC;
			pr_err("pci: no free slot for %s", pd->name);
			goto out;
		}
	} else if (slot < 0 || slot >= 32 || bus->devs[PCI_DEVFN(slot, 0)]) {
		ret = -EBUSY;
		pr_err("pci: slot %d is not available for %s", slot, pd->name);
		goto out;
	}
	ret = place_bars(bus, pd, &decode);
	if (ret) {
		pr_err("pci: no room in the PCI window for the BARs of %s", pd->name);
		goto out;
	}
	pci_cfg_set(pd, PCI_COMMAND, pci_cfg_get(pd, PCI_COMMAND, 2) | decode, 2);
	memcpy(pd->cfg_reset, pd->cfg, sizeof(pd->cfg));
	pd->bus = bus;
	pd->devfn = PCI_DEVFN(slot, 0);
	bus->devs[pd->devfn] = pd;
	pci_dev_update_bars(pd);
	ret = pd->devfn;
out:
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

static void unmap_all(struct pci_dev *pd)
{
	uint16_t cmd = pci_cfg_get(pd, PCI_COMMAND, 2);

	pci_cfg_set(pd, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY), 2);
	pci_dev_update_bars(pd);
	pci_cfg_set(pd, PCI_COMMAND, cmd, 2);
}

void pci_bus_unregister(struct pci_bus *bus, struct pci_dev *pd)
{
	pthread_mutex_lock(&bus->lock);
	if (pd->bus == bus && bus->devs[pd->devfn] == pd) {
		unmap_all(pd);
		bus->devs[pd->devfn] = NULL;
		pd->bus = NULL;
	}
	pthread_mutex_unlock(&bus->lock);
}

/* ---- the host bridge as a device ---- */

static int host_realize(struct device *dev, struct vm *vm)
{
	struct pci_host *h = to_host(dev);
	int ret;

	ret = iobus_register(&vm->pio, CF8_PORT, 4, &cf8_ops, &h->bus);
	if (!ret)
		ret = iobus_register(&vm->pio, CFC_PORT, 4, &cfc_ops, &h->bus);
	if (!ret)
		ret = iobus_register(&vm->mmio, PLAT_PCI_ECAM_START, PLAT_PCI_ECAM_SIZE,
				     &ecam_ops, &h->bus);
	if (ret) {
		pr_err("pci: config space ports or ECAM already taken");
		iobus_unregister(&vm->pio, CF8_PORT);
		iobus_unregister(&vm->pio, CFC_PORT);
		return ret;
	}
	h->realized = true;
	return 0;
}

static void host_unrealize(struct device *dev)
{
	struct pci_host *h = to_host(dev);
	struct pci_bus *bus = &h->bus;

	if (h->realized) {
		iobus_unregister(&bus->vm->pio, CF8_PORT);
		iobus_unregister(&bus->vm->pio, CFC_PORT);
		iobus_unregister(&bus->vm->mmio, PLAT_PCI_ECAM_START);
		h->realized = false;
	}
}

/* Power-on config space for everybody (BARs back where hdvm put them). */
static void host_reset(struct device *dev)
{
	struct pci_bus *bus = &to_host(dev)->bus;

	pthread_mutex_lock(&bus->lock);
	bus->cf8 = 0;
	for (int i = 0; i < 256; i++) {
		struct pci_dev *pd = bus->devs[i];

		if (!pd)
			continue;
		memcpy(pd->cfg, pd->cfg_reset, sizeof(pd->cfg));
		pci_dev_update_bars(pd);
		if (pd->msix)
			pci_msix_reset(pd->msix);
	}
	pthread_mutex_unlock(&bus->lock);
}

static int host_save(struct device *dev, struct state_buf *sb)
{
	struct pci_bus *bus = &to_host(dev)->bus;
	uint32_t n = 0;

	pthread_mutex_lock(&bus->lock);
	for (int i = 0; i < 256; i++)
		n += bus->devs[i] != NULL;
	state_put_u32(sb, bus->cf8);
	state_put_u32(sb, n);
	for (int i = 0; i < 256; i++) {
		struct pci_dev *pd = bus->devs[i];

		if (!pd)
			continue;
		state_put_u8(sb, pd->devfn);
		state_put_bytes(sb, pd->cfg, sizeof(pd->cfg));
		state_put_u8(sb, pd->msix != NULL);
		if (pd->msix)
			pci_msix_save(pd->msix, sb);
	}
	pthread_mutex_unlock(&bus->lock);
	return state_ok(sb) ? 0 : -ENOMEM;	/* a writer fails only to grow */
}

static int host_load(struct device *dev, struct state_buf *sb)
{
	struct pci_bus *bus = &to_host(dev)->bus;
	uint8_t cfg[PCI_CFG_SIZE];
	uint32_t cf8 = state_get_u32(sb), n = state_get_u32(sb);
	int ret = 0;

	if (!state_ok(sb) || n > 256)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	bus->cf8 = cf8;
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint8_t devfn = state_get_u8(sb);
		struct pci_dev *pd = bus->devs[devfn];
		bool has_msix;

		state_get_bytes(sb, cfg, sizeof(cfg));
		has_msix = state_get_u8(sb);
		if (!state_ok(sb)) {
			ret = -EINVAL;
			break;
		}
		/* the same function must sit in that slot: same vendor and device */
		if (!pd || memcmp(cfg, pd->cfg, 4) || has_msix != (pd->msix != NULL)) {
			pr_err("pci: saved state for %02x.%x does not match this machine",
			       devfn >> 3, devfn & 7);
			ret = -EINVAL;
			break;
		}
		memcpy(pd->cfg, cfg, sizeof(cfg));
		pci_dev_update_bars(pd);
		if (pd->msix)
			ret = pci_msix_load(pd->msix, sb);
	}
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

/*
 * Config space and MSI-X of every function are saved here, once; the
 * functions' own devices save only what lies behind them.
 */
static const struct device_mig_ops pci_host_mig = {
	.version = 1,
	.save_final = host_save,
	.load = host_load,
};

static const struct device_ops pci_host_ops = {
	.type = "pci-host",
	.realize = host_realize,
	.reset = host_reset,
	.pause = device_vcpu_driven_pause,	/* config cycles come from vCPUs */
	.resume = device_vcpu_driven_resume,
	.unrealize = host_unrealize,
	.mig = &pci_host_mig,
};

struct pci_bus *pci_bus_create(struct vm *vm)
{
	struct pci_host *h = xzalloc(sizeof(*h));
	struct pci_bus *bus = &h->bus;

	device_init(&h->dev, &pci_host_ops, "pci-host");
	bus->vm = vm;
	pthread_mutex_init(&bus->lock, NULL);
	bus->mmio_next = PLAT_PCI_MMIO_START;
	bus->io_next = PCI_IO_ALLOC_START;
	pci_dev_init(&bus->host, "host-bridge", NULL, PCI_HOST_VENDOR, PCI_HOST_DEVICE,
		     PCI_CLASS_HOST_BRIDGE, 0, 0, 0);
	pci_bus_register(bus, &bus->host, 0);
	device_add(vm, &h->dev);
	return bus;
}
