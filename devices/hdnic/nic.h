/* SPDX-License-Identifier: MIT */
/*
 * The emulated physical NIC: the PF with its VFs (created at start, like
 * writing sriov_numvfs), the pool of queue pairs and the IOMMU's PASID
 * table they DMA through, the ADIs the VDCM composes on demand, the internal
 * switch, the uplink, the TX scheduler, the management socket and the event
 * loop that drives them all.
 */
#ifndef HDNIC_NIC_H
#define HDNIC_NIC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/hdnic/arp_dir.h"
#include "devices/hdnic/iommu.h"
#include "devices/hdnic/loop.h"
#include "devices/hdnic/qp.h"
#include "devices/hdnic/sched.h"
#include "devices/hdnic/switch.h"

#define HDNIC_MAX_VFS		256
#define HDNIC_DEFAULT_QPS	2048
#define NIC_DEFAULT_DMA_TIMEOUT_MS	1000	/* --dma-timeout-ms */
#define HDNIC_MAX_QPS		16384	/* switch ports must stay below SW_PORT_UPLINK */
#define HDNIC_MAX_FRAME		1518	/* Ethernet + one VLAN tag, no FCS */
#define HDNIC_MIN_FRAME		14
#define NIC_DEFAULT_SPIN_PASSES	64	/* empty passes before the loop yields the CPU */
#define NIC_RXW_POLL_NS		1000000	/* only frames wait, idle: look at refills this often */

struct vdev;
struct uplink;
struct uplink_ops;
struct mgmt;

struct nic_config {
	const char *dir;
	const char *name;
	const char *uplink;	/* "tap:IFNAME" or "iface:IFNAME" */
	unsigned nr_vfs;
	unsigned nr_qps;	/* queue pairs in the pool, VFs' included */
	uint64_t idle_us;	/* polling time before a quiet device sleeps */
	uint64_t uplink_rate;	/* line rate in bit/s, 0 = as fast as the host goes */
	uint64_t switch_rate;	/* internal switching capacity, bit/s, 0 = unlimited */
	uint64_t conn_timeout_ms; /* idle management client / no VERSION yet; 0: default */
	uint64_t dma_timeout_ms;  /* a DMA_READ/WRITE reply from the client; 0: default */
	bool no_rx_fc;		/* drop at a full RX ring instead of waiting (comparison) */
	bool no_migration;	/* VFs cannot migrate (--no-migration, vdev.h no_mig) */
	unsigned rx_wait_max;	/* frames waiting per function; 0: RXW_DEFAULT_MAX */
	uint64_t rx_wait_us;	/* how long a frame may wait; 0: RXW_DEFAULT_US */
	unsigned spin_passes;	/* empty passes before the loop yields; 0: default */
};

struct nic {
	char name[32];
	char dir[PATH_MAX - 32];
	unsigned nr_vfs;
	/*
	 * Every function by switch port: VFs at 0 .. nr_vfs-1, ADI slot s at
	 * nr_vfs + s.  One port per queue pair at most, so nr_ports = --qps.
	 */
	struct vdev **ports;
	unsigned nr_ports;
	/* The same functions packed, in no order: what flooding walks. */
	struct vdev **devs;
	unsigned nr_devs;
	unsigned nr_adis;
	uint32_t *adi_free;	/* stack of free ADI slots */
	unsigned nr_adi_free;

	struct loop loop;
	struct nic_switch sw;
	struct arp_dir arpd;
	struct iommu iommu;
	struct qp_pool qps;
	struct sched sched;
	struct uplink *uplink;
	struct mgmt *mgmt;

	/* Functions with interrupts or RX entries to flush this pass. */
	struct vdev **irq_list;
	unsigned nr_irq;
	/* Deleted ADIs whose io_uring requests have not all completed. */
	struct vdev *graveyard;

