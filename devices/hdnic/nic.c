// SPDX-License-Identifier: MIT
/*
 * The PF: creates the queue-pair pool, the IOMMU and the VFs, owns the
 * switch (its decisions are switch_fwd.c's; the NIC gives it the ports'
 * delivery), the uplink, the scheduler and the event loop.  One thread serves
 * every function: a loop pass reaps io_uring completions (vfio-user
 * messages, ioeventfd kicks, uplink frames, management requests), runs the
 * TX scheduler over the active functions, then flushes RX used rings and
 * interrupts.  When no function is active the pass blocks in the kernel,
 * so an idle NIC costs no CPU.
 */
#include "devices/hdnic/nic.h"

#include <ctype.h>
#include <sched.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/hdnic/arp_dir.h"
#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/rx_wait.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdev.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

#define NIC_RING_ENTRIES	1024

static const struct sw_port_ops nic_port_ops;
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

/* Each idle ADI holds a socket, a client a few more fds: use the whole allowance. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void nic_default_mac(const struct nic *nic, unsigned port, uint8_t mac[6])
{
	uint8_t h = 0;

	for (const char *p = nic->name; *p; p++)
		h = (uint8_t)(h * 31 + (uint8_t)*p);
	mac[0] = 0x02;
	mac[1] = 0x48;
	mac[2] = 0x44;
	mac[3] = h;
	mac[4] = (uint8_t)(port >> 8);
	mac[5] = (uint8_t)port;
}

int nic_init(struct nic *nic, const struct nic_config *cfg)
{
	unsigned nr_adis;
	int err;

	nic->sig_fd = -1;
	snprintf(nic->name, sizeof(nic->name), "%s", cfg->name);
	snprintf(nic->dir, sizeof(nic->dir), "%s", cfg->dir);
	if (cfg->nr_qps < cfg->nr_vfs || cfg->nr_qps > HDNIC_MAX_QPS) {
		pr_err("--qps %u: need at least one queue pair per VF (%u), at most %u",
		       cfg->nr_qps, cfg->nr_vfs, HDNIC_MAX_QPS);
		return -EINVAL;
	}
	nic->nr_vfs = cfg->nr_vfs;
	nic->nr_ports = cfg->nr_qps;
	nic->idle_ns = cfg->idle_us * 1000;
	nic->rx_fc = !cfg->no_rx_fc;
	nic->vf_no_mig = cfg->no_migration;
	nic->rxw_max = cfg->rx_wait_max ? cfg->rx_wait_max : RXW_DEFAULT_MAX;
	nic->rxw_ns = (cfg->rx_wait_us ? cfg->rx_wait_us : RXW_DEFAULT_US) * 1000;
	nic->spin_passes = cfg->spin_passes ? cfg->spin_passes : NIC_DEFAULT_SPIN_PASSES;
	nic->conn_timeout_ns = (cfg->conn_timeout_ms ? cfg->conn_timeout_ms :
				MGMT_DEFAULT_CONN_TIMEOUT_MS) * 1000000ull;
	nic->dma_timeout_ns = (cfg->dma_timeout_ms ? cfg->dma_timeout_ms :
			       NIC_DEFAULT_DMA_TIMEOUT_MS) * 1000000ull;
	nic->now_ns = now_ns();
	err = loop_init(&nic->loop, NIC_RING_ENTRIES);
	if (err)
		return err;
	nic->ports = xzalloc(sizeof(*nic->ports) * (nic->nr_ports + 1));
	nic->devs = xzalloc(sizeof(*nic->devs) * (nic->nr_ports + 1));
	nic->irq_list = xzalloc(sizeof(*nic->irq_list) * (nic->nr_ports + 1));
	nr_adis = nic->nr_ports - nic->nr_vfs;
	nic->adi_free = xzalloc(sizeof(*nic->adi_free) * (nr_adis + 1));
	for (unsigned s = nr_adis; s-- > 0;)
		nic->adi_free[nic->nr_adi_free++] = s;
	err = sw_init(&nic->sw, 4096 + 2 * nic->nr_ports);
	if (!err)
		err = arpd_init(&nic->arpd, 4096 + 2 * nic->nr_ports);
	if (!err)
		err = sw_ports_init(&nic->sw, nic->nr_ports, &nic->arpd, &nic_port_ops, nic);
	if (!err)
		err = iommu_init(&nic->iommu, nic->nr_ports);
	if (!err)
		err = qp_pool_init(&nic->qps, cfg->nr_qps, &nic->iommu);
	if (err)
		return err;
	sched_init(&nic->sched, &vdev_sched_ops);
	sched_set_rate(&nic->sched, SCHED_PORT_UPLINK, cfg->uplink_rate, nic->now_ns);
	sched_set_rate(&nic->sched, SCHED_PORT_SWITCH, cfg->switch_rate, nic->now_ns);
	nic_qos_changed(nic);
	if (dma_fault_guard_install())
		return -errno;
	return 0;
}

static int check_dir(const char *dir)
{
	struct stat st;

	if (strlen(dir) >= sizeof(((struct nic *)0)->dir) - 16) {
		pr_err("--dir %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT || mkdir(dir, 0755) < 0) {
			pr_err("--dir %s: %s", dir, strerror(errno));
			return -errno;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		pr_err("--dir %s: not a directory", dir);
		return -ENOTDIR;
	}
	hdnic_remove_stale_sockets(dir);	/* a crashed predecessor's */
	return 0;
}

