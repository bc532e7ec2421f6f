// SPDX-License-Identifier: MIT
/*
 * Modern virtio PCI transport (virtio 1.x, 4.1).  Every region a capability
 * describes must lie inside the MMIO hole, which our page tables map
 * uncached with the user bit; anything else is refused before first use.
 */
#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/drivers/virtio_pci.h"
#include "guest/io.h"
#include "guest/lib.h"

/* virtio_pci_cap fields */
#define CAP_LEN			2
#define CAP_CFG_TYPE		3
#define CAP_BAR			4
#define CAP_OFFSET		8
#define CAP_LENGTH		12
#define CAP_NOTIFY_MULT		16
#define CAP_SIZE		16
#define CAP_NOTIFY_SIZE		20

#define CFG_TYPE_COMMON		1
#define CFG_TYPE_NOTIFY		2
#define CFG_TYPE_ISR		3
#define CFG_TYPE_DEVICE		4

/* virtio_pci_common_cfg */
#define COMMON_DFSELECT		0x00
#define COMMON_DF		0x04
#define COMMON_GFSELECT		0x08
#define COMMON_GF		0x0c
#define COMMON_MSIX_CONFIG	0x10
#define COMMON_NUM_QUEUES	0x12
#define COMMON_STATUS		0x14
#define COMMON_CFG_GENERATION	0x15
#define COMMON_Q_SELECT		0x16
#define COMMON_Q_SIZE		0x18
#define COMMON_Q_MSIX		0x1a
#define COMMON_Q_ENABLE		0x1c
#define COMMON_Q_NOTIFY_OFF	0x1e
#define COMMON_Q_DESC		0x20
#define COMMON_Q_AVAIL		0x28
#define COMMON_Q_USED		0x30
#define COMMON_LEN		0x38

/* hdnic doorbell capability (struct hdnic_db_cap) */
#define DB_VENDOR_ID		4
#define DB_MAGIC		6
#define DB_BAR			8
#define DB_VERSION		9
#define DB_STRIDE		10
#define DB_OFFSET		12
#define DB_LENGTH		16
#define DB_NUM_SLOTS		20

#define VNDR_CAPS_MAX		48
#define RESET_TIMEOUT_CYCLES	(TSC_ROUGH_HZ)		/* about a second */
#define CONFIG_READ_TRIES	16

/* Address of [bar + off, + len) if it lies inside the MMIO hole, else 0. */
static uint64_t bar_region(const struct pci_device *pci, uint8_t bar, uint64_t off,
			   uint64_t len)
{
	uint64_t base;

	if (bar > 5 || !pci_mem_bar(pci, bar, &base))
		return 0;
	if (base < PLAT_MMIO_HOLE_START || base >= PLAT_MMIO_HOLE_END ||
	    off > PLAT_MMIO_HOLE_END - base || len > PLAT_MMIO_HOLE_END - base - off)
		return 0;
	return base + off;
}

static void take_doorbell(struct virtio_pci *vp, uint8_t pos, const char *who)
{
	const struct pci_device *pci = vp->pci;
	uint16_t stride, slots;
	uint32_t off, len;
	uint64_t addr;

	if (pci_read8(pci, pos + CAP_LEN) < sizeof(struct hdnic_db_cap) ||
	    pci_read16(pci, pos + DB_VENDOR_ID) != HDNIC_DB_CAP_VENDOR_ID ||
	    pci_read16(pci, pos + DB_MAGIC) != HDNIC_DB_CAP_MAGIC)
		return;		/* someone else's vendor data */
	if (pci_read8(pci, pos + DB_VERSION) != HDNIC_DB_CAP_VERSION) {
		printf("%s: doorbell capability version %u unknown, not using it\n", who,
		       pci_read8(pci, pos + DB_VERSION));
		return;
	}
	stride = pci_read16(pci, pos + DB_STRIDE);
	slots = pci_read16(pci, pos + DB_NUM_SLOTS);
	off = pci_read32(pci, pos + DB_OFFSET);
	len = pci_read32(pci, pos + DB_LENGTH);
	addr = bar_region(pci, pci_read8(pci, pos + DB_BAR), off, len);
	if (!addr || stride < 2 || stride % 2 || !slots ||
	    (uint64_t)(slots - 1) * stride + 2 > len) {
		printf("%s: doorbell capability (bar %u off 0x%x len 0x%x stride %u slots %u) unusable\n",
		       who, pci_read8(pci, pos + DB_BAR), off, len, stride, slots);
		return;
	}
	vp->doorbell = addr;
	vp->db_stride = stride;
	vp->db_slots = slots;
}

