/* SPDX-License-Identifier: MIT */
/*
 * A vfio-user connection's replies the client has not taken yet.  hdnic
 * never blocks on a client: a reply goes out with MSG_DONTWAIT, what the
 * socket does not take waits here (its fds duplicated, so the device may
 * close its own) and is sent when the socket is writable again.  The queue
 * is bounded: a client that sends requests and does not read the replies
 * is over the bound soon, and is dropped.
 */
#ifndef HDNIC_VFU_OUT_H
#define HDNIC_VFU_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/vfio/vfio_user_proto.h"

/* Room for a few of the largest replies; a client this far behind does not read. */
#define VFU_OUT_MAX_BYTES	(4u * VFIO_USER_MAX_MSG_SIZE)

struct vfu_out_msg;

struct vfu_out {
	struct vfu_out_msg *head, *tail;
	size_t bytes;		/* queued, not yet sent */
};

void vfu_out_init(struct vfu_out *o);
/* Drop everything queued (the connection is closed). */
void vfu_out_clear(struct vfu_out *o);

/*
 * Send a message on fd (fds ride on its first byte), or queue what the
 * socket does not take.  0 sent, 1 (some of it) queued: flush on POLLOUT,
 * -ENOBUFS the queue is over its bound, other -errno the peer is gone.
 */
int vfu_out_send(struct vfu_out *o, int fd, const struct iovec *iov, int cnt,
		 const int *fds, unsigned nr_fds);
/* Send what fd takes from the queue: 0 empty, 1 more waits, -errno. */
int vfu_out_flush(struct vfu_out *o, int fd);

static inline int vfu_out_pending(const struct vfu_out *o)
{
	return o->head != NULL;
}

#endif
