// SPDX-License-Identifier: MIT
#include "vmm/postcopy_src.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migration/postcopy_proto.h"
#include "vmm/dirty_log.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PAGE		GUEST_PAGE_SIZE
#define PUSH_BATCH	8	/* pushed pages per write: a request waits for one batch more */

static bool readable(struct mig_io *io)
{
	struct pollfd p = { .fd = io->fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Page `page` as a record into buf (a zero page without its bytes): its length. */
static size_t encode_page(struct postcopy_src *s, uint8_t *buf, uint64_t page, uint32_t flags)
{
	const uint8_t *data = s->ram + page * PAGE;

	pc_clear(s->needed, page);
	if (mig_page_is_zero(data)) {
		s->zero_pages++;
		return pc_encode(buf, PC_REC_PAGE, flags | PC_F_ZERO, page, NULL, 0);
	}
	return pc_encode(buf, PC_REC_PAGE, flags, page, data, PAGE);
}

static int send_page(struct postcopy_src *s, uint8_t *buf, uint64_t page, uint32_t flags)
{
	return mig_write_all(s->io, buf, encode_page(s, buf, page, flags));
}

/* The next needed page at or after *cursor, or npages. */
static uint64_t next_needed(struct postcopy_src *s, uint64_t *cursor);

/* Up to PUSH_BATCH needed pages from *cursor on, in one write. */
static int push_batch(struct postcopy_src *s, uint8_t *buf, uint64_t *cursor)
{
	size_t len = 0;

	for (int i = 0; i < PUSH_BATCH && next_needed(s, cursor) < s->npages; i++) {
		len += encode_page(s, buf + len, *cursor, 0);
		s->pushed++;
	}
	return mig_write_all(s->io, buf, len);
}

/* The next needed page at or after *cursor, or npages. */
static uint64_t next_needed(struct postcopy_src *s, uint64_t *cursor)
{
	for (uint64_t w = *cursor / 64; w < pc_words(s->npages); w++) {
		uint64_t bits = s->needed[w];

		if (w == *cursor / 64)
			bits &= ~0ull << (*cursor % 64);
		if (bits) {
			*cursor = w * 64 + (uint64_t)__builtin_ctzll(bits);
			return *cursor < s->npages ? *cursor : s->npages;
		}
	}
	*cursor = s->npages;
	return s->npages;
}

static void limit_push(struct postcopy_src *s, uint64_t t0, uint64_t bytes0)
{
	uint64_t due, spent;

	if (!s->max_bandwidth)
		return;
	due = (s->io->bytes_out - bytes0) * 1000000000ull / s->max_bandwidth;
	spent = now_ns() - t0;
	if (due > spent) {
		struct timespec ts = { .tv_sec = (due - spent) / 1000000000ull,
				       .tv_nsec = (due - spent) % 1000000000ull };

		nanosleep(&ts, NULL);
	}
}

struct req_queue {
	uint64_t *page;
	size_t head, tail, cap;
};

static void enqueue(struct req_queue *q, uint64_t page)
{
	if (q->tail == q->cap) {
		if (q->head) {		/* slide down before growing */
			memmove(q->page, q->page + q->head, (q->tail - q->head) * 8);
			q->tail -= q->head;
			q->head = 0;
		} else {
			q->cap = q->cap ? q->cap * 2 : 64;
			q->page = realloc(q->page, q->cap * 8);
			if (!q->page)
				abort();
		}
	}
	q->page[q->tail++] = page;
}

/* One record from the destination: 1 = all present, 0 = go on, -errno. */
static int take_record(struct postcopy_src *s, struct pc_rec *rec, struct req_queue *q,
		       char *why, size_t len)
{
	char msg[256];
	int ret = pc_get(s->io, rec, msg, sizeof(msg));

	if (ret == -EPIPE || (ret && ret != -EBADMSG && ret != -EPROTO))
		return mig_refuse(-EHOSTDOWN, why, len, "the destination went away during "
				  "post-copy: the VM is lost (it ran there, this copy is stale)");
	if (ret)
		return mig_refuse(ret, why, len, "%s: the VM is lost", msg);
	switch (rec->magic) {
	case PC_REC_REQ:
		if (rec->arg >= s->npages)
			return mig_refuse(-EPROTO, why, len, "the destination asked for page "
					  "%llu, outside RAM", (unsigned long long)rec->arg);
		enqueue(q, rec->arg);
		return 0;
	case PC_REC_DONE:
		s->t_done_ns = now_ns();
		return 1;
	case PC_REC_ERR:
		return mig_refuse(-ECONNABORTED, why, len, "the destination stopped the VM "
				  "during post-copy: %s; the VM is lost", (char *)rec->payload);
	}
	return mig_refuse(-EPROTO, why, len, "unexpected post-copy record %#x from the "
			  "destination", rec->magic);
}

int postcopy_serve(struct postcopy_src *s, char *why, size_t len)
{
	struct pc_rec *rec = xzalloc(sizeof(*rec));
	uint8_t *buf = xzalloc(PUSH_BATCH * (PC_REC_HDR + PC_MAX_PAYLOAD));
	struct req_queue q = { 0 };
	uint64_t cursor = 0, t0 = now_ns(), bytes0 = s->io->bytes_out;
	bool end_sent = false;
	int ret = 0, sndbuf = PC_SOCKET_BUFFER;

	/* what the push has queued is what a reply waits behind: keep it short */
	if (setsockopt(s->io->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		pr_debug("post-copy: SO_SNDBUF: %s", strerror(errno));
	while (!ret) {
		/* block only when there is nothing left to send */
		bool block = (end_sent || s->no_push) && q.head == q.tail;

		while (!ret && (block || readable(s->io))) {
			ret = take_record(s, rec, &q, why, len);
			block = false;
		}
		if (ret)
			break;
		if (q.head < q.tail) {
			uint64_t page = q.page[q.head++];

			if (!pc_test(s->needed, page)) {
				s->ignored_requests++;	/* already on its way */
				continue;
			}
			ret = send_page(s, buf, page, PC_F_REQUESTED);
			s->served++;
		} else if (!s->no_push && next_needed(s, &cursor) < s->npages) {
			ret = push_batch(s, buf, &cursor);
			limit_push(s, t0, bytes0);
		} else if (!end_sent && !s->no_push) {
			ret = pc_put(s->io, PC_REC_END, 0, s->served + s->pushed, NULL, 0);
			end_sent = true;
		}
		if (ret < 0 && !why[0])
			mig_refuse(ret, why, len, "sending pages during post-copy: %s; the VM is "
				   "lost", strerror(-ret));
	}
	free(q.page);
	free(rec);
	free(buf);
	return ret == 1 ? 0 : ret;
}

int postcopy_needed_all(const struct guest_mem *m, uint64_t *needed)
{
	uint64_t off = 0;

	memset(needed, 0, pc_words(m->size / PAGE) * 8);
	while (off < m->size) {
		off_t data = lseek(m->memfd, (off_t)off, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		if ((uint64_t)data >= m->size)
			break;
		hole = lseek(m->memfd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > m->size)
			hole = (off_t)m->size;
		for (uint64_t p = (uint64_t)data / PAGE; p < ((uint64_t)hole + PAGE - 1) / PAGE; p++)
			pc_set(needed, p);
		off = (uint64_t)hole;
	}
	return 0;
}

static int mark_dirty(const struct mem_slot *slot, const uint64_t *bitmap, void *opaque)
{
	uint64_t *needed = opaque;

	for (size_t w = 0; w < guest_mem_bitmap_words(slot); w++)
		for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1)
			pc_set(needed, slot->offset / PAGE + w * 64 +
				       (uint64_t)__builtin_ctzll(bits));
	return 0;
}

int postcopy_needed_dirty(struct vm *vm, uint64_t *needed)
{
	memset(needed, 0, pc_words(vm->mem.size / PAGE) * 8);
	return vm_dirty_log_sync(vm, mark_dirty, needed);
}

int postcopy_put_switch(struct mig_writer *w, const uint64_t *needed, uint64_t npages)
{
	uint8_t *body;
	uint64_t blen;
	int ret = pc_switch_encode(needed, npages, &body, &blen);

	if (ret)
		return ret;
	ret = mig_put_section(w, MIG_TAG_POSTCOPY, body, blen);
	free(body);
	return ret;
}