static int create_vfs(struct nic *nic)
{
	for (unsigned i = 0; i < nic->nr_vfs; i++) {
		uint64_t t0 = now_ns();
		struct vdev *vd;
		struct qp *qp;
		uint8_t mac[6];
		char id[16];
		int err;

		/* A VF is a full function with a queue pair of its own from the pool. */
		if (qp_pool_alloc(&nic->qps, 1, NULL, &qp))
			return -ENOSPC;
		nic_default_mac(nic, i, mac);
		snprintf(id, sizeof(id), "vf%u", i);
		vd = vdev_create(nic, VDEV_VF, i, i, id, mac, &qp, 1);
		qp->owner = vd;
		vd->no_mig = nic->vf_no_mig;
		nic_plug(nic, vd);
		err = sw_set_static(&nic->sw, mac, i);
		if (!err)
			err = vd->dev.ops->realize(&vd->dev, nic);
		if (err)
			return err;
		vd->attach_ns = now_ns() - t0;
	}
	return 0;
}

int nic_create(struct nic **out, const struct nic_config *cfg)
{
	struct nic *nic = xzalloc(sizeof(*nic));
	int err;

	nic->sig_fd = -1;
	*out = nic;	/* from here on nic_destroy() cleans up */
	err = check_dir(cfg->dir);
	if (!err)
		err = nic_init(nic, cfg);
	if (err)
		return err;
	raise_fd_limit();
	err = setup_signals(nic);
	if (err) {
		pr_err("signals: %s", strerror(-err));
		return err;
	}
	err = uplink_open(nic, cfg->uplink, &nic->uplink);
	if (!err)
		err = create_vfs(nic);
	if (!err)
		err = mgmt_create(nic, &nic->mgmt);
	if (err)
		return err;
	uplink_start(nic->uplink);
	pr_info("%s: %u VFs and %u queue pairs in %s, uplink %s:%s", nic->name, nic->nr_vfs,
		nic->qps.nr, nic->dir, nic->uplink->ops->kind, nic->uplink->ifname);
	return 0;
}

void nic_destroy(struct nic *nic)
{
	if (!nic)
		return;
	mgmt_destroy(nic->mgmt);
	for (unsigned i = 0; i < nic->nr_devs; i++)
		if (nic->devs[i]->dev.realized)
			nic->devs[i]->dev.ops->unrealize(&nic->devs[i]->dev);
	uplink_close(nic->uplink);
	if (nic->sig_fd >= 0)
		close(nic->sig_fd);
	if (nic->loop.ring.ring_fd > 0) {
		loop_submit(&nic->loop);
		/* Tearing the ring down cancels whatever is still in flight. */
		loop_exit(&nic->loop);
	}
	for (unsigned i = 0; i < nic->nr_devs; i++)
		vdev_free(nic->devs[i]);
	while (nic->graveyard) {
		struct vdev *vd = nic->graveyard;

		nic->graveyard = vd->grave_next;
		vdev_free(vd);
	}
	uplink_free(nic->uplink);
	sw_destroy(&nic->sw);
	arpd_destroy(&nic->arpd);
	qp_pool_destroy(&nic->qps);
	iommu_destroy(&nic->iommu);
	free(nic->ports);
	free(nic->devs);
	free(nic->irq_list);
	free(nic->adi_free);
	free(nic);
}

