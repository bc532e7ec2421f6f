// SPDX-License-Identifier: MIT
#include "migration/stream.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "migration/snapshot_file.h"

#define MAGIC		"HDVMSNAP"
#define HEADER_LEN	16
#define SECTION_HDR	16
#define RUN_HDR		16
#define BATCH_HDR	8

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

void mig_tag_name(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));

		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[4] = 0;
}

bool mig_page_is_zero(const void *p)
{
	const uint64_t *q = p;

	for (size_t i = 0; i < MIG_PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* ---- io ---- */

int mig_write_all(struct mig_io *io, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = io->ops->write(io, b, len);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		b += n;
		len -= n;
		io->bytes_out += n;
	}
	return 0;
}

int mig_read_all(struct mig_io *io, void *buf, size_t len, size_t *got)
{
	uint8_t *b = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = io->ops->read(io, b + done, len - done);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0) {
			if (got)
				*got = done;
			return (int)n;
		}
		if (n == 0)
			break;
		done += n;
		io->bytes_in += n;
	}
	if (got)
		*got = done;
	return done == len ? 0 : -EPIPE;
}

static ssize_t fd_read(struct mig_io *io, void *buf, size_t len)
{
	ssize_t n = read(io->fd, buf, len);

	return n < 0 ? -errno : n;
}

static ssize_t fd_write(struct mig_io *io, const void *buf, size_t len)
{
	/* a vanished peer is -EPIPE, not SIGPIPE; a file is written with write() */
	ssize_t n = send(io->fd, buf, len, MSG_NOSIGNAL);

	if (n < 0 && errno == ENOTSOCK)
		n = write(io->fd, buf, len);

	return n < 0 ? -errno : n;
}

static void fd_close(struct mig_io *io)
{
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

static const struct mig_io_ops fd_ops = {
	.read = fd_read, .write = fd_write, .close = fd_close,
};

void mig_io_fd(struct mig_io *io, int fd)
{
	memset(io, 0, sizeof(*io));
	io->ops = &fd_ops;
	io->fd = fd;
}

static int unix_send_fd(struct mig_io *io, int fd)
{
	char byte = 'F', ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(io->fd, &msg, MSG_NOSIGNAL) != 1)
		return -errno ?: -EIO;
	io->bytes_out++;
	return 0;
}

