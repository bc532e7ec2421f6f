// SPDX-License-Identifier: MIT
/*
 * vfio-user transport: listening socket, the one client connection per
 * device, message framing and SCM_RIGHTS fd passing.  The device behind an
 * endpoint is reached through its vfu_dev_ops only; hdnic's functions
 * execute commands in vfu_handlers.c.
 */
#include "devices/hdnic/vfu_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/hdnic/mgmt.h"
#include "vmm/util.h"

static void conn_event(struct loop_handler *h, int res, uint32_t flags);

/* Something accepts connections at path (a live server, not a stale file). */
static bool served(const struct sockaddr_un *sa)
{
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0;

	if (probe >= 0)
		close(probe);
	return live;
}

static bool is_our_socket_name(const char *name)
{
	size_t n = strlen(name);

	if (n > 4 && !strcmp(name + n - 4, ".new"))
		n -= 4;
	if (n <= 5 || strncmp(name + n - 5, ".sock", 5))
		return false;
	return !strncmp(name, "vf", 2) || !strncmp(name, "adi-", 4) ||
	       !strncmp(name, MGMT_SOCK_NAME, strlen(MGMT_SOCK_NAME));
}

void hdnic_remove_stale_sockets(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned removed = 0;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct stat st;

		if (!is_our_socket_name(de->d_name) ||
		    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(sa.sun_path) ||
		    lstat(sa.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || served(&sa))
			continue;
		if (unlink(sa.sun_path) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		pr_info("%s: removed %u stale sockets", dir, removed);
}

/*
 * A listening socket at path, replacing a stale socket file but never a
 * live server.  It is bound under a temporary name and renamed into place
 * once it listens: whoever sees the path can connect.
 */
int hdnic_listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
	bool renamed = strlen(path) + 4 < sizeof(sa.sun_path);
	int fd, err = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_err("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (served(&sa)) {
		pr_err("%s is served by another process", path);
		return -EADDRINUSE;
	}
	snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s%s", path, renamed ? ".new" : "");
	unlink(tmp.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_err("socket: %s", strerror(errno));
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 || listen(fd, 8) < 0 ||
	    (renamed && rename(tmp.sun_path, path) < 0)) {
		err = -errno;
		pr_err("listening at %s: %s", path, strerror(errno));
		unlink(tmp.sun_path);
		close(fd);
		return err;
	}
	return fd;
}

static void reset_rx(struct vfu_conn *c)
{
	for (unsigned i = 0; i < c->nr_fds; i++)
		close(c->fds[i]);
	c->nr_fds = 0;
	c->fds_truncated = false;
	if (c->body != c->small)
		free(c->body);
	c->body = NULL;
	c->hdr_got = 0;
	c->body_got = 0;
}

/*
 * Send a reply without ever waiting for the client: what its socket does not
 * take waits in the connection's output queue, flushed on POLLOUT.  -errno
 * when the client is gone or has left too much unread (-ENOBUFS).
 */
static int send_msg(struct vfu_conn *c, const struct vfio_user_header *req, uint32_t err,
		    const void *payload, uint32_t len, const int *fds, unsigned nr_fds)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id,
		.command = req->command,
		.msg_size = sizeof(hdr) + len,
		.flags = VFIO_USER_F_TYPE_REPLY | (err ? VFIO_USER_F_ERROR : 0),
		.error_no = err,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	int ret = vfu_out_send(&c->out, c->fd, iov, len ? 2 : 1, fds, nr_fds);

	if (ret == 1 && !c->out_h.armed)
		loop_watch_events(c->ep->loop, &c->out_h, c->fd, POLLOUT);
	return ret < 0 ? ret : 0;
}

static const char *send_failed(struct vfu_conn *c, int err);

int vfu_conn_send(struct vfu_conn *c, const struct iovec *iov, int cnt)
{
	int ret = vfu_out_send(&c->out, c->fd, iov, cnt, NULL, 0);

	if (ret < 0) {
		vfu_disconnect(c->ep, send_failed(c, ret));
		return ret;
	}
	if (ret == 1 && !c->out_h.armed)
		loop_watch_events(c->ep->loop, &c->out_h, c->fd, POLLOUT);
	return 0;
}

