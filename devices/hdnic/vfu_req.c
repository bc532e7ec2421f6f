// SPDX-License-Identifier: MIT
#include "devices/hdnic/vfu_req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

void vfu_reqs_init(struct vfu_reqs *t, uint64_t timeout_ns)
{
	for (unsigned i = 0; t->slot && i < VFU_REQ_MAX; i++) {
		uint8_t gen = t->slot[i].gen;

		t->slot[i] = (struct vfu_req){ .gen = gen };	/* ids keep moving on */
	}
	t->nr = 0;
	t->timeout_ns = timeout_ns;
}

void vfu_reqs_clear(struct vfu_reqs *t)
{
	vfu_reqs_init(t, t->timeout_ns);
}

void vfu_reqs_free(struct vfu_reqs *t)
{
	free(t->slot);
	t->slot = NULL;
	t->nr = 0;
}

static struct vfu_req *slot_get(struct vfu_reqs *t)
{
	if (!t->slot) {
		/* most clients map with fds and never need one: no table until then */
		t->slot = calloc(VFU_REQ_MAX, sizeof(*t->slot));
		if (!t->slot)
			return NULL;
	}
	for (unsigned i = 0; i < VFU_REQ_MAX; i++) {
		struct vfu_req *r = &t->slot[(t->seq + i) % VFU_REQ_MAX];

		if (!r->used)
			return r;
	}
	return NULL;
}

int vfu_req_send(struct vfu_conn *c, uint16_t command, uint64_t address, uint32_t count,
		 const void *data, uint8_t *dst, vfu_req_done_fn *done, void *ctx)
{
	struct vfu_reqs *t = &c->reqs;
	struct vfio_user_dma_rw rw = { .address = address, .count = count };
	struct vfio_user_header hdr = {
		.command = command,
		.msg_size = sizeof(hdr) + sizeof(rw),
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	struct iovec iov[3] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = &rw, .iov_len = sizeof(rw) },
		{ .iov_base = (void *)data, .iov_len = count },
	};
	struct vfu_req *r;
	int err;

	if (c->fd < 0 || !c->negotiated)
		return -ENOTCONN;
	if (!count || count > c->peer_max_xfer)
		return -E2BIG;
	r = slot_get(t);
	if (!r)
		return -EBUSY;
	if (command == VFIO_USER_DMA_WRITE)
		hdr.msg_size += count;
	/* a fresh generation per use: a late reply to the slot's last request is unknown */
	hdr.msg_id = (uint16_t)((uint8_t)(r->gen + 1) << 8 | (r - t->slot));
	err = vfu_conn_send(c, iov, command == VFIO_USER_DMA_WRITE ? 3 : 2);
	if (err)
		return err;
	*r = (struct vfu_req){
		.used = true, .gen = (uint8_t)(hdr.msg_id >> 8), .id = hdr.msg_id, .command = command, .seq = ++t->seq,
		.deadline = now_ns() + t->timeout_ns, .address = address, .count = count,
		.dst = dst, .done = done, .ctx = ctx,
	};
	t->nr++;
	t->sent++;
	c->ep->ops->deadline_set(c->ep->dev);
	return 0;
}

/* What is wrong with a reply to r, or 0. */
static int reply_check(const struct vfu_req *r, const struct vfu_msg *m)
{
	struct vfio_user_dma_rw rw;

	if (m->hdr.command != r->command)
		return -EPROTO;
	if (m->hdr.flags & VFIO_USER_F_ERROR)
		return m->hdr.error_no && m->hdr.error_no < 4096 ? -(int)m->hdr.error_no : -EIO;
	if (r->command == VFIO_USER_DMA_READ) {
		if (m->len != sizeof(rw) + r->count)
			return -EPROTO;
	} else if (m->len != sizeof(rw) && m->len != VFIO_USER_DMA_WRITE_REPLY_SPEC) {
		return -EPROTO;
	}
	memcpy(&rw, m->payload, MIN(m->len, sizeof(rw)));
	if (m->len == VFIO_USER_DMA_WRITE_REPLY_SPEC)
		rw.count = (uint32_t)rw.count;	/* the spec's 4-byte count */
	if (rw.address != r->address || rw.count != r->count)
		return -EPROTO;
	return 0;
}

int vfu_req_reply(struct vfu_conn *c, const struct vfu_msg *m)
{
	struct vfu_reqs *t = &c->reqs;
	struct vfu_req *r = t->slot ? &t->slot[m->hdr.msg_id & 0xff] : NULL, done;
	int err;

	if (!r || !r->used || r->id != m->hdr.msg_id) {
		t->unknown_replies++;
		pr_err("%s: reply %u (command %u) to no request of ours: refused",
		       c->ep->name, m->hdr.msg_id, m->hdr.command);
		return -ENOENT;
	}
	err = reply_check(r, m);
	if (err == -EPROTO) {
		t->bad_replies++;
		pr_err("%s: malformed reply to %s %#llx+%llu (%u bytes): refused", c->ep->name,
		       r->command == VFIO_USER_DMA_READ ? "DMA_READ" : "DMA_WRITE",
		       (unsigned long long)r->address, (unsigned long long)r->count, m->len);
	}
	done = *r;
	r->used = false;
	t->nr--;
	if (done.cancelled)
		return err;
	if (!err && done.command == VFIO_USER_DMA_READ)
		memcpy(done.dst, m->payload + sizeof(struct vfio_user_dma_rw), done.count);
	done.done(done.ctx, err, &done);
	return err;
}

void vfu_req_cancel(struct vfu_conn *c, void *ctx)
{
	for (unsigned i = 0; c->reqs.slot && i < VFU_REQ_MAX; i++) {
		struct vfu_req *r = &c->reqs.slot[i];

		if (r->used && r->ctx == ctx)
			r->cancelled = true;
	}
}

bool vfu_req_check_deadlines(struct vfu_conn *c, uint64_t now)
{
	struct vfu_reqs *t = &c->reqs;
	bool pending = false;

	for (unsigned i = 0; i < VFU_REQ_MAX && t->nr; i++) {
		struct vfu_req *r = &t->slot[i], done;

		if (!r->used)
			continue;
		if (now < r->deadline) {
			pending = true;
			continue;
		}
		done = *r;
		r->used = false;
		t->nr--;
		if (done.cancelled)
			continue;	/* nobody waits: its slot is simply free again */
		t->timeouts++;
		done.done(done.ctx, -ETIMEDOUT, &done);
	}
	return pending;
}
