/* SPDX-License-Identifier: MIT */
/*
 * A PCI function a VMM attaches over vfio-user: a VF (a full function of
 * the NIC, a fixed set created at start) or an ADI's virtual device (built
 * on demand by the VDCM, vdcm.c, around queue pairs from the pool).  Both
 * present the same modern virtio-net personality (hdnic_vf_abi.h), so one
 * guest driver serves both.  The function is the control plane: config
 * space, virtio common config, MSI-X table, all emulated; the data plane
 * is its queue pairs (qp.h).  The pieces:
 *   vdev.c            lifecycle (device ops), client attach/detach, reset
 *   vdev_irq.c        MSI-X vectors, IMS programming, interrupt delivery
 *   vdev_pci.c        PCI config space and capabilities (incl. statistics)
 *   virtio_net_dev.c  BAR0: common/ISR/device config, notify, doorbell, MSI-X
 *   ctrlq.c           the virtio-net control queue (every function)
 *   rx_filter.c       receive filtering (VIRTIO_NET_F_CTRL_RX commands)
 *   qp_datapath.c     TX/RX on the queue pairs, polling and suppression
 *   vdev_state.c      save/load
 */
#ifndef HDNIC_VDEV_H
#define HDNIC_VDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/dma_slow.h"
#include "devices/hdnic/dma_space.h"
#include "devices/hdnic/hdnic_dev.h"
#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/holdq.h"
#include "devices/hdnic/loop.h"
#include "devices/hdnic/qp.h"
#include "devices/hdnic/rx_wait.h"
#include "devices/hdnic/sched.h"
#include "devices/hdnic/vdev_mig.h"
#include "devices/hdnic/vfu_server.h"
#include "devices/hdnic/dma_ring.h"

#define VDEV_CFG_SIZE		256	/* conventional config space we keep */
#define VDEV_CFG_REGION_SIZE	4096	/* region 7 as seen by the client */
#define VDEV_MAX_QUEUES		(2 * HDNIC_MAX_QPS_PER_DEV + 1)
#define VDEV_MAX_VECTORS	HDNIC_MQ_MSIX_VECTORS(HDNIC_MAX_QPS_PER_DEV)
#define VDEV_MAX_KICKS		16	/* ioeventfds per function; queues share beyond */

/* Virtio feature bits. */
#define VF_F_MAC		(1ULL << 5)
#define VF_F_STATUS		(1ULL << 16)
#define VF_F_CTRL_VQ		(1ULL << 17)
#define VF_F_CTRL_RX		(1ULL << 18)
#define VF_F_MQ			(1ULL << 22)
#define VF_F_EVENT_IDX		(1ULL << 29)
#define VF_F_VERSION_1		(1ULL << 32)
#define VF_FEATURES		(VF_F_MAC | VF_F_STATUS | VF_F_CTRL_VQ | VF_F_CTRL_RX | \
				 VF_F_EVENT_IDX | VF_F_VERSION_1)
#define VF_FEATURES_MQ		(VF_FEATURES | VF_F_MQ)

/* Virtio device status bits */
#define VST_ACKNOWLEDGE		0x01
#define VST_DRIVER		0x02
#define VST_DRIVER_OK		0x04
#define VST_FEATURES_OK		0x08
#define VST_NEEDS_RESET		0x40
#define VST_FAILED		0x80

#define VIRTIO_ISR_QUEUE	0x1
#define VIRTIO_ISR_CONFIG	0x2

enum vdev_kind { VDEV_VF, VDEV_ADI };