/* One virtio_pci_cap; the first usable capability of each type wins. */
static void take_cap(struct virtio_pci *vp, uint8_t pos, const char *who)
{
	const struct pci_device *pci = vp->pci;
	uint8_t type = pci_read8(pci, pos + CAP_CFG_TYPE), bar;
	uint32_t off, len;
	uint64_t addr;

	if (type == HDNIC_CAP_VENDOR_CFG_TYPE) {
		if (!vp->doorbell)
			take_doorbell(vp, pos, who);
		return;
	}
	if (type < CFG_TYPE_COMMON || type > CFG_TYPE_DEVICE ||
	    pci_read8(pci, pos + CAP_LEN) < CAP_SIZE)
		return;
	bar = pci_read8(pci, pos + CAP_BAR);
	off = pci_read32(pci, pos + CAP_OFFSET);
	len = pci_read32(pci, pos + CAP_LENGTH);
	addr = bar_region(pci, bar, off, len);
	if (!addr) {
		printf("%s: capability type %u (bar %u off 0x%x len 0x%x) is outside the MMIO hole\n",
		       who, type, bar, off, len);
		return;
	}
	switch (type) {
	case CFG_TYPE_COMMON:
		if (!vp->common && len >= COMMON_LEN)
			vp->common = addr;
		break;
	case CFG_TYPE_NOTIFY:
		if (!vp->notify && pci_read8(pci, pos + CAP_LEN) >= CAP_NOTIFY_SIZE) {
			vp->notify = addr;
			vp->notify_len = len;
			vp->notify_mult = pci_read32(pci, pos + CAP_NOTIFY_MULT);
		}
		break;
	case CFG_TYPE_ISR:
		if (!vp->isr && len >= 1)
			vp->isr = addr;
		break;
	case CFG_TYPE_DEVICE:
		if (!vp->device) {
			vp->device = addr;
			vp->device_len = len;
		}
		break;
	}
}

int virtio_pci_probe(struct virtio_pci *vp, const struct pci_device *pci, const char *who)
{
	uint8_t pos = 0;
	int i;

	*vp = (struct virtio_pci){ .pci = pci };
	pci_enable_mem_master(pci);
	for (i = 0; i < VNDR_CAPS_MAX; i++) {
		pos = pci_find_cap(pci, PCI_CAP_ID_VNDR, pos);
		if (!pos)
			break;
		take_cap(vp, pos, who);
	}
	if (!vp->common || !vp->notify || !vp->isr || !vp->device) {
		printf("%s: 00:%02x.%x lacks a usable virtio capability:%s%s%s%s\n", who,
		       pci->slot, pci->func, vp->common ? "" : " common", vp->notify ? "" : " notify",
		       vp->isr ? "" : " isr", vp->device ? "" : " device");
		return -1;
	}
	return 0;
}

uint8_t virtio_pci_get_status(const struct virtio_pci *vp)
{
	return mmio_read8(vp->common + COMMON_STATUS);
}

void virtio_pci_add_status(struct virtio_pci *vp, uint8_t bits)
{
	mmio_write8(vp->common + COMMON_STATUS, virtio_pci_get_status(vp) | bits);
}

int virtio_pci_reset(struct virtio_pci *vp)
{
	uint64_t start = rdtsc();

	mmio_write8(vp->common + COMMON_STATUS, 0);
	while (virtio_pci_get_status(vp)) {
		if (rdtsc() - start > RESET_TIMEOUT_CYCLES)
			return -1;
		cpu_relax();
	}
	return 0;
}

static uint64_t device_features(struct virtio_pci *vp)
{
	uint64_t lo, hi;

	mmio_write32(vp->common + COMMON_DFSELECT, 0);
	lo = mmio_read32(vp->common + COMMON_DF);
	mmio_write32(vp->common + COMMON_DFSELECT, 1);
	hi = mmio_read32(vp->common + COMMON_DF);
	return hi << 32 | lo;
}

