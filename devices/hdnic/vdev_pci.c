// SPDX-License-Identifier: MIT
/*
 * A function's PCI configuration space: a type 0 header, the virtio vendor
 * capabilities (common, ISR, device, notify, PCI cfg access), hdnic's
 * doorbell and statistics capabilities and MSI-X.  Writes go through a
 * write mask, so a driver can only change what hardware lets it change.
 * VFs and ADIs look the same here; for an ADI the VDCM is what emulates it.
 */
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

static uint8_t cfg_wmask[VDEV_CFG_SIZE];
static bool wmask_ready;

static void put8(uint8_t *c, unsigned off, uint8_t v) { c[off] = v; }
static void put16(uint8_t *c, unsigned off, uint16_t v) { memcpy(c + off, &v, 2); }
static void put32(uint8_t *c, unsigned off, uint32_t v) { memcpy(c + off, &v, 4); }
static uint32_t get32(const uint8_t *c, unsigned off)
{
	uint32_t v;

	memcpy(&v, c + off, 4);
	return v;
}

static void virtio_cap(uint8_t *c, unsigned pos, unsigned next, uint8_t len, uint8_t type,
		       uint32_t offset, uint32_t length)
{
	put8(c, pos + VIRTIO_PCI_CAP_VNDR, PCI_CAP_ID_VNDR);
	put8(c, pos + VIRTIO_PCI_CAP_NEXT, next);
	put8(c, pos + VIRTIO_PCI_CAP_LEN, len);
	put8(c, pos + VIRTIO_PCI_CAP_CFG_TYPE, type);
	put8(c, pos + VIRTIO_PCI_CAP_BAR, 0);
	put32(c, pos + VIRTIO_PCI_CAP_OFFSET, offset);
	put32(c, pos + VIRTIO_PCI_CAP_LENGTH, length);
}

