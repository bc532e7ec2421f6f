// SPDX-License-Identifier: MIT
/*
 * PCI bus: config access through 0xCF8/0xCFC and ECAM, BAR sizing, placement
 * and decode, the capability list, MSI-X, reset and save/load.  The guest is
 * played by iobus accesses on a VM that has buses but no KVM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_msix.h"
#include "devices/platform.h"
#include "migration/state.h"
#include "vmm/iobus.h"
#include "vmm/vm.h"

struct tdev {
	struct pci_dev pd;
	struct pci_msix msix;
	uint8_t regs[4096];
	uint8_t io[32];
	/* MSI-X callbacks */
	unsigned updates, fires;
	unsigned last_vec, last_fire;
	uint64_t last_addr;
	uint32_t last_data;
	bool last_masked;
};

static struct vm vm;
static struct pci_bus *bus;
static struct tdev *made[8];
static unsigned nr_made;

static void regs_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct tdev *t = opaque;

	memcpy(data, t->regs + off, len);
}

static void regs_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct tdev *t = opaque;

	memcpy(t->regs + off, data, len);
}

static void io_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct tdev *t = opaque;

	memcpy(data, t->io + off, len);
}

static void io_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct tdev *t = opaque;

	memcpy(t->io + off, data, len);
}

static const struct io_ops regs_ops = { .read = regs_read, .write = regs_write };
static const struct io_ops io_ops = { .read = io_read, .write = io_write };

static void msix_update(void *opaque, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
	struct tdev *t = opaque;

	t->updates++;
	t->last_vec = v;
	t->last_addr = addr;
	t->last_data = data;
	t->last_masked = masked;
}

static void msix_fire(void *opaque, unsigned v)
{
	struct tdev *t = opaque;

	t->fires++;
	t->last_fire = v;
}

static const struct pci_msix_ops msix_ops = { .update = msix_update, .fire = msix_fire };

/* BAR0 4 KiB regs, BAR1 32 bytes of I/O, BAR2 1 MiB 64-bit prefetchable, BAR4 MSI-X. */
static struct tdev *tdev_new(int slot)
{
	struct tdev *t = calloc(1, sizeof(*t));

	pci_dev_init(&t->pd, "tdev", NULL, 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 0x1100);
	assert_int_equal(pci_dev_set_bar(&t->pd, 0, PCI_BAR_MEM32, 4096, false, &regs_ops, t), 0);
	assert_int_equal(pci_dev_set_bar(&t->pd, 1, PCI_BAR_IO, 32, false, &io_ops, t), 0);
	assert_int_equal(pci_dev_set_bar(&t->pd, 2, PCI_BAR_MEM64, 1 << 20, true, &regs_ops, t), 0);
	assert_int_equal(pci_dev_set_bar(&t->pd, 4, PCI_BAR_MEM32, 4096, false,
					 &pci_msix_bar_ops, &t->msix), 0);
	assert_true(pci_dev_add_cap(&t->pd, PCI_CAP_ID_VNDR, 8) >= PCI_STD_HEADER_SIZEOF);
	assert_int_equal(pci_msix_init(&t->msix, &t->pd, NULL, 4, 4, 0, 2048, &msix_ops, t), 0);
	assert_true(pci_bus_register(bus, &t->pd, slot) >= 0);
	made[nr_made++] = t;
	return t;
}

static int setup(void **state)
{
	memset(&vm, 0, sizeof(vm));
	iobus_init(&vm.pio, "pio");
	iobus_init(&vm.mmio, "mmio");
	bus = pci_bus_create(&vm);
	assert_non_null(vm.devices);
	assert_int_equal(vm.devices->ops->realize(vm.devices, &vm), 0);
	return 0;
}