/* Why a reply could not be sent, for the disconnect message. */
static const char *send_failed(struct vfu_conn *c, int err)
{
	static char why[96];

	if (err != -ENOBUFS)
		return "reply not delivered";
	snprintf(why, sizeof(why), "client does not read its replies (%zu bytes waiting)",
		 c->out.bytes);
	return why;
}

static void conn_writable(struct loop_handler *h, int res, uint32_t flags)
{
	struct vfu_conn *c = container_of(h, struct vfu_conn, out_h);
	bool ended = loop_poll_ended(h, flags);
	int ret = res < 0 && res != -ECANCELED ? res : vfu_out_flush(&c->out, c->fd);

	if (ret < 0) {
		vfu_disconnect(c->ep, "reply not delivered");
		return;
	}
	if (ret == 0 && h->armed)
		loop_unwatch(c->ep->loop, h);
	else if (ret == 1 && ended)
		loop_watch_events(c->ep->loop, h, c->fd, POLLOUT);
}

static void handle_message(struct vfu_conn *c)
{
	struct vfu_endpoint *ep = c->ep;
	struct vfu_msg m = {
		.hdr = c->hdr,
		.payload = c->body,
		.len = c->hdr.msg_size - sizeof(c->hdr),
		.nr_fds = c->nr_fds,
	};
	struct vfu_reply r = { .buf = vfu_reply_buf() };
	int err;

	memcpy(m.fds, c->fds, sizeof(int) * c->nr_fds);
	c->nr_fds = 0;	/* now owned by m */
	if ((m.hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
		/* An answer to one of our requests: never dispatched, never answered. */
		if (vfu_req_reply(c, &m))
			(*ep->proto_errors)++;
		for (unsigned i = 0; i < m.nr_fds; i++)
			close(m.fds[i]);
		return;
	}
	err = c->fds_truncated ? -E2BIG : ep->ops->dispatch(c, &m, &r);
	for (unsigned i = 0; i < m.nr_fds; i++)
		if (m.fds[i] >= 0)
			close(m.fds[i]);
	if (err) {
		(*ep->proto_errors)++;
		pr_debug("%s: command %u failed: %s", ep->name, m.hdr.command, strerror(-err));
	}
	/* No_Reply means none at all, error or not: a pipelining client counts on it. */
	if (m.hdr.flags & VFIO_USER_F_NO_REPLY)
		return;
	err = err ? send_msg(c, &m.hdr, (uint32_t)-err, NULL, 0, NULL, 0)
		  : send_msg(c, &m.hdr, 0, r.buf, r.len, r.fds, r.nr_fds);
	if (err)
		vfu_disconnect(ep, send_failed(c, err));
}

/* Receive up to want bytes, collecting any fds that come with them. */
static ssize_t recv_some(struct vfu_conn *c, void *dst, size_t want)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MSG_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = dst, .iov_len = want };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	do {
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (mh.msg_flags & MSG_CTRUNC)
		c->fds_truncated = true;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		unsigned nfd;
		int *fds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, &fds[i], sizeof(fd));
			if (c->nr_fds < VFIO_USER_MAX_MSG_FDS) {
				c->fds[c->nr_fds++] = fd;
			} else {
				close(fd);
				c->fds_truncated = true;
			}
		}
	}
	return n;
}

/* The header is complete: check the size before trusting anything else. */
static int start_body(struct vfu_conn *c)
{
	uint32_t size = c->hdr.msg_size, body;

	if (size < sizeof(c->hdr) || size > VFIO_USER_MAX_MSG_SIZE) {
		int err = size < sizeof(c->hdr) ? EINVAL : E2BIG;

		(*c->ep->proto_errors)++;
		pr_err("%s: message %u claims %u bytes: framing lost, dropping client",
		       c->ep->name, c->hdr.msg_id, size);
		if (!(c->hdr.flags & VFIO_USER_F_NO_REPLY))
			send_msg(c, &c->hdr, err, NULL, 0, NULL, 0);
		return -1;
	}
	body = size - sizeof(c->hdr);
	if (body <= sizeof(c->small)) {
		c->body = c->small;
	} else {
		c->body = malloc(body);
		if (!c->body) {
			pr_err("%s: no memory for a %u-byte message", c->ep->name, size);
			return -1;
		}
	}
	return 0;
}

