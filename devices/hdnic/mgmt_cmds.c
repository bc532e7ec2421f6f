// SPDX-License-Identifier: MIT
/* The management commands (mgmt.h), JSON with json-c. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdcm.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

static json_object *u64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void add(json_object *o, const char *key, json_object *v)
{
	json_object_object_add(o, key, v);
}

/* The name a device goes by in lists: {"vf": N} or {"adi": NAME}, and "dev". */
static void add_identity(json_object *o, const struct vdev *vd)
{
	if (vd->kind == VDEV_VF)
		add(o, "vf", json_object_new_int((int)vd->index));
	else
		add(o, "adi", json_object_new_string(vd->dev.id + 4));
	add(o, "dev", json_object_new_string(vd->dev.id));
}

static json_object *qos_object(const struct vdev *vd)
{
	json_object *q = json_object_new_object();

	add(q, "tx_rate", u64(vd->sched.tx.rate));
	add(q, "rx_rate", u64(vd->sched.rx.rate));
	add(q, "weight", u64(vd->sched.weight));
	return q;
}

/* The driver's receive filter; "filtering" false: it did not negotiate CTRL_RX. */
static json_object *rx_mode_object(const struct vdev *vd)
{
	const struct vdev_rx_filter *f = &vd->vn.rxf;
	json_object *m = json_object_new_object();

	add(m, "filtering", json_object_new_boolean(vd->vn.driver_features & VF_F_CTRL_RX));
	add(m, "promisc", json_object_new_boolean(f->promisc));
	add(m, "allmulti", json_object_new_boolean(f->allmulti));
	add(m, "unicast", json_object_new_int(f->uc_overflow ? -1 : f->nr_uc));
	add(m, "multicast", json_object_new_int(f->mc_overflow ? -1 : f->nr_mc));
	return m;
}

static json_object *dev_entry(const struct vdev *vd)
{
	json_object *o = json_object_new_object(), *qps = json_object_new_array();
	char mac[18];

	mac_format(vd->mac, mac);
	add_identity(o, vd);
	add(o, "mac", json_object_new_string(mac));
	add(o, "mac_bound", json_object_new_boolean(nic_mac_bound(vd->nic, vd)));
	add(o, "mac_admin", json_object_new_boolean(nic_mac_is_admins(vd)));
	add(o, "socket", json_object_new_string(vd->vfu->sock_path));
	add(o, "client", json_object_new_boolean(vdev_has_client(vd)));
	add(o, "state", json_object_new_string(vdev_state_name(vd)));
	add(o, "migration", json_object_new_boolean(!vd->no_mig));
	add(o, "mig_state", json_object_new_string(vdev_mig_state_name(vd->mig.state)));
	add(o, "mig_error", json_object_new_string(vd->mig.error));
	add(o, "dma_slow", json_object_new_boolean(vd->as.slow != NULL));
	add(o, "dma_slow_error", json_object_new_string(dma_slow_error(vd->slow) ?
						       dma_slow_error(vd->slow) : ""));
	add(o, "mig_announces", u64(vd->mig.announces));
	add(o, "dirty_logging", json_object_new_boolean(vd->as.dirty != NULL));
	add(o, "device_status", json_object_new_int(vd->vn.status));
	add(o, "polling", json_object_new_boolean(vd->polling));
	add(o, "dma_maps", json_object_new_int((int)vd->as.nr));
	add(o, "pasid", u64(vd->pasid));
	add(o, "queues", json_object_new_int((int)vd->nr_qps));
	for (unsigned k = 0; k < vd->nr_qps; k++)
		json_object_array_add(qps, json_object_new_int((int)vd->qps[k]->index));
	add(o, "qps", qps);
	add(o, "trusted", json_object_new_boolean(vd->trusted));
	add(o, "rx_mode", rx_mode_object(vd));
	add(o, "qos", qos_object(vd));
	add(o, "attach_ns", u64(vd->attach_ns));
	add(o, "attach_us", json_object_new_double((double)vd->attach_ns / 1000.0));
	return o;
}