	uint64_t now_ns;
	uint64_t idle_ns;
	uint64_t conn_timeout_ns;	/* see nic_config.conn_timeout_ms */
	uint64_t dma_timeout_ns;	/* see nic_config.dma_timeout_ms */
	unsigned nr_slow;		/* functions on the slow path (dma_slow.h) */
	bool fine_clock;	/* a rate limit is set: read the clock every pass */
	int sig_fd;
	struct loop_handler sig_h;
	uint64_t polls, sleeps;
	bool output_waiting;	/* committed frames wait for the uplink (vdev_output.c) */

	bool vf_no_mig;		/* --no-migration: VFs refuse every migration feature */

	/* Receive flow control (rx_wait.h) */
	bool rx_fc;
	unsigned rxw_max;
	uint64_t rxw_ns;
	struct vdev *rxw_list;	/* functions with frames waiting */

	/* Polling that yields: spin this many empty passes, then sched_yield() */
	unsigned spin_passes;
	unsigned empty_passes;
	uint64_t busy_ns;	/* the last pass that did something */
	uint64_t yields;
};

/* The whole NIC: sockets, uplink, VFs, management.  Errors are reported. */
int nic_create(struct nic **out, const struct nic_config *cfg);
/* Only the in-memory parts (loop, pools, switch, scheduler): fuzzers build on it. */
int nic_init(struct nic *nic, const struct nic_config *cfg);
int nic_run(struct nic *nic);		/* until SIGTERM/SIGINT */
void nic_destroy(struct nic *nic);	/* removes sockets, closes the uplink */

/* The work after reaping completions: schedule TX, flush RX and IRQs; true if any. */
bool nic_pass(struct nic *nic);
void nic_irq_pending(struct nic *nic, struct vdev *vd);
/* A function goes away: drop it from the flush list. */
void nic_irq_forget(struct nic *nic, struct vdev *vd);
/* Hand a retired function to the graveyard; freed once its requests drain. */
void nic_bury(struct nic *nic, struct vdev *vd);
void nic_reap_graves(struct nic *nic);

/* A function joins or leaves the NIC (its switch port and the flood list). */
void nic_plug(struct nic *nic, struct vdev *vd);
void nic_unplug(struct nic *nic, struct vdev *vd);

/* The function on a switch port (NULL: none). */
static inline struct vdev *nic_port(const struct nic *nic, int port)
{
	return port >= 0 && (unsigned)port < nic->nr_ports ? nic->ports[port] : NULL;
}

/*
 * The switch's forwarding decisions.  nic_tx_port() says which scheduler
 * port a device's frame leaves through, or -1 if it can go nowhere.
 */
int nic_tx_port(struct nic *nic, const struct vdev *src, const uint8_t *frame);
void nic_forward_from_vdev(struct nic *nic, struct vdev *src, const uint8_t *frame,
			   uint32_t len);
void nic_forward_from_uplink(struct nic *nic, const uint8_t *frame, uint32_t len);

/* Default MACs: locally administered, 02:48:44 ("HD"), NIC name hash, port. */
void nic_default_mac(const struct nic *nic, unsigned port, uint8_t mac[6]);
/* The function holding mac on the switch, or NULL. */
struct vdev *nic_mac_owner(struct nic *nic, const uint8_t mac[6]);
bool nic_mac_bound(struct nic *nic, const struct vdev *vd);
void nic_mac_release(struct nic *nic, struct vdev *vd);
int nic_mac_rebind(struct nic *nic, struct vdev *vd);
void nic_mac_client_gone(struct nic *nic, struct vdev *vd);
bool nic_mac_is_admins(const struct vdev *vd);

/* PF driver operations (management socket). */
int nic_set_mac(struct nic *nic, struct vdev *vd, const uint8_t mac[6], char *err,
		size_t errlen);
/* "3", "vf3", "adi-NAME" or an ADI's NAME; NULL (err filled) if none. */
struct vdev *nic_find_dev(struct nic *nic, const char *name, char *err, size_t errlen);
struct vdev *nic_find_adi(struct nic *nic, const char *name);
/* A rate limit changed: keep the fine clock on while any is set. */
void nic_qos_changed(struct nic *nic);

/* Continue releasing committed frames that waited for the uplink (vdev_output.c). */
void nic_output_release(struct nic *nic);

#endif
