// SPDX-License-Identifier: MIT
/*
 * The virtio PCI transport of the paravirtual NIC, seen by a driver: PCI
 * identity and capabilities, feature negotiation, queue registers, MSI-X
 * vectors, ISR, the device config (MAC, link), the PCI-config access window
 * and device reset.  No TAP and no I/O thread: the device is never realized.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "virtio_test_driver.h"

static struct tdrv t;

static int setup(void **state)
{
	td_create(&t, NULL);
	return 0;
}

static int setup_mac(void **state)
{
	td_create(&t, "52:54:00:ab:cd:ef");
	return 0;
}

static int teardown(void **state)
{
	td_destroy(&t);
	return 0;
}

static void test_pci_identity(void **st)
{
	assert_int_equal(td_cfg_read(&t, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(td_cfg_read(&t, PCI_DEVICE_ID, 2), 0x1041);
	assert_int_equal(td_cfg_read(&t, PCI_REVISION_ID, 1), 1);
	assert_int_equal(td_cfg_read(&t, PCI_CLASS_REVISION, 4) >> 8, 0x020000);
	assert_int_equal(td_cfg_read(&t, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_true(td_cfg_read(&t, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* BAR0: 32-bit memory, 16 KiB, placed in the PCI window */
	assert_int_equal(td_cfg_read(&t, PCI_BASE_ADDRESS_0, 4) & 0xf, 0);
	assert_true(t.bar >= PLAT_PCI_MMIO_START && t.bar < PLAT_PCI_MMIO_START + PLAT_PCI_MMIO_SIZE);
	td_cfg_write(&t, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	assert_int_equal(td_cfg_read(&t, PCI_BASE_ADDRESS_0, 4), (uint32_t)~(VIRTIO_PCI_BAR_SIZE - 1));
	td_cfg_write(&t, PCI_BASE_ADDRESS_0, (uint32_t)t.bar, 4);
}

