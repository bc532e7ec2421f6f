// SPDX-License-Identifier: MIT
/*
 * The queue pairs' packet engine.  TX: the scheduler (sched.c) asks a
 * function for its next frame; the function takes it from its queue pairs
 * in turn, DMAing through each queue pair's PASID, and the scheduler either
 * sends it or puts it back to wait.  While a function is active hdnic polls
 * its TX doorbells with notifications suppressed; after the idle time with
 * nothing to do it re-enables notifications, rechecks the rings and sleeps
 * until a notify.  RX: a frame from the switch is policed (the ingress
 * rate), steered to a queue pair and copied into its next RX chain; used
 * ring updates and interrupts are batched to the end of the loop pass.
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/rx_wait.h"
#include "devices/hdnic/switch.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdev.h"
#include "vmm/compiler.h"
#include "vmm/util.h"

#define TX_JUNK_MAX	64	/* unsendable frames completed per peek */

static const char *ring_error(int err)
{
	if (err == -EFAULT)
		return "buffer outside its PASID's address space";
	return vq_strerror(err);
}

/* A ring error on qp: refused DMA is counted, and the function needs a reset. */
static void ring_broken(struct vdev *vd, struct qp *qp, const char *what, int err)
{
	if (err == -EFAULT) {
		qp_dma_fault(qp);
		vd->stats.dma_faults++;
	}
	vdev_needs_reset(vd, "queue pair %u %s: %s", qp->index, what, ring_error(err));
}

/* Single-threaded; TX and RX apart because a TX frame can land in an RX ring. */
static struct vq_chain tx_chain, rx_chain;
/*
 * The frame tx_peek() took: copied out of the guest's buffer whole, its used
 * entry written (not yet published), so sending it touches no guest memory
 * and needs no DMA guard of its own.
 */
static uint8_t tx_buf[HDNIC_NET_HDR_LEN + HDNIC_MAX_FRAME];

/* Copy up to cap bytes of a readable chain into buf. */
static void gather(const struct vq_chain *c, uint8_t *buf, uint32_t cap)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->nr && done < cap; i++) {
		uint32_t n = MIN(c->iov[i].len, cap - done);

		if (n)		/* an empty descriptor has no address */
			memcpy(buf + done, c->iov[i].base, n);
		done += n;
	}
}

/* Complete a TX chain without sending it. */
static void tx_complete(struct qp *qp, uint16_t head)
{
	vq_push(&qp->vq[QP_TX], head, 0);
	qp->tx_pushed = true;
}

/* Why a frame can never leave, or NULL: size, source address, destination. */
static const char *tx_refuse(struct vdev *vd, const uint8_t *frame, int port)
{
	const uint8_t *src = frame + 6;

	if (mac_is_multicast(src) || (!vd->trusted && memcmp(src, vd->mac, 6))) {
		vd->stats.tx_spoofed++;
		vd->nic->sw.stats.spoof_drops++;
		return "spoofed";
	}
	if (port < 0) {
		vd->nic->sw.stats.loop_drops++;
		return "hairpin";
	}
	return NULL;
}

