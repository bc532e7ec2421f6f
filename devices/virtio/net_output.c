// SPDX-License-Identifier: MIT
/*
 * Output commit on hdvm's paravirtual NIC: the same hold queue as hdnic's
 * functions (devices/holdq.c), so a checkpointed PV guest and a
 * checkpointed VF guest hold their output the same way.  The I/O thread
 * hands each TX frame here while holding: it is copied out of guest memory
 * and its chain completes at once; with no room the chain goes back on the
 * ring (completion withheld) and TX stops until a commit makes room.  The
 * checkpoint driver's thread calls virtio_net_output(); releases write to
 * the TAP from that thread, under the lock, in order.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/virtio/virtio_net_int.h"
#include "vmm/util.h"

#define NET_OUTPUT_MAX_FRAME	65536	/* a longer chain is counted as a TX error */

static void tap_out(void *ctx, const uint8_t *frame, size_t len)
{
	static const struct virtio_net_hdr_v1 hdr;	/* no offloads */
	struct virtio_net *n = ctx;
	struct iovec iov[2] = { { (void *)&hdr, NET_TAP_HDR_LEN }, { (void *)frame, len } };

	if (writev(n->tap.fd, iov, 2) < 0)
		atomic_fetch_add(&n->stats.tx_errors, 1);
}

static const struct holdq_ops tap_holdq_ops = { .output = tap_out };

void net_output_init(struct virtio_net *n)
{
	pthread_mutex_init(&n->out.lock, NULL);
	holdq_init(&n->out.q, &tap_holdq_ops, n);
}

void net_output_destroy(struct virtio_net *n)
{
	holdq_destroy(&n->out.q);
	free(n->out.buf);
	n->out.buf = NULL;
}

int net_output_take(struct virtio_net *n, const struct vq_chain *c)
{
	struct net_output *o = &n->out;
	uint32_t len = (uint32_t)(c->total - NET_TAP_HDR_LEN), skip = NET_TAP_HDR_LEN, done = 0;
	int ret = 1;

	pthread_mutex_lock(&o->lock);
	if (!o->q.holding && !o->q.count) {
		pthread_mutex_unlock(&o->lock);
		return 0;
	}
	if (c->total > NET_TAP_HDR_LEN + NET_OUTPUT_MAX_FRAME) {
		atomic_fetch_add(&n->stats.tx_errors, 1);
		goto out;		/* completed, never sent */
	}
	if (!holdq_room(&o->q, len)) {
		o->blocked = true;
		ret = -1;
		goto out;
	}
	if (!o->buf)
		o->buf = xzalloc(NET_OUTPUT_MAX_FRAME);
	for (unsigned i = 0; i < c->nr; i++) {
		uint32_t off = MIN(skip, c->iov[i].len);

		skip -= off;
		memcpy(o->buf + done, c->iov[i].base + off, c->iov[i].len - off);
		done += c->iov[i].len - off;
	}
	holdq_submit(&o->q, o->buf, len);
	atomic_fetch_add(&n->stats.tx_packets, 1);
	atomic_fetch_add(&n->stats.tx_bytes, len);
out:
	pthread_mutex_unlock(&o->lock);
	return ret;
}

int virtio_net_output(struct device *dev, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	struct virtio_net *n = virtio_net_of(dev);
	bool unblock;
	int err;

	if (!n)
		return -ENODEV;
	pthread_mutex_lock(&n->out.lock);
	err = holdq_control(&n->out.q, op, epoch, max_frames);
	unblock = n->out.blocked && holdq_room(&n->out.q, NET_OUTPUT_MAX_FRAME);
	if (unblock)
		n->out.blocked = false;
	pthread_mutex_unlock(&n->out.lock);
	if (unblock)
		net_io_tx_retry(n);
	return err;
}

int virtio_net_output_stats(struct device *dev, struct virtio_net_output_stats *st)
{
	struct virtio_net *n = virtio_net_of(dev);

	if (!n)
		return -ENODEV;
	pthread_mutex_lock(&n->out.lock);
	*st = (struct virtio_net_output_stats){
		.holding = n->out.q.holding, .epoch = n->out.q.epoch, .held = n->out.q.count,
		.held_total = n->out.q.stats.held, .released = n->out.q.stats.released,
		.discarded = n->out.q.stats.discarded, .blocked = n->out.blocked,
	};
	pthread_mutex_unlock(&n->out.lock);
	return 0;
}
