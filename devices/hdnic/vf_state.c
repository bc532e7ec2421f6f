// SPDX-License-Identifier: MIT
/*
 * VF device state for migration and checkpoints: PCI config space, MSI-X,
 * the virtio registers, every queue's configuration and ring position, the
 * doorbell slots and the statistics counters (they are guest-visible state
 * too).  Loading parses into a scratch copy, validates everything, and
 * only then commits, so a corrupt stream never leaves a half-loaded VF.
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/switch.h"
#include "devices/hdnic/vf.h"
#include "vmm/util.h"

#define VF_STATE_TAG		0x31465648u	/* "HVF1" */
#define VF_STATE_VERSION	1

struct vf_saved_queue {
	uint16_t size, msix_vector;
	uint8_t enabled, attached, signalled_valid;
	uint64_t desc, avail, used;
	uint16_t last_avail, used_idx, signalled_used;
};

struct vf_saved {
	uint8_t mac[6];
	uint8_t cfg[VF_CFG_SIZE];
	struct vf_msix_entry msix[HDNIC_MSIX_VECTORS];
	uint32_t pba;
	uint8_t irq_masked;
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint16_t msix_config, queue_select;
	uint8_t status, config_generation, isr;
	struct vf_saved_queue q[HDNIC_NUM_QUEUES];
	uint16_t doorbell[HDNIC_NUM_QUEUES];
	uint64_t counters[11];
};

static uint64_t *stat_field(struct vf_stats *s, unsigned i)
{
	uint64_t *f[] = {
		&s->rx_packets, &s->rx_bytes, &s->rx_drops, &s->rx_errors,
		&s->tx_packets, &s->tx_bytes, &s->tx_drops, &s->tx_errors,
		&s->needs_reset, &s->proto_errors, &s->irqs,
	};

	return f[i];
}

int vf_save(struct vf *vf, struct state_buf *sb)
{
	struct virtio_net_state *vn = &vf->vn;
	size_t mark = state_begin_section(sb, VF_STATE_TAG);
	uint8_t masked = 0;

	state_put_u32(sb, VF_STATE_VERSION);
	state_put_bytes(sb, vf->mac, 6);
	state_put_bytes(sb, vf->cfg, VF_CFG_SIZE);
	for (unsigned i = 0; i < HDNIC_MSIX_VECTORS; i++) {
		state_put_u32(sb, vf->msix[i].addr_lo);
		state_put_u32(sb, vf->msix[i].addr_hi);
		state_put_u32(sb, vf->msix[i].data);
		state_put_u32(sb, vf->msix[i].ctrl);
		masked |= vf->irq_masked[i] << i;
	}
	state_put_u32(sb, vf->msix_pba);
	state_put_u8(sb, masked);
	state_put_u32(sb, vn->dfselect);
	state_put_u32(sb, vn->gfselect);
	state_put_u64(sb, vn->driver_features);
	state_put_u16(sb, vn->msix_config);
	state_put_u16(sb, vn->queue_select);
	state_put_u8(sb, vn->status);
	state_put_u8(sb, vn->config_generation);
	state_put_u8(sb, vn->isr);
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		const struct virtq *vq = &vn->vq[i];
		uint16_t db = 0;

		state_put_u16(sb, vq->size);
		state_put_u16(sb, vq->msix_vector);
		state_put_u8(sb, vq->enabled);
		state_put_u8(sb, vq->attached);
		state_put_u8(sb, vq->signalled_valid);
		state_put_u64(sb, vq->desc_addr);
		state_put_u64(sb, vq->avail_addr);
		state_put_u64(sb, vq->used_addr);
		state_put_u16(sb, vq->last_avail);
		state_put_u16(sb, vq->used_idx);
		state_put_u16(sb, vq->signalled_used);
		if (vf->db)
			memcpy(&db, (const uint8_t *)vf->db + i * HDNIC_DB_STRIDE, 2);
		state_put_u16(sb, db);
	}
	for (unsigned i = 0; i < 11; i++)
		state_put_u64(sb, *stat_field(&vf->stats, i));
	state_end_section(sb, mark);
	return state_ok(sb) ? 0 : -ENOMEM;
}