/* Every function in port order: VFs, then ADIs; vfs or adis array by kind. */
static void for_each_dev(struct nic *nic, json_object *vfs, json_object *adis,
			 json_object *(*entry)(const struct vdev *))
{
	for (unsigned p = 0; p < nic->nr_ports; p++) {
		const struct vdev *vd = nic->ports[p];

		if (vd)
			json_object_array_add(vd->kind == VDEV_VF ? vfs : adis, entry(vd));
	}
}

static json_object *cmd_list(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *r = json_object_new_object(), *vfs = json_object_new_array();
	json_object *adis = json_object_new_array(), *up = json_object_new_object();
	json_object *qps = json_object_new_object();

	add(r, "nic", json_object_new_string(nic->name));
	add(up, "kind", json_object_new_string(nic->uplink->ops->kind));
	add(up, "ifname", json_object_new_string(nic->uplink->ifname));
	add(up, "rate", u64(nic->sched.port[SCHED_PORT_UPLINK].line.rate));
	add(r, "uplink", up);
	add(r, "switch_rate", u64(nic->sched.port[SCHED_PORT_SWITCH].line.rate));
	add(qps, "total", u64(nic->qps.nr));
	add(qps, "free", u64(nic->qps.nr_free));
	add(r, "qps", qps);
	for_each_dev(nic, vfs, adis, dev_entry);
	add(r, "vfs", vfs);
	add(r, "adis", adis);
	return r;
}

static json_object *stats_entry(const struct vdev *vd)
{
	const struct vdev_stats *s = &vd->stats;
	json_object *o = json_object_new_object();

	add_identity(o, vd);
	add(o, "rx_packets", u64(s->rx_packets));
	add(o, "rx_bytes", u64(s->rx_bytes));
	add(o, "rx_drops", u64(s->rx_drops));
	add(o, "rx_errors", u64(s->rx_errors));
	add(o, "rx_policed", u64(s->rx_policed));
	add(o, "rx_filtered", u64(s->rx_filtered));
	add(o, "rx_stopped", u64(s->rx_stopped));
	add(o, "rx_waited", u64(s->rx_waited));
	add(o, "rx_wait_drops", u64(s->rx_wait_drops));
	add(o, "rx_waiting", u64(vd->rxw.nr));
	add(o, "tx_packets", u64(s->tx_packets));
	add(o, "tx_bytes", u64(s->tx_bytes));
	add(o, "tx_drops", u64(s->tx_drops));
	add(o, "tx_errors", u64(s->tx_errors));
	add(o, "tx_spoofed", u64(s->tx_spoofed));
	add(o, "tx_throttled", u64(s->tx_throttled));
	add(o, "dma_faults", u64(s->dma_faults));
	add(o, "dma_msgs", u64(s->dma_msgs));
	add(o, "dma_msg_errors", u64(s->dma_msg_errors));
	add(o, "needs_reset", u64(s->needs_reset));
	add(o, "proto_errors", u64(s->proto_errors));
	add(o, "irqs", u64(s->irqs));
	add(o, "kicks", u64(s->kicks));
	add(o, "connects", u64(s->connects));
	add(o, "egress_holding", json_object_new_boolean(vd->holdq.holding));
	add(o, "egress_epoch", u64(vd->holdq.epoch));
	add(o, "egress_held", u64(vd->holdq.count));
	add(o, "egress_held_total", u64(vd->holdq.stats.held));
	add(o, "egress_released", u64(vd->holdq.stats.released));
	add(o, "egress_discarded", u64(vd->holdq.stats.discarded));
	add(o, "tx_held_full", u64(s->tx_held_full));
	return o;
}

static json_object *arp_stats(const struct arp_dir *d)
{
	json_object *o = json_object_new_object();

	add(o, "bindings", u64(d->nr_entries));
	add(o, "learned", u64(d->stats.learned));
	add(o, "moved", u64(d->stats.moved));
	add(o, "refused", u64(d->stats.refused));
	add(o, "directed", u64(d->stats.directed));
	add(o, "suppressed", u64(d->stats.suppressed));
	add(o, "flooded", u64(d->stats.flooded));
	return o;
}

