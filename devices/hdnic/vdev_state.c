// SPDX-License-Identifier: MIT
/*
 * Function state for migration and checkpoints: PCI config space, MSI-X,
 * the virtio registers, every queue's configuration and ring position (the
 * queue pairs' and the control queue's), the doorbell slots, pending IMS
 * entries, the statistics counters (guest-visible state too, through the
 * statistics capability) and the driver's receive filter.  Loading parses
 * into a scratch copy, validates everything, and only then commits, so a
 * corrupt stream never leaves a half-loaded function.
 *
 * The state is portable: it names nothing of the NIC it came from (no
 * PASID, no queue-pair numbers, no port), so it loads into a function of
 * another hdnic, and a VF's into an ADI and back, as long as the shapes
 * match (queue pairs, vectors) and the destination offers every feature the
 * driver negotiated.  Version 4 adds the function's QoS settings; version 3
 * streams still load (QoS then stays the destination's).  A refusal names
 * its reason (vdev_mig_refused: hdnic's log, `ctl list` mig_error).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/switch.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

#define VDEV_STATE_TAG		0x31465648u	/* "HVF1" */
#define VDEV_STATE_VERSION	4
#define VDEV_STATE_OLDEST	3	/* the oldest version still loaded */
#define VDEV_NR_COUNTERS	16

struct saved_queue {
	uint16_t size, msix_vector;
	uint8_t enabled, attached, signalled_valid, ims_pending;
	uint64_t desc, avail, used;
	uint16_t last_avail, used_idx, signalled_used, doorbell;
};

#define RXF_PROMISC	0x1
#define RXF_ALLMULTI	0x2
#define RXF_UC_OVERFLOW	0x4
#define RXF_MC_OVERFLOW	0x8

struct vdev_saved {
	uint8_t nr_qps, nr_vectors;
	uint8_t mac[6];
	uint8_t cfg[VDEV_CFG_SIZE];
	struct vdev_msix_entry msix[VDEV_MAX_VECTORS];
	uint64_t pba, irq_masked;
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t msix_config, queue_select, active_pairs;
	uint8_t status, config_generation, isr;
	uint8_t rx_modes;	/* RXF_* */
	struct vdev_rx_filter rxf;
	struct saved_queue q[VDEV_MAX_QUEUES];
	uint64_t counters[VDEV_NR_COUNTERS];
	bool has_qos;		/* version >= 4 */
	uint64_t tx_rate, rx_rate;
	uint32_t weight;
};

/* Refuse a stream: the reason goes to the log and to `ctl list`. */
static int refuse(struct vdev *vd, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vd->mig.error, sizeof(vd->mig.error), fmt, ap);
	va_end(ap);
	pr_err("%s: device state refused: %s", vd->dev.id, vd->mig.error);
	return err;
}

static uint64_t *stat_field(struct vdev_stats *s, unsigned i)
{
	uint64_t *f[VDEV_NR_COUNTERS] = {
		&s->rx_packets, &s->rx_bytes, &s->rx_drops, &s->rx_errors,
		&s->tx_packets, &s->tx_bytes, &s->tx_drops, &s->tx_errors,
		&s->needs_reset, &s->proto_errors, &s->irqs, &s->rx_policed,
		&s->tx_spoofed, &s->tx_throttled, &s->dma_faults, &s->rx_filtered,
	};

	return f[i];
}

/* Queue i in the saved order: the pairs' queues (virtqueue numbering), then control. */
static struct vq *saved_queue(struct vdev *vd, unsigned i, struct qp **qp, int *dir)
{
	if (i < 2 * vd->nr_qps) {
		*qp = vd->qps[i / 2];
		*dir = (int)(i % 2);
		return &(*qp)->vq[*dir];
	}
	*qp = NULL;
	*dir = -1;
	return &vd->vn.ctrlq;
}

