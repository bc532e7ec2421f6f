/* SPDX-License-Identifier: MIT */
/*
 * Modern virtio PCI transport (virtio 1.x §4.1) for devices emulated inside
 * hdvm.  One 32-bit memory BAR (BAR0, 16 KiB) holds every structure; the
 * layout mirrors the hdnic VF (devices/hdnic/hdnic_vf_abi.h) so one guest
 * driver serves both, minus the doorbell page: this device exits on every
 * notify.
 *
 *   0x0000 common cfg     0x0100 ISR     0x0200 device cfg
 *   0x1000 notify: queue q at 0x1000 + 4*q (notify_off_multiplier 4)
 *   0x3000 MSI-X table    0x3800 PBA
 *
 * Each queue's notify address is a KVM ioeventfd, so a kick is an eventfd
 * signal the back end waits on; a notify write that still reaches hdvm (no
 * KVM, or an access width KVM did not match) signals the same eventfd.  Each
 * MSI-X vector has an eventfd bound to its GSI with KVM_IRQFD.
 *
 * Locking: BAR and PCI-config accesses take *lock (the device's lock); the
 * device's reset/save/load run with it held.  The back end (another thread)
 * never takes it: what it reads of the registers only changes between the
 * ops->stop() and ops->start() calls the transport makes around every change
 * that concerns it, and status/ISR bits it sets are atomics.
 */
#ifndef HDVM_VIRTIO_PCI_H
#define HDVM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_msix.h"
#include "devices/virtio/virtq.h"

struct vm;
struct state_buf;

#define VIRTIO_PCI_VENDOR_ID		0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE	0x1040	/* + virtio device type */
#define VIRTIO_PCI_REVISION		1	/* modern only */
#define VIRTIO_PCI_MAX_QUEUES		8
#define VIRTIO_PCI_MAX_VECTORS		(VIRTIO_PCI_MAX_QUEUES + 1)

#define VIRTIO_PCI_BAR			0
#define VIRTIO_PCI_BAR_SIZE		0x4000
#define VIRTIO_PCI_COMMON_OFF		0x0000
#define VIRTIO_PCI_COMMON_LEN		0x0038
#define VIRTIO_PCI_ISR_OFF		0x0100
#define VIRTIO_PCI_ISR_LEN		0x0004
#define VIRTIO_PCI_DEVCFG_OFF		0x0200
#define VIRTIO_PCI_DEVCFG_MAX		0x0100
#define VIRTIO_PCI_NOTIFY_OFF		0x1000
#define VIRTIO_PCI_NOTIFY_MULT		4
#define VIRTIO_PCI_MSIX_TABLE_OFF	0x3000
#define VIRTIO_PCI_MSIX_PBA_OFF		0x3800

/* Device status bits (virtio 1.x §2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE	0x01
#define VIRTIO_STATUS_DRIVER		0x02
#define VIRTIO_STATUS_DRIVER_OK		0x04
#define VIRTIO_STATUS_FEATURES_OK	0x08
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80

#define VIRTIO_ISR_QUEUE		0x01
#define VIRTIO_ISR_CONFIG		0x02

#define VIRTIO_FEATURE(bit)		(1ull << (bit))

struct virtio_pci_ops {
	/* The device-specific configuration structure (off relative to it). */
	void (*cfg_read)(void *opaque, uint32_t off, void *data, unsigned len);
	void (*cfg_write)(void *opaque, uint32_t off, const void *data, unsigned len);
	/*
	 * stop(): return only when the back end has finished every request in
	 * flight and will not touch the queues or guest memory until start().
	 * Calls nest (pause + a guest reset).
	 */
	void (*stop)(void *opaque);
	void (*start)(void *opaque);
	/* Device reset (status 0 written): device state to power-on values. */
	void (*reset)(void *opaque);
};

struct virtio_pci_params {
	const char *name;		/* for messages and the PCI function */
	uint16_t device_type;		/* virtio device ID: 1 = network */
	uint32_t class_code;
	uint64_t features;		/* everything the device offers */
	unsigned nr_queues;
	uint16_t queue_max_size;
	uint32_t device_writes;		/* bit q: queue q's buffers are device-writable */
	uint32_t devcfg_len;
	const struct virtio_pci_ops *ops;
	void *opaque;
	pthread_mutex_t *lock;
};

struct virtio_pci {
	struct pci_dev pd;
	struct pci_msix msix;
	struct vm *vm;
	bool kvm;			/* a real KVM VM: routes, irqfds, ioeventfds */
	const struct virtio_pci_ops *ops;
	void *opaque;
	pthread_mutex_t *lock;
	const char *name;
	uint64_t device_features;
	uint32_t devcfg_len;
	unsigned nr_queues, nr_vectors;
	uint16_t queue_max_size;
	uint32_t device_writes;
	uint8_t pcicfg_cap;		/* VIRTIO_PCI_CAP_PCI_CFG offset */

	/* driver-visible registers */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	_Atomic uint16_t msix_config;
	_Atomic uint8_t status;
	_Atomic uint8_t isr;
	uint8_t config_generation;
	struct vq vqs[VIRTIO_PCI_MAX_QUEUES];

	/* eventfds: kicks in, interrupts out */
	int kick_fd[VIRTIO_PCI_MAX_QUEUES];
	int irq_fd[VIRTIO_PCI_MAX_VECTORS];
	int irq_gsi[VIRTIO_PCI_MAX_VECTORS];	/* GSI irq_fd is bound to, -1 */
	uint32_t ioeventfd_len;		/* 0 = any access width */
	bool notify_mapped;
	uint64_t notify_base;		/* guest address of the notify area */

	atomic_uint_fast64_t ring_errors;	/* queues the driver broke */
	atomic_uint_fast64_t notify_exits;	/* kicks KVM's ioeventfd did not catch */
	bool registered;
};

/* Build config space, capabilities, MSI-X and eventfds; then register. */
int virtio_pci_init(struct virtio_pci *vp, struct vm *vm, const struct virtio_pci_params *p);
/* Put the function on the VM's PCI bus (any free slot). */
int virtio_pci_register(struct virtio_pci *vp);
/* Unregister and release everything; safe on a half-built transport. */
void virtio_pci_destroy(struct virtio_pci *vp);

/* Device reset as if the driver wrote status 0 (the caller holds *lock). */
void virtio_pci_reset(struct virtio_pci *vp);

/* ---- for the back end ---- */

static inline uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	return atomic_load(&vp->status);
}
/* DRIVER_OK and no NEEDS_RESET: queues may be used. */
bool virtio_pci_live(struct virtio_pci *vp);
bool virtio_pci_has_feature(struct virtio_pci *vp, unsigned bit);
/* Queue q returned buffers and vq_should_interrupt() said yes. */
void virtio_pci_queue_irq(struct virtio_pci *vp, unsigned q);
/* The driver broke queue q (err from the walker): NEEDS_RESET, config interrupt. */
void virtio_pci_queue_broken(struct virtio_pci *vp, unsigned q, int err);
/* Device config changed (config_generation moves, config interrupt). */
void virtio_pci_config_changed(struct virtio_pci *vp);

/* Registers, queues and ISR; PCI config and MSI-X travel with the PCI bus. */
void virtio_pci_save(struct virtio_pci *vp, struct state_buf *sb);
int virtio_pci_load(struct virtio_pci *vp, struct state_buf *sb);

#endif