static int tx_peek(struct vdev *vd, struct tx_frame *f)
{
	unsigned junk = 0;

	for (unsigned looked = 0; looked < vd->nr_qps;) {
		struct qp *qp = vd->qps[vd->tx_rr % vd->nr_qps];
		uint32_t len;
		uint16_t db;
		int r, port;

		if (!qp_tx_pending(qp)) {
			vd->tx_rr++;
			looked++;
			continue;
		}
		db = qp_tx_doorbell(qp);
		smp_rmb();	/* doorbell before the ring */
		r = dma_vq_pop(&qp->vq[QP_TX], qp_dma_space(qp), &tx_chain);
		if (r < 0) {
			ring_broken(vd, qp, "TX", r);
			return r;
		}
		if (!r) {	/* dry: wait for the next doorbell store or kick */
			qp->tx_kicked = false;
			qp->tx_db_seen = db;
			vd->tx_rr++;
			looked++;
			continue;
		}
		if (tx_chain.total < HDNIC_NET_HDR_LEN + HDNIC_MIN_FRAME ||
		    tx_chain.total > HDNIC_NET_HDR_LEN + HDNIC_MAX_FRAME) {
			vd->stats.tx_errors++;
			tx_complete(qp, tx_chain.head);
		} else {
			len = (uint32_t)tx_chain.total;
			gather(&tx_chain, tx_buf, len);
			/* Held frames too: QoS applies when the device transmits. */
			port = nic_tx_port(vd->nic, vd, tx_buf + HDNIC_NET_HDR_LEN);
			if (!tx_refuse(vd, tx_buf + HDNIC_NET_HDR_LEN, port)) {
				vq_push(&qp->vq[QP_TX], tx_chain.head, 0);
				f->qp = qp;
				f->len = len - HDNIC_NET_HDR_LEN;
				f->port = (unsigned)port;
				return 1;
			}
			vd->stats.tx_drops++;
			tx_complete(qp, tx_chain.head);
		}
		if (++junk >= TX_JUNK_MAX) {
			qp->tx_kicked = true;	/* more to look at next time */
			return 0;
		}
	}
	return 0;
}

int vdev_tx_peek(struct vdev *vd, struct tx_frame *f)
{
	sigjmp_buf jb, *prev;
	int r;

	if (!vd->running)
		return -ENODEV;
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return -EFAULT;
	}
	r = tx_peek(vd, f);
	DMA_UNGUARD(prev);
	return r;
}

void vdev_tx_putback(struct tx_frame *f)
{
	/* Nothing of it was published: the used entry and the chain go back. */
	vq_unpush(&f->qp->vq[QP_TX]);
	vq_unpop(&f->qp->vq[QP_TX]);
}

void vdev_tx_send(struct vdev *vd, struct tx_frame *f)
{
	const uint8_t *frame = tx_buf + HDNIC_NET_HDR_LEN;

	/* The guest's buffer is already copied and its used entry written. */
	f->qp->tx_pushed = true;
	/* A trusted function may send as other stations: they live behind it. */
	if (vd->trusted && memcmp(frame + 6, vd->mac, 6))
		sw_learn(&vd->nic->sw, frame + 6, vd->port, vd->nic->now_ns);
	vd->stats.tx_packets++;
	vd->stats.tx_bytes += f->len;
	vd->tx_rr++;
	if (holdq_submit(&vd->holdq, frame, f->len))
		vd->stats.tx_drops++;	/* not reached: room was asked for before the peek */
}

/* Make the used entries of one queue visible and interrupt if the driver asked. */
static void publish_used(struct vdev *vd, struct qp *qp, int dir)
{
	struct vq *vq = &qp->vq[dir];

	if (!vq->attached)
		return;
	vq_publish(vq);
	if (dir == QP_TX && vd->polling)
		vq_set_notify(vq, false);	/* keep avail_event ahead */
	/* the slow path cannot see the driver's used_event in time: never suppress */
	if (vq_should_interrupt(vq) || vd->as.slow) {
		vd->vn.isr |= VIRTIO_ISR_QUEUE;
		qp_raise(qp, dir);
	}
}

/* Publish every queue pair's pending used entries in one direction (under a DMA guard). */
static void publish_pushed(struct vdev *vd, unsigned dir)
{
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];
		bool *pushed = dir == QP_TX ? &qp->tx_pushed : &qp->rx_pushed;

		if (!*pushed)
			continue;
		*pushed = false;
		publish_used(vd, qp, dir);
	}
}

void vdev_tx_done(struct vdev *vd)
{
	sigjmp_buf jb, *prev;

	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return;
	}
	publish_pushed(vd, QP_TX);
	DMA_UNGUARD(prev);
}

bool vdev_tx_pending(const struct vdev *vd)
{
	for (unsigned k = 0; k < vd->nr_qps; k++)
		if (qp_tx_pending(vd->qps[k]))
			return true;
	return false;
}

/* Notifications on (enable) or off for every attached TX queue. */
static void tx_notify(struct vdev *vd, bool enable)
{
	for (unsigned k = 0; k < vd->nr_qps; k++)
		if (vd->qps[k]->vq[QP_TX].attached)
			vq_set_notify(&vd->qps[k]->vq[QP_TX], enable);
}