struct vdev_stats {
	uint64_t rx_packets, rx_bytes, rx_drops, rx_errors;
	uint64_t tx_packets, tx_bytes, tx_drops, tx_errors;
	uint64_t needs_reset;	/* times the driver broke the device */
	uint64_t proto_errors;	/* vfio-user requests answered with an error */
	uint64_t irqs, kicks, connects;
	uint64_t rx_policed;	/* dropped before DMA: over the ingress rate */
	uint64_t tx_spoofed;	/* dropped: source MAC not the device's own */
	uint64_t tx_throttled;	/* turns cut short by the egress token bucket */
	uint64_t dma_faults;	/* accesses the IOMMU refused (PASID check) */
	uint64_t rx_filtered;	/* not delivered: the driver's receive filter said no */
	uint64_t rx_stopped;	/* dropped before DMA: the function was quiesced (vdev_mig.h) */
	uint64_t tx_held_full;	/* times a full hold queue backed the TX rings up */
	uint64_t rx_waited;	/* frames that waited for a full RX ring (rx_wait.h) */
	uint64_t rx_wait_drops;	/* ... and were dropped past the bound (also in rx_drops) */
	/* not in the device state: the slow path's, for this client (dma_slow.h) */
	uint64_t dma_msgs;	/* DMA_READ/DMA_WRITE requests sent to the client */
	uint64_t dma_msg_errors;	/* ... that timed out or got an error or malformed reply */
};

#define VDEV_MAC_TABLE_ENTRIES	16	/* unicast + multicast filter entries */

/*
 * The receive filter the driver programs with VIRTIO_NET_F_CTRL_RX
 * (rx_filter.c).  It only applies when that feature was negotiated.
 * mac[0..nr_uc) are extra unicast addresses, mac[nr_uc..nr_uc+nr_mc)
 * multicast ones; an overflowed list lets its whole class through.
 */
struct vdev_rx_filter {
	bool promisc, allmulti;
	bool uc_overflow, mc_overflow;
	uint8_t nr_uc, nr_mc;
	uint8_t mac[VDEV_MAC_TABLE_ENTRIES][6];
};

struct virtio_net_state {
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t msix_config;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	uint8_t isr;
	uint16_t active_pairs;	/* MQ: pairs the driver enabled (VQ_PAIRS_SET) */
	struct vq ctrlq;	/* software (VDCM) queue, index 2 * pairs */
	struct vdev_rx_filter rxf;
};

struct vdev_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct vdev_kick {
	struct loop_handler h;
	int fd;			/* ioeventfd handed out by GET_REGION_IO_FDS */
	uint16_t slot;
	struct vdev *vd;
	uint64_t buf;		/* the outstanding read lands here */
};

struct vdev {
	struct hdnic_dev dev;	/* dev.id: "vf3" or "adi-NAME" */
	struct nic *nic;
	enum vdev_kind kind;
	unsigned index;		/* VF number, or ADI slot */
	unsigned port;		/* switch port: index in nic->ports */
	unsigned devs_slot;	/* index in nic->devs */
	uint8_t mac[6];		/* what config space shows: the guest's MAC */
	/*
	 * The PF's assignment: the default, or the admin's (mac_admin: set-mac,
	 * adi-add --mac).  A loaded state brings its guest's MAC into mac; when
	 * the client goes, a guest's MAC goes with it and the function returns
	 * to mac_pf.  The function's own MAC goes too if the client detached
	 * after handing the state away (handed_off: STOP_COPY was entered and
	 * the function did not run again), unless the admin assigned it:
	 * another function can then load that state (nic_mac_client_gone).
	 */
	uint8_t mac_pf[6];
	bool mac_admin;
	bool handed_off;
	bool trusted;		/* may send from other source MACs */
	/*
	 * A function without migration support (--no-migration, adi-add
	 * --no-migration), like an 82576/82599/E810 VF: VERSION offers no
	 * migration capability, every migration and DMA-logging feature is
	 * ENOTTY (as the kernel says for a device without mig_ops/log_ops) and
	 * MIG_DATA_* EINVAL, so nothing writes its hidden state back: its ring
	 * heads restart at 0 with the queue, its guest-visible statistics are
	 * read-clear (stats_clr), MAC/trust/QoS move only through pf.sock.
	 */
	bool no_mig;
	uint64_t stats_clr[HDNIC_NR_STATS];	/* read-clear: what the guest has read */