static json_object *cmd_stats(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *r = json_object_new_object(), *vfs = json_object_new_array();
	json_object *adis = json_object_new_array(), *up = json_object_new_object();
	json_object *sw = json_object_new_object(), *sched = json_object_new_object();
	json_object *mmu = json_object_new_object();
	const struct uplink_stats *us = &nic->uplink->stats;
	const struct sw_stats *ss = &nic->sw.stats;

	for_each_dev(nic, vfs, adis, stats_entry);
	add(r, "vfs", vfs);
	add(r, "adis", adis);
	add(up, "rx_packets", u64(us->rx_packets));
	add(up, "rx_bytes", u64(us->rx_bytes));
	add(up, "rx_drops", u64(us->rx_drops));
	add(up, "rx_errors", u64(us->rx_errors));
	add(up, "tx_packets", u64(us->tx_packets));
	add(up, "tx_bytes", u64(us->tx_bytes));
	add(up, "tx_drops", u64(us->tx_drops));
	add(up, "tx_errors", u64(us->tx_errors));
	add(up, "rx_pauses", u64(nic->uplink->rx_pauses));
	add(up, "rx_paused", json_object_new_boolean(nic->uplink->rx_paused));
	add(r, "uplink", up);
	add(r, "rx_flow_control", json_object_new_boolean(nic->rx_fc));
	add(r, "loop_yields", u64(nic->yields));
	add(sw, "fdb_learned", u64(nic->sw.nr_learned));
	add(sw, "flooded", u64(ss->flooded));
	add(sw, "unknown_unicast_drops", u64(ss->unknown_unicast_drops));
	add(sw, "spoof_drops", u64(ss->spoof_drops));
	add(sw, "loop_drops", u64(ss->loop_drops));
	add(r, "switch", sw);
	add(r, "arp", arp_stats(&nic->arpd));
	for (unsigned p = 0; p < SCHED_NR_PORTS; p++) {
		const struct sched_port *sp = &nic->sched.port[p];
		json_object *o = json_object_new_object();

		add(o, "frames", u64(sp->frames));
		add(o, "bytes", u64(sp->bytes));
		add(o, "full", u64(sp->full));
		add(sched, sched_port_name(p), o);
	}
	add(sched, "active", u64(nic->sched.nr_active));
	add(r, "sched", sched);
	add(mmu, "faults", u64(nic->iommu.faults));
	add(mmu, "pasids_bound", u64(nic->iommu.nr - 1 - nic->iommu.nr_free));
	add(r, "iommu", mmu);
	add(r, "loop_passes", u64(nic->polls));
	add(r, "sleeps", u64(nic->sleeps));
	/* when the counters were read (CLOCK_MONOTONIC): rates over a window need it */
	add(r, "now_ns", u64(now_ns()));
	return r;
}

/* "dev": a name nic_find_dev() knows, or the older "vf": N. */
static struct vdev *req_dev(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *v;
	int64_t n;

	if (json_object_object_get_ex(req, "dev", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			snprintf(err, errlen, "\"dev\" must be a string (3, vf3, adi-NAME)");
			return NULL;
		}
		return nic_find_dev(nic, json_object_get_string(v), err, errlen);
	}
	if (!json_object_object_get_ex(req, "vf", &v)) {
		snprintf(err, errlen, "\"dev\" is required");
		return NULL;
	}
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "\"vf\" must be an integer");
		return NULL;
	}
	n = json_object_get_int64(v);
	if (n < 0 || n >= nic->nr_vfs) {
		snprintf(err, errlen, "vf %lld does not exist (this NIC has %u)", (long long)n,
			 nic->nr_vfs);
		return NULL;
	}
	return nic->ports[n];
}

/* An optional "mac": 0 absent, 1 parsed, -EINVAL malformed (err filled). */
static int req_mac(json_object *req, uint8_t mac[6], char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(req, "mac", &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    mac_parse(json_object_get_string(v), mac)) {
		snprintf(err, errlen, "\"mac\" must look like 02:00:00:00:00:01");
		return -EINVAL;
	}
	return 1;
}

