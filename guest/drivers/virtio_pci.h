/* SPDX-License-Identifier: MIT */
/*
 * Modern (1.x) virtio PCI transport, driver side: the vendor capabilities
 * (common, notify, ISR, device config; cfg_type 1..4), hdnic's doorbell
 * capability (cfg_type 9, magic 0x4448), status handshake, feature
 * negotiation and queue programming.  Queues start with NO_VECTOR; a queue
 * can be given an MSI-X vector later (the idle mode's RX wake-up).
 */
#ifndef HDGUEST_VIRTIO_PCI_H
#define HDGUEST_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "guest/drivers/pci.h"

#define VIRTIO_PCI_VENDOR		0x1af4

/* device status */
#define VIRTIO_STATUS_ACK		0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

/* transport feature bits */
#define VIRTIO_F_RING_EVENT_IDX		29
#define VIRTIO_F_VERSION_1		32

#define VIRTIO_NO_VECTOR		0xffff

struct virtio_pci {
	const struct pci_device *pci;
	uint64_t common;		/* MMIO addresses (identity mapped) */
	uint64_t isr;
	uint64_t device;
	uint32_t device_len;
	uint64_t notify;
	uint32_t notify_len;
	uint32_t notify_mult;
	/* hdnic doorbell page; 0 if the device has none */
	uint64_t doorbell;
	uint16_t db_stride;
	uint16_t db_slots;
	uint64_t features;		/* negotiated */
};

/* What the queue setup hands back for the ring code. */
struct virtio_queue_info {
	uint16_t size;
	uint64_t notify_addr;		/* 16-bit notify register */
	uint64_t doorbell_addr;		/* u16 doorbell slot; 0 if none */
};

/* Find and check the capabilities; prints the problem and returns -1 if unusable. */
int virtio_pci_probe(struct virtio_pci *vp, const struct pci_device *pci, const char *who);

/* Reset (status 0) and wait for the device to acknowledge; -1 on timeout. */
int virtio_pci_reset(struct virtio_pci *vp);
uint8_t virtio_pci_get_status(const struct virtio_pci *vp);
void virtio_pci_add_status(struct virtio_pci *vp, uint8_t bits);

/*
 * Offer the device's features masked by `wanted`; `required` must all be
 * offered.  Sets FEATURES_OK and checks the device kept it.  0 or -1.
 */
int virtio_pci_negotiate(struct virtio_pci *vp, uint64_t wanted, uint64_t required,
			 const char *who);
static inline bool virtio_has_feature(const struct virtio_pci *vp, unsigned bit)
{
	return vp->features & (1ULL << bit);
}

/*
 * Program queue q with rings at the given guest-physical addresses; size is
 * min(device maximum, max_size) rounded down to a power of two.  0 or -1.
 */
int virtio_pci_setup_queue(struct virtio_pci *vp, uint16_t q, uint16_t max_size,
			   uint64_t desc, uint64_t avail, uint64_t used,
			   struct virtio_queue_info *info, const char *who);
/* Computed size for queue q before programming it (0: queue missing). */
uint16_t virtio_pci_queue_max(struct virtio_pci *vp, uint16_t q);

/* Give queue q MSI-X vector `vector` (after MSI-X is enabled); -1 if the device refused it. */
int virtio_pci_set_queue_vector(struct virtio_pci *vp, uint16_t q, uint16_t vector);

/* Device-specific config: a consistent read of len bytes (config_generation). */
int virtio_pci_read_config(struct virtio_pci *vp, uint32_t off, void *buf, uint32_t len);

#endif
