// SPDX-License-Identifier: MIT
/*
 * The VF's packet path.  TX: while the VF is active the NIC polls its
 * doorbell page each loop pass with notifications suppressed, pops chains,
 * strips the virtio-net header and hands frames to the egress hold queue.
 * After HDNIC idle time with no work the VF re-enables notifications,
 * rechecks the ring and sleeps until its ioeventfd fires.  RX: frames from
 * the switch are copied into the next RX chain; used-ring updates and
 * interrupts are batched to the end of the loop pass (vf_flush_rx).
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vf.h"
#include "devices/hdnic/switch.h"
#include "vmm/util.h"

#define TX_BURST	64

static const char *ring_error(int err)
{
	switch (err) {
	case -EFAULT:	return "buffer outside the DMA map";
	case -ELOOP:	return "descriptor chain loops";
	case -ERANGE:	return "avail index more than a queue ahead";
	case -EINVAL:	return "bad descriptor index or flags";
	default:	return strerror(-err);
	}
}

/* Single-threaded; TX and RX apart because a TX frame can land in an RX ring. */
static struct virtq_chain tx_chain, rx_chain;

static uint16_t doorbell(const struct vf *vf, unsigned q)
{
	uint16_t v;

	if (!vf->db)
		return 0;
	memcpy(&v, (const uint8_t *)vf->db + q * HDNIC_DB_STRIDE + HDNIC_DB_SLOT_AVAIL_IDX,
	       sizeof(v));
	return v;
}

/* Copy a readable chain into buf; returns the chain's total length. */
static uint64_t gather(const struct virtq_chain *c, uint8_t *buf, uint32_t cap)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->nr && done < cap; i++) {
		uint32_t n = MIN(c->iov[i].len, cap - done);

		if (n)		/* an empty descriptor has no address */
			memcpy(buf + done, c->iov[i].base, n);
		done += n;
	}
	return c->total;
}

static void tx_one(struct vf *vf, const uint8_t *buf, uint64_t total)
{
	const uint8_t *frame = buf + HDNIC_NET_HDR_LEN;
	uint64_t len;

	if (total < HDNIC_NET_HDR_LEN + HDNIC_MIN_FRAME ||
	    total > HDNIC_NET_HDR_LEN + HDNIC_MAX_FRAME) {
		vf->stats.tx_errors++;
		return;
	}
	len = total - HDNIC_NET_HDR_LEN;
	/* Spoof check: a VF sends only from the MAC the PF gave it. */
	if (memcmp(frame + 6, vf->mac, 6)) {
		vf->stats.tx_drops++;
		vf->nic->sw.stats.spoof_drops++;
		return;
	}
	vf->stats.tx_packets++;
	vf->stats.tx_bytes += len;
	if (holdq_submit(&vf->holdq, frame, len))
		vf->stats.tx_drops++;
}

/* Process up to TX_BURST chains; returns how many, or -1 if the VF broke. */
static int tx_burst(struct vf *vf)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_TX];
	uint8_t buf[HDNIC_NET_HDR_LEN + HDNIC_MAX_FRAME];
	int n = 0;

	if (!vq->attached)
		return 0;
	while (n < TX_BURST) {
		int r = virtq_pop(vq, &vf->dma, &tx_chain);

		if (r < 0) {
			vf_needs_reset(vf, "TX queue: %s", ring_error(r));
			return -1;
		}
		if (!r)
			break;
		tx_one(vf, buf, gather(&tx_chain, buf, sizeof(buf)));
		virtq_push(vq, tx_chain.head, 0);
		n++;
		if (!vf->running)	/* a delivery broke us (hairpin) */
			break;
	}
	if (n && vq->attached) {
		virtq_publish(vq);
		if (virtq_should_interrupt(vq)) {
			vf->vn.isr |= VIRTIO_ISR_QUEUE;
			vf_raise(vf, vq->msix_vector);
		}
	}
	return n;
}

static void go_idle_or_stay(struct vf *vf, uint64_t now_ns)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_TX];
	int pending;

	if (now_ns - vf->last_work_ns < vf->nic->idle_ns)
		return;
	if (!vq->attached) {
		vf_stop_polling(vf);
		return;
	}
	/* Ask for notifications, then look again: closes the lost-wakeup race. */
	virtq_set_notify(vq, true);
	pending = virtq_avail_pending(vq);
	if (pending < 0) {
		vf_needs_reset(vf, "TX queue: %s", ring_error(pending));
		return;
	}
	if (pending) {
		virtq_set_notify(vq, false);
		vf->last_work_ns = now_ns;
		return;
	}
	vf_stop_polling(vf);
	vf->nic->sleeps++;
}

static int poll_tx(struct vf *vf, uint64_t now_ns)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_TX];
	int n = 0;

	if (vf->kicked || doorbell(vf, HDNIC_QUEUE_TX) != vq->last_avail) {
		vf->kicked = false;
		n = tx_burst(vf);
		if (n > 0) {
			vf->last_work_ns = now_ns;
			if (vq->attached)
				virtq_set_notify(vq, false);	/* keep avail_event ahead */
			if (n == TX_BURST)
				vf->kicked = true;	/* more may be waiting */
		}
	}
	if (n <= 0 && vf->polling)
		go_idle_or_stay(vf, now_ns);
	return n;
}