static void test_virtio_capabilities(void **st)
{
	static const struct { uint8_t type; uint32_t off, len; } want[] = {
		{ VIRTIO_PCI_CAP_COMMON_CFG, 0x0000, 0x38 },
		{ VIRTIO_PCI_CAP_ISR_CFG, 0x0100, 4 },
		{ VIRTIO_PCI_CAP_DEVICE_CFG, 0x0200, 8 },
		{ VIRTIO_PCI_CAP_NOTIFY_CFG, 0x1000, 8 },
		{ VIRTIO_PCI_CAP_PCI_CFG, 0, 0 },
	};
	uint8_t pos = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		pos = td_find_cap(&t, PCI_CAP_ID_VNDR, pos);
		assert_true(pos);
		assert_int_equal(td_cfg_read(&t, pos + VIRTIO_PCI_CAP_CFG_TYPE, 1), want[i].type);
		assert_int_equal(td_cfg_read(&t, pos + VIRTIO_PCI_CAP_BAR, 1), 0);
		assert_int_equal(td_cfg_read(&t, pos + VIRTIO_PCI_CAP_OFFSET, 4), want[i].off);
		assert_int_equal(td_cfg_read(&t, pos + VIRTIO_PCI_CAP_LENGTH, 4), want[i].len);
		if (want[i].type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			assert_int_equal(td_cfg_read(&t, pos + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4);
	}
	assert_int_equal(td_find_cap(&t, PCI_CAP_ID_VNDR, pos), 0);
	assert_true(t.msix_cap);
	assert_int_equal(td_cfg_read(&t, t.msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 2);
	assert_int_equal(td_cfg_read(&t, t.msix_cap + PCI_MSIX_TABLE, 4), 0x3000);
	assert_int_equal(td_cfg_read(&t, t.msix_cap + PCI_MSIX_PBA, 4), 0x3800);
}

static uint64_t device_features(void)
{
	uint64_t f;

	td_write(&t, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	f = td_read(&t, VIRTIO_PCI_COMMON_DF, 4);
	td_write(&t, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	f |= td_read(&t, VIRTIO_PCI_COMMON_DF, 4) << 32;
	td_write(&t, VIRTIO_PCI_COMMON_DFSELECT, 2, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_DF, 4), 0);
	return f;
}

static void test_features(void **st)
{
	assert_int_equal(device_features(), TD_FEATURES);
	/* something not offered, or no VERSION_1: FEATURES_OK does not stick */
	assert_false(td_init(&t, TD_FEATURES | 1ull << VIRTIO_NET_F_CSUM) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(td_init(&t, 1ull << VIRTIO_NET_F_MAC) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* a subset is fine, and frozen afterwards */
	assert_int_equal(td_init(&t, 1ull << VIRTIO_F_VERSION_1),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	td_write(&t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	td_write(&t, VIRTIO_PCI_COMMON_GF, 0xffffffff, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_GF, 4), 0);
	td_write(&t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_GF, 4), 1);
	assert_false(t.n->vp.vqs[0].event_idx);
}

static void test_driver_ok_without_features_ok(void **st)
{
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER, 1);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK, 1);
	assert_int_equal(td_status(&t), VIRTIO_CONFIG_S_DRIVER | VIRTIO_STATUS_NEEDS_RESET);
	/* the driver can neither set nor clear NEEDS_RESET; only a reset does */
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER, 1);
	assert_true(td_status(&t) & VIRTIO_STATUS_NEEDS_RESET);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(td_status(&t), 0);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_NEEDS_RESET, 1);
	assert_int_equal(td_status(&t), 0);
}

static void test_queue_registers(void **st)
{
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_NET_QUEUE_SIZE);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0xffff);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SIZE, 100, 2);		/* not a power of two */
	td_write(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2 * VIRTIO_NET_QUEUE_SIZE, 2);	/* above the maximum */
	td_write(&t, VIRTIO_PCI_COMMON_Q_SIZE, 0, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_NET_QUEUE_SIZE);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SIZE, 64, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	td_write(&t, VIRTIO_PCI_COMMON_Q_MSIX, 3, 2);		/* only vectors 0-2 exist */
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0xffff);
	td_write(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
	td_write(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 0x123456789000ull, 8);	/* one 64-bit access */
	td_write(&t, VIRTIO_PCI_COMMON_Q_AVAILLO, 0x1000, 4);
	td_write(&t, VIRTIO_PCI_COMMON_Q_AVAILHI, 0x2, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0x123456789000ull);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_AVAILLO, 8), 0x200001000ull);
	/* enabled: the layout is frozen */
	td_write(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
	td_write(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 0x5000, 4);
	td_write(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 0, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x56789000);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	/* a queue that does not exist */
	td_write(&t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	td_write(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* wrong widths and read-only registers */
	td_write(&t, VIRTIO_PCI_COMMON_NUMQ, 7, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_NUMQ, 4), 0);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SELECT, 1), 0);
	/* the config vector: 0-2 or NO_VECTOR */
	td_write(&t, VIRTIO_PCI_COMMON_MSIX, 9, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_MSIX, 2), 0xffff);
	td_write(&t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_MSIX, 2), 0);
}

static void test_reset_clears_registers(void **st)
{
	assert_true(td_init(&t, TD_FEATURES) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(t.n->vp.vqs[0].attached);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(td_status(&t), 0);
	assert_false(t.n->vp.vqs[0].attached);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_NET_QUEUE_SIZE);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_MSIX, 2), 0xffff);
	td_write(&t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_GF, 4), 0);
}

