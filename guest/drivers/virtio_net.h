/* SPDX-License-Identifier: MIT */
/*
 * Poll-mode virtio-net (modern PCI, 1af4:1041): an hdnic VF/ADI passed
 * through by hdvm (doorbell page, no VM exit on the data path) or hdvm's
 * paravirtual device (notify register).  RX queue 0 and TX queue 1, each
 * min(device maximum, VQ_MAX_SIZE) single-descriptor buffers of VNET_BUF_SIZE bytes
 * in guest RAM; every frame is preceded by the 12-byte virtio_net_hdr.
 */
#ifndef HDGUEST_VIRTIO_NET_H
#define HDGUEST_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include "guest/drivers/virtio_pci.h"
#include "guest/drivers/virtqueue.h"

#define VIRTIO_NET_DEVICE_ID	0x1041
#define VNET_HDR_LEN		12
#define VNET_BUF_SIZE		2048
#define VNET_MTU		1500
#define VNET_MAX_FRAME		(14 + VNET_MTU)
#define VNET_MIN_FRAME		60	/* short frames are padded to this */

enum vnet_health {
	VNET_OK,
	VNET_NEEDS_RESET,	/* status 0x40, a driver error, or the ring broke */
	VNET_GONE,		/* the function reads all ones: surprise removal */
};

struct vnet_stats {
	uint64_t rx_packets, rx_bad_len, tx_packets, tx_ring_full;
};

struct compsc_page;

struct virtio_net {
	struct virtio_pci vp;
	struct virtq rx, tx;
	struct virtq ctrl;		/* with CTRL_VQ + CTRL_RX: queue 2 */
	uint8_t mac[6];
	uint16_t tx_free[VQ_MAX_SIZE];	/* free TX buffer ids (a stack) */
	bool tx_taken[VQ_MAX_SIZE];	/* allocated, not yet submitted or cancelled */
	uint16_t tx_nfree;
	bool rx_repost;			/* RX buffers posted since the last kick */
	bool tx_unkicked;
	bool needs_reset_reported;
	enum vnet_health health;
	struct vnet_stats stats;
	/*
	 * CompSC (virtio_net_compsc.c, devices/compsc.md): on a function that
	 * cannot migrate, every device section runs under the shared page's
	 * read lock and a new migration counter means "restore first".
	 */
	struct compsc_page *cs;		/* NULL: not in use */
	uint32_t cs_seen;		/* the counter at our last restore */
	uint16_t cs_depth;		/* nested sections */
	bool cs_moved;			/* restored: the net layer announces us */
	uint32_t cs_restores;
	uint8_t stats_pos;		/* hdnic's statistics capability, 0: none */
	uint64_t hw_stats[6];		/* its read-clear counters, accumulated */
};

/* CompSC: opt in if hdvm offers it (net.compsc=0 opts out); sections. */
void vnet_compsc_setup(struct virtio_net *vn);
void vnet_enter(struct virtio_net *vn);
void vnet_leave(struct virtio_net *vn);
/* Bring a fresh (reset) function to the driver's state: virtio_net.c. */
int vnet_bring_up(struct virtio_net *vn);
/* The device's counters (rx/tx packets, bytes, drops), continuous across moves. */
void virtio_net_hw_stats(struct virtio_net *vn, uint64_t out[6]);

/* Find the n-th virtio-net function and bring it up; prints why not and returns -1. */
int virtio_net_open(struct virtio_net *vn, int n);

/*
 * Receive filtering (virtio_net_ctrl.c), when the device offers
 * VIRTIO_NET_F_CTRL_VQ + VIRTIO_NET_F_CTRL_RX (hdnic functions; hdvm's
 * paravirtual device does not): the feature bits to ask for, the control
 * queue set up before DRIVER_OK, and after it the filter this guest wants:
 * promiscuous and all-multicast off, since it speaks only IPv4 unicast and
 * broadcast.  A failed command is reported and the device keeps delivering
 * everything (the data path works either way).
 */
#define VIRTIO_NET_F_CTRL_VQ	17
#define VIRTIO_NET_F_CTRL_RX	18
#define VNET_CTRL_FEATURES	(1ULL << VIRTIO_NET_F_CTRL_VQ | 1ULL << VIRTIO_NET_F_CTRL_RX)
int virtio_net_ctrl_setup(struct virtio_net *vn);
void virtio_net_ctrl_filter(struct virtio_net *vn);

typedef void (*vnet_rx_fn)(void *ctx, uint8_t *frame, uint32_t len);
/* Hand up to budget received frames to fn, repost their buffers; returns the count. */
int virtio_net_rx(struct virtio_net *vn, vnet_rx_fn fn, void *ctx, int budget);

/*
 * TX: allocate a buffer (the frame goes at the returned pointer, at most
 * VNET_MAX_FRAME bytes), then submit or cancel it.  Submitted frames reach
 * the device at the next virtio_net_tx_flush().  NULL if the ring is full.
 */
uint8_t *virtio_net_tx_alloc(struct virtio_net *vn, uint16_t *id);
void virtio_net_tx_submit(struct virtio_net *vn, uint16_t id, uint32_t len);
void virtio_net_tx_cancel(struct virtio_net *vn, uint16_t id);
void virtio_net_tx_flush(struct virtio_net *vn);
/* Take back buffers the device has sent. */
void virtio_net_tx_reclaim(struct virtio_net *vn);
/* Free TX buffers right now (after reclaiming). */
unsigned virtio_net_tx_room(struct virtio_net *vn);

/*
 * Read the device status (a VM exit: call it now and then).  Prints
 * "virtio-net: device needs reset" the first time NEEDS_RESET shows.
 */
enum vnet_health virtio_net_check(struct virtio_net *vn);

/*
 * Idle mode (net/net_idle.c): route the RX queue to MSI-X table entry 0,
 * which targets LAPIC apic_id with interrupt vector `vector`.  0, or -1
 * with *why naming the problem (the caller then keeps polling).
 */
int virtio_net_rx_irq_setup(struct virtio_net *vn, uint8_t apic_id, uint8_t vector,
			    const char **why);
/* Ask for an RX interrupt; false if frames already wait (do not sleep). */
bool virtio_net_rx_irq_arm(struct virtio_net *vn);
void virtio_net_rx_irq_disarm(struct virtio_net *vn);
/* Changes whenever a frame was received, sent or reclaimed. */
uint64_t virtio_net_progress(const struct virtio_net *vn);

/* Guest-physical address of TX buffer id (for app hostile). */
uint64_t virtio_net_tx_buf_addr(uint16_t id);

#endif
