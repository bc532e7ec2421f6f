// SPDX-License-Identifier: MIT
/*
 * Receive flow control: frames wait for a full RX ring instead of being
 * dropped after hdnic paid to read them (see rx_wait.h for the rules).
 */
#include "devices/hdnic/rx_wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

struct rxw_frame {
	struct rxw_frame *next;
	uint64_t t_ns;		/* arrival */
	uint32_t len;
	uint8_t data[];
};

/* RX notifications on while frames wait (a kick ends the wait), off after. */
static void rx_notify(struct vdev *vd, bool enable)
{
	sigjmp_buf jb, *prev;

	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return;
	}
	for (unsigned k = 0; k < vd->nr_qps; k++)
		if (vd->qps[k]->vq[QP_RX].attached)
			vq_set_notify(&vd->qps[k]->vq[QP_RX], enable);
	DMA_UNGUARD(prev);
}

void rxw_update_block(struct nic *nic)
{
	bool blocked = nic->rxw_list != NULL;

	/* Nothing can be delivered when every running function waits. */
	for (unsigned i = 0; i < nic->nr_devs && blocked; i++) {
		struct vdev *vd = nic->devs[i];

		if (vd->running && !vd->rxw.listed)
			blocked = false;
	}
	if (nic->uplink)
		uplink_rx_pause(nic->uplink, blocked);
}

static void list_add(struct vdev *vd)
{
	struct nic *nic = vd->nic;

	vd->rxw.listed = true;
	vd->rxw.next = nic->rxw_list;
	nic->rxw_list = vd;
	if (vd->running)
		rx_notify(vd, true);
	rxw_update_block(nic);
}

static void list_del(struct vdev *vd)
{
	struct nic *nic = vd->nic;

	for (struct vdev **link = &nic->rxw_list; *link; link = &(*link)->rxw.next) {
		if (*link == vd) {
			*link = vd->rxw.next;
			break;
		}
	}
	vd->rxw.listed = false;
	vd->rxw.next = NULL;
	if (vd->running)
		rx_notify(vd, false);
	rxw_update_block(nic);
}

static void pop_free(struct vdev *vd)
{
	struct rxw_frame *f = vd->rxw.head;

	vd->rxw.head = f->next;
	if (!vd->rxw.head)
		vd->rxw.tail = NULL;
	vd->rxw.nr--;
	free(f);
}

static void drop_head(struct vdev *vd)
{
	if (vd->dev.paused) {
		vd->stats.rx_stopped++;		/* quiesced: as if it had just arrived */
	} else {
		vd->stats.rx_wait_drops++;
		vd->stats.rx_drops++;
	}
	pop_free(vd);
}

void rxw_enqueue(struct vdev *vd, const uint8_t *frame, uint32_t len)
{
	struct rxw_frame *f;

	if (vd->rxw.nr >= vd->nic->rxw_max || !(f = malloc(sizeof(*f) + len))) {
		vd->stats.rx_wait_drops++;	/* the wait queue's count bound */
		vd->stats.rx_drops++;
		return;
	}
	f->next = NULL;
	f->t_ns = vd->nic->now_ns;
	f->len = len;
	memcpy(f->data, frame, len);
	if (vd->rxw.tail)
		vd->rxw.tail->next = f;
	else
		vd->rxw.head = f;
	vd->rxw.tail = f;
	vd->rxw.nr++;
	vd->stats.rx_waited++;
	if (!vd->rxw.listed)
		list_add(vd);
}

/* Deliver waiting frames in order while the rings take them; drop the expired. */
static void drain(struct vdev *vd, uint64_t now_ns)
{
	struct nic *nic = vd->nic;
	sigjmp_buf jb, *prev;

	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(vd, "DMA memory vanished under the device");
		return;		/* not running any more: the next pass drops the rest */
	}
	while (vd->rxw.head) {
		struct rxw_frame *f = vd->rxw.head;
		struct qp *qp;
		int r;

		if (!vd->running || now_ns - f->t_ns > nic->rxw_ns) {
			drop_head(vd);
			continue;
		}
		qp = vdev_rx_steer(vd, f->data, f->len);
		r = qp->vq[QP_RX].attached ? vdev_rx_put(vd, qp, f->data, f->len) : -ENODEV;
		if (r == -EAGAIN)
			break;		/* still full: the older frames stay first */
		if (r == -ENODEV) {
			vd->stats.rx_drops++;
			vd->stats.rx_wait_drops++;
		}
		vd->rxw.stuck = false;
		pop_free(vd);	/* delivered, or the ring broke (the rest drop: not running) */
	}
	DMA_UNGUARD(prev);
}

void rxw_service(struct nic *nic)
{
	struct vdev *vd = nic->rxw_list, *next;

	for (; vd; vd = next) {
		next = vd->rxw.next;
		drain(vd, nic->now_ns);
		if (!vd->rxw.head)
			list_del(vd);
	}
}

void rxw_kick(struct vdev *vd)
{
	if (!vd->rxw.listed)
		return;
	drain(vd, vd->nic->now_ns);
	if (!vd->rxw.head)
		list_del(vd);
}

void rxw_forget(struct vdev *vd)
{
	while (vd->rxw.head)
		drop_head(vd);
	vd->rxw.stuck = false;
	vd->tx_wait_since = 0;
	if (vd->rxw.listed)
		list_del(vd);
}

void rxw_release(struct vdev *vd)
{
	while (vd->rxw.head)
		pop_free(vd);
}

/* Has rcv a buffer for this frame right now (and nothing waiting before it)? */
static bool has_room(struct vdev *rcv, const uint8_t *frame, uint32_t len)
{
	sigjmp_buf jb, *prev;
	struct vq *vq;
	bool room;

	if (rcv->rxw.head)
		return false;
	vq = &vdev_rx_steer(rcv, frame, len)->vq[QP_RX];
	if (!vq->attached)
		return true;	/* delivery counts it as a drop, as before */
	DMA_GUARD_ARM(jb, prev);
	if (sigsetjmp(jb, 0)) {
		DMA_UNGUARD(prev);
		vdev_needs_reset(rcv, "DMA memory vanished under the device");
		return true;	/* not running any more: delivery drops it */
	}
	room = vq->avail_ahead || vq_pending(vq) != 0;	/* -ERANGE: let delivery report it */
	DMA_UNGUARD(prev);
	return room;
}

enum rxw_verdict rxw_switch_admit(struct vdev *src, struct vdev *rcv, const uint8_t *frame,
				  uint32_t len)
{
	struct nic *nic = src->nic;

	if (!rcv->running || has_room(rcv, frame, len)) {
		rcv->rxw.stuck = false;
		return RXW_SEND;
	}
	if (!rcv->rxw.stuck) {
		if (!src->tx_wait_since) {
			src->tx_wait_since = nic->now_ns ? nic->now_ns : 1;
			rcv->stats.rx_waited++;	/* the sender polls for rcv's refill */
			return RXW_WAIT;
		}
		if (nic->now_ns - src->tx_wait_since <= nic->rxw_ns)
			return RXW_WAIT;
		rcv->rxw.stuck = true;	/* from now on its frames do not hold anyone up */
	}
	rcv->stats.rx_wait_drops++;
	rcv->stats.rx_drops++;
	return RXW_DROP;
}

void rxw_switch_done(struct vdev *src)
{
	src->tx_wait_since = 0;
}
