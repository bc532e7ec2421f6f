/* SPDX-License-Identifier: MIT */
/*
 * One virtual function: a modern virtio-net PCI function served over
 * vfio-user.  The pieces live in separate files:
 *   vf.c              lifecycle (device ops), client attach/detach, IRQs
 *   vf_pci.c          PCI config space and capabilities
 *   virtio_net_dev.c  BAR0: common/ISR/device config, notify, doorbell, MSI-X
 *   vf_datapath.c     TX/RX on the virtqueues, polling and suppression
 *   vf_state.c        save/load
 */
#ifndef HDNIC_VF_H
#define HDNIC_VF_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/dma_space.h"
#include "devices/hdnic/hdnic_dev.h"
#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/hdnic/holdq.h"
#include "devices/hdnic/loop.h"
#include "devices/hdnic/vfu_server.h"
#include "devices/hdnic/virtq.h"

#define VF_CFG_SIZE		256	/* conventional config space we keep */
#define VF_CFG_REGION_SIZE	4096	/* region 7 as seen by the client */

/* Virtio feature bits the VF offers. */
#define VF_F_MAC		(1ULL << 5)
#define VF_F_STATUS		(1ULL << 16)
#define VF_F_EVENT_IDX		(1ULL << 29)
#define VF_F_VERSION_1		(1ULL << 32)
#define VF_FEATURES		(VF_F_MAC | VF_F_STATUS | VF_F_EVENT_IDX | VF_F_VERSION_1)

/* Virtio device status bits */
#define VST_ACKNOWLEDGE		0x01
#define VST_DRIVER		0x02
#define VST_DRIVER_OK		0x04
#define VST_FEATURES_OK		0x08
#define VST_NEEDS_RESET		0x40
#define VST_FAILED		0x80

#define VIRTIO_ISR_QUEUE	0x1
#define VIRTIO_ISR_CONFIG	0x2

struct vf_stats {
	uint64_t rx_packets, rx_bytes, rx_drops, rx_errors;
	uint64_t tx_packets, tx_bytes, tx_drops, tx_errors;
	uint64_t needs_reset;	/* times the driver broke the device */
	uint64_t proto_errors;	/* vfio-user requests answered with an error */
	uint64_t irqs, kicks, connects;
};

struct virtio_net_state {
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t msix_config;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	struct virtq vq[HDNIC_NUM_QUEUES];
};

struct vf_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct vf_kick {
	struct loop_handler h;
	int fd;			/* ioeventfd handed out by GET_REGION_IO_FDS */
	struct vf *vf;
	uint64_t buf;		/* the outstanding read lands here */
};

struct vf {
	struct hdnic_dev dev;
	struct nic *nic;
	unsigned index;
	uint8_t mac[6];

	/* vfio-user */
	int listen_fd;
	struct loop_handler listen_h;
	char sock_path[108];
	struct vfu_conn conn;
	struct dma_space dma;	/* the PASID's address space */

	/* PCI function */
	uint8_t cfg[VF_CFG_SIZE];
	struct vf_msix_entry msix[HDNIC_MSIX_VECTORS];
	uint32_t msix_pba;

	/* virtio */
	struct virtio_net_state vn;

	/* doorbells and interrupts */
	int db_fd;		/* memfd: pages 0-2, page 2 is the doorbell page */
	volatile uint8_t *db;	/* our mapping of the doorbell page */
	struct vf_kick kick[HDNIC_NUM_QUEUES];
	int irq_fd[HDNIC_MSIX_VECTORS];
	bool irq_masked[HDNIC_MSIX_VECTORS];
	uint8_t irq_want;	/* vectors to fire at the end of this loop pass */

	/* data path */
	bool running;		/* DRIVER_OK, not NEEDS_RESET, not paused */
	bool polling;		/* on the NIC's active list */
	bool irq_dirty;		/* on the NIC's flush list */
	bool kicked;		/* look at the TX ring regardless of the doorbell */
	bool rx_unpublished;	/* RX used entries not yet visible to the driver */
	uint64_t last_work_ns;
	struct holdq holdq;

	struct vf_stats stats;
};

extern const struct hdnic_dev_ops vf_dev_ops;

struct vf *vf_create(struct nic *nic, unsigned index, const uint8_t mac[6]);
void vf_destroy(struct vf *vf);

/* Client lifecycle (vfu_server.c calls these). */
int vf_client_attach(struct vf *vf);
void vf_client_detach(struct vf *vf);

/* Full function-level reset: config space, MSI-X, virtio. */
void vf_function_reset(struct vf *vf);
/* Virtio reset (driver wrote 0 to device_status). */
void vf_virtio_reset(struct vf *vf);
/* The driver broke the device contract: NEEDS_RESET + config interrupt. */
void vf_needs_reset(struct vf *vf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Change the MAC (PF driver); raises a config change interrupt. */
void vf_set_mac(struct vf *vf, const uint8_t mac[6]);
const char *vf_state_name(const struct vf *vf);

/* Interrupts */
/* Mark a vector; interrupts go out in vf_flush() at the end of the pass. */
void vf_raise(struct vf *vf, uint16_t vector);
void vf_raise_config(struct vf *vf);
void vf_flush_irqs(struct vf *vf);
int vf_set_irq_fds(struct vf *vf, unsigned start, unsigned count, const int *fds);
void vf_clear_irq_fds(struct vf *vf);

/* PCI config space (vf_pci.c) */
void vf_pci_init(struct vf *vf);
int vf_pci_read(struct vf *vf, uint64_t off, void *buf, uint32_t len);
int vf_pci_write(struct vf *vf, uint64_t off, const void *buf, uint32_t len);

/* BAR0 (virtio_net_dev.c) */
int vf_bar0_read(struct vf *vf, uint64_t off, void *buf, uint32_t len);
int vf_bar0_write(struct vf *vf, uint64_t off, const void *buf, uint32_t len);
void vf_update_running(struct vf *vf);

/* Data path (vf_datapath.c) */
void vf_kick(struct vf *vf, unsigned queue);
/* One polling pass; returns true if the VF did work. */
bool vf_poll(struct vf *vf, uint64_t now_ns);
/* Put one frame into the VF's RX queue (from the switch). */
void vf_rx_deliver(struct vf *vf, const uint8_t *frame, uint32_t len);
/* End of a loop pass: publish RX used entries, fire pending interrupts. */
void vf_flush(struct vf *vf);
/* The DMA map changed: re-resolve rings (NEEDS_RESET if they vanished). */
void vf_dma_changed(struct vf *vf);
void vf_start_polling(struct vf *vf);
void vf_stop_polling(struct vf *vf);

/* Device state (vf_state.c) */
int vf_save(struct vf *vf, struct state_buf *sb);
int vf_load(struct vf *vf, struct state_buf *sb);

#endif
