/* SPDX-License-Identifier: MIT */
/*
 * vfio-user server side: one listening socket per device, at most one
 * client connection at a time, message framing with SCM_RIGHTS fd passing,
 * and the command dispatcher (vfu_handlers.c).  Everything the peer sends
 * is validated; a bad message gets an error reply, a message whose framing
 * cannot be trusted (size below the header or above the maximum) gets an
 * error reply and the connection is closed.
 */
#ifndef HDNIC_VFU_SERVER_H
#define HDNIC_VFU_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/loop.h"
#include "devices/vfio/vfio_user_caps.h"
#include "devices/vfio/vfio_user_proto.h"

struct vdev;

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
	struct vdev *vd;
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
	/* A client that has not completed VERSION by then is dropped. */
	uint64_t version_deadline;
	/* A second client: its first message is answered EBUSY, then it is closed. */
	struct vfu_refusal {
		int fd;			/* -1: none */
		struct loop_handler h;
		struct vfio_user_header hdr;
		uint32_t got;
		uint64_t deadline;
	} busy;
};

/*
 * Remove the sockets in dir that nobody serves (vfK.sock, adi-*.sock,
 * pf.sock and their .new twins left by a killed hdnic); live ones stay.
 */
void hdnic_remove_stale_sockets(const char *dir);
/* A non-blocking listening AF_UNIX socket at path (stale files replaced). */
int hdnic_listen_unix(const char *path);
int vfu_listen(struct vdev *vd, const char *path);
void vfu_unlisten(struct vdev *vd);
/* Drop the client (if any): the function is cleaned up and reset. */
void vfu_disconnect(struct vdev *vd, const char *why);
/* Drop what is past its deadline; true while a deadline is still pending. */
bool vfu_check_deadlines(struct vdev *vd, uint64_t now);

/*
 * Validate and execute one complete message.  Returns 0 and fills r (the
 * reply payload) on success, or -errno for an error reply.
 * Unclaimed fds in m are closed by the caller.  Exposed for the fuzzer.
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