int virtio_pci_negotiate(struct virtio_pci *vp, uint64_t wanted, uint64_t required,
			 const char *who)
{
	uint64_t offered = device_features(vp);

	if ((offered & required) != required) {
		printf("%s: device offers features 0x%lx, need 0x%lx\n", who, offered, required);
		return -1;
	}
	vp->features = offered & wanted;
	mmio_write32(vp->common + COMMON_GFSELECT, 0);
	mmio_write32(vp->common + COMMON_GF, (uint32_t)vp->features);
	mmio_write32(vp->common + COMMON_GFSELECT, 1);
	mmio_write32(vp->common + COMMON_GF, (uint32_t)(vp->features >> 32));
	virtio_pci_add_status(vp, VIRTIO_STATUS_FEATURES_OK);
	if (!(virtio_pci_get_status(vp) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("%s: device refused features 0x%lx\n", who, vp->features);
		return -1;
	}
	return 0;
}

static uint16_t pow2_floor(uint16_t n)
{
	uint16_t p = 1;

	while (p <= n / 2)
		p *= 2;
	return n ? p : 0;
}

uint16_t virtio_pci_queue_max(struct virtio_pci *vp, uint16_t q)
{
	if (q >= mmio_read16(vp->common + COMMON_NUM_QUEUES))
		return 0;
	mmio_write16(vp->common + COMMON_Q_SELECT, q);
	return mmio_read16(vp->common + COMMON_Q_SIZE);
}

static void write64(uint64_t addr, uint64_t v)
{
	mmio_write32(addr, (uint32_t)v);
	mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

int virtio_pci_setup_queue(struct virtio_pci *vp, uint16_t q, uint16_t max_size,
			   uint64_t desc, uint64_t avail, uint64_t used,
			   struct virtio_queue_info *info, const char *who)
{
	uint16_t size = pow2_floor(MIN(virtio_pci_queue_max(vp, q), max_size));
	uint64_t off;

	if (!size) {
		printf("%s: queue %u is not available\n", who, q);
		return -1;
	}
	/* virtio_pci_queue_max() left q selected */
	mmio_write16(vp->common + COMMON_Q_SIZE, size);
	mmio_write16(vp->common + COMMON_Q_MSIX, VIRTIO_NO_VECTOR);
	write64(vp->common + COMMON_Q_DESC, desc);
	write64(vp->common + COMMON_Q_AVAIL, avail);
	write64(vp->common + COMMON_Q_USED, used);
	off = (uint64_t)mmio_read16(vp->common + COMMON_Q_NOTIFY_OFF) * vp->notify_mult;
	if (off + 2 > vp->notify_len) {
		printf("%s: queue %u notify offset 0x%lx is outside the notify area (0x%x bytes)\n",
		       who, q, off, vp->notify_len);
		return -1;
	}
	mmio_write16(vp->common + COMMON_Q_ENABLE, 1);
	info->size = size;
	info->notify_addr = vp->notify + off;
	info->doorbell_addr = vp->doorbell && q < vp->db_slots ?
			      vp->doorbell + (uint64_t)q * vp->db_stride : 0;
	return 0;
}

int virtio_pci_set_queue_vector(struct virtio_pci *vp, uint16_t q, uint16_t vector)
{
	mmio_write16(vp->common + COMMON_Q_SELECT, q);
	mmio_write16(vp->common + COMMON_Q_MSIX, vector);
	/* A vector the device cannot map reads back as NO_VECTOR (virtio 4.1.5.1.2). */
	return mmio_read16(vp->common + COMMON_Q_MSIX) == vector ? 0 : -1;
}

int virtio_pci_read_config(struct virtio_pci *vp, uint32_t off, void *buf, uint32_t len)
{
	uint8_t *p = buf, gen;
	uint32_t i;
	int tries;

	if (off > vp->device_len || len > vp->device_len - off)
		return -1;
	for (tries = 0; tries < CONFIG_READ_TRIES; tries++) {
		gen = mmio_read8(vp->common + COMMON_CFG_GENERATION);
		for (i = 0; i < len; i++)
			p[i] = mmio_read8(vp->device + off + i);
		if (mmio_read8(vp->common + COMMON_CFG_GENERATION) == gen)
			return 0;
	}
	return -1;
}
