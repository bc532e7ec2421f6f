/* SPDX-License-Identifier: MIT */
/*
 * The emulated physical NIC: the PF with its VFs (created at start, like
 * writing sriov_numvfs), the internal switch, the uplink, the management
 * socket and the event loop that drives them all.
 */
#ifndef HDNIC_NIC_H
#define HDNIC_NIC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/loop.h"
#include "devices/hdnic/switch.h"

#define HDNIC_MAX_VFS		256
#define HDNIC_MAX_FRAME		1518	/* Ethernet + one VLAN tag, no FCS */
#define HDNIC_MIN_FRAME		14

struct vf;
struct uplink;
struct mgmt;

struct nic_config {
	const char *dir;
	const char *name;
	const char *uplink;	/* "tap:IFNAME" or "iface:IFNAME" */
	unsigned nr_vfs;
	uint64_t idle_us;	/* polling time before a quiet VF sleeps */
};

struct nic {
	char name[32];
	char dir[PATH_MAX - 32];
	unsigned nr_vfs;
	struct vf **vfs;
	struct loop loop;
	struct nic_switch sw;
	struct uplink *uplink;
	struct mgmt *mgmt;

	/* VFs being polled, and VFs with interrupts to fire this pass. */
	struct vf **active;
	unsigned nr_active;
	struct vf **poll_snap;
	struct vf **irq_list;
	unsigned nr_irq;
	uint64_t now_ns;
	uint64_t idle_ns;

	int sig_fd;
	struct loop_handler sig_h;
	uint64_t polls, sleeps;
};

int nic_create(struct nic **out, const struct nic_config *cfg);
int nic_run(struct nic *nic);		/* until SIGTERM/SIGINT */
void nic_destroy(struct nic *nic);	/* removes sockets, closes the uplink */

/* The work after reaping completions: poll active VFs, flush RX and IRQs. */
void nic_pass(struct nic *nic);
void nic_poll_on(struct nic *nic, struct vf *vf);
void nic_poll_off(struct nic *nic, struct vf *vf);
void nic_irq_pending(struct nic *nic, struct vf *vf);

/* The switch's forwarding decisions. */
void nic_forward_from_vf(struct nic *nic, struct vf *src, const uint8_t *frame, uint32_t len);
void nic_forward_from_uplink(struct nic *nic, const uint8_t *frame, uint32_t len);

/* PF driver operations (management socket). */
int nic_set_vf_mac(struct nic *nic, unsigned vf, const uint8_t mac[6], char *err, size_t errlen);

#endif
