// SPDX-License-Identifier: MIT
/*
 * The PF: creates the VFs, owns the switch, the uplink and the event loop.
 * One thread serves every VF: a loop pass reaps io_uring completions (vfio-
 * user messages, ioeventfd kicks, uplink frames), polls the active VFs'
 * doorbells, then flushes RX used rings and interrupts.  When no VF is
 * active the pass blocks in the kernel, so an idle NIC costs no CPU.
 */
#include "devices/hdnic/nic.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vf.h"
#include "vmm/util.h"

#define NIC_RING_ENTRIES	1024
#define NIC_CLOCK_PASSES	64

static void signal_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct nic *nic = container_of(h, struct nic, sig_h);
	struct signalfd_siginfo si;

	while (read(nic->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		pr_info("%s: signal %u, shutting down", nic->name, si.ssi_signo);
		nic->loop.stop = true;
	}
	if (loop_poll_ended(h, flags) && !nic->loop.stop)
		loop_watch(&nic->loop, h, nic->sig_fd);
}

static int setup_signals(struct nic *nic)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	nic->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (nic->sig_fd < 0)
		return -errno;
	loop_handler_init(&nic->sig_h, signal_event);
	loop_watch(&nic->loop, &nic->sig_h, nic->sig_fd);
	return 0;
}

/* Default VF MACs: locally administered, 02:48:44 ("HD"), NIC name hash, VF. */
static void default_mac(const char *name, unsigned vf, uint8_t mac[6])
{
	uint8_t h = 0;

	for (const char *p = name; *p; p++)
		h = (uint8_t)(h * 31 + (uint8_t)*p);
	mac[0] = 0x02;
	mac[1] = 0x48;
	mac[2] = 0x44;
	mac[3] = h;
	mac[4] = (uint8_t)(vf >> 8);
	mac[5] = (uint8_t)vf;
}

