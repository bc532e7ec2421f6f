/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user client transport: one request, one validated reply, fds in
 * both directions, all under one mutex and one deadline.  A transport or
 * protocol failure kills the connection for good (the byte stream can no
 * longer be trusted to be in sync); an error reply from a healthy server is
 * just returned as -errno.
 *
 * A stalled server is slow before it is dead.  A request marked may_stall
 * (a guest's access) waits at most stall_ms for its reply, then returns
 * -EAGAIN: the caller reads all-ones, as from a surprise-removed function,
 * and a write was posted all the same.  The reply is discarded when it
 * comes; while late replies are owed, further guest reads return -EAGAIN at
 * once and writes are posted if the socket takes them.  The connection is
 * declared dead only when the server has owed a reply for timeout_ms.
 * The stall is armed by the owner once the guest can reach the device
 * (vfio_user_set_stall()): before, region accesses are the VMM's own setup
 * (config space at realize, a re-attach's checks) and wait for their reply
 * like any request -- a busy host must not fail them.
 * Even then the server may only be stopped: the connection is shut for
 * writing only, so the server's hang-up after it runs again can be seen
 * (the owner re-attaches then, as after a restart).
 *
 * The server may send requests of its own on the same socket (DMA_READ,
 * DMA_WRITE; the spec allows them between a request and its reply, and
 * libvfio-user's servers send them for any mapped memory).  They are
 * answered wherever they show up: while a request waits for its reply, and,
 * with none in flight, when the owner calls vfio_user_conn_serve() on
 * POLLIN.  The answer comes from struct vfio_user_dma_ops; every field of
 * the request is checked first, a bad one gets an error reply.
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
#define VFIO_USER_MAX_LATE	64	/* replies owed by a stalled server */
#define VFIO_USER_STALL_MS	20	/* default: a guest access waits this long */

/* Memory the server's DMA_READ/DMA_WRITE reach: 0 or -errno (an error reply). */
struct vfio_user_dma_ops {
	int (*read)(void *opaque, uint64_t addr, void *dst, uint64_t len);
	int (*write)(void *opaque, uint64_t addr, const void *src, uint64_t len);
};

struct vfio_user_conn {
	int sock;
	pthread_mutex_t lock;		/* one request/reply pair at a time */
	uint16_t next_id;
	int timeout_ms;			/* per request; a server silent this long is dead */
	int stall_ms;			/* a may_stall request waits this long; 0: as any */
	/* requests whose replies we stopped waiting for, oldest first */
	struct { uint16_t id, cmd; } late[VFIO_USER_MAX_LATE];
	unsigned nr_late;
	uint64_t stalled_since;		/* now_ns() of the first late reply; 0: healthy */
	int lost_err;			/* why it died: -ETIMEDOUT a silent server, 0 alive */
	atomic_bool *dead;		/* the owning device's flag */
	const char *name;		/* for messages */
	/* called once when the connection dies (with the reason) */
	void (*on_dead)(void *opaque, const char *why, int err);
	void *opaque;
	/* the server's requests: answered through dma (NULL: EFAULT), count <= dma_max */
	const struct vfio_user_dma_ops *dma;
	void *dma_opaque;
	uint32_t dma_max;		/* the max_data_xfer_size we announced */
	uint8_t *srv_buf;		/* one request at a time, under lock */
	size_t srv_cap;
	uint64_t served, refused;	/* server requests answered / answered with an error */
};

struct vfio_user_req {
	uint16_t cmd;
	struct iovec iov[VFIO_USER_MAX_IOV];	/* payload after the header */
	int iovcnt;
	const int *fds;
	unsigned nfds;
	bool may_stall;		/* a guest access: -EAGAIN rather than a frozen vCPU */
	bool posted;		/* a write: still worth sending while the server is late */
};

struct vfio_user_rep {
	struct iovec iov[VFIO_USER_MAX_IOV];	/* where the reply payload goes */
	int iovcnt;
	size_t len;				/* out: payload bytes received */
	int *fds;				/* out: received fds (caller closes) */
	unsigned max_fds;
	unsigned nfds;				/* out */
};

/* The stall a guest's access waits: HDVM_VFIO_STALL_MS, else VFIO_USER_STALL_MS. */
int vfio_user_default_stall_ms(void);
void vfio_user_conn_init(struct vfio_user_conn *c, int sock, const char *name,
			 atomic_bool *dead);
void vfio_user_conn_destroy(struct vfio_user_conn *c);

/*
 * Send req, wait for its reply.  Returns 0, -errno from an error reply,
 * -EAGAIN for a may_stall request the server is slow to answer (not an
 * error of the connection), or -ENOTCONN / -EPIPE / -ETIMEDOUT / -EPROTO
 * after which the connection is dead.  On any failure no fds are left in rep.
 */
int vfio_user_call(struct vfio_user_conn *c, const struct vfio_user_req *req,
		   struct vfio_user_rep *rep);
/*
 * Answer the requests the server has sent (none in flight of ours): 0, or
 * -errno when the connection broke (it is dead then; -ENOTCONN: hung up).
 */
int vfio_user_conn_serve(struct vfio_user_conn *c);

#endif