int vdev_save(struct vdev *vd, struct state_buf *sb)
{
	struct virtio_net_state *vn = &vd->vn;
	size_t mark = state_begin_section(sb, VDEV_STATE_TAG);

	state_put_u32(sb, VDEV_STATE_VERSION);
	state_put_u8(sb, (uint8_t)vd->nr_qps);
	state_put_u8(sb, (uint8_t)vd->nr_vectors);
	state_put_bytes(sb, vd->mac, 6);
	state_put_bytes(sb, vd->cfg, VDEV_CFG_SIZE);
	for (unsigned i = 0; i < vd->nr_vectors; i++) {
		state_put_u32(sb, vd->msix[i].addr_lo);
		state_put_u32(sb, vd->msix[i].addr_hi);
		state_put_u32(sb, vd->msix[i].data);
		state_put_u32(sb, vd->msix[i].ctrl);
	}
	state_put_u64(sb, vd->msix_pba);
	state_put_u64(sb, vd->irq_masked);
	state_put_u32(sb, vn->dfselect);
	state_put_u32(sb, vn->gfselect);
	state_put_u64(sb, vn->driver_features);
	state_put_u16(sb, vn->msix_config);
	state_put_u16(sb, vn->queue_select);
	state_put_u16(sb, vn->active_pairs);
	state_put_u8(sb, vn->status);
	state_put_u8(sb, vn->config_generation);
	state_put_u8(sb, vn->isr);
	state_put_u8(sb, (vn->rxf.promisc ? RXF_PROMISC : 0) | (vn->rxf.allmulti ? RXF_ALLMULTI : 0) |
		      (vn->rxf.uc_overflow ? RXF_UC_OVERFLOW : 0) |
		      (vn->rxf.mc_overflow ? RXF_MC_OVERFLOW : 0));
	state_put_u8(sb, vn->rxf.nr_uc);
	state_put_u8(sb, vn->rxf.nr_mc);
	state_put_bytes(sb, vn->rxf.mac, sizeof(vn->rxf.mac));
	for (unsigned i = 0; i < vdev_nr_queues(vd); i++) {
		struct qp *qp;
		int dir;
		const struct vq *vq = saved_queue(vd, i, &qp, &dir);
		uint16_t db = 0;

		state_put_u16(sb, vq->size);
		state_put_u16(sb, vq->msix_vector);
		state_put_u8(sb, vq->enabled);
		state_put_u8(sb, vq->attached);
		state_put_u8(sb, vq->signalled_valid);
		state_put_u8(sb, qp ? qp->ims[dir].pending : 0);
		state_put_u64(sb, vq->desc_addr);
		state_put_u64(sb, vq->avail_addr);
		state_put_u64(sb, vq->used_addr);
		state_put_u16(sb, vq->last_avail);
		state_put_u16(sb, vq->used_idx);
		state_put_u16(sb, vq->signalled_used);
		if (qp && qp->db[dir])
			db = *qp->db[dir];
		state_put_u16(sb, db);
	}
	state_put_u32(sb, VDEV_NR_COUNTERS);
	for (unsigned i = 0; i < VDEV_NR_COUNTERS; i++)
		state_put_u64(sb, *stat_field(&vd->stats, i));
	state_put_u64(sb, vd->sched.tx.rate);
	state_put_u64(sb, vd->sched.rx.rate);
	state_put_u32(sb, vd->sched.weight);
	state_end_section(sb, mark);
	return state_ok(sb) ? 0 : -ENOMEM;
}

