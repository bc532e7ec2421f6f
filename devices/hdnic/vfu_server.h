/* SPDX-License-Identifier: MIT */
/*
 * vfio-user server side.  The transport (vfu_server.c) is an endpoint per
 * device: one listening socket, at most one client connection at a time,
 * message framing with SCM_RIGHTS fd passing, deadlines.  It knows nothing
 * of the device it serves: it calls it through struct vfu_dev_ops (attach,
 * detach, dispatch a message).  hdnic's functions dispatch to the command
 * handlers (vfu_handlers.c, vfu_feature.c).  Everything the peer sends is
 * validated; a bad message gets an error reply, a message whose framing
 * cannot be trusted (size below the header or above the maximum) gets an
 * error reply and the connection is closed.  Replies from the client go to
 * the requests hdnic sent it (vfu_req.h), never to the device's dispatch.
 */
#ifndef HDNIC_VFU_SERVER_H
#define HDNIC_VFU_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/loop.h"
#include "devices/hdnic/vfu_out.h"
#include "devices/hdnic/vfu_req.h"
#include "devices/vfio/vfio_user_caps.h"
#include "devices/vfio/vfio_user_proto.h"

struct vfu_conn;
struct vfu_endpoint;

/* What hdnic announces in its VERSION reply. */
#define HDNIC_VFU_MAX_FDS	VFIO_USER_MAX_MSG_FDS
#define HDNIC_VFU_MAX_XFER	VFIO_USER_MAX_DATA_XFER
#define HDNIC_VFU_MAX_DMA_MAPS	1024
#define HDNIC_VFU_PGSIZES	4096
/*
 * "migration":{"pgsize"}: hdnic serves FEATURE_MIGRATION, MIG_DEVICE_STATE
 * and DMA logging (vfu_feature.c), so it says so, unasked, as libvfio-user
 * servers do: reference-based clients only migrate a server that announces it.
 */
#define HDNIC_VFU_MIG_PGSIZE	4096

struct vfu_msg {
	struct vfio_user_header hdr;
	uint8_t *payload;
	uint32_t len;			/* msg_size - header */
	int fds[VFIO_USER_MAX_MSG_FDS];	/* handlers take one by setting it to -1 */
	unsigned nr_fds;
};

struct vfu_reply {
	uint8_t *buf;			/* payload, reply_buf_cap bytes available */
	uint32_t len;
	int fds[VFIO_USER_MAX_MSG_FDS];	/* borrowed, not closed after sending */
	unsigned nr_fds;
};

struct vfu_conn {
	int fd;				/* -1: no client */
	struct loop_handler h;
	struct vfu_endpoint *ep;
	void *dev;			/* the device served (ep->dev) */
	/* Negotiated by VERSION. */
	bool negotiated;
	uint32_t peer_max_fds;		/* fds we may send in one reply */
	uint32_t offer_max_fds;		/* fds we announce we accept */
	uint32_t peer_max_xfer;
	bool write_multiple;
	uint32_t mig_pgsize;		/* client's migration.pgsize, 0 if none */
	/* Receive state of the message being assembled. */
	struct vfio_user_header hdr;
	uint32_t hdr_got;
	uint8_t *body;
	uint32_t body_got;
	int fds[VFIO_USER_MAX_MSG_FDS];
	unsigned nr_fds;
	bool fds_truncated;
	uint8_t small[64];		/* body of small messages, no malloc */
	/* Replies the client has not taken yet; out_h watches for POLLOUT. */
	struct vfu_out out;
	struct loop_handler out_h;
	/* A client that has not completed VERSION by then is dropped. */
	uint64_t version_deadline;
	/* Our DMA_READ/DMA_WRITE requests waiting for the client's reply (vfu_req.h). */
	struct vfu_reqs reqs;
	/* A second client: its first message is answered EBUSY, then it is closed. */
	struct vfu_refusal {
		int fd;			/* -1: none */
		struct loop_handler h;
		struct vfio_user_header hdr;
		uint32_t got;
		uint64_t deadline;
	} busy;
};