/* ---- functions ---- */

void nic_plug(struct nic *nic, struct vdev *vd)
{
	nic->ports[vd->port] = vd;
	vd->devs_slot = nic->nr_devs;
	nic->devs[nic->nr_devs++] = vd;
	sw_port_attach(&nic->sw, vd->port);
	sw_port_set_live(&nic->sw, vd->port, vdev_live(vd));
	sw_port_set_trusted(&nic->sw, vd->port, vd->trusted);
}

void nic_unplug(struct nic *nic, struct vdev *vd)
{
	struct vdev *last = nic->devs[--nic->nr_devs];

	nic->devs[vd->devs_slot] = last;
	last->devs_slot = vd->devs_slot;
	nic->ports[vd->port] = NULL;
	sw_port_detach(&nic->sw, vd->port);	/* its addresses are forgotten */
	nic_irq_forget(nic, vd);
	rxw_forget(vd);
}

void nic_bury(struct nic *nic, struct vdev *vd)
{
	vd->dying = true;
	vd->grave_next = nic->graveyard;
	nic->graveyard = vd;
}

void nic_reap_graves(struct nic *nic)
{
	struct vdev **link = &nic->graveyard;

	while (*link) {
		struct vdev *vd = *link;

		if (vdev_idle(vd)) {
			*link = vd->grave_next;
			vdev_free(vd);
		} else {
			link = &vd->grave_next;
		}
	}
}

/* ---- interrupts and the loop ---- */

void nic_irq_pending(struct nic *nic, struct vdev *vd)
{
	if (vd->irq_dirty || vd->dying)
		return;
	vd->irq_dirty = true;
	nic->irq_list[nic->nr_irq++] = vd;
}

void nic_irq_forget(struct nic *nic, struct vdev *vd)
{
	if (!vd->irq_dirty)
		return;
	for (unsigned i = 0; i < nic->nr_irq; i++) {
		if (nic->irq_list[i] == vd) {
			nic->irq_list[i] = nic->irq_list[--nic->nr_irq];
			break;
		}
	}
	vd->irq_dirty = false;
}

static void flush_all(struct nic *nic)
{
	/*
	 * irq_dirty stays set while a function flushes, so what it raises
	 * meanwhile (a config interrupt after a fault) goes out in that same
	 * flush instead of queueing it again.
	 */
	for (unsigned i = 0; i < nic->nr_irq; i++) {
		struct vdev *vd = nic->irq_list[i];

		vdev_flush(vd);
		vd->irq_dirty = false;
	}
	nic->nr_irq = 0;
}

/* Functions on the slow path: doorbells, refreshes, this pass's write-back. */
static void slow_pass(struct nic *nic)
{
	for (unsigned i = 0; i < nic->nr_devs; i++)
		if (nic->devs[i]->as.slow)
			dma_slow_pass(nic->devs[i]->as.slow, nic->now_ns);
}

bool nic_pass(struct nic *nic)
{
	bool work;

	/*
	 * The clock is costly on some hosts and feeds idle timeouts; rate
	 * limits need it every pass, otherwise every NIC_CLOCK_PASSES busy ones.
	 */
	if (nic->fine_clock || !nic->sched.nr_active || nic->polls % NIC_CLOCK_PASSES == 0)
		nic->now_ns = now_ns();
	if (nic->output_waiting)
		nic_output_release(nic);
	sched_pass(&nic->sched, nic->now_ns);
	nic->polls++;
	if (nic->rxw_list)
		rxw_service(nic);
	work = nic->sched.sent || nic->nr_irq;
	flush_all(nic);
	if (nic->nr_slow)
		slow_pass(nic);
	if (nic->graveyard)
		nic_reap_graves(nic);
	return work;
}

