// SPDX-License-Identifier: MIT
/* A vfio-user connection's output queue: replies wait here, never the loop. */
#include "devices/hdnic/vfu_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct vfu_out_msg {
	struct vfu_out_msg *next;
	size_t len, off;
	int fds[VFIO_USER_MAX_MSG_FDS];	/* ours (duplicates): closed once sent */
	unsigned nr_fds;
	uint8_t data[];
};

void vfu_out_init(struct vfu_out *o)
{
	o->head = o->tail = NULL;
	o->bytes = 0;
}

static void msg_free(struct vfu_out_msg *m)
{
	for (unsigned i = 0; i < m->nr_fds; i++)
		close(m->fds[i]);
	free(m);
}

void vfu_out_clear(struct vfu_out *o)
{
	while (o->head) {
		struct vfu_out_msg *m = o->head;

		o->head = m->next;
		msg_free(m);
	}
	vfu_out_init(o);
}

/* One sendmsg, never waiting: bytes taken, or -errno (-EAGAIN: none). */
static ssize_t send_some(int fd, const struct iovec *iov, int cnt, const int *fds,
			 unsigned nr_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MSG_FDS)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = cnt };
	ssize_t n;

	if (nr_fds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

/* Queue the bytes of iov past skip; fds too unless they went with the first byte. */
static int queue(struct vfu_out *o, const struct iovec *iov, int cnt, size_t skip,
		 const int *fds, unsigned nr_fds)
{
	size_t total = 0, at = 0;
	struct vfu_out_msg *m;

	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	/* one message always fits, however big: the bound is on a backlog */
	if (o->head && o->bytes + total - skip > VFU_OUT_MAX_BYTES)
		return -ENOBUFS;
	m = malloc(sizeof(*m) + total - skip);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = total - skip;
	m->off = 0;
	m->nr_fds = 0;
	for (int i = 0; i < cnt; i++) {
		size_t l = iov[i].iov_len, from = 0;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		from = skip;
		skip = 0;
		memcpy(m->data + at, (const uint8_t *)iov[i].iov_base + from, l - from);
		at += l - from;
	}
	for (unsigned i = 0; i < nr_fds; i++) {
		int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (d < 0) {
			int err = -errno;

			msg_free(m);
			return err;
		}
		m->fds[m->nr_fds++] = d;
	}
	if (o->tail)
		o->tail->next = m;
	else
		o->head = m;
	o->tail = m;
	o->bytes += m->len;
	return 1;
}

int vfu_out_send(struct vfu_out *o, int fd, const struct iovec *iov, int cnt,
		 const int *fds, unsigned nr_fds)
{
	size_t total = 0;
	ssize_t n;

	if (o->head)
		return queue(o, iov, cnt, 0, fds, nr_fds);	/* in order, behind the rest */
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	n = send_some(fd, iov, cnt, fds, nr_fds);
	if (n == (ssize_t)total)
		return 0;
	if (n == -EAGAIN)
		return queue(o, iov, cnt, 0, fds, nr_fds);
	if (n < 0)
		return (int)n;
	return queue(o, iov, cnt, n, NULL, 0);		/* the fds went with byte 0 */
}

int vfu_out_flush(struct vfu_out *o, int fd)
{
	while (o->head) {
		struct vfu_out_msg *m = o->head;
		struct iovec v = { m->data + m->off, m->len - m->off };
		ssize_t n = send_some(fd, &v, 1, m->fds, m->nr_fds);

		if (n == -EAGAIN)
			return 1;
		if (n < 0)
			return (int)n;
		for (unsigned i = 0; i < m->nr_fds; i++)
			close(m->fds[i]);
		m->nr_fds = 0;
		m->off += n;
		o->bytes -= n;
		if (m->off < m->len)
			continue;
		o->head = m->next;
		if (!o->head)
			o->tail = NULL;
		free(m);
	}
	return 0;
}
