/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user client transport: one request, one validated reply, fds in
 * both directions, all under one mutex and one deadline.  A transport or
 * protocol failure kills the connection for good (the byte stream can no
 * longer be trusted to be in sync); an error reply from a healthy server is
 * just returned as -errno.
 */
#ifndef HDVM_VFIO_USER_CONN_H
#define HDVM_VFIO_USER_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/vfio/vfio_user_proto.h"

#define VFIO_USER_MAX_IOV	4

struct vfio_user_conn {
	int sock;
	pthread_mutex_t lock;		/* one request/reply pair at a time */
	uint16_t next_id;
	int timeout_ms;			/* per request, send + reply */
	atomic_bool *dead;		/* the owning device's flag */
	const char *name;		/* for messages */
	/* called once when the connection dies (with the reason) */
	void (*on_dead)(void *opaque, const char *why, int err);
	void *opaque;
};

struct vfio_user_req {
	uint16_t cmd;
	struct iovec iov[VFIO_USER_MAX_IOV];	/* payload after the header */
	int iovcnt;
	const int *fds;
	unsigned nfds;
};

struct vfio_user_rep {
	struct iovec iov[VFIO_USER_MAX_IOV];	/* where the reply payload goes */
	int iovcnt;
	size_t len;				/* out: payload bytes received */
	int *fds;				/* out: received fds (caller closes) */
	unsigned max_fds;
	unsigned nfds;				/* out */
};

void vfio_user_conn_init(struct vfio_user_conn *c, int sock, const char *name,
			 atomic_bool *dead);
void vfio_user_conn_destroy(struct vfio_user_conn *c);

/*
 * Send req, wait for its reply.  Returns 0, -errno from an error reply, or
 * -ENOTCONN / -EPIPE / -ETIMEDOUT / -EPROTO after which the connection is
 * dead.  On any failure no fds are left in rep.
 */
int vfio_user_call(struct vfio_user_conn *c, const struct vfio_user_req *req,
		   struct vfio_user_rep *rep);

#endif