/* Notifications back on, then look again: entries pending, or a ring error. */
static int tx_rearm(struct vdev *vd, struct qp **broken)
{
	tx_notify(vd, true);
	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];
		int pending;

		if (!qp->vq[QP_TX].attached)
			continue;
		pending = vq_pending(&qp->vq[QP_TX]);
		if (pending) {
			*broken = qp;
			return pending;
		}
	}
	return 0;
}

void vdev_try_idle(struct vdev *vd, uint64_t now_ns)
{
	struct qp *qp = NULL;
	sigjmp_buf jb, *prev;
	int pending;

	if (now_ns - vd->last_work_ns < vd->nic->idle_ns)
		return;
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return;
	}
	/* Ask for notifications, then recheck: closes the lost-wakeup race. */
	pending = tx_rearm(vd, &qp);
	if (pending > 0) {
		tx_notify(vd, false);
		vd->last_work_ns = now_ns;
	}
	DMA_UNGUARD(prev);
	if (pending < 0) {
		ring_broken(vd, qp, "TX", pending);
	} else if (!pending) {
		vdev_stop_polling(vd);
		vd->nic->sleeps++;
	}
}

void vdev_kick(struct vdev *vd, unsigned queue)
{
	if (vd->dev.paused)
		return;		/* quiesced: every ring is looked at again on RUNNING */
	vd->stats.kicks++;
	if (!vd->running)
		return;
	if (vd->as.slow)
		dma_slow_kick(vd->as.slow, queue);	/* the rings first, then the same */
	else
		vdev_kick_now(vd, queue);
}

void vdev_kick_now(struct vdev *vd, unsigned queue)
{
	struct qp *qp;
	int dir;

	if (!vd->running)
		return;
	if ((int)queue == vdev_ctrlq_index(vd)) {
		vdev_ctrlq_kick(vd);
		return;
	}
	dir = vdev_queue_qp(vd, queue, &qp);
	if (dir == QP_RX)
		rxw_kick(vd);	/* a refill: frames waiting for it go now */
	if (dir != QP_TX)
		return;
	qp->tx_kicked = true;
	vdev_start_polling(vd);
}

void vdev_start_polling(struct vdev *vd)
{
	sigjmp_buf jb, *prev;

	if (vd->polling || !vd->running)
		return;
	vd->polling = true;
	vd->last_work_ns = vd->nic->now_ns;
	for (unsigned k = 0; k < vd->nr_qps; k++)
		vd->qps[k]->tx_kicked = true;	/* look once whatever the doorbell says */
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		for (unsigned k = 0; k < vd->nr_qps; k++)
			vd->qps[k]->tx_kicked = false;	/* the next ring access reports it */
	} else {
		tx_notify(vd, false);
		DMA_UNGUARD(prev);
	}
	sched_add(&vd->nic->sched, &vd->sched);
}

void vdev_stop_polling(struct vdev *vd)
{
	if (!vd->polling)
		return;
	vd->polling = false;
	sched_remove(&vd->nic->sched, &vd->sched);
}

/* ---- the scheduler's side of a function (sched_ops) ---- */

/*
 * Lossless function-to-function switching: a unicast frame for a function
 * whose ring is full waits in the sender's TX ring (rx_wait.h); one that
 * waited too long is completed unsent and counted on both sides.
 */
static enum rxw_verdict switch_flow_control(struct vdev *vd, struct tx_frame *f)
{
	const uint8_t *frame = tx_buf + HDNIC_NET_HDR_LEN;
	struct nic *nic = vd->nic;
	struct vdev *rcv;
	enum rxw_verdict v;

	if (!nic->rx_fc || mac_is_multicast(frame))
		return RXW_SEND;
	rcv = nic_port(nic, sw_lookup(&nic->sw, frame, nic->now_ns));
	if (!rcv || rcv == vd)
		return RXW_SEND;
	v = rxw_switch_admit(vd, rcv, frame, f->len);
	if (v == RXW_DROP) {
		f->qp->tx_pushed = true;	/* its used entry is written: complete it */
		vd->tx_rr++;
		vd->stats.tx_drops++;
		rxw_switch_done(vd);
	}
	return v;
}