static int parse(struct state_buf *sb, struct vf_saved *s)
{
	uint32_t tag = state_get_u32(sb), len = state_get_u32(sb);
	size_t start = sb->pos;

	if (!state_ok(sb) || tag != VF_STATE_TAG || len > sb->len - sb->pos)
		return -EINVAL;
	if (state_get_u32(sb) != VF_STATE_VERSION)
		return -EINVAL;
	state_get_bytes(sb, s->mac, 6);
	state_get_bytes(sb, s->cfg, VF_CFG_SIZE);
	for (unsigned i = 0; i < HDNIC_MSIX_VECTORS; i++) {
		s->msix[i].addr_lo = state_get_u32(sb);
		s->msix[i].addr_hi = state_get_u32(sb);
		s->msix[i].data = state_get_u32(sb);
		s->msix[i].ctrl = state_get_u32(sb);
	}
	s->pba = state_get_u32(sb);
	s->irq_masked = state_get_u8(sb);
	s->dfselect = state_get_u32(sb);
	s->gfselect = state_get_u32(sb);
	s->driver_features = state_get_u64(sb);
	s->msix_config = state_get_u16(sb);
	s->queue_select = state_get_u16(sb);
	s->status = state_get_u8(sb);
	s->config_generation = state_get_u8(sb);
	s->isr = state_get_u8(sb);
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		struct vf_saved_queue *q = &s->q[i];

		q->size = state_get_u16(sb);
		q->msix_vector = state_get_u16(sb);
		q->enabled = state_get_u8(sb);
		q->attached = state_get_u8(sb);
		q->signalled_valid = state_get_u8(sb);
		q->desc = state_get_u64(sb);
		q->avail = state_get_u64(sb);
		q->used = state_get_u64(sb);
		q->last_avail = state_get_u16(sb);
		q->used_idx = state_get_u16(sb);
		q->signalled_used = state_get_u16(sb);
		s->doorbell[i] = state_get_u16(sb);
	}
	for (unsigned i = 0; i < 11; i++)
		s->counters[i] = state_get_u64(sb);
	if (!state_ok(sb) || sb->pos - start != len)
		return -EINVAL;
	return 0;
}

static bool vector_ok(uint16_t v)
{
	return v < HDNIC_MSIX_VECTORS || v == VIRTQ_NO_VECTOR;
}

static int validate(const struct vf_saved *s)
{
	if (mac_is_multicast(s->mac) || mac_is_zero(s->mac))
		return -EINVAL;
	if (s->pba >> HDNIC_MSIX_VECTORS || s->irq_masked >> HDNIC_MSIX_VECTORS)
		return -EINVAL;
	if (s->driver_features & ~VF_FEATURES || !vector_ok(s->msix_config))
		return -EINVAL;
	if (s->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		return -EINVAL;
	if ((s->status & VST_DRIVER_OK) && !(s->status & VST_FEATURES_OK))
		return -EINVAL;
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		const struct vf_saved_queue *q = &s->q[i];

		if (!q->size || q->size > HDNIC_QUEUE_MAX_SIZE || (q->size & (q->size - 1)))
			return -EINVAL;
		if (!vector_ok(q->msix_vector) || q->enabled > 1 || q->attached > 1 ||
		    q->signalled_valid > 1)
			return -EINVAL;
		if (q->attached && (!q->enabled || !(s->status & VST_DRIVER_OK)))
			return -EINVAL;
		/* The device can never have used more than the driver made available. */
		if ((uint16_t)(q->last_avail - q->used_idx) > q->size)
			return -EINVAL;
	}
	return 0;
}

int vf_load(struct vf *vf, struct state_buf *sb)
{
	struct vf_saved s;
	struct virtq vq[HDNIC_NUM_QUEUES];
	struct virtio_net_state *vn = &vf->vn;
	bool ev;
	int err;

	if (vf->running)
		return -EBUSY;		/* pause first */
	memset(&s, 0, sizeof(s));
	err = parse(sb, &s);
	if (!err)
		err = validate(&s);
	if (err)
		return err;
	ev = s.driver_features & VF_F_EVENT_IDX;
	/* Resolve the rings against the current DMA map before touching the VF. */
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		const struct vf_saved_queue *q = &s.q[i];

		virtq_reset(&vq[i]);
		vq[i].size = q->size;
		vq[i].msix_vector = q->msix_vector;
		vq[i].enabled = q->enabled;
		vq[i].desc_addr = q->desc;
		vq[i].avail_addr = q->avail;
		vq[i].used_addr = q->used;
		if (q->attached) {
			err = virtq_attach(&vq[i], &vf->dma, ev, i == HDNIC_QUEUE_RX);
			if (err)
				return err;
			vq[i].last_avail = q->last_avail;
			vq[i].used_idx = q->used_idx;
			vq[i].signalled_used = q->signalled_used;
			vq[i].signalled_valid = q->signalled_valid;
		}
	}
	if (memcmp(s.mac, vf->mac, 6)) {
		err = nic_set_vf_mac(vf->nic, vf->index, s.mac, NULL, 0);
		if (err)
			return err;
	}
	/* Commit. */
	memcpy(vf->cfg, s.cfg, VF_CFG_SIZE);
	for (unsigned i = 0; i < HDNIC_MSIX_VECTORS; i++) {
		vf->msix[i] = s.msix[i];
		vf->irq_masked[i] = s.irq_masked >> i & 1;
	}
	vf->msix_pba = s.pba;
	vn->dfselect = s.dfselect;
	vn->gfselect = s.gfselect;
	vn->driver_features = s.driver_features;
	vn->msix_config = s.msix_config;
	vn->queue_select = s.queue_select;
	vn->status = s.status;
	vn->config_generation = s.config_generation;
	vn->isr = s.isr;
	memcpy(vn->vq, vq, sizeof(vq));
	if (vf->db)
		for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++)
			memcpy((uint8_t *)vf->db + i * HDNIC_DB_STRIDE, &s.doorbell[i], 2);
	for (unsigned i = 0; i < 11; i++)
		*stat_field(&vf->stats, i) = s.counters[i];
	vf_update_running(vf);
	return 0;
}