static int unix_recv_fd(struct mig_io *io, int *fd)
{
	char byte, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c;
	ssize_t n;

	do
		n = recvmsg(io->fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	io->bytes_in++;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)) ||
	    (msg.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

static const struct mig_io_ops unix_ops = {
	.read = fd_read, .write = fd_write, .close = fd_close,
	.send_fd = unix_send_fd, .recv_fd = unix_recv_fd,
};

void mig_io_unix(struct mig_io *io, int fd)
{
	mig_io_fd(io, fd);
	io->ops = &unix_ops;
}

struct mem_src {
	const uint8_t *data;
	size_t len, pos;
};

static ssize_t mem_read(struct mig_io *io, void *buf, size_t len)
{
	struct mem_src *m = io->priv;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;

	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static ssize_t mem_write(struct mig_io *io, const void *buf, size_t len)
{
	return -EBADF;
}

static void mem_close(struct mig_io *io)
{
	free(io->priv);
	io->priv = NULL;
}

static const struct mig_io_ops mem_ops = {
	.read = mem_read, .write = mem_write, .close = mem_close,
};

void mig_io_mem(struct mig_io *io, const uint8_t *data, size_t len)
{
	struct mem_src *m = calloc(1, sizeof(*m));

	memset(io, 0, sizeof(*io));
	io->ops = &mem_ops;
	io->fd = -1;
	io->priv = m;
	if (m) {
		m->data = data;
		m->len = len;
	}
}

void mig_io_close(struct mig_io *io)
{
	if (io->ops && io->ops->close)
		io->ops->close(io);
}

/* ---- writer ---- */

int mig_writer_init(struct mig_writer *w, struct mig_io *io, uint32_t flags)
{
	uint8_t hdr[HEADER_LEN];

	memset(w, 0, sizeof(*w));
	w->io = io;
	w->run_at = -1;
	w->batch_cap = BATCH_HDR + MIG_BATCH_PAGES * (RUN_HDR + MIG_PAGE);
	w->batch = malloc(w->batch_cap);
	if (!w->batch)
		return w->err = -ENOMEM;
	memcpy(hdr, MAGIC, 8);
	put32(hdr + 8, MIG_STREAM_VERSION);
	put32(hdr + 12, flags);
	return w->err = mig_write_all(io, hdr, sizeof(hdr));
}

int mig_put_section(struct mig_writer *w, uint32_t tag, const void *data, uint64_t len)
{
	uint8_t hdr[SECTION_HDR];
	uint32_t crc = (uint32_t)crc32_z(0, data, len);

	if (w->err)
		return w->err;
	if (len > MIG_MAX_SECTION)
		return w->err = -E2BIG;
	put32(hdr, tag);
	put32(hdr + 4, snap_section_crc(tag, len, crc));
	put64(hdr + 8, len);
	w->err = mig_write_all(w->io, hdr, sizeof(hdr));
	if (!w->err && len)
		w->err = mig_write_all(w->io, data, len);
	if (!w->err)
		w->nr_sections++;
	return w->err;
}

int mig_flush_ram(struct mig_writer *w)
{
	if (w->err || !w->batch_runs)
		return w->err;
	put32(w->batch, w->pass);
	put32(w->batch + 4, w->batch_runs);
	w->ram_bytes += w->batch_len + SECTION_HDR;
	mig_put_section(w, MIG_TAG_RAM_BATCH, w->batch, w->batch_len);
	w->batch_len = 0;
	w->batch_runs = 0;
	w->batch_data_pages = 0;
	w->run_at = -1;
	return w->err;
}

int mig_put_page(struct mig_writer *w, uint32_t pass, uint64_t page, const void *data)
{
	bool zero = !data || mig_page_is_zero(data);

	if (w->err)
		return w->err;
	if (zero)
		w->zero_pages++;
	else
		w->pages_sent++;
	/* a fresh destination is all zero: the first pass leaves zero pages out */
	if (zero && pass == 0)
		return 0;
	if (pass != w->pass || w->batch_data_pages == MIG_BATCH_PAGES) {
		if (mig_flush_ram(w))
			return w->err;
		w->pass = pass;
	}
	if (!w->batch_len)
		w->batch_len = BATCH_HDR;
	if (w->run_at < 0 || w->run_next != page || w->run_zero != zero) {
		w->run_at = (int64_t)w->batch_len;
		put64(w->batch + w->batch_len, page | (zero ? MIG_ZERO_RUN : 0));
		put64(w->batch + w->batch_len + 8, 0);
		w->batch_len += RUN_HDR;
		w->batch_runs++;
		w->run_zero = zero;
	}
	put64(w->batch + w->run_at + 8, mig_le64(w->batch + w->run_at + 8) + 1);
	w->run_next = page + 1;
	if (!zero) {
		memcpy(w->batch + w->batch_len, data, MIG_PAGE);
		w->batch_len += MIG_PAGE;
		w->batch_data_pages++;
	}
	/* zero runs are 16 bytes each: bound them by the header room too */
	if (w->batch_len + RUN_HDR + MIG_PAGE > w->batch_cap)
		mig_flush_ram(w);
	return w->err;
}

int mig_put_end(struct mig_writer *w)
{
	uint8_t count[8];

	if (mig_flush_ram(w))
		return w->err;
	put64(count, w->nr_sections);
	return mig_put_section(w, MIG_TAG_END, count, sizeof(count));
}

void mig_writer_free(struct mig_writer *w)
{
	free(w->batch);
	w->batch = NULL;
}

/* ---- reader ---- */

int mig_reader_init(struct mig_reader *r, struct mig_io *io, char *why, size_t len)
{
	uint8_t hdr[HEADER_LEN];
	uint32_t version;
	size_t got = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->io = io;
	ret = mig_read_all(io, hdr, sizeof(hdr), &got);
	if (ret == -EPIPE)
		return mig_refuse(-EPROTO, why, len,
				  got ? "truncated: the stream ends inside its header"
					: "the stream is empty (the sender went away?)");
	if (ret)
		return mig_refuse(ret, why, len, "reading the stream header: %s", strerror(-ret));
	if (memcmp(hdr, MAGIC, 8))
		return mig_refuse(-EPROTO, why, len, "not an hdvm migration stream (bad magic)");
	version = mig_le32(hdr + 8);
	if (version != MIG_STREAM_VERSION)
		return mig_refuse(-EPROTO, why, len,
				  "stream format version %u; this hdvm reads version %u",
				  version, MIG_STREAM_VERSION);
	r->flags = mig_le32(hdr + 12);
	if (r->flags & ~(MIG_F_RAM_BY_FD | MIG_F_POSTCOPY | MIG_F_NET_BY_FD))
		return mig_refuse(-EPROTO, why, len, "unknown stream flags %#x", r->flags);
	return 0;
}

int mig_read_section(struct mig_reader *r, uint32_t *tag, const uint8_t **data,
		     uint64_t *len, char *why, size_t wlen)
{
	uint8_t hdr[SECTION_HDR];
	uint32_t crc;
	uint64_t n;
	size_t got = 0;
	char name[5];
	int ret;

	if (r->ended)
		return mig_refuse(-EPROTO, why, wlen, "read past the end marker");
	ret = mig_read_all(r->io, hdr, sizeof(hdr), &got);
	if (ret == -EPIPE)
		return mig_refuse(-EPROTO, why, wlen,
				  "truncated: the stream ends after %u sections "
				  "without an end marker", r->nr_sections);
	if (ret)
		return mig_refuse(ret, why, wlen, "reading section %u: %s", r->nr_sections + 1,
				  strerror(-ret));
	*tag = mig_le32(hdr);
	crc = mig_le32(hdr + 4);
	n = mig_le64(hdr + 8);
	mig_tag_name(*tag, name);
	if (n > MIG_MAX_SECTION)
		return mig_refuse(-EPROTO, why, wlen,
				  "section '%s' claims %llu bytes (at most %llu)",
				  name, (unsigned long long)n, MIG_MAX_SECTION);
	if (n > r->cap) {
		uint8_t *b = realloc(r->buf, n);

		if (!b)
			return mig_refuse(-ENOMEM, why, wlen, "no memory for section '%s'", name);
		r->buf = b;
		r->cap = n;
	}
	ret = mig_read_all(r->io, r->buf, n, &got);
	if (ret == -EPIPE)
		return mig_refuse(-EPROTO, why, wlen,
				  "truncated in section '%s' (%zu of %llu bytes)",
				  name, got, (unsigned long long)n);
	if (ret)
		return mig_refuse(ret, why, wlen, "reading section '%s': %s", name, strerror(-ret));
	if (snap_section_crc(*tag, n, (uint32_t)crc32_z(0, r->buf, n)) != crc)
		return mig_refuse(-EPROTO, why, wlen,
				  "crc mismatch in section '%s' (corrupt stream)",
				  name);
	if (*tag == MIG_TAG_END) {
		if (n != 8 || mig_le64(r->buf) != r->nr_sections)
			return mig_refuse(-EPROTO, why, wlen,
					  "end marker does not match the %u sections",
					  r->nr_sections);
		r->ended = true;
	} else {
		r->nr_sections++;
	}
	*data = r->buf;
	*len = n;
	return 0;
}

void mig_reader_free(struct mig_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

int mig_check_ram_batch(const uint8_t *data, uint64_t len, uint64_t ram_size,
			uint64_t *data_pages, uint64_t *zero_pages, char *why, size_t wlen)
{
	uint64_t off = BATCH_HDR, pages = ram_size / MIG_PAGE, dp = 0, zp = 0;
	uint32_t runs, pass;

	if (len < BATCH_HDR)
		return mig_refuse(-EPROTO, why, wlen, "RAM batch too short");
	pass = mig_le32(data);
	runs = mig_le32(data + 4);
	for (uint32_t i = 0; i < runs; i++) {
		uint64_t first, count;
		bool zero;

		if (len - off < RUN_HDR)
			return mig_refuse(-EPROTO, why, wlen,
					  "RAM batch (pass %u): truncated run %u",
					  pass, i);
		first = mig_le64(data + off);
		count = mig_le64(data + off + 8);
		off += RUN_HDR;
		zero = first & MIG_ZERO_RUN;
		first &= ~MIG_ZERO_RUN;
		if (!count || first >= pages || count > pages - first)
			return mig_refuse(-EPROTO, why, wlen,
					  "RAM batch (pass %u): pages %llu+%llu are "
					  "outside the %llu pages of RAM", pass,
					  (unsigned long long)first, (unsigned long long)count,
					  (unsigned long long)pages);
		if (zero) {
			zp += count;
			continue;
		}
		if ((len - off) / MIG_PAGE < count)
			return mig_refuse(-EPROTO, why, wlen,
					  "RAM batch (pass %u): run at page %llu "
					  "is truncated", pass, (unsigned long long)first);
		off += count * MIG_PAGE;
		dp += count;
	}
	if (off != len)
		return mig_refuse(-EPROTO, why, wlen,
				  "RAM batch (pass %u): %llu bytes after its runs",
				  pass, (unsigned long long)(len - off));
	if (data_pages)
		*data_pages = dp;
	if (zero_pages)
		*zero_pages = zp;
	return 0;
}

static int clear_pages(int memfd, uint64_t at, uint64_t len)
{
	static const uint8_t zero[MIG_PAGE];

	/* a hole reads as zero and gives the memory back */
	if (!fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)at, (off_t)len))
		return 0;
	for (uint64_t o = 0; o < len; o += MIG_PAGE) {
		int ret = mig_pwrite_all(memfd, zero, MIG_PAGE, at + o);

		if (ret)
			return ret;
	}
	return 0;
}

int mig_apply_ram_batch(const uint8_t *data, uint64_t len, int memfd)
{
	uint32_t runs = mig_le32(data + 4);
	uint64_t off = BATCH_HDR;
	int ret = 0;

	/* bounds were checked by mig_check_ram_batch() */
	for (uint32_t i = 0; i < runs && !ret; i++) {
		uint64_t first = mig_le64(data + off), count = mig_le64(data + off + 8);

		off += RUN_HDR;
		if (first & MIG_ZERO_RUN) {
			ret = clear_pages(memfd, (first & ~MIG_ZERO_RUN) * MIG_PAGE,
					  count * MIG_PAGE);
			continue;
		}
		ret = mig_pwrite_all(memfd, data + off, count * MIG_PAGE, first * MIG_PAGE);
		off += count * MIG_PAGE;
	}
	return ret;
}
