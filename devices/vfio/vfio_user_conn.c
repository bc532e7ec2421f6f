// SPDX-License-Identifier: MIT
/*
 * vfio-user request/reply transport over an AF_UNIX stream socket.
 *
 * The socket is used non-blocking with poll() against a per-request deadline,
 * so a server that stops reading or answering costs a vCPU at most
 * stall_ms for a guest access (then the reply is owed, discarded when it
 * comes) and any other request timeout_ms.  SCM_RIGHTS fds arrive with the
 * first bytes of a message; any that show up where none may are closed.
 */
#include "devices/vfio/vfio_user_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/util.h"

#define MAX_WIRE_FDS	64	/* cmsg buffer; more than any peer may send */

/*
 * HDVM_VFIO_STALL_MS (1..60000) replaces the default on hosts where a healthy
 * server is off-CPU for longer than 20 ms at times: under an emulated CPU
 * (tools/kvmlab sets it) a busy hdnic often is, and the guest then reads
 * all-ones from a device that is only slow (a virtio probe fails for good).
 */
int vfio_user_default_stall_ms(void)
{
	const char *s = getenv("HDVM_VFIO_STALL_MS");
	char *end;
	long v;

	if (!s || !*s)
		return VFIO_USER_STALL_MS;
	v = strtol(s, &end, 10);
	return (*end || v < 1 || v > 60000) ? VFIO_USER_STALL_MS : (int)v;
}

void vfio_user_conn_init(struct vfio_user_conn *c, int sock, const char *name,
			 atomic_bool *dead)
{
	int fl = fcntl(sock, F_GETFL);

	if (fl >= 0)
		fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	c->sock = sock;
	pthread_mutex_init(&c->lock, NULL);
	c->next_id = 1;
	c->timeout_ms = 5000;
	c->stall_ms = 0;	/* set up by the VMM first: nothing gives up early */
	c->nr_late = 0;
	c->stalled_since = 0;
	c->lost_err = 0;
	c->dead = dead;
	c->name = name;
	c->on_dead = NULL;
	c->opaque = NULL;
}

void vfio_user_conn_destroy(struct vfio_user_conn *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	free(c->srv_buf);
	c->srv_buf = NULL;
	pthread_mutex_destroy(&c->lock);
}

static void conn_kill(struct vfio_user_conn *c, const char *why, int err)
{
	/*
	 * Report first, then stop the peer: the shutdown wakes whoever watches
	 * the socket for a hang-up, and the reason (a timeout, a protocol
	 * error) must already be on record.  The fd is closed only at destroy.
	 */
	if (c->on_dead)
		c->on_dead(c->opaque, why, err);	/* marks *c->dead, reports once */
	else if (!atomic_exchange(c->dead, true))
		pr_err("vfio-user %s: connection lost: %s (%s)", c->name, why, strerror(-err));
	atomic_store(c->dead, true);
	c->lost_err = err;
	/*
	 * A silent server may only be stopped (SIGSTOP, a long stall): stop
	 * talking but keep listening.  When it runs again it answers what it
	 * owes, reads our end of stream and hangs up -- the hang-up is the
	 * sign that the same server is back (vfio_user_lost_stalled()).
	 */
	shutdown(c->sock, err == -ETIMEDOUT ? SHUT_WR : SHUT_RDWR);
}