static void wmask_init(void)
{
	uint8_t *m = cfg_wmask;

	put16(m, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
	      PCI_COMMAND_INTX_DISABLE);
	put8(m, PCI_CACHE_LINE_SIZE, 0xff);
	put32(m, PCI_BASE_ADDRESS_0, ~(uint32_t)(HDNIC_BAR0_SIZE - 1));
	put8(m, PCI_INTERRUPT_LINE, 0xff);
	/* virtio_pci_cfg_cap: bar, offset, length and the data window */
	put8(m, HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_BAR, 0xff);
	put32(m, HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_OFFSET, 0xffffffff);
	put32(m, HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_LENGTH, 0xffffffff);
	put32(m, HDNIC_CAP_PCICFG_POS + 16, 0xffffffff);
	/* MSI-X enable and function mask */
	put16(m, HDNIC_CAP_MSIX_POS + PCI_MSIX_FLAGS,
	      PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	wmask_ready = true;
}

void vdev_pci_init(struct vdev *vd)
{
	uint8_t *c = vd->cfg;
	struct hdnic_db_cap db = {
		.cap_vndr = PCI_CAP_ID_VNDR,
		.cap_next = HDNIC_CAP_PCICFG_POS,
		.cap_len = sizeof(db),
		.cfg_type = HDNIC_CAP_VENDOR_CFG_TYPE,
		.vendor_id = HDNIC_DB_CAP_VENDOR_ID,
		.magic = HDNIC_DB_CAP_MAGIC,
		.bar = 0,
		.version = HDNIC_DB_CAP_VERSION,
		.stride = HDNIC_DB_STRIDE,
		.offset = HDNIC_BAR0_DOORBELL_OFF,
		.length = HDNIC_PAGE_SIZE,
		.num_slots = (uint16_t)(2 * vd->nr_qps),
	};
	struct hdnic_stats_cap st = {
		.cap_vndr = PCI_CAP_ID_VNDR,
		.cap_next = 0,
		.cap_len = sizeof(st),
		.cfg_type = HDNIC_CAP_VENDOR_CFG_TYPE,
		.vendor_id = HDNIC_DB_CAP_VENDOR_ID,
		.magic = HDNIC_STATS_CAP_MAGIC,
	};

	if (!wmask_ready)
		wmask_init();
	memset(c, 0, VDEV_CFG_SIZE);
	put16(c, PCI_VENDOR_ID, HDNIC_PCI_VENDOR_ID);
	put16(c, PCI_DEVICE_ID, HDNIC_PCI_DEVICE_ID);
	put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
	put8(c, PCI_REVISION_ID, HDNIC_PCI_REVISION);
	put8(c, PCI_CLASS_PROG, HDNIC_PCI_CLASS & 0xff);
	put16(c, PCI_CLASS_DEVICE, HDNIC_PCI_CLASS >> 8);
	put8(c, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
	put32(c, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_SPACE_MEMORY |
	      PCI_BASE_ADDRESS_MEM_TYPE_32);
	put16(c, PCI_SUBSYSTEM_VENDOR_ID, HDNIC_PCI_VENDOR_ID);
	put16(c, PCI_SUBSYSTEM_ID, HDNIC_PCI_SUBSYS_ID);
	put8(c, PCI_CAPABILITY_LIST, HDNIC_CAP_COMMON_POS);
	put8(c, PCI_INTERRUPT_PIN, 0);	/* VFs have no INTx */

	virtio_cap(c, HDNIC_CAP_COMMON_POS, HDNIC_CAP_ISR_POS, 16, VIRTIO_PCI_CAP_COMMON_CFG,
		   HDNIC_BAR0_COMMON_OFF, HDNIC_BAR0_COMMON_LEN);
	virtio_cap(c, HDNIC_CAP_ISR_POS, HDNIC_CAP_DEVCFG_POS, 16, VIRTIO_PCI_CAP_ISR_CFG,
		   HDNIC_BAR0_ISR_OFF, HDNIC_BAR0_ISR_LEN);
	virtio_cap(c, HDNIC_CAP_DEVCFG_POS, HDNIC_CAP_NOTIFY_POS, 16,
		   VIRTIO_PCI_CAP_DEVICE_CFG, HDNIC_BAR0_DEVCFG_OFF, HDNIC_BAR0_DEVCFG_LEN);
	virtio_cap(c, HDNIC_CAP_NOTIFY_POS, HDNIC_CAP_DOORBELL_POS, 20,
		   VIRTIO_PCI_CAP_NOTIFY_CFG, HDNIC_BAR0_NOTIFY_OFF,
		   vdev_nr_queues(vd) * HDNIC_NOTIFY_MULTIPLIER);
	put32(c, HDNIC_CAP_NOTIFY_POS + VIRTIO_PCI_NOTIFY_CAP_MULT, HDNIC_NOTIFY_MULTIPLIER);
	memcpy(c + HDNIC_CAP_DOORBELL_POS, &db, sizeof(db));
	virtio_cap(c, HDNIC_CAP_PCICFG_POS, HDNIC_CAP_MSIX_POS, 20, VIRTIO_PCI_CAP_PCI_CFG,
		   0, 0);

	put8(c, HDNIC_CAP_MSIX_POS + PCI_CAP_LIST_ID, PCI_CAP_ID_MSIX);
	put8(c, HDNIC_CAP_MSIX_POS + PCI_CAP_LIST_NEXT, HDNIC_CAP_STATS_POS);
	put16(c, HDNIC_CAP_MSIX_POS + PCI_MSIX_FLAGS, (uint16_t)(vd->nr_vectors - 1));
	put32(c, HDNIC_CAP_MSIX_POS + PCI_MSIX_TABLE, HDNIC_BAR0_MSIX_TABLE_OFF | 0);
	put32(c, HDNIC_CAP_MSIX_POS + PCI_MSIX_PBA, HDNIC_BAR0_MSIX_PBA_OFF | 0);
	memcpy(c + HDNIC_CAP_STATS_POS, &st, sizeof(st));
	memset(vd->stats_hi, 0, sizeof(vd->stats_hi));
}

/* ---- the statistics capability ---- */

#define STATS_COUNTERS	(HDNIC_CAP_STATS_POS + offsetof(struct hdnic_stats_cap, counter))

static uint64_t stat_value(const struct vdev *vd, unsigned i)
{
	const struct vdev_stats *s = &vd->stats;
	const uint64_t v[HDNIC_NR_STATS] = {
		[HDNIC_STAT_RX_PACKETS] = s->rx_packets,
		[HDNIC_STAT_RX_BYTES] = s->rx_bytes,
		[HDNIC_STAT_RX_DROPS] = s->rx_drops,
		[HDNIC_STAT_TX_PACKETS] = s->tx_packets,
		[HDNIC_STAT_TX_BYTES] = s->tx_bytes,
		[HDNIC_STAT_TX_DROPS] = s->tx_drops,
	};

	return v[i];
}

static bool touches(uint64_t off, uint32_t len, unsigned base, unsigned size);

/*
 * Read-only counters: a read covering a low dword samples the counter, its
 * high dword reads from the sample (hdnic_vf_abi.h).  On a function that
 * cannot migrate the sample also clears the guest's counter, as on the
 * NICs it plays (hdnic's own `stats` keep counting): a driver accumulates,
 * and nothing can write a count back into the device.
 */
static void stats_refresh(struct vdev *vd, uint64_t off, uint32_t len)
{
	for (unsigned i = 0; i < HDNIC_NR_STATS; i++) {
		unsigned lo = STATS_COUNTERS + 8 * i;

		if (touches(off, len, lo, 4)) {
			uint64_t v = stat_value(vd, i);

			if (vd->no_mig) {	/* read-clear: the count since the last read */
				uint64_t total = v;

				v -= vd->stats_clr[i];
				vd->stats_clr[i] = total;
			}
			put32(vd->cfg, lo, (uint32_t)v);
			vd->stats_hi[i] = (uint32_t)(v >> 32);
		}
		if (touches(off, len, lo + 4, 4))
			put32(vd->cfg, lo + 4, vd->stats_hi[i]);
	}
}

/*
 * VIRTIO_PCI_CAP_PCI_CFG: the driver picks bar/offset/length, then reads or
 * writes pci_cfg_data to reach BAR0 through config space.
 */
#define PCICFG_DATA	(HDNIC_CAP_PCICFG_POS + 16)

static bool pcicfg_window(struct vdev *vd, uint32_t *bar_off, uint32_t *len)
{
	uint8_t bar = vd->cfg[HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_BAR];

	*bar_off = get32(vd->cfg, HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_OFFSET);
	*len = get32(vd->cfg, HDNIC_CAP_PCICFG_POS + VIRTIO_PCI_CAP_LENGTH);
	return bar == 0 && (*len == 1 || *len == 2 || *len == 4) &&
	       *bar_off < HDNIC_BAR0_SIZE && *len <= HDNIC_BAR0_SIZE - *bar_off;
}

static bool touches(uint64_t off, uint32_t len, unsigned base, unsigned size)
{
	return off < base + size && off + len > base;
}

int vdev_pci_read(struct vdev *vd, uint64_t off, void *data, uint32_t len)
{
	uint8_t *buf = data;
	uint32_t bar_off, n;

	memset(buf, 0, len);
	if (touches(off, len, PCICFG_DATA, 4) && pcicfg_window(vd, &bar_off, &n)) {
		uint32_t v = 0;

		vdev_bar0_read(vd, bar_off, &v, n);
		put32(vd->cfg, PCICFG_DATA, v);
	}
	if (touches(off, len, STATS_COUNTERS, 8 * HDNIC_NR_STATS))
		stats_refresh(vd, off, len);
	if (off < VDEV_CFG_SIZE)
		memcpy(buf, vd->cfg + off, MIN((uint64_t)len, VDEV_CFG_SIZE - off));
	return 0;
}

int vdev_pci_write(struct vdev *vd, uint64_t off, const void *data, uint32_t len)
{
	const uint8_t *buf = data;
	uint32_t bar_off, n;

	/* Extended config space (>= 256) has nothing: writes vanish. */
	for (uint64_t i = 0; i < len && off + i < VDEV_CFG_SIZE; i++) {
		uint8_t m = cfg_wmask[off + i];

		vd->cfg[off + i] = (vd->cfg[off + i] & ~m) | (buf[i] & m);
	}
	if (touches(off, len, PCICFG_DATA, 4) && pcicfg_window(vd, &bar_off, &n)) {
		uint32_t v = get32(vd->cfg, PCICFG_DATA);

		vdev_bar0_write(vd, bar_off, &v, n);
	}
	return 0;
}