static int teardown(void **state)
{
	struct device *host = vm.devices;

	host->ops->unrealize(host);
	for (unsigned i = 0; i < nr_made; i++) {
		pci_bus_unregister(bus, &made[i]->pd);
		pci_msix_destroy(&made[i]->msix);
		free(made[i]);
	}
	nr_made = 0;
	free(host);		/* struct device comes first, as vm_destroy relies on */
	iobus_destroy(&vm.pio);
	iobus_destroy(&vm.mmio);
	return 0;
}

/* ---- guest-side accessors ---- */

static uint32_t pio_cfg_read(uint8_t devfn, uint32_t off, unsigned len)
{
	uint32_t a = 0x80000000u | devfn << 8 | (off & 0xfc), v = 0;

	iobus_access(&vm.pio, 0xcf8, &a, 4, true);
	iobus_access(&vm.pio, 0xcfc + (off & 3), &v, len, false);
	return v;
}

static void pio_cfg_write(uint8_t devfn, uint32_t off, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | devfn << 8 | (off & 0xfc);

	iobus_access(&vm.pio, 0xcf8, &a, 4, true);
	iobus_access(&vm.pio, 0xcfc + (off & 3), &v, len, true);
}

static uint32_t ecam_read(uint8_t devfn, uint32_t off, unsigned len)
{
	uint32_t v = 0;

	iobus_access(&vm.mmio, PLAT_PCI_ECAM_START + ((uint64_t)devfn << 12) + off, &v, len, false);
	return v;
}

static void ecam_write(uint8_t devfn, uint32_t off, uint32_t v, unsigned len)
{
	iobus_access(&vm.mmio, PLAT_PCI_ECAM_START + ((uint64_t)devfn << 12) + off, &v, len, true);
}

static bool mmio_reaches(uint64_t addr)
{
	uint32_t v;

	return iobus_access(&vm.mmio, addr, &v, 4, false);
}

/* ---- tests ---- */