static int wait_io(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now;
	int ret;

	for (;;) {
		now = now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		ret = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
		if (ret > 0)
			return 0;	/* readable, writable, or HUP/ERR: the syscall tells */
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

/* Readable by deadline?  Looks at least once, even when the deadline is now. */
static int wait_readable(int fd, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int ret;

	for (;;) {
		uint64_t now = now_ns();
		int ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);

		ret = poll(&p, 1, ms);
		if (ret > 0)
			return 0;
		if (ret == 0 && now_ns() >= deadline)
			return -ETIMEDOUT;
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
}

/* Drop the first n bytes of an iovec array (local copy). */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (n && *cnt) {
		if (n < (*iov)->iov_len) {
			(*iov)->iov_base = (char *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			return;
		}
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	while (*cnt && !(*iov)->iov_len) {
		(*iov)++;
		(*cnt)--;
	}
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/*
 * Send a whole message.  Until its first byte is taken the wait ends at
 * first_deadline (-EAGAIN: nothing sent, the stream is intact); once part of
 * it is on the wire the rest must follow, by deadline.
 */
static int send_all(struct vfio_user_conn *c, struct iovec *iov, int cnt,
		    const int *fds, unsigned nfds, uint64_t first_deadline, uint64_t deadline)
{
	size_t total = iov_total(iov, cnt);
	union {
		char buf[CMSG_SPACE(MAX_WIRE_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	size_t left = iov_total(iov, cnt);
	bool fds_sent = !nfds;
	int ret;

	if (nfds > MAX_WIRE_FDS)
		return -EINVAL;
	while (left) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = cnt };
		ssize_t n;

		if (!fds_sent) {
			struct cmsghdr *cm;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
		}
		n = sendmsg(c->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				bool none_sent = left == total;

				ret = wait_io(c->sock, POLLOUT, none_sent ? first_deadline : deadline);
				if (ret == -ETIMEDOUT && none_sent && first_deadline < deadline)
					return -EAGAIN;
				if (ret)
					return ret;
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
				return -EPIPE;
			return -errno;
		}
		fds_sent = true;	/* ancillary data rides on the first byte sent */
		left -= n;
		iov_advance(&iov, &cnt, n);
	}
	return 0;
}

static void take_fds(struct msghdr *mh, int *fds, unsigned max, unsigned *nfds, bool *extra)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		unsigned n;
		int fd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (unsigned i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*nfds < max) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				*extra = true;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		*extra = true;
}

/* Receive exactly the bytes iov describes; fds only where may_fds says so. */
static int recv_all(struct vfio_user_conn *c, struct iovec *iov, int cnt, uint64_t deadline,
		    int *fds, unsigned max_fds, unsigned *nfds, bool *extra_fds)
{
	union {
		char buf[CMSG_SPACE(MAX_WIRE_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	size_t left = iov_total(iov, cnt);
	int ret;

	while (left) {
		struct msghdr mh = {
			.msg_iov = iov, .msg_iovlen = cnt,
			.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
		};
		ssize_t n = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				ret = wait_io(c->sock, POLLIN, deadline);
				if (ret)
					return ret;
				continue;
			}
			if (errno == ECONNRESET || errno == ENOTCONN || errno == EPIPE)
				return -ENOTCONN;
			return -errno;
		}
		take_fds(&mh, fds, max_fds, nfds, extra_fds);
		if (n == 0)
			return -ENOTCONN;	/* peer closed mid-message */
		left -= n;
		iov_advance(&iov, &cnt, n);
	}
	return 0;
}

static void close_fds(int *fds, unsigned *n)
{
	for (unsigned i = 0; i < *n; i++)
		close(fds[i]);
	*n = 0;
}

static int check_header(struct vfio_user_conn *c, const struct vfio_user_header *h,
			uint16_t id, uint16_t cmd, size_t cap)
{
	if ((h->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY) {
		pr_err("vfio-user %s: expected a reply to command %u, got type %u (command %u)",
		       c->name, cmd, h->flags & VFIO_USER_F_TYPE_MASK, h->command);
		return -EPROTO;
	}
	if (h->msg_id != id || h->command != cmd) {
		pr_err("vfio-user %s: reply is for message %u command %u, expected %u/%u",
		       c->name, h->msg_id, h->command, id, cmd);
		return -EPROTO;
	}
	if (h->msg_size < sizeof(*h) || h->msg_size > VFIO_USER_MAX_MSG_SIZE ||
	    (!(h->flags & VFIO_USER_F_ERROR) && h->msg_size - sizeof(*h) > cap)) {
		pr_err("vfio-user %s: reply to command %u has size %u (at most %zu expected)",
		       c->name, cmd, h->msg_size, cap + sizeof(*h));
		return -EPROTO;
	}
	return 0;
}

/* An error reply: header only (payload tolerated and discarded, bounded). */
static int error_reply(struct vfio_user_conn *c, const struct vfio_user_header *h,
		       uint64_t deadline, struct vfio_user_rep *rep, bool *fatal)
{
	char junk[256];
	size_t left = h->msg_size - sizeof(*h);
	bool extra = false;
	int ret;

	while (left) {
		struct iovec v = { junk, MIN(left, sizeof(junk)) };

		ret = recv_all(c, &v, 1, deadline, rep->fds, rep->max_fds, &rep->nfds, &extra);
		if (ret)
			return ret;
		left -= v.iov_len;
	}
	close_fds(rep->fds, &rep->nfds);
	*fatal = false;
	/* error_no may legitimately be 0; never let a peer pick "success" or junk */
	if (h->error_no == 0 || h->error_no > 4095)
		return -EIO;
	return -(int)h->error_no;
}

/* The request needs what it names answered: 0 and *out reply bytes in srv_buf, or an errno. */
static uint32_t dma_request(struct vfio_user_conn *c, const struct vfio_user_header *h,
			    size_t len, size_t *out)
{
	struct vfio_user_dma_rw rw;
	int ret;

	if (h->command != VFIO_USER_DMA_READ && h->command != VFIO_USER_DMA_WRITE)
		return ENOSYS;
	if (len < sizeof(rw))
		return EINVAL;
	memcpy(&rw, c->srv_buf, sizeof(rw));
	if (!rw.count || rw.address + rw.count < rw.address)
		return EINVAL;
	if (rw.count > c->dma_max)
		return E2BIG;
	if (len != sizeof(rw) + (h->command == VFIO_USER_DMA_WRITE ? rw.count : 0))
		return EINVAL;
	if (!c->dma)
		return EFAULT;
	if (h->command == VFIO_USER_DMA_READ) {
		ret = c->dma->read(c->dma_opaque, rw.address, c->srv_buf + sizeof(rw), rw.count);
		*out = sizeof(rw) + rw.count;
	} else {
		ret = c->dma->write(c->dma_opaque, rw.address, c->srv_buf + sizeof(rw), rw.count);
		*out = sizeof(rw);
	}
	return ret < 0 ? (uint32_t)-ret : 0;
}

/*
 * A request of the server's whose header h was read: take the rest, answer
 * it (unless No_Reply).  -errno only when the stream broke.
 */
static int serve_request(struct vfio_user_conn *c, const struct vfio_user_header *h,
			 uint64_t deadline)
{
	size_t len = h->msg_size - sizeof(*h), out = 0;
	size_t need = sizeof(struct vfio_user_dma_rw) + MAX(c->dma_max, 1u);
	struct vfio_user_header r = {
		.msg_id = h->msg_id, .command = h->command, .flags = VFIO_USER_F_TYPE_REPLY,
	};
	struct iovec iov[2];
	int fds[MAX_WIRE_FDS];
	unsigned nfds = 0;
	bool extra = false;
	uint32_t err;
	int ret;

	if (h->msg_size < sizeof(*h) || h->msg_size > VFIO_USER_MAX_MSG_SIZE) {
		pr_err("vfio-user %s: server request %u claims %u bytes", c->name, h->command,
		       h->msg_size);
		return -EPROTO;
	}
	need = MAX(need, len);
	if (c->srv_cap < need) {
		uint8_t *b = realloc(c->srv_buf, need);

		if (!b)
			return -ENOMEM;
		c->srv_buf = b;
		c->srv_cap = need;
	}
	iov[0] = (struct iovec){ c->srv_buf, len };
	ret = len ? recv_all(c, iov, 1, deadline, fds, MAX_WIRE_FDS, &nfds, &extra) : 0;
	close_fds(fds, &nfds);
	if (ret)
		return ret;
	err = extra ? EINVAL : dma_request(c, h, len, &out);
	if (err) {
		c->refused++;
		pr_debug("vfio-user %s: server request %u refused: %s", c->name, h->command,
			 strerror((int)err));
		out = 0;
	} else {
		c->served++;
	}
	if (h->flags & VFIO_USER_F_NO_REPLY)
		return 0;
	r.flags |= err ? VFIO_USER_F_ERROR : 0;
	r.error_no = err;
	r.msg_size = sizeof(r) + out;
	iov[0] = (struct iovec){ &r, sizeof(r) };
	iov[1] = (struct iovec){ c->srv_buf, out };
	return send_all(c, iov, out ? 2 : 1, NULL, 0, deadline, deadline);
}

static bool is_request(const struct vfio_user_header *h)
{
	return (h->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
}

static void note_stall(struct vfio_user_conn *c)
{
	if (c->stalled_since)
		return;
	c->stalled_since = now_ns();
	pr_info("vfio-user %s: server slow to answer: guest reads see all-ones until it "
		"does (declared lost after %d ms)", c->name, c->timeout_ms);
}

/*
 * Take the replies a stalled server still owes, oldest first, and discard
 * them.  -ETIMEDOUT: one is still owed at first_deadline; other errors
 * break the protocol.  Once the first byte of a reply is here, the rest
 * must follow within the full timeout.
 */
static int take_late_replies(struct vfio_user_conn *c, uint64_t first_deadline,
			     const char **why)
{
	while (c->nr_late) {
		uint64_t deadline;
		struct vfio_user_header h;
		struct iovec v = { &h, sizeof(h) };
		int fds[MAX_WIRE_FDS];
		unsigned nfds = 0;
		bool extra = false;
		size_t left;
		int ret;

		*why = "waiting for a late reply";
		ret = wait_readable(c->sock, first_deadline);
		if (ret)
			return ret;
		deadline = now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
		ret = recv_all(c, &v, 1, deadline, fds, MAX_WIRE_FDS, &nfds, &extra);
		if (!ret && is_request(&h)) {
			close_fds(fds, &nfds);
			*why = "answering a server request";
			ret = serve_request(c, &h, deadline);
			if (ret)
				return ret;
			continue;	/* the late reply is still owed */
		}
		if (!ret && ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
			     h.msg_id != c->late[0].id || h.command != c->late[0].cmd ||
			     h.msg_size < sizeof(h) || h.msg_size > VFIO_USER_MAX_MSG_SIZE)) {
			pr_err("vfio-user %s: late reply %u/%u does not match request %u/%u",
			       c->name, h.msg_id, h.command, c->late[0].id, c->late[0].cmd);
			ret = -EPROTO;
		}
		for (left = ret ? 0 : h.msg_size - sizeof(h); left && !ret; ) {
			char junk[256];
			struct iovec j = { junk, MIN(left, sizeof(junk)) };

			ret = recv_all(c, &j, 1, deadline, fds, MAX_WIRE_FDS, &nfds, &extra);
			left -= j.iov_len;
		}
		close_fds(fds, &nfds);
		if (ret) {
			*why = "reading a late reply";
			return ret;
		}
		if (h.flags & VFIO_USER_F_ERROR)
			pr_debug("vfio-user %s: late request %u failed: %s", c->name, h.msg_id,
				 strerror((int)MIN(h.error_no, 4095u)));
		memmove(&c->late[0], &c->late[1], --c->nr_late * sizeof(c->late[0]));
	}
	if (c->stalled_since) {
		pr_info("vfio-user %s: server answers again after %llu ms", c->name,
			(unsigned long long)((now_ns() - c->stalled_since) / 1000000));
		c->stalled_since = 0;
	}
	return 0;
}

static int call_locked(struct vfio_user_conn *c, const struct vfio_user_req *req,
		       struct vfio_user_rep *rep, uint64_t stall_deadline, uint64_t deadline,
		       const char **why, bool *fatal)
{
	struct vfio_user_header h = {
		.msg_id = c->next_id++,
		.command = req->cmd,
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	uint16_t id = h.msg_id;
	struct iovec iov[VFIO_USER_MAX_IOV + 1];
	size_t cap = iov_total(rep->iov, rep->iovcnt), want, acc = 0;
	bool extra = false;
	int cnt, ret;

	*fatal = true;
	iov[0] = (struct iovec){ &h, sizeof(h) };
	memcpy(&iov[1], req->iov, req->iovcnt * sizeof(*iov));
	h.msg_size = sizeof(h) + iov_total(req->iov, req->iovcnt);
	*why = "sending a request";
	ret = send_all(c, iov, req->iovcnt + 1, req->fds, req->nfds,
		       req->may_stall ? stall_deadline : deadline, deadline);
	if (ret == -EAGAIN) {
		*fatal = false;		/* nothing sent: the stream is intact */
		note_stall(c);
		return ret;
	}
	if (ret)
		return ret;

	*why = "waiting for a reply";
	/* with replies owed, the next one on the wire is not ours: ours is owed too */
	if (req->may_stall && c->nr_late < VFIO_USER_MAX_LATE &&
	    (c->nr_late || wait_readable(c->sock, stall_deadline) == -ETIMEDOUT)) {
		/* slow, not dead: the reply is owed and discarded when it comes */
		c->late[c->nr_late].id = id;
		c->late[c->nr_late++].cmd = req->cmd;
		note_stall(c);
		*fatal = false;
		return -EAGAIN;
	}
	for (;;) {
		iov[0] = (struct iovec){ &h, sizeof(h) };
		ret = recv_all(c, iov, 1, deadline, rep->fds, rep->max_fds, &rep->nfds, &extra);
		if (ret || !is_request(&h))
			break;
		/* the server asks something before it answers: answer, then wait on */
		close_fds(rep->fds, &rep->nfds);
		*why = "answering a server request";
		ret = serve_request(c, &h, deadline);
		if (ret)
			return ret;
		extra = false;
		*why = "waiting for a reply";
	}
	if (ret)
		return ret;
	*why = "invalid reply";
	ret = check_header(c, &h, id, req->cmd, cap);
	if (ret)
		return ret;
	if (h.flags & VFIO_USER_F_ERROR) {
		*why = "reading an error reply";
		return error_reply(c, &h, deadline, rep, fatal);
	}

	/* receive exactly msg_size - header bytes into the caller's buffers */
	want = h.msg_size - sizeof(h);
	memcpy(iov, rep->iov, rep->iovcnt * sizeof(*iov));
	cnt = 0;
	for (int i = 0; i < rep->iovcnt && acc < want; i++, cnt++) {
		iov[i].iov_len = MIN(iov[i].iov_len, want - acc);
		acc += iov[i].iov_len;
	}
	*why = "reading a reply";
	ret = recv_all(c, iov, cnt, deadline, rep->fds, rep->max_fds, &rep->nfds, &extra);
	if (ret)
		return ret;
	if (extra) {
		*why = "reply carried more fds than allowed";
		return -EPROTO;
	}
	rep->len = want;
	*fatal = false;
	return 0;
}

int vfio_user_call(struct vfio_user_conn *c, const struct vfio_user_req *req,
		   struct vfio_user_rep *rep)
{
	const char *why = "";
	uint64_t now, deadline, stall_deadline;
	struct vfio_user_req r;
	bool fatal;
	int ret;

	rep->len = 0;
	rep->nfds = 0;
	if (req->iovcnt > VFIO_USER_MAX_IOV || rep->iovcnt > VFIO_USER_MAX_IOV)
		return -EINVAL;
	if (iov_total(req->iov, req->iovcnt) >
	    VFIO_USER_MAX_MSG_SIZE - sizeof(struct vfio_user_header))
		return -EMSGSIZE;

	pthread_mutex_lock(&c->lock);
	if (atomic_load(c->dead)) {
		pthread_mutex_unlock(&c->lock);
		return -ENOTCONN;
	}
	/* until the guest can reach the device, its accesses are the VMM's own setup */
	r = *req;
	r.may_stall = req->may_stall && c->stall_ms > 0;
	req = &r;
	now = now_ns();
	deadline = now + (uint64_t)c->timeout_ms * 1000000ull;
	stall_deadline = now + (uint64_t)c->stall_ms * 1000000ull;
	if (c->nr_late || c->stalled_since) {
		/* a guest access only looks; anything else waits, until the server is lost */
		uint64_t lost = (c->stalled_since ? c->stalled_since : now) +
				(uint64_t)c->timeout_ms * 1000000ull;

		ret = take_late_replies(c, req->may_stall ? now : lost, &why);
		if (ret == -ETIMEDOUT &&
		    now - c->stalled_since < (uint64_t)c->timeout_ms * 1000000ull &&
		    req->may_stall) {
			ret = -EAGAIN;		/* still slow, not yet lost */
			if (req->posted && c->nr_late < VFIO_USER_MAX_LATE)
				ret = call_locked(c, req, rep, now, deadline, &why, &fatal);
			else
				fatal = false;
			goto out;
		}
		if (ret == -ETIMEDOUT)
			why = "no reply within the timeout (server stalled)";
		if (ret) {
			fatal = true;
			goto out;
		}
	}
	ret = call_locked(c, req, rep, stall_deadline, deadline, &why, &fatal);
out:
	if (ret) {
		close_fds(rep->fds, &rep->nfds);
		/* only an error reply leaves the byte stream in sync */
		if (fatal) {
			if (ret != -EPIPE && ret != -ETIMEDOUT && ret != -EPROTO)
				ret = -ENOTCONN;
			c->nr_late = 0;
			conn_kill(c, why, ret);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/*
 * A dead connection's server may still send (replies it owed after a
 * stall): nobody reads them any more, so they are dropped here, or the
 * owner's POLLIN watch would fire for ever.  -ENOTCONN once it hung up.
 */
static int drain(struct vfio_user_conn *c)
{
	char junk[4096];
	struct iovec v = { junk, sizeof(junk) };

	for (;;) {
		struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1 };
		ssize_t n = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_TRUNC);

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		return n == 0 ? -ENOTCONN : 0;
	}
}

int vfio_user_conn_serve(struct vfio_user_conn *c)
{
	const char *why = "answering a server request";
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(c->dead)) {
		uint64_t deadline = now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
		struct vfio_user_header h;
		struct iovec v = { &h, sizeof(h) };
		int fds[MAX_WIRE_FDS];
		unsigned nfds = 0;
		bool extra = false;
		ssize_t n;

		if (c->nr_late) {
			/* replies owed come first; requests in between are answered there */
			ret = take_late_replies(c, now_ns(), &why);
			if (ret == -ETIMEDOUT)
				ret = 0;	/* still owed: not readable yet */
			if (ret || c->nr_late)
				break;
			continue;
		}
		{
			struct msghdr peek = { .msg_iov = &v, .msg_iovlen = 1 };

			/* recvmsg: the one receive call every thread may make (vmm/seccomp.c) */
			n = recvmsg(c->sock, &peek, MSG_PEEK | MSG_DONTWAIT);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
			break;
		}
		if (n == 0) {
			ret = -ENOTCONN;	/* hung up: the owner's watch says so */
			break;
		}
		ret = recv_all(c, &v, 1, deadline, fds, MAX_WIRE_FDS, &nfds, &extra);
		close_fds(fds, &nfds);
		if (!ret && !is_request(&h)) {
			pr_err("vfio-user %s: reply %u/%u to no request of ours", c->name,
			       h.msg_id, h.command);
			why = "a reply to no request";
			ret = -EPROTO;
		}
		if (!ret)
			ret = serve_request(c, &h, deadline);
		if (ret)
			break;
	}
	if (ret && ret != -ENOTCONN) {
		c->nr_late = 0;
		conn_kill(c, why, ret == -ETIMEDOUT || ret == -EPROTO ? ret : -ENOTCONN);
	} else if (!ret && atomic_load(c->dead)) {
		ret = drain(c);
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}
