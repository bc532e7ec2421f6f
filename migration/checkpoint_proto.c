// SPDX-License-Identifier: MIT
/* The checkpoint stream's records and the standby's staging (checkpoint_proto.h). */
#include "migration/checkpoint_proto.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- primary side ---- */

int ckpt_put_hello(struct mig_writer *w, const struct ckpt_hello *h)
{
	uint8_t b[16];

	put32(b, h->version);
	put32(b + 4, h->epoch_ms);
	put32(b + 8, h->heartbeat_ms);
	put32(b + 12, h->failover_ms);
	return mig_put_section(w, CKPT_TAG_HELLO, b, sizeof(b));
}

static int put_two(struct mig_writer *w, uint32_t tag, uint64_t a, uint64_t b)
{
	uint8_t buf[16];

	put64(buf, a);
	put64(buf + 8, b);
	return mig_put_section(w, tag, buf, sizeof(buf));
}

int ckpt_put_begin(struct mig_writer *w, struct ckpt_mark *m, uint64_t epoch, uint64_t since)
{
	int ret = put_two(w, CKPT_TAG_BEGIN, epoch, since);

	m->w_sections = w->nr_sections;
	m->w_pages = w->pages_sent;
	return ret;
}

int ckpt_put_end(struct mig_writer *w, const struct ckpt_mark *m, uint64_t epoch)
{
	uint8_t b[16];

	if (mig_flush_ram(w))
		return w->err;
	put64(b, epoch);
	put32(b + 8, w->nr_sections - m->w_sections);
	put32(b + 12, (uint32_t)(w->pages_sent - m->w_pages));
	return mig_put_section(w, CKPT_TAG_END, b, sizeof(b));
}

int ckpt_put_heartbeat(struct mig_writer *w, uint64_t epoch, uint64_t ns)
{
	return put_two(w, CKPT_TAG_HEARTBEAT, epoch, ns);
}

int ckpt_put_stop(struct mig_writer *w, uint64_t epoch)
{
	return put_two(w, CKPT_TAG_STOP, epoch, 0);
}

void ckpt_reply_encode(uint8_t out[CKPT_REPLY_LEN], uint32_t kind, uint64_t epoch)
{
	put32(out, CKPT_REPLY_MAGIC);
	put32(out + 4, kind);
	put64(out + 8, epoch);
}

int ckpt_reply_decode(const uint8_t in[CKPT_REPLY_LEN], uint32_t *kind, uint64_t *epoch)
{
	if (mig_le32(in) != CKPT_REPLY_MAGIC)
		return -EPROTO;
	*kind = mig_le32(in + 4);
	*epoch = mig_le64(in + 8);
	return *kind >= CKPT_ACK && *kind <= CKPT_STOPPED ? 0 : -EPROTO;
}

/* ---- standby side ---- */

int ckpt_parse_hello(const uint8_t *d, uint64_t len, struct ckpt_hello *h, char *why, size_t wlen)
{
	if (len != 16)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint hello of %llu bytes",
				  (unsigned long long)len);
	h->version = mig_le32(d);
	h->epoch_ms = mig_le32(d + 4);
	h->heartbeat_ms = mig_le32(d + 8);
	h->failover_ms = mig_le32(d + 12);
	if (h->version != CKPT_PROTO_VERSION)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint protocol version %u; this hdvm "
				  "speaks %u", h->version, CKPT_PROTO_VERSION);
	if (!h->failover_ms || !h->heartbeat_ms || h->heartbeat_ms >= h->failover_ms)
		return mig_refuse(-EPROTO, why, wlen, "heartbeat %u ms must be shorter than "
				  "failover %u ms", h->heartbeat_ms, h->failover_ms);
	return 0;
}

int ckpt_parse_u64s(const uint8_t *d, uint64_t len, uint64_t *a, uint64_t *b)
{
	if (len != 16)
		return -EPROTO;
	*a = mig_le64(d);
	*b = mig_le64(d + 8);
	return 0;
}

int ckpt_parse_end(const uint8_t *d, uint64_t len, struct ckpt_end *e)
{
	if (len != 16)
		return -EPROTO;
	e->epoch = mig_le64(d);
	e->sections = mig_le32(d + 8);
	e->pages = mig_le32(d + 12);
	return 0;
}

void ckpt_stage_init(struct ckpt_stage *s)
{
	memset(s, 0, sizeof(*s));
}

void ckpt_stage_reset(struct ckpt_stage *s)
{
	for (size_t i = 0; i < s->nr_ram; i++)
		free(s->ram[i]);
	free(s->devs);
	s->devs = NULL;
	s->devs_len = 0;
	s->nr_ram = 0;
	s->open = false;
	s->sections = 0;
	s->bytes = s->pages = s->zero_pages = 0;
}

void ckpt_stage_free(struct ckpt_stage *s)
{
	ckpt_stage_reset(s);
	free(s->ram);
	free(s->ram_len);
	memset(s, 0, sizeof(*s));
}