	/* Queue pairs from the pool: the hardware behind this function. */
	unsigned nr_qps;
	struct qp *qps[HDNIC_MAX_QPS_PER_DEV];
	unsigned tx_rr;		/* next queue pair TX is taken from */

	/* vfio-user: the transport reaches the function through vdev_vfu_ops */
	struct vfu_endpoint *vfu;
	struct dma_space as;	/* what the client maps; bound to pasid */
	struct dma_slow *slow;	/* the message path (dma_slow.h), kept once made */
	uint32_t pasid;		/* 0: no client */

	/* PCI function */
	uint8_t cfg[VDEV_CFG_SIZE];
	unsigned nr_vectors;
	struct vdev_msix_entry *msix;
	int *irq_fd;		/* eventfd per MSI-X vector */
	uint64_t irq_masked;	/* bit per vector */
	uint64_t msix_pba;	/* the function's own (config) interrupts pending */
	uint64_t irq_want;	/* the function's own vectors to fire this pass */
	uint32_t stats_hi[HDNIC_NR_STATS];	/* sampled high dwords (stats cap) */

	struct virtio_net_state vn;

	/* Doorbell page (memfd, fresh per client) and notify ioeventfds. */
	int db_fd;
	volatile uint8_t *db;
	struct vdev_kick *kick;
	unsigned nr_kicks, kick_fold;

	/* Data path */
	bool running;		/* DRIVER_OK, not NEEDS_RESET, not quiesced (dev.paused) */
	bool polling;		/* on the scheduler's active ring */
	bool irq_dirty;		/* on the NIC's flush list */
	bool dying;		/* deleted, waiting for its requests to drain */
	uint64_t last_work_ns;
	uint64_t attach_ns;	/* creation to socket ready */
	struct holdq holdq;	/* output commit (vdev_output.c) */
	bool tx_blocked;	/* TX waits in the rings for hold queue room */
	struct rx_wait rxw;	/* frames waiting for a full RX ring */
	uint64_t tx_wait_since;	/* our TX frame waits for a full receiver since (0: no) */
	struct sched_entry sched;
	struct vdev_mig mig;	/* VFIO migration state (vdev_mig.c) */

	struct vdev_stats stats;
	struct vdev *grave_next;
};

extern const struct hdnic_dev_ops vdev_ops;
extern const struct vfu_dev_ops vdev_vfu_ops;

/* A function around qps[0..nr_qps) (VF or ADI); sockets come with realize. */
struct vdev *vdev_create(struct nic *nic, enum vdev_kind kind, unsigned index, unsigned port,
			 const char *id, const uint8_t mac[6], struct qp **qps, unsigned nr_qps);
void vdev_free(struct vdev *vd);
/* Nothing of vd is in flight on the ring any more. */
bool vdev_idle(const struct vdev *vd);

/* Running, or quiesced by the migration FSM: its frames and addresses are still its own. */
static inline bool vdev_live(const struct vdev *vd)
{
	return vd->running || vd->dev.paused;
}

/* The function a vfio-user connection serves. */
static inline struct vdev *conn_vdev(const struct vfu_conn *c)
{
	return c->dev;
}

static inline bool vdev_has_client(const struct vdev *vd)
{
	return vfu_has_client(vd->vfu);
}

static inline unsigned vdev_nr_queues(const struct vdev *vd)
{
	return 2 * vd->nr_qps + 1;	/* the queue pairs', then the control queue */
}

/*
 * Queues notified through an ioeventfd (GET_REGION_IO_FDS), numbered from 0.
 * A one-pair function hands out its two data queues' only, as it always
 * has; its control queue (slow path) is notified by a trapped write.
 */
static inline unsigned vdev_nr_kick_queues(const struct vdev *vd)
{
	return vd->nr_qps > 1 ? vdev_nr_queues(vd) : 2;
}