static void test_rings_outside_ram_need_reset(void **st)
{
	td_enable_msix(&t);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER, 1);
	td_write(&t, VIRTIO_PCI_COMMON_GF, 0, 4);
	td_write(&t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	td_write(&t, VIRTIO_PCI_COMMON_GF, 1, 4);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_FEATURES_OK, 1);
	td_write(&t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	td_setup_queue(&t, 0, 16, 1);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	td_write(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 0xd0000000, 8);	/* MMIO hole */
	td_write(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	td_irqs(&t, 0);
	td_write(&t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER_OK, 1);
	assert_true(td_status(&t) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(t.n->vp.vqs[1].broken);
	assert_int_equal(td_irqs(&t, 0), 1);				/* config interrupt */
	assert_int_equal(td_read(&t, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
	assert_int_equal(td_read(&t, VIRTIO_PCI_ISR_OFF, 1), 0);	/* read clears it */
	/* the driver recovers with a reset */
	assert_int_equal(td_init(&t, TD_FEATURES) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_true(t.n->vp.vqs[1].attached);
}

static void test_device_config(void **st)
{
	uint8_t mac[6], want[6];

	for (int i = 0; i < 6; i++)
		mac[i] = td_read(&t, VIRTIO_PCI_DEVCFG_OFF + i, 1);
	net_default_mac("unit", 0, want);
	assert_memory_equal(mac, want, 6);
	assert_int_equal(mac[0] & 3, 2);			/* locally administered unicast */
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF + 6, 2), VIRTIO_NET_S_LINK_UP);
	/* read-only, and nothing beyond its 8 bytes */
	td_write(&t, VIRTIO_PCI_DEVCFG_OFF, 0xff, 1);
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF, 1), mac[0]);
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF + 6, 4), 0);
}

static void test_given_mac(void **st)
{
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF, 4), 0xab005452);
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF + 4, 2), 0xefcd);
}

static void test_pci_cfg_window(void **st)
{
	uint8_t cap = 0;

	for (int i = 0; i < 5; i++)
		cap = td_find_cap(&t, PCI_CAP_ID_VNDR, cap);
	assert_int_equal(td_cfg_read(&t, cap + VIRTIO_PCI_CAP_CFG_TYPE, 1), VIRTIO_PCI_CAP_PCI_CFG);
	/* read the number of queues through config space */
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_BAR, 0, 1);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_NUMQ, 4);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_LENGTH, 2, 4);
	assert_int_equal(td_cfg_read(&t, cap + 16, 4) & 0xffff, 2);
	/* write the status through it */
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_STATUS, 4);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	td_cfg_write(&t, cap + 16, VIRTIO_CONFIG_S_ACKNOWLEDGE, 4);
	assert_int_equal(td_status(&t), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* nonsense windows do nothing */
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_LENGTH, 3, 4);
	td_cfg_write(&t, cap + 16, 0, 4);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_OFFSET, 0x10000, 4);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	td_cfg_write(&t, cap + 16, 0, 4);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_BAR, 5, 1);
	td_cfg_write(&t, cap + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_STATUS, 4);
	td_cfg_write(&t, cap + 16, 0, 4);
	assert_int_equal(td_status(&t), VIRTIO_CONFIG_S_ACKNOWLEDGE);
}

static void test_msix_masking(void **st)
{
	td_enable_msix(&t);
	td_write(&t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	td_write(&t, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 1, 4);		/* mask vector 0 */
	td_irqs(&t, 0);
	virtio_pci_config_changed(&t.n->vp);
	assert_int_equal(td_irqs(&t, 0), 0);
	assert_int_equal(td_read(&t, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1);	/* pending */
	td_write(&t, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 0, 4);		/* unmask: delivered */
	assert_int_equal(td_irqs(&t, 0), 1);
	assert_int_equal(td_read(&t, VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);
	assert_int_equal(td_read(&t, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
}

static void test_unknown_bar_offsets(void **st)
{
	assert_int_equal(td_read(&t, 0x0800, 4), 0);
	assert_int_equal(td_read(&t, 0x2000, 4), 0);
	td_write(&t, 0x2000, 0xffffffff, 4);
	td_write(&t, VIRTIO_PCI_NOTIFY_OFF + 8, 0, 2);		/* queue 2 does not exist */
	assert_int_equal(td_status(&t), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pci_identity),
		T(test_virtio_capabilities),
		T(test_features),
		T(test_driver_ok_without_features_ok),
		T(test_queue_registers),
		T(test_reset_clears_registers),
		T(test_rings_outside_ram_need_reset),
		T(test_device_config),
		cmocka_unit_test_setup_teardown(test_given_mac, setup_mac, teardown),
		T(test_pci_cfg_window),
		T(test_msix_masking),
		T(test_unknown_bar_offsets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