bool vf_poll(struct vf *vf, uint64_t now_ns)
{
	sigjmp_buf jb, *prev;
	int n;

	if (!vf->running) {
		vf_stop_polling(vf);
		return false;
	}
	/* The common case, nothing new and not yet idle, touches only our memory. */
	if (!vf->kicked && doorbell(vf, HDNIC_QUEUE_TX) == vf->vn.vq[HDNIC_QUEUE_TX].last_avail &&
	    now_ns - vf->last_work_ns < vf->nic->idle_ns)
		return false;
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vf_needs_reset(vf, "DMA memory vanished under the device");
		return false;
	}
	n = poll_tx(vf, now_ns);
	DMA_UNGUARD(prev);
	return n > 0;
}

void vf_kick(struct vf *vf, unsigned queue)
{
	vf->stats.kicks++;
	if (!vf->running || queue != HDNIC_QUEUE_TX)
		return;		/* RX refills are found when a frame arrives */
	vf->kicked = true;
	vf_start_polling(vf);
}

void vf_start_polling(struct vf *vf)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_TX];

	if (vf->polling || !vf->running)
		return;
	vf->polling = true;
	vf->kicked = true;	/* look at the ring once whatever the doorbell says */
	vf->last_work_ns = vf->nic->now_ns;
	if (vq->attached) {
		sigjmp_buf jb, *prev;

		DMA_GUARD_ARM(jb, prev);
		if (sigsetjmp(jb, 0)) {
			DMA_UNGUARD(prev);
			vf->kicked = false;
			return;		/* the next poll pass reports the fault */
		}
		virtq_set_notify(vq, false);
		DMA_UNGUARD(prev);
	}
	nic_poll_on(vf->nic, vf);
}

void vf_stop_polling(struct vf *vf)
{
	if (!vf->polling)
		return;
	vf->polling = false;
	nic_poll_off(vf->nic, vf);
}

/* ---- RX ---- */

static void rx_put(struct vf *vf, const uint8_t *frame, uint32_t len)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_RX];
	/* virtio_net_hdr_v1: no offloads, num_buffers = 1 */
	uint8_t hdr[HDNIC_NET_HDR_LEN] = { [10] = 1 };
	const uint8_t *src[2] = { hdr, frame };
	uint32_t src_len[2] = { sizeof(hdr), len };
	unsigned s = 0, i = 0;
	uint32_t s_off = 0, d_off = 0;
	int r;

	r = virtq_pop(vq, &vf->dma, &rx_chain);
	if (r < 0) {
		vf_needs_reset(vf, "RX queue: %s", ring_error(r));
		return;
	}
	if (!r) {
		vf->stats.rx_drops++;	/* no buffer posted: the wire drops it */
		return;
	}
	if (rx_chain.total < sizeof(hdr) + (uint64_t)len) {
		/* Too small for the frame: give the buffer back empty. */
		vf->stats.rx_errors++;
		virtq_push(vq, rx_chain.head, 0);
		vf->rx_unpublished = true;
		nic_irq_pending(vf->nic, vf);
		return;
	}
	while (s < 2) {
		uint32_t n = MIN(src_len[s] - s_off, rx_chain.iov[i].len - d_off);

		if (n)
			memcpy(rx_chain.iov[i].base + d_off, src[s] + s_off, n);
		s_off += n;
		d_off += n;
		if (s_off == src_len[s]) {
			s++;
			s_off = 0;
		}
		if (d_off == rx_chain.iov[i].len) {
			i++;
			d_off = 0;
		}
	}
	virtq_push(vq, rx_chain.head, sizeof(hdr) + len);
	vf->stats.rx_packets++;
	vf->stats.rx_bytes += len;
	vf->rx_unpublished = true;
	nic_irq_pending(vf->nic, vf);
}

void vf_rx_deliver(struct vf *vf, const uint8_t *frame, uint32_t len)
{
	sigjmp_buf jb, *prev;

	if (!vf->running) {
		if (vf->vn.status & VST_DRIVER_OK)
			vf->stats.rx_drops++;	/* paused or broken: link is down */
		return;
	}
	if (!vf->vn.vq[HDNIC_QUEUE_RX].attached) {
		vf->stats.rx_drops++;
		return;
	}
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vf_needs_reset(vf, "DMA memory vanished under the device");
		return;
	}
	rx_put(vf, frame, len);
	DMA_UNGUARD(prev);
}

void vf_flush(struct vf *vf)
{
	struct virtq *vq = &vf->vn.vq[HDNIC_QUEUE_RX];
	sigjmp_buf jb, *prev;

	if (vf->rx_unpublished && vq->attached) {
		DMA_GUARD_ARM(jb, prev);
		if (sigsetjmp(jb, 0)) {
			DMA_UNGUARD(prev);
			vf->rx_unpublished = false;
			vf_needs_reset(vf, "DMA memory vanished under the device");
			vf_flush_irqs(vf);
			return;
		}
		virtq_publish(vq);
		if (virtq_should_interrupt(vq)) {
			vf->vn.isr |= VIRTIO_ISR_QUEUE;
			vf_raise(vf, vq->msix_vector);
		}
		DMA_UNGUARD(prev);
	}
	vf->rx_unpublished = false;
	vf_flush_irqs(vf);
}

void vf_dma_changed(struct vf *vf)
{
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		int err = virtq_revalidate(&vf->vn.vq[i], &vf->dma);

		if (err) {
			vf_needs_reset(vf, "queue %u rings were unmapped", i);
			return;
		}
	}
}