static json_object *cmd_set_mac(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vdev *vd = req_dev(nic, req, err, errlen);
	uint8_t mac[6];

	if (!vd)
		return NULL;
	if (req_mac(req, mac, err, errlen) <= 0) {
		if (!err[0])
			snprintf(err, errlen, "\"mac\" must look like 02:00:00:00:00:01");
		return NULL;
	}
	if (nic_set_mac(nic, vd, mac, err, errlen))
		return NULL;
	memcpy(vd->mac_pf, mac, 6);
	vd->mac_admin = true;	/* stays with this function when a guest moves away */
	return json_object_new_object();
}

/* `ctl egress` actions: the vendor feature's ops (hdnic_vf_abi.h) under their old names. */
static const char *const egress_ops[] = {
	[HDNIC_OUTPUT_START] = "hold",
	[HDNIC_OUTPUT_EPOCH] = "epoch",
	[HDNIC_OUTPUT_COMMIT] = "commit",
	[HDNIC_OUTPUT_STOP] = "pass",
	[HDNIC_OUTPUT_DISCARD] = "discard",
};

static json_object *cmd_egress(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vdev *vd = req_dev(nic, req, err, errlen);
	json_object *v, *r;
	const char *action;
	uint64_t epoch = 0;
	unsigned op;
	int ret;

	if (!vd)
		return NULL;
	if (!json_object_object_get_ex(req, "action", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"action\" must be hold, epoch, commit, discard or pass");
		return NULL;
	}
	action = json_object_get_string(v);
	if (json_object_object_get_ex(req, "epoch", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
			snprintf(err, errlen, "\"epoch\" must be a non-negative integer");
			return NULL;
		}
		epoch = (uint64_t)json_object_get_int64(v);
	}
	for (op = 0; op < ARRAY_SIZE(egress_ops); op++)
		if (egress_ops[op] && !strcmp(action, egress_ops[op]))
			break;
	if (op == ARRAY_SIZE(egress_ops)) {
		snprintf(err, errlen, "unknown egress action \"%.32s\"", action);
		return NULL;
	}
	ret = vdev_output_control(vd, op, epoch, 0);
	if (ret) {
		snprintf(err, errlen, "egress %s %llu: %s", action, (unsigned long long)epoch,
			 ret == -EINVAL ? "epoch out of order, or not holding" : strerror(-ret));
		return NULL;
	}
	r = json_object_new_object();
	add(r, "held", u64(vd->holdq.count));
	add(r, "holding", json_object_new_boolean(vd->holdq.holding));
	return r;
}

static json_object *cmd_adi_add(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *v, *q, *nm = NULL;
	unsigned queues = 1;
	bool no_mig;
	uint8_t mac[6];
	struct vdev *vd;
	int has_mac;

	if (!json_object_object_get_ex(req, "name", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"name\" must be a string");
		return NULL;
	}
	if (json_object_object_get_ex(req, "queues", &q)) {
		int64_t n = json_object_is_type(q, json_type_int) ? json_object_get_int64(q) : -1;

		if (n < 1 || n > HDNIC_MAX_QPS_PER_DEV) {
			snprintf(err, errlen, "\"queues\" must be 1 to %u", HDNIC_MAX_QPS_PER_DEV);
			return NULL;
		}
		queues = (unsigned)n;
	}
	if (json_object_object_get_ex(req, "no_migration", &nm) &&
	    !json_object_is_type(nm, json_type_boolean)) {
		snprintf(err, errlen, "\"no_migration\" must be true or false");
		return NULL;
	}
	no_mig = nm && json_object_get_boolean(nm);
	has_mac = req_mac(req, mac, err, errlen);
	if (has_mac < 0)
		return NULL;
	vd = vdcm_adi_add(nic, json_object_get_string(v), queues, has_mac ? mac : NULL, err,
			  errlen);
	if (!vd)
		return NULL;
	vd->no_mig = no_mig;	/* before any client: the socket is served by this loop */
	return dev_entry(vd);
}