int ckpt_stage_begin(struct ckpt_stage *s, uint64_t epoch, uint64_t since, char *why, size_t wlen)
{
	if (s->open)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint %llu begins inside checkpoint %llu",
				  (unsigned long long)epoch, (unsigned long long)s->epoch);
	ckpt_stage_reset(s);
	s->open = true;
	s->epoch = epoch;
	s->since = since;
	return 0;
}

static uint8_t *dup_body(const uint8_t *body, uint64_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (p)
		memcpy(p, body, len);
	return p;
}

int ckpt_stage_section(struct ckpt_stage *s, uint32_t tag, const uint8_t *body,
		       uint64_t len, uint64_t ram_size, char *why, size_t wlen)
{
	uint64_t dp = 0, zp = 0;
	char name[5];
	int ret;

	mig_tag_name(tag, name);
	if (!s->open)
		return mig_refuse(-EPROTO, why, wlen, "section '%s' outside a checkpoint", name);
	if (tag == MIG_TAG_RAM_BATCH) {
		ret = mig_check_ram_batch(body, len, ram_size, &dp, &zp, why, wlen);
		if (ret)
			return ret;
		if (s->nr_ram == s->cap_ram) {
			size_t cap = s->cap_ram ? 2 * s->cap_ram : 16;
			uint8_t **r = realloc(s->ram, cap * sizeof(*r));
			uint64_t *l;

			if (!r)
				return -ENOMEM;
			s->ram = r;
			l = realloc(s->ram_len, cap * sizeof(*l));
			if (!l)
				return -ENOMEM;
			s->ram_len = l;
			s->cap_ram = cap;
		}
		s->ram[s->nr_ram] = dup_body(body, len);
		if (!s->ram[s->nr_ram])
			return -ENOMEM;
		s->ram_len[s->nr_ram++] = len;
		s->pages += dp;
		s->zero_pages += zp;
	} else if (tag == MIG_TAG_DEVS && !s->devs) {
		s->devs = dup_body(body, len);
		if (!s->devs)
			return -ENOMEM;
		s->devs_len = len;
	} else {
		return mig_refuse(-EPROTO, why, wlen, "unexpected section '%s' in checkpoint %llu",
				  name, (unsigned long long)s->epoch);
	}
	s->sections++;
	s->bytes += len;
	return 0;
}

int ckpt_stage_verify(const struct ckpt_stage *s, const struct ckpt_end *e, char *why, size_t wlen)
{
	if (!s->open)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint %llu ends but never began",
				  (unsigned long long)e->epoch);
	if (e->epoch != s->epoch)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint %llu ends as %llu",
				  (unsigned long long)s->epoch, (unsigned long long)e->epoch);
	if (e->sections != s->sections || e->pages != s->pages)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint %llu incomplete: %u sections and "
				  "%llu pages arrived, %u and %u were sent",
				  (unsigned long long)s->epoch, s->sections,
				  (unsigned long long)s->pages, e->sections, e->pages);
	if (s->epoch && !s->devs)
		return mig_refuse(-EPROTO, why, wlen, "checkpoint %llu has no device state",
				  (unsigned long long)s->epoch);
	return 0;
}

int ckpt_stage_apply_ram(const struct ckpt_stage *s, int memfd)
{
	for (size_t i = 0; i < s->nr_ram; i++) {
		int ret = mig_apply_ram_batch(s->ram[i], s->ram_len[i], memfd);

		if (ret)
			return ret;
	}
	return 0;
}

/* ---- a transport whose every read and write gives up after a timeout ---- */

struct bounded {
	struct mig_io *inner;
	int timeout_ms;
};

static int wait_fd(struct mig_io *io, short ev)
{
	struct bounded *b = io->priv;
	struct pollfd p = { .fd = b->inner->fd, .events = ev };
	int n;

	do
		n = poll(&p, 1, b->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

static ssize_t bounded_read(struct mig_io *io, void *buf, size_t len)
{
	struct bounded *b = io->priv;
	int ret = wait_fd(io, POLLIN);

	return ret ? ret : b->inner->ops->read(b->inner, buf, len);
}

static ssize_t bounded_write(struct mig_io *io, const void *buf, size_t len)
{
	struct bounded *b = io->priv;
	int ret = wait_fd(io, POLLOUT);

	return ret ? ret : b->inner->ops->write(b->inner, buf, len);
}

static void bounded_close(struct mig_io *io)
{
	free(io->priv);
	io->priv = NULL;
}

static const struct mig_io_ops bounded_ops = {
	.read = bounded_read, .write = bounded_write, .close = bounded_close,
};

void ckpt_io_bounded(struct mig_io *outer, struct mig_io *inner, int timeout_ms)
{
	struct bounded *b = calloc(1, sizeof(*b));

	memset(outer, 0, sizeof(*outer));
	if (!b)
		abort();
	b->inner = inner;
	b->timeout_ms = timeout_ms;
	outer->ops = &bounded_ops;
	outer->priv = b;
	outer->fd = inner->fd;
}
