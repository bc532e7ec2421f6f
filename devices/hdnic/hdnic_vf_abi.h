/* SPDX-License-Identifier: MIT */
/*
 * An hdnic function (VF or ADI) as a guest driver and a VMM see it: BAR0
 * layout, the doorbell page and its vendor capability, the statistics
 * capability, MSI-X geometry.  Plain C with only <stdint.h>, so hdguest
 * (freestanding), hdvm and hdnic share it.
 *
 * A function is a modern virtio-net PCI function (virtio 1.x, vendor 0x1af4,
 * device 0x1041) with one memory BAR (BAR0, 32-bit, 16 KiB):
 *
 *   page 0  0x0000  common cfg (0x000), ISR (0x100), device cfg (0x200)
 *                   trapped: vfio-user REGION_READ/WRITE
 *   page 1  0x1000  virtio notify area, queue q at 0x1000 + 4*q
 *                   (notify_off_multiplier 4, queue_notify_off = q);
 *                   trapped, but GET_REGION_IO_FDS hands out one ioeventfd
 *                   per queue so KVM signals hdnic directly
 *   page 2  0x2000  doorbell page: shared memory (sparse-mmap area of
 *                   region 0), mapped straight into the guest
 *   page 3  0x3000  MSI-X table (0x3000) and PBA (0x3800)
 *
 * Doorbell protocol.  Slot q of the doorbell page (offset q * stride) holds
 * a little-endian u16 that the driver sets to its avail->idx of queue q
 * after publishing that index in the ring.  While the device polls a queue
 * it suppresses notifications (VRING_USED_F_NO_NOTIFY, or avail_event far
 * ahead with VIRTIO_RING_F_EVENT_IDX), and the doorbell store is the only
 * thing that tells it about new buffers without a VM exit.  A driver MUST
 * write the doorbell slot after every avail->idx update, and MUST also ring
 * the notify register when the ring's suppression state asks for it.  When
 * the device goes idle it re-enables notifications and rechecks the ring,
 * so no buffer is ever lost; the notify register then wakes it.  Because
 * the device reads avail->idx and the doorbell slots while the driver
 * writes them, both MUST be written with single 16-bit stores: a torn index
 * can read as "more than a queue ahead", which puts the device in
 * NEEDS_RESET.
 */
#ifndef HDNIC_VF_ABI_H
#define HDNIC_VF_ABI_H

#include <stdint.h>

#define HDNIC_PCI_VENDOR_ID		0x1af4	/* virtio */
#define HDNIC_PCI_DEVICE_ID		0x1041	/* modern virtio-net */
#define HDNIC_PCI_SUBSYS_ID		0x1100
#define HDNIC_PCI_CLASS			0x020000 /* Ethernet controller */
#define HDNIC_PCI_REVISION		0x01

#define HDNIC_PAGE_SIZE			0x1000
#define HDNIC_BAR0_SIZE			0x4000

#define HDNIC_BAR0_COMMON_OFF		0x0000
#define HDNIC_BAR0_COMMON_LEN		0x0038
#define HDNIC_BAR0_ISR_OFF		0x0100
#define HDNIC_BAR0_ISR_LEN		0x0004
#define HDNIC_BAR0_DEVCFG_OFF		0x0200
#define HDNIC_BAR0_DEVCFG_LEN		0x0010
#define HDNIC_BAR0_NOTIFY_OFF		0x1000
#define HDNIC_NOTIFY_MULTIPLIER		4
#define HDNIC_BAR0_DOORBELL_OFF		0x2000
#define HDNIC_BAR0_MSIX_TABLE_OFF	0x3000
#define HDNIC_BAR0_MSIX_PBA_OFF		0x3800

#define HDNIC_NUM_QUEUES		2	/* 0 = RX, 1 = TX */
#define HDNIC_QUEUE_RX			0
#define HDNIC_QUEUE_TX			1
#define HDNIC_QUEUE_MAX_SIZE		2048	/* deep rings ride out a descheduled vCPU */
#define HDNIC_NET_HDR_LEN		12	/* virtio_net_hdr with num_buffers */

/* Three MSI-X vectors: a driver typically uses 0 = config, 1 = RX, 2 = TX. */
#define HDNIC_MSIX_VECTORS		3