static json_object *cmd_adi_del(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *v;
	struct vdev *vd;
	const char *name;

	if (!json_object_object_get_ex(req, "name", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"name\" must be a string");
		return NULL;
	}
	name = json_object_get_string(v);
	if (!strncmp(name, "adi-", 4) && !nic_find_adi(nic, name))
		name += 4;
	vd = nic_find_adi(nic, name);
	if (!vd) {
		snprintf(err, errlen, "no ADI named \"%.64s\"", name);
		return NULL;
	}
	vdcm_adi_del(nic, vd);
	return json_object_new_object();
}

static json_object *cmd_trust(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vdev *vd = req_dev(nic, req, err, errlen);
	json_object *v, *r;

	if (!vd)
		return NULL;
	if (!json_object_object_get_ex(req, "on", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "\"on\" must be true or false");
		return NULL;
	}
	vd->trusted = json_object_get_boolean(v);
	sw_port_set_trusted(&nic->sw, vd->port, vd->trusted);
	if (!vd->trusted) {
		sw_flush_port(&nic->sw, vd->port);	/* addresses it sent as are not its */
		arpd_flush_port(&nic->arpd, vd->port);
	}
	r = json_object_new_object();
	add(r, "dev", json_object_new_string(vd->dev.id));
	add(r, "trusted", json_object_new_boolean(vd->trusted));
	return r;
}

/* An optional rate: a number of bit/s or a string like "10M". 0 absent, 1 set, -EINVAL bad. */
static int req_rate(json_object *req, const char *key, uint64_t *bits, char *err,
		    size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);

		*bits = (uint64_t)n;
		if (n == 0 || (n >= (int64_t)QOS_RATE_MIN && (uint64_t)n <= QOS_RATE_MAX))
			return 1;
	} else if (json_object_is_type(v, json_type_string) &&
		   !qos_parse_rate(json_object_get_string(v), bits)) {
		return 1;
	}
	snprintf(err, errlen, "\"%s\": a rate like 10M (bit/s, k/M/G), 0 for none, "
		 "%llu to %llu", key, (unsigned long long)QOS_RATE_MIN,
		 (unsigned long long)QOS_RATE_MAX);
	return -EINVAL;
}

static json_object *cmd_qos(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vdev *vd = req_dev(nic, req, err, errlen);
	uint64_t tx = 0, rx = 0;
	int has_tx, has_rx;
	json_object *v, *r;
	int64_t weight = -1;

	if (!vd)
		return NULL;
	has_tx = req_rate(req, "tx_rate", &tx, err, errlen);
	if (has_tx < 0)
		return NULL;
	has_rx = req_rate(req, "rx_rate", &rx, err, errlen);
	if (has_rx < 0)
		return NULL;
	if (json_object_object_get_ex(req, "weight", &v)) {
		weight = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
		if (weight < 1 || weight > QOS_WEIGHT_MAX) {
			snprintf(err, errlen, "\"weight\" must be 1 to %u", QOS_WEIGHT_MAX);
			return NULL;
		}
	}
	nic->now_ns = now_ns();
	if (has_tx)
		tb_set(&vd->sched.tx, tx, nic->now_ns);
	if (has_rx)
		tb_set(&vd->sched.rx, rx, nic->now_ns);
	if (weight > 0)
		vd->sched.weight = (uint32_t)weight;
	nic_qos_changed(nic);
	r = json_object_new_object();
	add(r, "dev", json_object_new_string(vd->dev.id));
	add(r, "qos", qos_object(vd));
	return r;
}

const struct mgmt_cmd mgmt_cmds[] = {
	{ "list", cmd_list },
	{ "stats", cmd_stats },
	{ "set-mac", cmd_set_mac },
	{ "egress", cmd_egress },
	{ "adi-add", cmd_adi_add },
	{ "adi-del", cmd_adi_del },
	{ "trust", cmd_trust },
	{ "qos", cmd_qos },
};
const unsigned mgmt_nr_cmds = ARRAY_SIZE(mgmt_cmds);