/*
 * Wait for the next pass.  Nothing active: block in the kernel.  Active:
 * poll, but only spin_passes empty passes; after that every pass first
 * yields the CPU (doorbells stay suppressed, so guest kicks still cause no
 * exits) until the idle time ends and the functions go to sleep.  Frames
 * waiting for a refill alone, past the idle time: wake every
 * NIC_RXW_POLL_NS to look at doorbells (a kick wakes us at once).
 */
static int nic_wait(struct nic *nic)
{
	struct sched *s = &nic->sched;

	if (!s->nr_active && !nic->rxw_list)
		return loop_run_once(&nic->loop, true);
	if (s->sleep_ok && !nic->rxw_list)
		return loop_run_once_timeout(&nic->loop, s->wake_ns - nic->now_ns);
	if (nic->empty_passes >= nic->spin_passes) {
		if (!s->nr_active && nic->now_ns - nic->busy_ns >= nic->idle_ns)
			return loop_run_once_timeout(&nic->loop, NIC_RXW_POLL_NS);
		sched_yield();
		nic->yields++;
	}
	return loop_run_once(&nic->loop, false);
}

int nic_run(struct nic *nic)
{
	while (!nic->loop.stop) {
		int n = nic_wait(nic);

		if (n < 0) {
			pr_err("event loop: %s", strerror(-n));
			return n;
		}
		if (nic_pass(nic) || n > 0) {
			nic->empty_passes = 0;
			nic->busy_ns = nic->now_ns;
		} else {
			nic->empty_passes++;
		}
	}
	return 0;
}

/* ---- the switch's ports (switch_fwd.c decides, these deliver) ---- */

static void port_deliver(void *ctx, uint32_t port, const uint8_t *frame, uint32_t len)
{
	struct nic *nic = ctx;

	vdev_rx_deliver(nic->ports[port], frame, len);
}

static bool port_wants_unknown(void *ctx, uint32_t port, const uint8_t *dst)
{
	struct nic *nic = ctx;

	return vdev_rx_wants_unknown(nic->ports[port], dst);
}

static void port_uplink_tx(void *ctx, const uint8_t *frame, uint32_t len)
{
	struct nic *nic = ctx;

	uplink_tx(nic->uplink, frame, len);
}

static const struct sw_port_ops nic_port_ops = {
	.deliver = port_deliver,
	.wants_unknown = port_wants_unknown,
	.uplink_tx = port_uplink_tx,
};

int nic_tx_port(struct nic *nic, const struct vdev *src, const uint8_t *frame)
{
	int out = sw_out_port(&nic->sw, src->port, frame, nic->now_ns);

	return out < 0 ? -1 : out == SW_OUT_SWITCH ? SCHED_PORT_SWITCH : SCHED_PORT_UPLINK;
}

void nic_forward_from_vdev(struct nic *nic, struct vdev *src, const uint8_t *frame,
			   uint32_t len)
{
	if (sw_forward_from_port(&nic->sw, src->port, frame, len, nic->now_ns) != SW_FORWARDED)
		src->stats.tx_drops++;
}

void nic_forward_from_uplink(struct nic *nic, const uint8_t *frame, uint32_t len)
{
	if (sw_forward_from_uplink(&nic->sw, frame, len, nic->now_ns) != SW_FORWARDED)
		nic->uplink->stats.rx_drops++;
}

/* ---- PF driver operations ---- */

struct vdev *nic_mac_owner(struct nic *nic, const uint8_t mac[6])
{
	return nic_port(nic, sw_static_port(&nic->sw, mac));
}

/* vd's MAC forwards to vd (a released one may be another function's by now). */
bool nic_mac_bound(struct nic *nic, const struct vdev *vd)
{
	return sw_static_port(&nic->sw, vd->mac) == (int)vd->port;
}

/* vd stops receiving for its MAC; vd->mac stays what config space shows. */
void nic_mac_release(struct nic *nic, struct vdev *vd)
{
	if (!nic_mac_bound(nic, vd))
		return;
	sw_remove(&nic->sw, vd->mac);
	arpd_flush_port(&nic->arpd, vd->port);
}