/* Doorbell page: slot q at q * HDNIC_DB_STRIDE, u16 avail index at +0. */
#define HDNIC_DB_STRIDE			64
#define HDNIC_DB_SLOT_AVAIL_IDX		0

/*
 * PCI config space placement of the capabilities (informative: a driver
 * walks the capability list).
 */
#define HDNIC_CAP_COMMON_POS		0x40
#define HDNIC_CAP_ISR_POS		0x50
#define HDNIC_CAP_DEVCFG_POS		0x60
#define HDNIC_CAP_NOTIFY_POS		0x70
#define HDNIC_CAP_DOORBELL_POS		0x88
#define HDNIC_CAP_PCICFG_POS		0xa0
#define HDNIC_CAP_MSIX_POS		0xb8

/*
 * The doorbell capability: a PCI vendor-specific capability (ID 0x09) in
 * the virtio vendor-data form (cfg_type 9, VIRTIO_PCI_CAP_VENDOR_CFG, with
 * a 16-bit vendor ID at offset 4), followed by hdnic's own fields.  A driver
 * recognises it by cfg_type 9, vendor_id 0x1af4 and magic 0x4448 ("HD").
 */
#define HDNIC_CAP_VENDOR_CFG_TYPE	9
#define HDNIC_DB_CAP_VENDOR_ID		0x1af4
#define HDNIC_DB_CAP_MAGIC		0x4448
#define HDNIC_DB_CAP_VERSION		1

struct hdnic_db_cap {
	uint8_t cap_vndr;	/* 0x09 */
	uint8_t cap_next;
	uint8_t cap_len;	/* sizeof(struct hdnic_db_cap) = 24 */
	uint8_t cfg_type;	/* HDNIC_CAP_VENDOR_CFG_TYPE */
	uint16_t vendor_id;	/* HDNIC_DB_CAP_VENDOR_ID */
	uint16_t magic;		/* HDNIC_DB_CAP_MAGIC */
	uint8_t bar;		/* 0 */
	uint8_t version;	/* HDNIC_DB_CAP_VERSION */
	uint16_t stride;	/* bytes between slots: HDNIC_DB_STRIDE */
	uint32_t offset;	/* of the doorbell page within the BAR */
	uint32_t length;	/* of the doorbell page: one page */
	uint16_t num_slots;	/* one per virtqueue */
	uint16_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct hdnic_db_cap) == 24, "doorbell cap layout");

/*
 * The statistics capability: a second virtio vendor-data capability
 * (cfg_type 9, vendor_id 0x1af4, magic 0x5453 "ST") whose body is six
 * read-only 64-bit counters kept by the device: rx packets, rx bytes, rx
 * drops (no buffer, link down, or over the ingress rate), tx packets, tx
 * bytes, tx drops (spoofed source, hairpin, hold queue full).  Bytes count
 * Ethernet frames without the virtio-net header.  A read that covers a
 * counter's low dword samples the counter; its high dword then reads from
 * that sample, so "low dword, then high dword" is a consistent 64-bit value.
 */
#define HDNIC_CAP_STATS_POS		0xc4
#define HDNIC_STATS_CAP_MAGIC		0x5453
#define HDNIC_STATS_CAP_VERSION		1

enum hdnic_stat {
	HDNIC_STAT_RX_PACKETS,
	HDNIC_STAT_RX_BYTES,
	HDNIC_STAT_RX_DROPS,
	HDNIC_STAT_TX_PACKETS,
	HDNIC_STAT_TX_BYTES,
	HDNIC_STAT_TX_DROPS,
	HDNIC_NR_STATS
};

struct hdnic_stats_cap {
	uint8_t cap_vndr;	/* 0x09 */
	uint8_t cap_next;
	uint8_t cap_len;	/* sizeof(struct hdnic_stats_cap) = 56 */
	uint8_t cfg_type;	/* HDNIC_CAP_VENDOR_CFG_TYPE */
	uint16_t vendor_id;	/* HDNIC_DB_CAP_VENDOR_ID */
	uint16_t magic;		/* HDNIC_STATS_CAP_MAGIC */
	uint64_t counter[HDNIC_NR_STATS];	/* enum hdnic_stat */
} __attribute__((packed));

_Static_assert(sizeof(struct hdnic_stats_cap) == 56, "stats cap layout");
_Static_assert(HDNIC_CAP_STATS_POS + sizeof(struct hdnic_stats_cap) <= 256, "stats cap fits");