static void test_host_bridge_pio(void **state)
{
	uint32_t a = 0x80000000u, v = 0;

	assert_int_equal(pio_cfg_read(0, PCI_VENDOR_ID, 4),
			 PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
	assert_int_equal(pio_cfg_read(0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
	assert_int_equal(pio_cfg_read(0, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(pio_cfg_read(0, PCI_DEVICE_ID, 2), PCI_HOST_DEVICE);
	/* nothing in slot 5; a disabled latch or another bus reads all ones */
	assert_int_equal(pio_cfg_read(PCI_DEVFN(5, 0), 0, 4), 0xffffffff);
	a = 0x00000000;
	iobus_access(&vm.pio, 0xcf8, &a, 4, true);
	iobus_access(&vm.pio, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0xffffffff);
	a = 0x80010000;
	iobus_access(&vm.pio, 0xcf8, &a, 4, true);
	iobus_access(&vm.pio, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0xffffffff);
	/* the latch reads back */
	iobus_access(&vm.pio, 0xcf8, &v, 4, false);
	assert_int_equal(v, 0x80010000);
}

static void test_ecam_matches_pio(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t devfn = t->pd.devfn;
	uint64_t q = 0;

	assert_int_equal(devfn, PCI_DEVFN(1, 0));
	for (uint32_t off = 0; off < PCI_CFG_SIZE; off += 4)
		assert_int_equal(ecam_read(devfn, off, 4), pio_cfg_read(devfn, off, 4));
	assert_int_equal(ecam_read(devfn, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(ecam_read(devfn, PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(pio_cfg_read(devfn, PCI_DEVICE_ID + 1, 1), 0x10);
	assert_int_equal(ecam_read(devfn, 0x100, 4), 0);		/* no extended caps */
	assert_int_equal(ecam_read(PCI_DEVFN(9, 0), 0, 4), 0xffffffff);
	assert_int_equal(ecam_read(devfn, 1, 2), 0xffffffff & 0xffff);	/* misaligned */
	iobus_access(&vm.mmio, PLAT_PCI_ECAM_START + ((uint64_t)devfn << 12), &q, 8, false);
	assert_int_equal(q & 0xffffffff, 0x10411af4);
	assert_int_equal(q >> 32, ecam_read(devfn, PCI_COMMAND, 4));
	/* a write through ECAM is seen through the ports */
	ecam_write(devfn, PCI_INTERRUPT_LINE, 0x0b, 1);
	assert_int_equal(pio_cfg_read(devfn, PCI_INTERRUPT_LINE, 1), 0x0b);
}

static void test_bar_sizing(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;
	static const struct { uint32_t reg, expect; } probe[] = {
		{ PCI_BASE_ADDRESS_0, 0xfffff000 },			/* 4 KiB mem32 */
		{ PCI_BASE_ADDRESS_1, 0xffffffe1 },			/* 32 B I/O */
		{ PCI_BASE_ADDRESS_2, 0xfff0000c },			/* 1 MiB mem64 pref */
		{ PCI_BASE_ADDRESS_3, 0xffffffff },			/* its upper half */
		{ PCI_BASE_ADDRESS_4, 0xfffff000 },
		{ PCI_BASE_ADDRESS_5, 0x00000000 },			/* unimplemented */
	};
	uint64_t bar0 = pci_bar_address(&t->pd, 0);

	for (unsigned i = 0; i < 6; i++) {
		uint32_t orig = pio_cfg_read(d, probe[i].reg, 4);

		pio_cfg_write(d, probe[i].reg, 0xffffffff, 4);
		assert_int_equal(pio_cfg_read(d, probe[i].reg, 4), probe[i].expect);
		pio_cfg_write(d, probe[i].reg, orig, 4);
		assert_int_equal(pio_cfg_read(d, probe[i].reg, 4), orig);
	}
	/* sizing with decode on parked the BAR; restoring put it back */
	assert_true(mmio_reaches(bar0));
	assert_true(t->pd.bars[0].mapped);
	/* the ROM BAR is not implemented */
	pio_cfg_write(d, PCI_ROM_ADDRESS, 0xffffffff, 4);
	assert_int_equal(pio_cfg_read(d, PCI_ROM_ADDRESS, 4), 0);
}

static void test_bar_placement(void **state)
{
	struct tdev *a = tdev_new(PCI_ANY_SLOT), *b = tdev_new(PCI_ANY_SLOT);
	struct tdev *ts[2] = { a, b };
	uint64_t lo = PLAT_PCI_MMIO_START, hi = PLAT_PCI_MMIO_START + PLAT_PCI_MMIO_SIZE;
	uint64_t ranges[8][2];
	unsigned nr = 0;

	assert_int_equal(b->pd.devfn, PCI_DEVFN(2, 0));
	for (int i = 0; i < 2; i++) {
		uint16_t cmd = pci_cfg_get(&ts[i]->pd, PCI_COMMAND, 2);

		assert_true(cmd & PCI_COMMAND_MEMORY);
		assert_true(cmd & PCI_COMMAND_IO);
		for (int n = 0; n < PCI_NUM_BARS; n++) {
			const struct pci_bar *bar = &ts[i]->pd.bars[n];
			uint64_t addr = pci_bar_address(&ts[i]->pd, n);

			if (bar->type == PCI_BAR_NONE)
				continue;
			assert_true(bar->mapped);
			assert_int_equal(addr % bar->size, 0);
			if (bar->type == PCI_BAR_IO) {
				assert_true(addr >= PCI_IO_ALLOC_START && addr + bar->size <= 0x10000);
				continue;
			}
			assert_true(addr >= lo && addr + bar->size <= hi);
			for (unsigned k = 0; k < nr; k++)
				assert_true(addr + bar->size <= ranges[k][0] ||
					    addr >= ranges[k][0] + ranges[k][1]);
			ranges[nr][0] = addr;
			ranges[nr++][1] = bar->size;
		}
	}
	assert_int_equal(nr, 6);
}

static void test_bar_decode_and_move(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;
	uint64_t bar0 = pci_bar_address(&t->pd, 0), io = pci_bar_address(&t->pd, 1);
	uint32_t v = 0xcafef00d, r = 0;
	uint16_t cmd = pio_cfg_read(d, PCI_COMMAND, 2);

	iobus_access(&vm.mmio, bar0 + 0x10, &v, 4, true);
	assert_memory_equal(t->regs + 0x10, &v, 4);
	iobus_access(&vm.pio, io + 4, &v, 2, true);
	assert_memory_equal(t->io + 4, &v, 2);

	/* memory decode off: BARs vanish, I/O stays */
	pio_cfg_write(d, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
	assert_false(mmio_reaches(bar0));
	assert_true(iobus_access(&vm.pio, io, &r, 2, false));
	pio_cfg_write(d, PCI_COMMAND, cmd, 2);
	assert_true(mmio_reaches(bar0));

	/* the guest moves BAR0 */
	pio_cfg_write(d, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
	assert_false(mmio_reaches(bar0));
	assert_true(mmio_reaches(0xd0000000));
	iobus_access(&vm.mmio, 0xd0000010, &r, 4, false);
	assert_int_equal(r, v);
	/* onto another BAR: refused quietly, not decoded twice */
	pio_cfg_write(d, PCI_BASE_ADDRESS_0, (uint32_t)pci_bar_address(&t->pd, 4), 4);
	assert_false(t->pd.bars[0].mapped);
	assert_true(t->pd.bars[4].mapped);
}

static void test_read_only_and_w1c(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;

	pio_cfg_write(d, PCI_VENDOR_ID, 0xffffffff, 4);
	assert_int_equal(pio_cfg_read(d, PCI_VENDOR_ID, 4), 0x10411af4);
	pio_cfg_write(d, PCI_COMMAND, 0xffff, 2);
	assert_int_equal(pio_cfg_read(d, PCI_COMMAND, 2), 0x0547);
	pio_cfg_write(d, PCI_CLASS_REVISION, 0, 4);
	assert_int_equal(pio_cfg_read(d, PCI_CLASS_REVISION, 4), 0x02000001);

	/* status: error bits clear on 1, capability bit is read-only */
	pci_cfg_set(&t->pd, PCI_STATUS, pci_cfg_get(&t->pd, PCI_STATUS, 2) |
		    PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY, 2);
	pio_cfg_write(d, PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT, 2);
	assert_int_equal(pio_cfg_read(d, PCI_STATUS, 2),
			 PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY);
	pio_cfg_write(d, PCI_STATUS, 0xffff, 2);
	assert_int_equal(pio_cfg_read(d, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
}

static void test_capability_list(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn, ptr, ids[4];
	unsigned n = 0;

	assert_true(pio_cfg_read(d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (ptr = pio_cfg_read(d, PCI_CAPABILITY_LIST, 1); ptr && n < 4;
	     ptr = pio_cfg_read(d, ptr + PCI_CAP_LIST_NEXT, 1)) {
		assert_true(ptr >= PCI_STD_HEADER_SIZEOF && !(ptr & 3));
		ids[n++] = pio_cfg_read(d, ptr, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
	/* MSI-X capability contents: 4 vectors, table and PBA in BAR4 */
	assert_int_equal(pio_cfg_read(d, t->msix.cap + PCI_MSIX_FLAGS, 2), 3);
	assert_int_equal(pio_cfg_read(d, t->msix.cap + PCI_MSIX_TABLE, 4), 0 | 4);
	assert_int_equal(pio_cfg_read(d, t->msix.cap + PCI_MSIX_PBA, 4), 2048 | 4);
	/* the pointers are read-only */
	pio_cfg_write(d, PCI_CAPABILITY_LIST, 0, 1);
	assert_int_equal(pio_cfg_read(d, PCI_CAPABILITY_LIST, 1), PCI_STD_HEADER_SIZEOF);
	/* no room left is an error, not an overflow */
	assert_int_equal(pci_dev_add_cap(&t->pd, PCI_CAP_ID_VNDR, 250), -ENOSPC);
}

static void table_write(struct tdev *t, unsigned v, unsigned field, uint32_t val)
{
	uint64_t a = pci_bar_address(&t->pd, 4) + v * PCI_MSIX_ENTRY_SIZE + field;

	iobus_access(&vm.mmio, a, &val, 4, true);
}

static void test_msix(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;
	uint32_t ctl_off = t->msix.cap + PCI_MSIX_FLAGS, r = 0;
	uint64_t pba = pci_bar_address(&t->pd, 4) + 2048, pbits = 0;

	/* enable + function mask, then program vector 1 */
	pio_cfg_write(d, ctl_off, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	assert_true(pci_msix_enabled(&t->msix));
	assert_int_equal(pio_cfg_read(d, ctl_off, 2),
			 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 3);	/* QSIZE read-only */
	t->updates = 0;
	table_write(t, 1, PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee01000);
	assert_int_equal(t->updates, 1);
	table_write(t, 1, PCI_MSIX_ENTRY_DATA, 0x4041);
	assert_int_equal(t->last_vec, 1);
	assert_int_equal(t->last_addr, 0xfee01000);
	assert_int_equal(t->last_data, 0x4041);
	assert_true(t->last_masked);
	iobus_access(&vm.mmio, pci_bar_address(&t->pd, 4) + 16 + 8, &r, 4, false);
	assert_int_equal(r, 0x4041);

	/* unmask the entry: still masked by the function mask */
	table_write(t, 1, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_true(t->last_masked);
	assert_false(pci_msix_raise(&t->msix, 1));	/* goes pending */
	iobus_access(&vm.mmio, pba, &pbits, 8, false);
	assert_int_equal(pbits, 1u << 1);

	/* lifting the function mask delivers the pending message */
	t->updates = t->fires = 0;
	pio_cfg_write(d, ctl_off, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_int_equal(t->updates, 4);		/* every vector hears it */
	assert_int_equal(t->fires, 1);
	assert_int_equal(t->last_fire, 1);
	assert_false(pci_msix_masked(&t->msix, 1));
	assert_true(pci_msix_masked(&t->msix, 0));
	iobus_access(&vm.mmio, pba, &pbits, 8, false);
	assert_int_equal(pbits, 0);
	assert_true(pci_msix_raise(&t->msix, 1));
	assert_int_equal(pci_msix_gsi(&t->msix, 1), -ENOENT);	/* no VM routing here */

	/* the PBA is read-only; reserved control bits do not stick */
	pbits = ~0ull;
	iobus_access(&vm.mmio, pba, &pbits, 8, true);
	iobus_access(&vm.mmio, pba, &pbits, 8, false);
	assert_int_equal(pbits, 0);
	table_write(t, 2, PCI_MSIX_ENTRY_VECTOR_CTRL, 0xfffffffe);
	iobus_access(&vm.mmio, pci_bar_address(&t->pd, 4) + 2 * 16 + 12, &r, 4, false);
	assert_int_equal(r, 0);
}

static void test_reset_restores_power_on(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;
	uint64_t bar0 = pci_bar_address(&t->pd, 0);

	pio_cfg_write(d, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
	pio_cfg_write(d, t->msix.cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	table_write(t, 0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_false(pci_msix_masked(&t->msix, 0));
	devices_reset(&vm);
	assert_int_equal(pci_bar_address(&t->pd, 0), bar0);
	assert_true(mmio_reaches(bar0));
	assert_false(mmio_reaches(0xd0000000));
	assert_false(pci_msix_enabled(&t->msix));
	assert_true(pci_msix_masked(&t->msix, 0));
}

static void test_save_load(void **state)
{
	struct tdev *t = tdev_new(PCI_ANY_SLOT);
	uint8_t d = t->pd.devfn;
	struct state_buf sb, rd;

	pio_cfg_write(d, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
	pio_cfg_write(d, PCI_INTERRUPT_LINE, 0x0a, 1);
	pio_cfg_write(d, t->msix.cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	table_write(t, 3, PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000);
	table_write(t, 3, PCI_MSIX_ENTRY_DATA, 0x33);
	table_write(t, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save(&vm, &sb), 0);

	devices_reset(&vm);
	assert_int_equal(pio_cfg_read(d, PCI_INTERRUPT_LINE, 1), 0);
	t->updates = 0;
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(&vm, &rd, NULL, 0), 0);
	assert_int_equal(pio_cfg_read(d, PCI_INTERRUPT_LINE, 1), 0x0a);
	assert_int_equal(pci_bar_address(&t->pd, 0), 0xd0000000);
	assert_true(mmio_reaches(0xd0000000));
	assert_false(pci_msix_masked(&t->msix, 3));
	assert_true(t->updates >= 4);		/* the device heard every vector */
	assert_int_equal(t->last_vec, 3);
	assert_int_equal(t->last_data, 0x33);
	assert_false(t->last_masked);
	{
		uint64_t a;
		uint32_t data;

		assert_true(pci_msix_message(&t->msix, 3, &a, &data));
		assert_int_equal(a, 0xfee00000);
		assert_int_equal(data, 0x33);
	}
	/* a stream for another machine is refused */
	pci_cfg_set(&t->pd, PCI_DEVICE_ID, 0x1042, 2);
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_not_equal(devices_load(&vm, &rd, NULL, 0), 0);
	state_free(&sb);
}

static void test_slots_and_window(void **state)
{
	struct pci_dev *plain = calloc(40, sizeof(*plain));
	struct pci_dev big;
	int n = 0;

	pci_dev_init(&plain[0], "p", NULL, 0x1234, 1, 0xff0000, 0, 0, 0);
	assert_int_equal(pci_bus_register(bus, &plain[0], 3), PCI_DEVFN(3, 0));
	pci_dev_init(&plain[1], "p", NULL, 0x1234, 1, 0xff0000, 0, 0, 0);
	assert_int_equal(pci_bus_register(bus, &plain[1], 3), -EBUSY);
	assert_int_equal(pci_bus_register(bus, &plain[1], 0), -EBUSY);	/* host bridge */
	assert_int_equal(pci_bus_register(bus, &plain[1], 32), -EBUSY);
	for (int i = 1; i < 40; i++) {
		pci_dev_init(&plain[i], "p", NULL, 0x1234, 1, 0xff0000, 0, 0, 0);
		if (pci_bus_register(bus, &plain[i], PCI_ANY_SLOT) >= 0)
			n++;
	}
	assert_int_equal(n, 30);			/* 32 slots - host - slot 3 */
	assert_ptr_equal(pci_bus_find(bus, PCI_DEVFN(3, 0)), &plain[0]);
	pci_bus_unregister(bus, &plain[0]);
	assert_null(pci_bus_find(bus, PCI_DEVFN(3, 0)));
	assert_int_equal(pio_cfg_read(PCI_DEVFN(3, 0), 0, 4), 0xffffffff);

	/* a BAR larger than the window is refused, not placed on top of ECAM */
	pci_dev_init(&big, "big", NULL, 0x1234, 2, 0xff0000, 0, 0, 0);
	assert_int_equal(pci_dev_set_bar(&big, 0, PCI_BAR_MEM64, 1ull << 30, false, NULL, NULL), 0);
	assert_int_equal(pci_bus_register(bus, &big, 3), -ENOSPC);
	assert_int_equal(pci_dev_set_bar(&big, 5, PCI_BAR_MEM64, 4096, false, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&big, 1, PCI_BAR_MEM32, 4096, false, NULL, NULL), -EBUSY);
	for (int i = 1; i < 40; i++)
		pci_bus_unregister(bus, &plain[i]);
	free(plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge_pio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_matches_pio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_decode_and_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_and_w1c, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_restores_power_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots_and_window, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