/* What the transport asks of the device it serves. */
struct vfu_dev_ops {
	/* A client connected: 0 to serve it (else it is closed). */
	int (*attach)(void *dev);
	/* The client went away: the device drops what it brought. */
	void (*detach)(void *dev);
	/* Execute one complete message: 0 and r filled, or -errno (an error reply). */
	int (*dispatch)(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r);
	/* A deadline was set: vfu_check_deadlines() must run until it passes. */
	void (*deadline_set)(void *dev);
};

/* One device's vfio-user transport: its socket and its client. */
struct vfu_endpoint {
	const struct vfu_dev_ops *ops;
	void *dev;
	const char *name;		/* in messages: the device's id */
	struct loop *loop;
	uint64_t timeout_ns;		/* to complete VERSION; for a refused client to go */
	uint64_t req_timeout_ns;	/* for the client to answer DMA_READ/DMA_WRITE */
	uint64_t *connects, *proto_errors;	/* the device's counters */
	int listen_fd;			/* -1: not listening */
	struct loop_handler listen_h;
	char sock_path[108];
	struct vfu_conn conn;
};

struct vfu_endpoint *vfu_endpoint_create(const struct vfu_dev_ops *ops, void *dev,
					 const char *name, struct loop *loop, uint64_t timeout_ns,
					 uint64_t *connects, uint64_t *proto_errors);
/* Only once vfu_endpoint_idle(): nothing of it is in flight on the ring. */
void vfu_endpoint_free(struct vfu_endpoint *ep);
bool vfu_endpoint_idle(const struct vfu_endpoint *ep);

static inline bool vfu_has_client(const struct vfu_endpoint *ep)
{
	return ep && ep->conn.fd >= 0;
}

/*
 * Remove the sockets in dir that nobody serves (vfK.sock, adi-*.sock,
 * pf.sock and their .new twins left by a killed hdnic); live ones stay.
 */
void hdnic_remove_stale_sockets(const char *dir);
/* A non-blocking listening AF_UNIX socket at path (stale files replaced). */
int hdnic_listen_unix(const char *path);
int vfu_listen(struct vfu_endpoint *ep, const char *path);
void vfu_unlisten(struct vfu_endpoint *ep);
/* Drop the client (if any): the device is told (detach). */
void vfu_disconnect(struct vfu_endpoint *ep, const char *why);
/* Drop what is past its deadline; true while a deadline is still pending. */
bool vfu_check_deadlines(struct vfu_endpoint *ep, uint64_t now);
/*
 * Send one message on the connection without waiting (what the socket does
 * not take is queued, vfu_out.h): 0, or -errno and the client is dropped.
 */
int vfu_conn_send(struct vfu_conn *c, const struct iovec *iov, int cnt);

/*
 * A function's dispatch (vfu_handlers.c): validate and execute one complete
 * message.  Returns 0 and fills r (the reply payload) on success, or -errno
 * for an error reply.  Unclaimed fds in m are closed by the caller.
 */
int vfu_dispatch(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r);
/* The reply payload buffer vfu_dispatch writes into. */
#define VFU_REPLY_CAP	(VFIO_USER_MAX_DATA_XFER + 4096)
uint8_t *vfu_reply_buf(void);

/* DEVICE_FEATURE past the flag checks, MIG_DATA_READ/WRITE (vfu_feature.c). */
int vfu_device_feature(struct vfu_conn *c, const struct vfio_user_device_feature *q,
		       struct vfu_msg *m, struct vfu_reply *r);
int vfu_mig_data_read(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r);
int vfu_mig_data_write(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r);

/* VERSION capabilities (vfu_caps.c). */
int vfu_caps_parse(struct vfu_conn *c, const char *json, uint32_t len);
int vfu_caps_reply(struct vfu_conn *c, char *out, uint32_t cap);

#endif