/*
 * The control queue.  Every function offers VIRTIO_NET_F_CTRL_VQ and
 * VIRTIO_NET_F_CTRL_RX (receive filtering: PROMISC, ALLMULTI,
 * MAC_TABLE_SET); num_queues counts the control queue, which is virtqueue 2
 * (2K with MQ), has no doorbell slot, is serviced by the VDCM in software
 * and is notified through the notify register only.
 *
 * Multi-queue functions.  An ADI composed of K > 1 queue pairs (hdnic ctl
 * adi-add --queues K) also offers VIRTIO_NET_F_MQ with
 * max_virtqueue_pairs = K: virtqueue 2k is RX and 2k+1 TX of pair k,
 * virtqueue 2K is the control queue, MSI-X has 2K + 2 vectors, and the
 * doorbell page has a slot for each of the 2K queue-pair virtqueues
 * (num_slots = 2K).  A driver that negotiates neither CTRL_VQ nor MQ sees
 * exactly a one-pair function.  With K = 1 (VFs, default ADIs) everything
 * above holds unchanged.
 */
#define HDNIC_MAX_QPS_PER_DEV		16
#define HDNIC_MQ_MSIX_VECTORS(k)	(2 * (k) + 2)

/*
 * Output commit (Remus / ReNIC): a vendor VFIO_DEVICE_FEATURE on the
 * function's own vfio-user connection, index HDNIC_FEATURE_OUTPUT_COMMIT
 * (vendor range, above the kernel's indices).  SET takes struct
 * hdnic_output_commit and echoes it; GET returns struct
 * hdnic_output_status; PROBE answers whether the function has it.
 *   START    hold what the function sends (to the uplink and to other
 *            functions), tagged `epoch` from now on; at most max_frames
 *            held (0: HDNIC_OUTPUT_DEFAULT_FRAMES), 4 MiB of frames.  When
 *            full, the TX rings back up: frames wait in the guest's ring,
 *            their used entries withheld; nothing is dropped.
 *   EPOCH    later frames are tagged `epoch` (greater than the current one)
 *   COMMIT   every epoch <= `epoch` (less than the current one) is
 *            committed: its frames leave, in order
 *   STOP     stop holding: everything held leaves, in order
 *   DISCARD  throw away every frame not committed
 * Errors: EINVAL for an epoch out of order or an op without START.  When
 * the client disconnects the function discards its uncommitted frames and
 * stops holding.
 */
#define HDNIC_FEATURE_OUTPUT_COMMIT	0xe001

/*
 * VFIO_MIG_GET_PRECOPY_INFO over vfio-user (which has no data_fd to issue
 * it on): a vendor VFIO_DEVICE_FEATURE, GET only, valid in PRE_COPY and
 * PRE_COPY_P2P (else EINVAL), returning the kernel's two numbers.  The
 * STOP_COPY size estimate is the kernel's own feature MIG_DATA_SIZE (9).
 */
#define HDNIC_FEATURE_PRECOPY_INFO	0xe002
struct hdnic_precopy_info {
	uint64_t initial_bytes;		/* session bytes not read yet */
	uint64_t dirty_bytes;		/* always 0: changes go in STOP_COPY */
};
#define HDNIC_OUTPUT_DEFAULT_FRAMES	1024
#define HDNIC_OUTPUT_MAX_FRAMES		4096

enum hdnic_output_op {
	HDNIC_OUTPUT_START = 1,
	HDNIC_OUTPUT_EPOCH = 2,
	HDNIC_OUTPUT_COMMIT = 3,
	HDNIC_OUTPUT_STOP = 4,
	HDNIC_OUTPUT_DISCARD = 5,
};

struct hdnic_output_commit {
	uint32_t op;		/* enum hdnic_output_op */
	uint32_t max_frames;	/* START only */
	uint64_t epoch;
};

struct hdnic_output_status {
	uint32_t holding;
	uint32_t max_frames;
	uint64_t epoch;		/* tag of new frames */
	uint64_t committed;	/* highest committed epoch (epoch - 1 and below may be) */
	uint64_t held;		/* frames held now */
	uint64_t held_bytes;
	uint64_t held_total;	/* frames ever held */
	uint64_t released;
	uint64_t discarded;
	uint64_t tx_blocked;	/* times a full queue backed the TX rings up */
};

#endif