int nic_create(struct nic **out, const struct nic_config *cfg)
{
	struct nic *nic = xzalloc(sizeof(*nic));
	struct stat st;
	int err;

	nic->sig_fd = -1;
	snprintf(nic->name, sizeof(nic->name), "%s", cfg->name);
	if (strlen(cfg->dir) >= sizeof(nic->dir) - 16) {
		pr_err("--dir %s: path too long", cfg->dir);
		free(nic);
		return -ENAMETOOLONG;
	}
	snprintf(nic->dir, sizeof(nic->dir), "%s", cfg->dir);
	if (stat(nic->dir, &st) < 0) {
		if (errno != ENOENT || mkdir(nic->dir, 0755) < 0) {
			pr_err("--dir %s: %s", nic->dir, strerror(errno));
			free(nic);
			return -errno;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		pr_err("--dir %s: not a directory", nic->dir);
		free(nic);
		return -ENOTDIR;
	}
	nic->nr_vfs = cfg->nr_vfs;
	nic->idle_ns = cfg->idle_us * 1000;
	nic->now_ns = now_ns();
	err = loop_init(&nic->loop, NIC_RING_ENTRIES);
	if (err) {
		free(nic);
		return err;
	}
	nic->vfs = xzalloc(sizeof(*nic->vfs) * (nic->nr_vfs + 1));
	nic->active = xzalloc(sizeof(*nic->active) * (nic->nr_vfs + 1));
	nic->irq_list = xzalloc(sizeof(*nic->irq_list) * (nic->nr_vfs + 1));
	nic->poll_snap = xzalloc(sizeof(*nic->poll_snap) * (nic->nr_vfs + 1));
	*out = nic;	/* from here on nic_destroy() cleans up */

	err = sw_init(&nic->sw, 4096 + 2 * nic->nr_vfs);
	if (err)
		return err;
	err = dma_fault_guard_install();
	if (err)
		return -errno;
	err = setup_signals(nic);
	if (err) {
		pr_err("signals: %s", strerror(-err));
		return err;
	}
	err = uplink_open(nic, cfg->uplink, &nic->uplink);
	if (err)
		return err;
	for (unsigned i = 0; i < nic->nr_vfs; i++) {
		uint8_t mac[6];

		default_mac(nic->name, i, mac);
		nic->vfs[i] = vf_create(nic, i, mac);
		err = sw_set_static(&nic->sw, mac, i);
		if (!err)
			err = nic->vfs[i]->dev.ops->realize(&nic->vfs[i]->dev, nic);
		if (err)
			return err;
	}
	err = mgmt_create(nic, &nic->mgmt);
	if (err)
		return err;
	uplink_start(nic->uplink);
	pr_info("%s: %u VFs in %s, uplink %s:%s", nic->name, nic->nr_vfs, nic->dir,
		nic->uplink->ops->kind, nic->uplink->ifname);
	return 0;
}

void nic_destroy(struct nic *nic)
{
	if (!nic)
		return;
	mgmt_destroy(nic->mgmt);
	for (unsigned i = 0; i < nic->nr_vfs; i++)
		if (nic->vfs[i] && nic->vfs[i]->dev.realized)
			nic->vfs[i]->dev.ops->unrealize(&nic->vfs[i]->dev);
	uplink_close(nic->uplink);
	if (nic->sig_fd >= 0)
		close(nic->sig_fd);
	loop_submit(&nic->loop);
	/* Tearing the ring down cancels whatever is still in flight. */
	loop_exit(&nic->loop);
	for (unsigned i = 0; i < nic->nr_vfs; i++)
		vf_destroy(nic->vfs[i]);
	uplink_free(nic->uplink);
	sw_destroy(&nic->sw);
	free(nic->vfs);
	free(nic->active);
	free(nic->irq_list);
	free(nic->poll_snap);
	free(nic);
}

/* ---- polling and flushing ---- */

void nic_poll_on(struct nic *nic, struct vf *vf)
{
	nic->active[nic->nr_active++] = vf;
}

void nic_poll_off(struct nic *nic, struct vf *vf)
{
	for (unsigned i = 0; i < nic->nr_active; i++) {
		if (nic->active[i] == vf) {
			nic->active[i] = nic->active[--nic->nr_active];
			return;
		}
	}
}

void nic_irq_pending(struct nic *nic, struct vf *vf)
{
	if (vf->irq_dirty)
		return;
	vf->irq_dirty = true;
	nic->irq_list[nic->nr_irq++] = vf;
}

static void flush_all(struct nic *nic)
{
	/*
	 * irq_dirty stays set while a VF flushes, so what it raises meanwhile
	 * (a config interrupt after a fault) goes out in that same flush
	 * instead of queueing the VF again.
	 */
	for (unsigned i = 0; i < nic->nr_irq; i++) {
		struct vf *vf = nic->irq_list[i];

		vf_flush(vf);
		vf->irq_dirty = false;
	}
	nic->nr_irq = 0;
}

void nic_pass(struct nic *nic)
{
	/*
	 * The clock is costly on some hosts (no vDSO TSC under this KVM) and
	 * only feeds idle timeouts: read it every NIC_CLOCK_PASSES busy passes.
	 */
	if (!nic->nr_active || nic->polls % NIC_CLOCK_PASSES == 0)
		nic->now_ns = now_ns();
	/* Polling can take any VF off the list (a delivery may break
	 * another VF), so walk a snapshot and skip those that left. */
	memcpy(nic->poll_snap, nic->active, nic->nr_active * sizeof(*nic->active));
	for (unsigned i = 0, n = nic->nr_active; i < n; i++)
		if (nic->poll_snap[i]->polling)
			vf_poll(nic->poll_snap[i], nic->now_ns);
	nic->polls++;
	flush_all(nic);
}

int nic_run(struct nic *nic)
{
	while (!nic->loop.stop) {
		bool busy = nic->nr_active > 0;
		int n = loop_run_once(&nic->loop, !busy);

		if (n < 0) {
			pr_err("event loop: %s", strerror(-n));
			return n;
		}
		nic_pass(nic);
	}
	return 0;
}

/* ---- switching ---- */

static void flood(struct nic *nic, struct vf *src, const uint8_t *frame, uint32_t len)
{
	nic->sw.stats.flooded++;
	for (unsigned i = 0; i < nic->nr_vfs; i++)
		if (nic->vfs[i] != src && nic->vfs[i]->running)
			vf_rx_deliver(nic->vfs[i], frame, len);
}

void nic_forward_from_vf(struct nic *nic, struct vf *src, const uint8_t *frame, uint32_t len)
{
	const uint8_t *dst = frame;
	int port;

	if (mac_is_multicast(dst)) {
		flood(nic, src, frame, len);
		uplink_tx(nic->uplink, frame, len);
		return;
	}
	port = sw_lookup(&nic->sw, dst, nic->now_ns);
	if (port >= 0 && (unsigned)port < nic->nr_vfs) {
		if (nic->vfs[port] == src) {
			nic->sw.stats.loop_drops++;	/* no hairpin */
			src->stats.tx_drops++;
			return;
		}
		vf_rx_deliver(nic->vfs[port], frame, len);
		return;
	}
	/* Learned behind the uplink, or unknown: out it goes. */
	uplink_tx(nic->uplink, frame, len);
}

void nic_forward_from_uplink(struct nic *nic, const uint8_t *frame, uint32_t len)
{
	const uint8_t *dst = frame, *src = frame + 6;
	int port = sw_lookup(&nic->sw, src, nic->now_ns);

	if (port >= 0 && (unsigned)port < nic->nr_vfs) {
		/* Our own VF's address arriving from outside: a loop or a spoof. */
		nic->sw.stats.loop_drops++;
		nic->uplink->stats.rx_drops++;
		return;
	}
	sw_learn(&nic->sw, src, SW_PORT_UPLINK, nic->now_ns);
	if (mac_is_multicast(dst)) {
		flood(nic, NULL, frame, len);
		return;
	}
	port = sw_lookup(&nic->sw, dst, nic->now_ns);
	if (port >= 0 && (unsigned)port < nic->nr_vfs) {
		vf_rx_deliver(nic->vfs[port], frame, len);
		return;
	}
	nic->sw.stats.unknown_unicast_drops++;
	nic->uplink->stats.rx_drops++;
}

/* ---- PF driver operations ---- */

int nic_set_vf_mac(struct nic *nic, unsigned idx, const uint8_t mac[6], char *err, size_t errlen)
{
	struct vf *vf;
	int port;

	if (idx >= nic->nr_vfs) {
		if (err)
			snprintf(err, errlen, "vf %u does not exist (this NIC has %u)", idx,
				 nic->nr_vfs);
		return -ENODEV;
	}
	if (mac_is_multicast(mac) || mac_is_zero(mac)) {
		if (err)
			snprintf(err, errlen, "a VF MAC must be unicast and non-zero");
		return -EINVAL;
	}
	vf = nic->vfs[idx];
	port = sw_lookup(&nic->sw, mac, nic->now_ns);
	if (port >= 0 && (unsigned)port < nic->nr_vfs && (unsigned)port != idx) {
		if (err)
			snprintf(err, errlen, "MAC already belongs to vf %d", port);
		return -EEXIST;
	}
	sw_remove(&nic->sw, vf->mac);
	if (sw_set_static(&nic->sw, mac, idx)) {
		sw_set_static(&nic->sw, vf->mac, idx);
		if (err)
			snprintf(err, errlen, "switch table full");
		return -ENOSPC;
	}
	vf_set_mac(vf, mac);
	return 0;
}