static enum sched_tx sched_transmit(struct sched *s, struct sched_entry *e, unsigned port)
{
	struct vdev *vd = container_of(e, struct vdev, sched);
	struct tx_frame f;
	bool room;
	int r;

again:
	if (!vdev_output_room(vd)) {
		/* Hold queue full: frames wait in the ring, completions withheld. */
		vdev_tx_done(vd);
		vdev_stop_polling(vd);
		return SCHED_TX_GONE;
	}
	r = vdev_tx_peek(vd, &f);
	if (r < 0)
		return SCHED_TX_GONE;
	if (!r)
		return SCHED_TX_EMPTY;
	vd->last_work_ns = vd->nic->now_ns;
	if (f.port == SCHED_PORT_SWITCH && s->turn_port == SCHED_PORT_SWITCH) {
		switch (switch_flow_control(vd, &f)) {
		case RXW_WAIT:		/* the receiver's ring is full: wait in ours */
			vdev_tx_putback(&f);
			return SCHED_TX_WAIT;
		case RXW_DROP:
			goto again;
		case RXW_SEND:
			break;
		}
	}
	room = f.port != SCHED_PORT_UPLINK || uplink_tx_room(vd->nic->uplink);
	if (!sched_admit(s, e, f.port, f.len, room)) {
		vdev_tx_putback(&f);
		if (s->refusal == SCHED_REFUSED_THROTTLED)
			vd->stats.tx_throttled++;
		return SCHED_TX_WAIT;
	}
	rxw_switch_done(vd);
	vdev_tx_send(vd, &f);
	return SCHED_TX_SENT;
}

static void sched_turn_done(struct sched_entry *e)
{
	vdev_tx_done(container_of(e, struct vdev, sched));
}

static bool sched_pending(const struct sched_entry *e)
{
	return vdev_tx_pending(container_of(e, const struct vdev, sched));
}

static void sched_idle(struct sched_entry *e, uint64_t now_ns)
{
	vdev_try_idle(container_of(e, struct vdev, sched), now_ns);
}

const struct sched_ops vdev_sched_ops = {
	.transmit = sched_transmit,
	.turn_done = sched_turn_done,
	.pending = sched_pending,
	.idle = sched_idle,
};

/* ---- RX ---- */