/* Drain the socket; returns -1 when the connection is gone. */
static int conn_read(struct vfu_conn *c)
{
	for (;;) {
		uint32_t body_len = c->hdr.msg_size - sizeof(c->hdr);
		bool in_hdr = c->hdr_got < sizeof(c->hdr);
		uint8_t *dst = in_hdr ? (uint8_t *)&c->hdr + c->hdr_got : c->body + c->body_got;
		size_t want = in_hdr ? sizeof(c->hdr) - c->hdr_got : body_len - c->body_got;
		ssize_t n = 0;

		if (want) {
			n = recv_some(c, dst, want);
			if (n == -EAGAIN || n == -EWOULDBLOCK)
				return 0;
			if (n <= 0) {
				vfu_disconnect(c->ep, n ? strerror((int)-n) : "client closed");
				return -1;
			}
		}
		if (in_hdr) {
			c->hdr_got += n;
			if (c->hdr_got < sizeof(c->hdr))
				continue;
			if (start_body(c)) {
				vfu_disconnect(c->ep, "bad message size");
				return -1;
			}
			if (c->hdr.msg_size > sizeof(c->hdr))
				continue;
		} else {
			c->body_got += n;
			if (c->body_got < body_len)
				continue;
		}
		handle_message(c);
		if (c->fd < 0)
			return -1;
		reset_rx(c);
	}
}

static void conn_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct vfu_conn *c = container_of(h, struct vfu_conn, h);
	bool ended = loop_poll_ended(h, flags);

	if (res < 0 && res != -ECANCELED) {
		vfu_disconnect(c->ep, strerror(-res));
		return;
	}
	if (conn_read(c) < 0)
		return;
	if (ended)
		loop_watch(c->ep->loop, h, c->fd);
}

/* ---- a second client: told the function is in use, then closed ---- */

static void busy_close(struct vfu_conn *c)
{
	if (c->busy.fd < 0)
		return;
	loop_unwatch(c->ep->loop, &c->busy.h);
	close(c->busy.fd);
	c->busy.fd = -1;
}