static int parse(struct vdev *vd, struct state_buf *sb, struct vdev_saved *s)
{
	uint32_t tag = state_get_u32(sb), len = state_get_u32(sb), version;
	size_t start = sb->pos;
	unsigned nq;

	if (!state_ok(sb))
		return refuse(vd, -EINVAL, "truncated: %zu bytes, not even a header", sb->len);
	if (tag != VDEV_STATE_TAG)
		return refuse(vd, -EINVAL, "not an hdnic function's state (tag %#x)", tag);
	if (len > sb->len - sb->pos)
		return refuse(vd, -EINVAL, "truncated: %u bytes announced, %zu written", len,
			      sb->len - sb->pos);
	version = state_get_u32(sb);
	if (version < VDEV_STATE_OLDEST || version > VDEV_STATE_VERSION)
		return refuse(vd, -EPROTONOSUPPORT,
			      "format version %u, this hdnic reads versions %u to %u", version,
			      VDEV_STATE_OLDEST, VDEV_STATE_VERSION);
	s->nr_qps = state_get_u8(sb);
	s->nr_vectors = state_get_u8(sb);
	if (s->nr_qps != vd->nr_qps)
		return refuse(vd, -EINVAL, "saved from a function with %u queue pairs, this one "
			      "has %u", s->nr_qps, vd->nr_qps);
	if (s->nr_vectors != vd->nr_vectors)
		return refuse(vd, -EINVAL, "saved from a function with %u MSI-X vectors, this "
			      "one has %u", s->nr_vectors, vd->nr_vectors);
	state_get_bytes(sb, s->mac, 6);
	state_get_bytes(sb, s->cfg, VDEV_CFG_SIZE);
	for (unsigned i = 0; i < s->nr_vectors; i++) {
		s->msix[i].addr_lo = state_get_u32(sb);
		s->msix[i].addr_hi = state_get_u32(sb);
		s->msix[i].data = state_get_u32(sb);
		s->msix[i].ctrl = state_get_u32(sb);
	}
	s->pba = state_get_u64(sb);
	s->irq_masked = state_get_u64(sb);
	s->dfselect = state_get_u32(sb);
	s->gfselect = state_get_u32(sb);
	s->driver_features = state_get_u64(sb);
	s->msix_config = state_get_u16(sb);
	s->queue_select = state_get_u16(sb);
	s->active_pairs = state_get_u16(sb);
	s->status = state_get_u8(sb);
	s->config_generation = state_get_u8(sb);
	s->isr = state_get_u8(sb);
	s->rx_modes = state_get_u8(sb);
	s->rxf.promisc = s->rx_modes & RXF_PROMISC;
	s->rxf.allmulti = s->rx_modes & RXF_ALLMULTI;
	s->rxf.uc_overflow = s->rx_modes & RXF_UC_OVERFLOW;
	s->rxf.mc_overflow = s->rx_modes & RXF_MC_OVERFLOW;
	s->rxf.nr_uc = state_get_u8(sb);
	s->rxf.nr_mc = state_get_u8(sb);
	state_get_bytes(sb, s->rxf.mac, sizeof(s->rxf.mac));
	nq = vdev_nr_queues(vd);
	for (unsigned i = 0; i < nq; i++) {
		struct saved_queue *q = &s->q[i];

		q->size = state_get_u16(sb);
		q->msix_vector = state_get_u16(sb);
		q->enabled = state_get_u8(sb);
		q->attached = state_get_u8(sb);
		q->signalled_valid = state_get_u8(sb);
		q->ims_pending = state_get_u8(sb);
		q->desc = state_get_u64(sb);
		q->avail = state_get_u64(sb);
		q->used = state_get_u64(sb);
		q->last_avail = state_get_u16(sb);
		q->used_idx = state_get_u16(sb);
		q->signalled_used = state_get_u16(sb);
		q->doorbell = state_get_u16(sb);
	}
	if (state_get_u32(sb) != VDEV_NR_COUNTERS)
		return refuse(vd, -EINVAL, "corrupt: bad counter count");
	for (unsigned i = 0; i < VDEV_NR_COUNTERS; i++)
		s->counters[i] = state_get_u64(sb);
	s->has_qos = version >= 4;
	if (s->has_qos) {
		s->tx_rate = state_get_u64(sb);
		s->rx_rate = state_get_u64(sb);
		s->weight = state_get_u32(sb);
	}
	if (!state_ok(sb) || sb->pos - start != len)
		return refuse(vd, -EINVAL, "corrupt: the section's length does not match its "
			      "contents");
	return 0;
}

static bool vector_ok(const struct vdev *vd, uint16_t v)
{
	return v < vd->nr_vectors || v == VQ_NO_VECTOR;
}

