// SPDX-License-Identifier: MIT
/*
 * Output commit on a function (ReNIC): the owner's side of its hold queue
 * (holdq.c).  What the function sends leaves through the switch once its
 * epoch is committed; the client drives epochs through the vendor device
 * feature (vfu_feature.c, ABI in hdnic_vf_abi.h) or `hdnic ctl egress`.
 * A full hold queue stops the function's TX (its frames wait in the
 * guest's ring, completions withheld) until a commit makes room; committed
 * frames wait for the uplink's transmit buffers, and nic_pass() continues
 * their release.
 */
#include <errno.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vdev.h"

_Static_assert(HOLDQ_MAX_FRAMES == HDNIC_OUTPUT_MAX_FRAMES, "hold queue limit is ABI");
_Static_assert(HOLDQ_DEFAULT_FRAMES == HDNIC_OUTPUT_DEFAULT_FRAMES, "hold queue default is ABI");
_Static_assert((int)HOLDQ_OP_START == HDNIC_OUTPUT_START &&
	       (int)HOLDQ_OP_EPOCH == HDNIC_OUTPUT_EPOCH &&
	       (int)HOLDQ_OP_COMMIT == HDNIC_OUTPUT_COMMIT &&
	       (int)HOLDQ_OP_STOP == HDNIC_OUTPUT_STOP &&
	       (int)HOLDQ_OP_DISCARD == HDNIC_OUTPUT_DISCARD, "the feature's ops are the hold queue's");

static void egress(void *ctx, const uint8_t *frame, size_t len)
{
	struct vdev *vd = ctx;

	nic_forward_from_vdev(vd->nic, vd, frame, (uint32_t)len);
}

static bool egress_ready(void *ctx)
{
	struct vdev *vd = ctx;

	return uplink_tx_room(vd->nic->uplink);
}

const struct holdq_ops vdev_holdq_ops = {
	.output = egress,
	.ready = egress_ready,
};

bool vdev_output_room(struct vdev *vd)
{
	if (holdq_room(&vd->holdq, HDNIC_MAX_FRAME))
		return true;
	if (!vd->tx_blocked) {
		vd->tx_blocked = true;
		vd->stats.tx_held_full++;
	}
	return false;
}

/* After frames left or were thrown away: TX may go on, the rest waits for the uplink. */
static void output_moved(struct vdev *vd)
{
	if (holdq_releasable(&vd->holdq))
		vd->nic->output_waiting = true;
	if (vd->tx_blocked && holdq_room(&vd->holdq, HDNIC_MAX_FRAME)) {
		vd->tx_blocked = false;
		vdev_start_polling(vd);
	}
}

int vdev_output_control(struct vdev *vd, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	int err = holdq_control(&vd->holdq, op, epoch, max_frames);

	output_moved(vd);
	return err;
}

void vdev_output_status(const struct vdev *vd, struct hdnic_output_status *st)
{
	const struct holdq *q = &vd->holdq;

	*st = (struct hdnic_output_status){
		.holding = q->holding,
		.max_frames = q->cap,
		.epoch = q->epoch,
		.committed = q->holding ? q->open_from - 1 : q->epoch,
		.held = q->count,
		.held_bytes = q->held_bytes,
		.held_total = q->stats.held,
		.released = q->stats.released,
		.discarded = q->stats.discarded,
		.tx_blocked = vd->stats.tx_held_full,
	};
}

void vdev_output_client_gone(struct vdev *vd)
{
	/* Its checkpoints died with it: what they did not commit never leaves. */
	holdq_discard(&vd->holdq);
	holdq_pass(&vd->holdq);
	output_moved(vd);
}

void nic_output_release(struct nic *nic)
{
	nic->output_waiting = false;
	for (unsigned i = 0; i < nic->nr_devs; i++) {
		struct vdev *vd = nic->devs[i];

		if (holdq_releasable(&vd->holdq)) {
			holdq_release(&vd->holdq);
			output_moved(vd);
		}
	}
}
