/* SPDX-License-Identifier: MIT */
/*
 * hdvm's paravirtual NIC: a modern virtio-net PCI function (1af4:1041,
 * revision 1) on a TAP interface.  Features VERSION_1, MAC, STATUS and
 * EVENT_IDX; queue 0 receives, queue 1 transmits; every frame carries the
 * 12-byte virtio_net_hdr_v1.  It is the baseline passthrough is measured
 * against: each notify the guest does not suppress is a VM exit, caught by
 * a KVM ioeventfd and handled by the device's I/O thread (io_uring on the
 * TAP and the queue eventfds), which interrupts through MSI-X irqfds.
 */
#ifndef HDVM_VIRTIO_NET_H
#define HDVM_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

struct device;
struct net_opts;
struct vm;

#define VIRTIO_NET_RXQ		0
#define VIRTIO_NET_TXQ		1
#define VIRTIO_NET_QUEUES	2
#define VIRTIO_NET_QUEUE_SIZE	2048
#define VIRTIO_NET_TYPE		1	/* virtio device ID: network card */
#define VIRTIO_NET_CLASS	0x020000	/* Ethernet controller */

struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped;
	uint64_t tx_packets, tx_bytes, tx_errors;
	uint64_t ring_errors;		/* queues the guest broke (NEEDS_RESET) */
	uint64_t notify_exits;		/* kicks that reached hdvm, not an ioeventfd */
};

/*
 * One device per `--net` value of vm->cfg, added to the VM after the PCI bus
 * exists; 0 or -errno with a message (bad option, no room on the bus).
 */
int virtio_net_create_all(struct vm *vm);
/*
 * A single device (index picks the default MAC and the id "netINDEX") into
 * *out; 0 or -errno with a message.
 */
int virtio_net_create(struct vm *vm, const struct net_opts *opts, unsigned index,
		      struct device **out);

/*
 * Migration on one host (unix:): the source hands each device's TAP fd over
 * (SCM_RIGHTS, in --net order); a destination device realized with
 * vm->cfg.net_fds[index] takes that fd (net_tap_adopt) instead of opening
 * the TAP, which the source still holds.  The TAP fd of dev; -ENODEV if dev
 * is not a virtio-net device, -EBADF if it has no TAP open.
 */
int virtio_net_tap_fd(struct device *dev);
/*
 * --incoming: the devices were realized stopped (the source may still read
 * the TAP); the VM runs here now, so they read it.  Idempotent.
 */
void virtio_net_incoming_run(struct vm *vm);

/* Counters of a device made by virtio_net_create(); -EINVAL if dev is not one. */
int virtio_net_get_stats(struct device *dev, struct virtio_net_stats *st);

/*
 * Output commit (Remus), the same operations as hdnic's vendor feature:
 * op is enum holdq_op (devices/holdq.h: START, EPOCH, COMMIT, STOP,
 * DISCARD).  While holding, TX frames are copied and completed, and reach
 * the TAP only when their epoch is committed; a full queue leaves frames in
 * the ring with their completion withheld.  0 or -errno.
 */
int virtio_net_output(struct device *dev, uint32_t op, uint64_t epoch, uint32_t max_frames);

struct virtio_net_output_stats {
	bool holding, blocked;
	uint64_t epoch, held, held_total, released, discarded;
};

int virtio_net_output_stats(struct device *dev, struct virtio_net_output_stats *st);

#endif