static inline uint64_t vdev_features(const struct vdev *vd)
{
	return vd->nr_qps > 1 ? VF_FEATURES_MQ : VF_FEATURES;
}

/* Virtqueue q as the driver numbers them: a queue pair's, the control queue, or NULL. */
struct vq *vdev_queue(struct vdev *vd, unsigned q);
/* The queue pair and direction behind virtqueue q (-1 if q is not a QP queue). */
int vdev_queue_qp(const struct vdev *vd, unsigned q, struct qp **qp);
/* Index of the control queue, or -1 when it is not in use. */
int vdev_ctrlq_index(const struct vdev *vd);

/* Client lifecycle (vfu_server.c calls these). */
int vdev_client_attach(struct vdev *vd);
void vdev_client_detach(struct vdev *vd);

/* Full function-level reset: config space, MSI-X, virtio, queue pairs. */
void vdev_function_reset(struct vdev *vd);
/* Virtio reset (driver wrote 0 to device_status). */
void vdev_virtio_reset(struct vdev *vd);
/* The driver broke the device contract: NEEDS_RESET + config interrupt. */
void vdev_needs_reset(struct vdev *vd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Change the MAC (PF driver); raises a config change interrupt. */
void vdev_set_mac(struct vdev *vd, const uint8_t mac[6]);
const char *vdev_state_name(const struct vdev *vd);
const char *vdev_kind_name(const struct vdev *vd);

/* Interrupts (vdev_irq.c) */
void vdev_irq_init(struct vdev *vd);
/* The function's own interrupt (config change, control queue). */
void vdev_raise(struct vdev *vd, uint16_t vector);
void vdev_raise_config(struct vdev *vd);
/* A queue pair's interrupt: goes out through its IMS entry at flush. */
void qp_raise(struct qp *qp, unsigned q);
void vdev_flush_irqs(struct vdev *vd);
int vdev_set_irq_fds(struct vdev *vd, unsigned start, unsigned count, const int *fds);
void vdev_clear_irq_fds(struct vdev *vd);
void vdev_set_irq_mask(struct vdev *vd, unsigned vector, bool masked);
/* Vector v pending (PBA bit): the function's own or an IMS entry's. */
bool vdev_irq_pending(const struct vdev *vd, unsigned vector);
/* Program every queue pair's IMS entries from the vectors and fds (VDCM). */
void vdev_ims_sync(struct vdev *vd);

/* PCI config space (vdev_pci.c) */
void vdev_pci_init(struct vdev *vd);
int vdev_pci_read(struct vdev *vd, uint64_t off, void *buf, uint32_t len);
int vdev_pci_write(struct vdev *vd, uint64_t off, const void *buf, uint32_t len);

/* BAR0 (virtio_net_dev.c) */
int vdev_bar0_read(struct vdev *vd, uint64_t off, void *buf, uint32_t len);
int vdev_bar0_write(struct vdev *vd, uint64_t off, const void *buf, uint32_t len);
void vdev_update_running(struct vdev *vd);

/* Control queue (ctrlq.c) */
void vdev_ctrlq_kick(struct vdev *vd);

/* Receive filtering (rx_filter.c) */
/* Virtio reset: the spec's empty MAC table; promiscuous as the compatible default. */
void vdev_rx_filter_reset(struct vdev *vd);
/* VIRTIO_NET_CTRL_RX / VIRTIO_NET_CTRL_MAC commands: VIRTIO_NET_OK or VIRTIO_NET_ERR. */
uint8_t vdev_ctrl_rx(struct vdev *vd, uint8_t cmd, const uint8_t *data, uint32_t len);
uint8_t vdev_ctrl_mac(struct vdev *vd, uint8_t cmd, const uint8_t *data, uint32_t len);
/* Does the driver want a frame with this destination? */
bool vdev_rx_wanted(const struct vdev *vd, const uint8_t *dst);
/* Does it take a unicast frame for dst, a station the switch does not know? */
bool vdev_rx_wants_unknown(const struct vdev *vd, const uint8_t *dst);
/* A filter as saved: valid only if its lists are in bounds and hold the right kind. */
bool vdev_rx_filter_valid(const struct vdev_rx_filter *f);

/* Data path (qp_datapath.c) */
struct tx_frame {
	struct qp *qp;
	uint32_t len;		/* Ethernet frame bytes */
	unsigned port;		/* SCHED_PORT_* it leaves through */
};

void vdev_kick(struct vdev *vd, unsigned queue);
/* What a kick does on the fast path (the slow path calls it once the rings are fetched). */
void vdev_kick_now(struct vdev *vd, unsigned queue);
/*
 * The next frame of vd (its queue pairs in turn), taken off the ring but
 * not yet sent: 1 and f filled, 0 when nothing is pending, -errno if the
 * function is not running or broke.  Frames that can never go anywhere (bad size, spoofed
 * source, hairpin) are completed and counted on the way.
 */
int vdev_tx_peek(struct vdev *vd, struct tx_frame *f);
/* The scheduler decided to wait: the frame goes back on its ring. */
void vdev_tx_putback(struct tx_frame *f);
/* Send the frame vdev_tx_peek() returned. */
void vdev_tx_send(struct vdev *vd, struct tx_frame *f);
/* End of a turn: publish TX used entries, raise interrupts the driver wants. */
void vdev_tx_done(struct vdev *vd);
/* Any TX work flagged (kick or doorbell) on any queue pair. */
bool vdev_tx_pending(const struct vdev *vd);
/* Quiet for the idle time: re-enable notifications and sleep, unless work raced in. */
void vdev_try_idle(struct vdev *vd, uint64_t now_ns);
/* The queue pair a frame for vd goes to (multi-queue steering). */
struct qp *vdev_rx_steer(struct vdev *vd, const uint8_t *frame, uint32_t len);
/* Copy a frame into qp's next RX chain (DMA guard held): 0, -EAGAIN no buffer, or the ring broke. */
int vdev_rx_put(struct vdev *vd, struct qp *qp, const uint8_t *frame, uint32_t len);
/* Put one frame into the function's RX queues (from the switch). */
void vdev_rx_deliver(struct vdev *vd, const uint8_t *frame, uint32_t len);
/* End of a loop pass: publish RX used entries, fire pending interrupts. */
void vdev_flush(struct vdev *vd);
/* The DMA map changed: re-resolve rings (NEEDS_RESET if they vanished). */
void vdev_dma_changed(struct vdev *vd);
void vdev_start_polling(struct vdev *vd);
/* How the scheduler reaches functions: transmit, turn end, idle. */
extern const struct sched_ops vdev_sched_ops;
void vdev_stop_polling(struct vdev *vd);

/* Output commit (vdev_output.c) */
extern const struct holdq_ops vdev_holdq_ops;
/* Room in the hold queue for one more frame?  No: TX backs up until a commit. */
bool vdev_output_room(struct vdev *vd);
/* An HDNIC_OUTPUT_* op (hdnic_vf_abi.h): 0 or -errno. */
int vdev_output_control(struct vdev *vd, uint32_t op, uint64_t epoch, uint32_t max_frames);
void vdev_output_status(const struct vdev *vd, struct hdnic_output_status *st);
/* The client is gone: its uncommitted frames are thrown away, holding stops. */
void vdev_output_client_gone(struct vdev *vd);

/* Device state (vdev_state.c) */
int vdev_save(struct vdev *vd, struct state_buf *sb);
/* PRE_COPY's part: version, shape, features (vdev_state.c). */
int vdev_precopy_save(struct vdev *vd, struct state_buf *sb);
/* A stream's pre-copy part, if it has one: checked and stepped over. */
int vdev_precopy_check(struct vdev *vd, struct state_buf *sb);
int vdev_load(struct vdev *vd, struct state_buf *sb);

#endif