/* FNV-1a over a byte range, continuing from h. */
static uint32_t fnv(uint32_t h, const uint8_t *p, uint32_t n)
{
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* Multi-queue: spread flows over the enabled pairs (MACs, IPv4 addresses, L4 ports). */
struct qp *vdev_rx_steer(struct vdev *vd, const uint8_t *frame, uint32_t len)
{
	unsigned pairs = vd->vn.driver_features & VF_F_MQ ? vd->vn.active_pairs : 1;
	uint32_t h;

	if (pairs <= 1)
		return vd->qps[0];
	h = fnv(2166136261u, frame, 12);
	if (len >= 34 && frame[12] == 0x08 && frame[13] == 0x00) {
		uint32_t l4 = 14 + (frame[14] & 0xfu) * 4;

		h = fnv(h, frame + 26, 8);
		if ((frame[23] == 6 || frame[23] == 17) && len >= l4 + 4)
			h = fnv(h, frame + l4, 4);
	}
	return vd->qps[h % pairs];
}

int vdev_rx_put(struct vdev *vd, struct qp *qp, const uint8_t *frame, uint32_t len)
{
	struct vq *vq = &qp->vq[QP_RX];
	/* virtio_net_hdr_v1: no offloads, num_buffers = 1 */
	uint8_t hdr[HDNIC_NET_HDR_LEN] = { [10] = 1 };
	const uint8_t *src[2] = { hdr, frame };
	uint32_t src_len[2] = { sizeof(hdr), len };
	struct dma_space *as = qp_dma_space(qp);
	unsigned s = 0, i = 0;
	uint32_t s_off = 0, d_off = 0;
	int r;

	r = dma_vq_pop(vq, as, &rx_chain);
	if (r < 0) {
		ring_broken(vd, qp, "RX", r);
		return r;
	}
	if (!r)
		return -EAGAIN;	/* no buffer posted */
	if (rx_chain.total < sizeof(hdr) + (uint64_t)len) {
		/* Too small for the frame: give the buffer back empty. */
		vd->stats.rx_errors++;
		vq_push(vq, rx_chain.head, 0);
		qp->rx_pushed = true;
		nic_irq_pending(vd->nic, vd);
		return 0;
	}
	while (s < 2) {
		uint32_t n = MIN(src_len[s] - s_off, rx_chain.iov[i].len - d_off);

		if (n) {
			memcpy(rx_chain.iov[i].base + d_off, src[s] + s_off, n);
			dma_written(as, rx_chain.iov[i].addr + d_off, n);
		}
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
	vq_push(vq, rx_chain.head, sizeof(hdr) + len);
	vd->stats.rx_packets++;
	vd->stats.rx_bytes += len;
	qp->rx_pushed = true;
	nic_irq_pending(vd->nic, vd);
	return 0;
}

void vdev_rx_deliver(struct vdev *vd, const uint8_t *frame, uint32_t len)
{
	struct token_bucket *police = &vd->sched.rx;
	sigjmp_buf jb, *prev;
	struct qp *qp;

	if (!vd->running) {
		if (vd->dev.paused)
			vd->stats.rx_stopped++;	/* quiesced: no DMA, nothing else moves */
		else if (vd->vn.status & VST_DRIVER_OK)
			vd->stats.rx_drops++;	/* broken: link is down */
		return;
	}
	/* The driver's receive filter: what it did not ask for never costs a DMA. */
	if (!vdev_rx_wanted(vd, frame)) {
		vd->stats.rx_filtered++;
		return;
	}
	/* Ingress policing at the device: the excess never costs a DMA. */
	if (police->rate) {
		if (!tb_conform(police, len, now_ns())) {
			vd->stats.rx_policed++;
			vd->stats.rx_drops++;
			return;
		}
		tb_charge(police, len);
	}
	qp = vdev_rx_steer(vd, frame, len);
	if (!qp->vq[QP_RX].attached) {
		vd->stats.rx_drops++;
		return;
	}
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return;
	}
	/* Flow control: a full ring (or frames waiting before this one) makes it wait. */
	if (vd->rxw.head && vd->nic->rx_fc)
		rxw_enqueue(vd, frame, len);
	else if (vdev_rx_put(vd, qp, frame, len) == -EAGAIN) {
		if (vd->nic->rx_fc)
			rxw_enqueue(vd, frame, len);
		else
			vd->stats.rx_drops++;	/* no buffer posted: the wire drops it */
	}
	DMA_UNGUARD(prev);
}

void vdev_flush(struct vdev *vd)
{
	sigjmp_buf jb, *prev;

	if (vd->dev.paused)
		return;		/* quiesced: nothing was pushed, interrupts wait */
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		for (unsigned k = 0; k < vd->nr_qps; k++)
			vd->qps[k]->rx_pushed = false;
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		vdev_flush_irqs(vd);
		return;
	}
	publish_pushed(vd, QP_RX);
	DMA_UNGUARD(prev);
	vdev_flush_irqs(vd);
}

void vdev_dma_changed(struct vdev *vd)
{
	struct dma_space *fn_space = iommu_space(&vd->nic->iommu, vd->pasid);

	if (vd->as.slow)
		dma_slow_map_changed(vd->as.slow);

	for (unsigned k = 0; k < vd->nr_qps; k++) {
		struct qp *qp = vd->qps[k];

		for (unsigned q = 0; q < QP_NR_QUEUES; q++) {
			if (dma_vq_revalidate(&qp->vq[q], qp_dma_space(qp))) {
				vdev_needs_reset(vd, "queue pair %u rings were unmapped", qp->index);
				return;
			}
		}
	}
	if (dma_vq_revalidate(&vd->vn.ctrlq, fn_space))
		vdev_needs_reset(vd, "control queue rings were unmapped");
}