/* Bind a released MAC again if no other function took it meanwhile. */
int nic_mac_rebind(struct nic *nic, struct vdev *vd)
{
	struct vdev *owner;

	if (nic_mac_bound(nic, vd))
		return 0;
	owner = nic_mac_owner(nic, vd->mac);
	if (owner)
		return -EEXIST;
	return sw_set_static(&nic->sw, vd->mac, vd->port);
}

/* vd shows the MAC the admin assigned it (it stays with vd). */
bool nic_mac_is_admins(const struct vdev *vd)
{
	return vd->mac_admin && !memcmp(vd->mac, vd->mac_pf, 6);
}

/*
 * vd's client went (vdev.h, mac_pf): a guest's MAC leaves with the guest
 * and the function returns to the PF's assignment; its own MAC is released
 * too when the state was handed away, unless the admin assigned it.
 */
void nic_mac_client_gone(struct nic *nic, struct vdev *vd)
{
	bool guests = memcmp(vd->mac, vd->mac_pf, 6);
	char mac[18];

	if (!guests && (!vd->handed_off || vd->mac_admin))
		return;
	mac_format(vd->mac, mac);
	if (nic_mac_bound(nic, vd))
		pr_info("%s: client gone%s: MAC %s released", vd->dev.id,
			vd->handed_off ? " after handing the state away" : "", mac);
	nic_mac_release(nic, vd);
	if (!guests)
		return;		/* bound again by the next client, if still free */
	vdev_set_mac(vd, vd->mac_pf);
	nic_mac_rebind(nic, vd);
}

int nic_set_mac(struct nic *nic, struct vdev *vd, const uint8_t mac[6], char *err, size_t errlen)
{
	struct vdev *owner;
	bool bound = nic_mac_bound(nic, vd);

	if (mac_is_multicast(mac) || mac_is_zero(mac)) {
		if (err)
			snprintf(err, errlen, "a device MAC must be unicast and non-zero");
		return -EINVAL;
	}
	owner = nic_mac_owner(nic, mac);
	if (owner && owner != vd) {
		if (err)
			snprintf(err, errlen, "MAC already belongs to %s", owner->dev.id);
		return -EEXIST;
	}
	nic_mac_release(nic, vd);	/* its addresses answer to the old MAC */
	if (sw_set_static(&nic->sw, mac, vd->port)) {
		if (bound)
			sw_set_static(&nic->sw, vd->mac, vd->port);
		if (err)
			snprintf(err, errlen, "switch table full");
		return -ENOSPC;
	}
	vdev_set_mac(vd, mac);
	return 0;
}

struct vdev *nic_find_adi(struct nic *nic, const char *name)
{
	for (unsigned p = nic->nr_vfs; p < nic->nr_ports; p++) {
		struct vdev *vd = nic->ports[p];

		if (vd && !strcmp(vd->dev.id + 4, name))	/* past "adi-" */
			return vd;
	}
	return NULL;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

struct vdev *nic_find_dev(struct nic *nic, const char *name, char *err, size_t errlen)
{
	const char *num = all_digits(name) ? name :
			  !strncmp(name, "vf", 2) && all_digits(name + 2) ? name + 2 : NULL;
	const char *adi = !strncmp(name, "adi-", 4) ? name + 4 : name;
	struct vdev *vd;

	if (num) {
		uint64_t n;

		if (parse_u64(num, 0, UINT32_MAX, &n) || n >= nic->nr_vfs) {
			snprintf(err, errlen, "vf %s does not exist (this NIC has %u)", num,
				 nic->nr_vfs);
			return NULL;
		}
		return nic->ports[n];
	}
	vd = nic_find_adi(nic, adi);
	if (!vd)
		snprintf(err, errlen, "no VF or ADI named \"%.64s\"", name);
	return vd;
}

void nic_qos_changed(struct nic *nic)
{
	bool fine = nic->sched.port[SCHED_PORT_UPLINK].line.rate ||
		    nic->sched.port[SCHED_PORT_SWITCH].line.rate;

	for (unsigned i = 0; i < nic->nr_devs && !fine; i++)
		fine = nic->devs[i]->sched.tx.rate || nic->devs[i]->sched.rx.rate;
	nic->fine_clock = fine;
}