static int validate(struct vdev *vd, const struct vdev_saved *s)
{
	uint64_t vmask = vd->nr_vectors >= 64 ? ~0ULL : (1ULL << vd->nr_vectors) - 1;

	if (mac_is_multicast(s->mac) || mac_is_zero(s->mac))
		return refuse(vd, -EINVAL, "corrupt: not a unicast MAC");
	if ((s->pba & ~vmask) || (s->irq_masked & ~vmask))
		return refuse(vd, -EINVAL, "corrupt: interrupt bits beyond the vectors");
	if (s->driver_features & ~vdev_features(vd))
		return refuse(vd, -EOPNOTSUPP, "the driver negotiated features %#llx this "
			      "function does not offer",
			      (unsigned long long)(s->driver_features & ~vdev_features(vd)));
	if (!vector_ok(vd, s->msix_config))
		return refuse(vd, -EINVAL, "corrupt: config vector %u", s->msix_config);
	if ((s->driver_features & (VF_F_MQ | VF_F_CTRL_RX)) && !(s->driver_features & VF_F_CTRL_VQ))
		return refuse(vd, -EINVAL, "corrupt: inconsistent virtio state");
	if ((s->rx_modes & ~(RXF_PROMISC | RXF_ALLMULTI | RXF_UC_OVERFLOW | RXF_MC_OVERFLOW)) ||
	    !vdev_rx_filter_valid(&s->rxf))
		return refuse(vd, -EINVAL, "corrupt: inconsistent virtio state");
	if (s->active_pairs < 1 || s->active_pairs > vd->nr_qps)
		return refuse(vd, -EINVAL, "corrupt: %u active queue pairs", s->active_pairs);
	if (s->has_qos && (s->weight < 1 || s->weight > QOS_WEIGHT_MAX ||
			   (s->tx_rate && (s->tx_rate < QOS_RATE_MIN || s->tx_rate > QOS_RATE_MAX)) ||
			   (s->rx_rate && (s->rx_rate < QOS_RATE_MIN || s->rx_rate > QOS_RATE_MAX))))
		return refuse(vd, -EINVAL, "corrupt: QoS settings out of range");
	if (s->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		return refuse(vd, -EINVAL, "corrupt: inconsistent virtio state");
	if ((s->status & VST_DRIVER_OK) && !(s->status & VST_FEATURES_OK))
		return refuse(vd, -EINVAL, "corrupt: inconsistent virtio state");
	for (unsigned i = 0; i < vdev_nr_queues(vd); i++) {
		const struct saved_queue *q = &s->q[i];

		if (!q->size || q->size > HDNIC_QUEUE_MAX_SIZE || (q->size & (q->size - 1)))
			return refuse(vd, -EINVAL, "corrupt: queue %u", i);
		if (!vector_ok(vd, q->msix_vector) || q->enabled > 1 || q->attached > 1 ||
		    q->signalled_valid > 1 || q->ims_pending > 1)
			return refuse(vd, -EINVAL, "corrupt: queue %u", i);
		if (q->attached && (!q->enabled || !(s->status & VST_DRIVER_OK)))
			return refuse(vd, -EINVAL, "corrupt: queue %u", i);
		/* The device can never have used more than the driver made available. */
		if ((uint16_t)(q->last_avail - q->used_idx) > q->size)
			return refuse(vd, -EINVAL, "corrupt: queue %u", i);
	}
	return 0;
}

int vdev_load(struct vdev *vd, struct state_buf *sb)
{
	static struct vdev_saved s;	/* large; single-threaded */
	struct vq vq[VDEV_MAX_QUEUES];
	struct virtio_net_state *vn = &vd->vn;
	unsigned nq = vdev_nr_queues(vd);
	struct vdev *owner;
	bool ev;
	int err;

	if (vd->running)
		return -EBUSY;		/* pause first */
	memset(&s, 0, sizeof(s));
	err = parse(vd, sb, &s);
	if (!err)
		err = validate(vd, &s);
	if (err)
		return err;
	ev = s.driver_features & VF_F_EVENT_IDX;
	/* Resolve the rings against the current DMA map before touching the function. */
	for (unsigned i = 0; i < nq; i++) {
		const struct saved_queue *q = &s.q[i];
		struct dma_space *as;
		enum vq_dir dir;
		struct qp *qp;
		int d;

		saved_queue(vd, i, &qp, &d);
		as = qp ? qp_dma_space(qp) : iommu_space(&vd->nic->iommu, vd->pasid);
		dir = d < 0 ? VQ_BOTH : d == QP_RX ? VQ_FROM_DEVICE : VQ_TO_DEVICE;
		vq_reset(&vq[i], HDNIC_QUEUE_MAX_SIZE);
		vq[i].size = q->size;
		vq[i].msix_vector = q->msix_vector;
		vq[i].enabled = q->enabled;
		vq[i].desc_addr = q->desc;
		vq[i].avail_addr = q->avail;
		vq[i].used_addr = q->used;
		if (q->attached) {
			err = dma_vq_attach(&vq[i], as, ev, dir);
			if (err)
				return refuse(vd, err, "queue %u's rings are not in the memory the "
					      "client mapped (%s)", i, strerror(-err));
			vq[i].last_avail = q->last_avail;
			vq[i].used_idx = q->used_idx;
			vq[i].published = q->used_idx;	/* what the source published */
			vq[i].signalled_used = q->signalled_used;
			vq[i].signalled_valid = q->signalled_valid;
		}
	}
	/*
	 * The guest's MAC comes with it; a live function holding it keeps it
	 * (a source releases it when its client detaches after STOP_COPY).
	 */
	owner = nic_mac_owner(vd->nic, s.mac);
	if (owner && owner != vd) {
		char mac[18];

		mac_format(s.mac, mac);
		return refuse(vd, -EEXIST, "the guest's MAC %s is %s's (%s): %s cannot take it",
			      mac, owner->dev.id, nic_mac_is_admins(owner) ? "assigned by the admin" :
			      owner->handed_off ? "its client has not detached yet" :
			      "its function is live", vd->dev.id);
	}
	if (memcmp(s.mac, vd->mac, 6) || !owner) {
		char why[64];

		err = nic_set_mac(vd->nic, vd, s.mac, why, sizeof(why));
		if (err)
			return refuse(vd, err, "the guest's MAC: %s", why);
	}
	/* Commit. */
	memcpy(vd->cfg, s.cfg, VDEV_CFG_SIZE);
	memcpy(vd->msix, s.msix, vd->nr_vectors * sizeof(*vd->msix));
	vd->msix_pba = s.pba;
	vd->irq_masked = s.irq_masked;
	vn->dfselect = s.dfselect;
	vn->gfselect = s.gfselect;
	vn->driver_features = s.driver_features;
	vn->msix_config = s.msix_config;
	vn->queue_select = s.queue_select;
	vn->active_pairs = s.active_pairs;
	vn->status = s.status;
	vn->config_generation = s.config_generation;
	vn->isr = s.isr;
	vn->rxf = s.rxf;
	for (unsigned i = 0; i < nq; i++) {
		struct qp *qp;
		int d;
		struct vq *dst = saved_queue(vd, i, &qp, &d);

		*dst = vq[i];
		if (!qp)
			continue;
		qp->ims[d].pending = s.q[i].ims_pending;
		if (vd->db)
			memcpy((uint8_t *)vd->db + i * HDNIC_DB_STRIDE, &s.q[i].doorbell, 2);
		qp->tx_db_seen = 0;
		qp->tx_kicked = true;
	}
	for (unsigned i = 0; i < VDEV_NR_COUNTERS; i++)
		*stat_field(&vd->stats, i) = s.counters[i];
	if (s.has_qos) {
		uint64_t now = now_ns();

		tb_set(&vd->sched.tx, s.tx_rate, now);
		tb_set(&vd->sched.rx, s.rx_rate, now);
		vd->sched.weight = s.weight;
		nic_qos_changed(vd->nic);
	}
	vd->mig.error[0] = 0;
	vdev_ims_sync(vd);
	vdev_update_running(vd);
	return 0;
}

/*
 * What PRE_COPY sends ahead of the state (vdev_mig.h): the format version,
 * the function's shape and the features it offers and the driver took, so
 * a destination can refuse an incompatible function before the source
 * stops.  The full state follows in STOP_COPY.
 */
int vdev_precopy_save(struct vdev *vd, struct state_buf *sb)
{
	size_t mark = state_begin_section(sb, VDEV_PRECOPY_TAG);

	state_put_u32(sb, VDEV_STATE_VERSION);
	state_put_u8(sb, (uint8_t)vd->nr_qps);
	state_put_u8(sb, (uint8_t)vd->nr_vectors);
	state_put_u64(sb, vdev_features(vd));
	state_put_u64(sb, vd->vn.driver_features);
	state_end_section(sb, mark);
	return state_ok(sb) ? 0 : -ENOMEM;
}

/* If sb starts with a pre-copy section, check it and step over it. */
int vdev_precopy_check(struct vdev *vd, struct state_buf *sb)
{
	size_t start = sb->pos;
	uint32_t len, version;
	uint8_t nr_qps, nr_vectors;
	uint64_t driver;

	if (state_get_u32(sb) != VDEV_PRECOPY_TAG || !state_ok(sb)) {
		sb->pos = start;	/* no pre-copy part: a STOP_COPY-only stream */
		sb->error = false;
		return 0;
	}
	len = state_get_u32(sb);
	version = state_get_u32(sb);
	nr_qps = state_get_u8(sb);
	nr_vectors = state_get_u8(sb);
	state_get_u64(sb);	/* the source's offer: informative */
	driver = state_get_u64(sb);
	if (!state_ok(sb) || len != 4 + 1 + 1 + 8 + 8)
		return refuse(vd, -EINVAL, "corrupt: the pre-copy section");
	if (version < VDEV_STATE_OLDEST || version > VDEV_STATE_VERSION)
		return refuse(vd, -EPROTONOSUPPORT,
			      "format version %u, this hdnic reads versions %u to %u", version,
			      VDEV_STATE_OLDEST, VDEV_STATE_VERSION);
	if (nr_qps != vd->nr_qps || nr_vectors != vd->nr_vectors)
		return refuse(vd, -EINVAL, "saved from a function with %u queue pairs and %u "
			      "vectors, this one has %u and %u", nr_qps, nr_vectors, vd->nr_qps,
			      vd->nr_vectors);
	if (driver & ~vdev_features(vd))
		return refuse(vd, -EOPNOTSUPP, "the driver negotiated features %#llx this "
			      "function does not offer",
			      (unsigned long long)(driver & ~vdev_features(vd)));
	return 0;
}