static void busy_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct vfu_conn *c = container_of(h, struct vfu_conn, busy.h);
	bool ended = loop_poll_ended(h, flags);

	for (;;) {
		ssize_t n = recv(c->busy.fd, (uint8_t *)&c->busy.hdr + c->busy.got,
				 sizeof(c->busy.hdr) - c->busy.got, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return busy_close(c);
		c->busy.got += n;
		if (c->busy.got == sizeof(c->busy.hdr)) {
			/* the reply to its first message (VERSION) says why: EBUSY */
			struct vfio_user_header r = {
				.msg_id = c->busy.hdr.msg_id, .command = c->busy.hdr.command,
				.msg_size = sizeof(r), .error_no = EBUSY,
				.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
			};

			send(c->busy.fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
			return busy_close(c);
		}
	}
	if (ended)
		loop_watch(c->ep->loop, h, c->busy.fd);
}

static void refuse_busy(struct vfu_endpoint *ep, int fd)
{
	struct vfu_conn *c = &ep->conn;

	pr_info("%s: refusing a second client (the function is in use)", ep->name);
	if (c->busy.fd >= 0) {
		close(fd);	/* one refusal at a time; the rest just closed */
		return;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	c->busy.fd = fd;
	c->busy.got = 0;
	c->busy.deadline = now_ns() + ep->timeout_ns;
	loop_handler_init(&c->busy.h, busy_event);
	loop_watch(ep->loop, &c->busy.h, fd);
	ep->ops->deadline_set(ep->dev);
}

bool vfu_check_deadlines(struct vfu_endpoint *ep, uint64_t now)
{
	struct vfu_conn *c = &ep->conn;
	bool pending = false;

	if (c->busy.fd >= 0) {
		if (now >= c->busy.deadline)
			busy_close(c);
		else
			pending = true;
	}
	if (c->fd >= 0 && !c->negotiated) {
		if (now >= c->version_deadline)
			vfu_disconnect(ep, "no VERSION in time: the socket is free again");
		else
			pending = true;
	}
	if (c->fd >= 0 && c->reqs.nr)
		pending |= vfu_req_check_deadlines(c, now);
	return pending;
}

static void accept_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct vfu_endpoint *ep = container_of(h, struct vfu_endpoint, listen_h);
	struct vfu_conn *c = &ep->conn;
	bool ended = loop_poll_ended(h, flags);

	for (;;) {
		int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		int sndbuf = 4 << 20;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				pr_err("%s: accept: %s", ep->name, strerror(errno));
			break;
		}
		if (c->fd >= 0) {
			refuse_busy(ep, fd);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		memset(&c->hdr, 0, sizeof(c->hdr));
		c->fd = fd;
		c->ep = ep;
		c->dev = ep->dev;
		c->negotiated = false;
		c->peer_max_fds = 1;
		c->offer_max_fds = VFIO_USER_MAX_MSG_FDS;
		c->peer_max_xfer = VFIO_USER_MAX_DATA_XFER;
		c->write_multiple = false;
		c->mig_pgsize = 0;
		c->nr_fds = 0;
		c->body = NULL;
		reset_rx(c);
		vfu_out_init(&c->out);
		vfu_reqs_init(&c->reqs, ep->req_timeout_ns);
		loop_handler_init(&c->out_h, conn_writable);
		if (ep->ops->attach(ep->dev)) {
			close(fd);
			c->fd = -1;
			continue;
		}
		loop_handler_init(&c->h, conn_event);
		loop_watch(ep->loop, &c->h, fd);
		/* until VERSION completes, the socket is held on trust: not for long */
		c->version_deadline = now_ns() + ep->timeout_ns;
		ep->ops->deadline_set(ep->dev);
		(*ep->connects)++;
		pr_info("%s: client connected", ep->name);
	}
	if (ended)
		loop_watch(ep->loop, h, ep->listen_fd);
}

struct vfu_endpoint *vfu_endpoint_create(const struct vfu_dev_ops *ops, void *dev,
					 const char *name, struct loop *loop, uint64_t timeout_ns,
					 uint64_t *connects, uint64_t *proto_errors)
{
	struct vfu_endpoint *ep = xzalloc(sizeof(*ep));

	ep->ops = ops;
	ep->dev = dev;
	ep->name = name;
	ep->loop = loop;
	ep->timeout_ns = timeout_ns;
	ep->req_timeout_ns = timeout_ns;
	ep->connects = connects;
	ep->proto_errors = proto_errors;
	ep->listen_fd = -1;
	ep->conn.fd = -1;
	ep->conn.busy.fd = -1;
	ep->conn.ep = ep;
	ep->conn.dev = dev;
	return ep;
}

bool vfu_endpoint_idle(const struct vfu_endpoint *ep)
{
	return loop_handler_idle(&ep->listen_h) && loop_handler_idle(&ep->conn.h) &&
	       loop_handler_idle(&ep->conn.out_h) && loop_handler_idle(&ep->conn.busy.h);
}

void vfu_endpoint_free(struct vfu_endpoint *ep)
{
	vfu_reqs_free(&ep->conn.reqs);
	free(ep);
}

int vfu_listen(struct vfu_endpoint *ep, const char *path)
{
	int fd = hdnic_listen_unix(path);

	if (fd < 0)
		return fd;
	ep->listen_fd = fd;
	ep->conn.fd = -1;
	snprintf(ep->sock_path, sizeof(ep->sock_path), "%s", path);
	loop_handler_init(&ep->listen_h, accept_event);
	loop_watch(ep->loop, &ep->listen_h, fd);
	return 0;
}

void vfu_unlisten(struct vfu_endpoint *ep)
{
	vfu_disconnect(ep, "shutting down");
	busy_close(&ep->conn);
	if (ep->listen_fd >= 0) {
		loop_unwatch(ep->loop, &ep->listen_h);
		close(ep->listen_fd);
		ep->listen_fd = -1;
		unlink(ep->sock_path);
	}
}

void vfu_disconnect(struct vfu_endpoint *ep, const char *why)
{
	struct vfu_conn *c = &ep->conn;

	if (c->fd < 0)
		return;
	loop_unwatch(ep->loop, &c->h);
	if (c->out_h.armed)
		loop_unwatch(ep->loop, &c->out_h);
	close(c->fd);
	c->fd = -1;
	vfu_out_clear(&c->out);
	vfu_reqs_clear(&c->reqs);
	reset_rx(c);
	c->negotiated = false;
	ep->ops->detach(ep->dev);
	pr_info("%s: client disconnected (%s)", ep->name, why);
}
