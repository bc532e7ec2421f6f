// SPDX-License-Identifier: MIT
/*
 * The one split-ring library (devices/virtio/virtq.c) seen through its
 * memory ops, the way hdnic uses it: a translate that checks the access
 * (a read-write and a read-only region, like a DMA map with permissions)
 * and a written hook that records what the device wrote.  Covers the
 * access each ring and buffer is asked for, control-queue chains, the
 * batched avail index read, index wrap at 65536, EVENT_IDX across the wrap,
 * the used-ring ranges reported for dirty logging, and chains that are too
 * long or loop through empty descriptors.  test_virtio_ring.c covers the
 * same walker bound to guest RAM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/virtio/virtq.h"

#define IOVA		0x10000000ull
#define MEM		(1u << 20)
#define RO_START	(MEM / 2)	/* [RO_START, MEM) is mapped read-only */
#define DESC		0x0000ull
#define AVAIL		0x1000ull
#define USED		0x2000ull
#define BUF		0x10000ull

static uint8_t *mem;

/* What the ops saw. */
#define LOG_MAX	64
static struct op { uint64_t addr, len; uint32_t access; } translated[LOG_MAX], written[LOG_MAX];
static unsigned nr_translated, nr_written;

static void *fake_translate(void *opaque, uint64_t addr, uint64_t len, uint32_t access)
{
	uint64_t off = addr - IOVA, end;

	assert_ptr_equal(opaque, mem);
	if (nr_translated < LOG_MAX)
		translated[nr_translated++] = (struct op){ addr, len, access };
	if (addr < IOVA || off + len < off || off + len > MEM)
		return NULL;
	end = off + len;
	/* one region or the other, never across */
	if (off < RO_START && end > RO_START)
		return NULL;
	if (off >= RO_START && (access & VQ_ACCESS_WRITE))
		return NULL;
	return mem + off;
}

static void fake_written(void *opaque, uint64_t addr, uint64_t len)
{
	if (nr_written < LOG_MAX)
		written[nr_written++] = (struct op){ addr, len, 0 };
}

static const struct vq_mem_ops ops = { .translate = fake_translate, .written = fake_written };
static struct vq q;
static struct vq_chain chain;
static uint16_t avail_idx;

static struct vring_desc *desc(unsigned i) { return (struct vring_desc *)(mem + DESC) + i; }
static struct vring_avail *avail(void) { return (struct vring_avail *)(mem + AVAIL); }
static struct vring_used *used(void) { return (struct vring_used *)(mem + USED); }

static void set_desc(unsigned i, uint64_t off, uint32_t len, uint16_t flags, uint16_t next)
{
	*desc(i) = (struct vring_desc){ .addr = IOVA + off, .len = len, .flags = flags,
					.next = next };
}

static void offer(uint16_t head)
{
	avail()->ring[avail_idx % q.size] = head;
	avail()->idx = ++avail_idx;
}

static void attach(uint16_t size, bool event_idx, enum vq_dir dir)
{
	struct vq_mem m = { .ops = &ops, .opaque = mem };

	vq_reset(&q, VQ_MAX_SIZE);
	q.size = size;
	q.desc_addr = IOVA + DESC;
	q.avail_addr = IOVA + AVAIL;
	q.used_addr = IOVA + USED;
	assert_int_equal(vq_attach(&q, &m, event_idx, dir), 0);
	nr_translated = nr_written = 0;
}

/* Start the driver and the device at index `at` (both sides agree). */
static void start_at(uint16_t at)
{
	q.last_avail = q.used_idx = q.published = avail_idx = at;
	avail()->idx = at;
	used()->idx = at;
}

static int setup(void **state)
{
	mem = calloc(1, MEM);
	avail_idx = 0;
	attach(16, false, VQ_TO_DEVICE);
	return 0;
}

static int teardown(void **state)
{
	free(mem);
	return 0;
}

/* ---- what is translated, with which access ---- */

static void test_rings_are_translated_with_the_access_they_need(void **st)
{
	struct vq_mem m = { .ops = &ops, .opaque = mem };

	nr_translated = 0;
	assert_int_equal(vq_attach(&q, &m, true, VQ_TO_DEVICE), 0);
	assert_int_equal(nr_translated, 3);
	assert_int_equal(translated[0].addr, IOVA + DESC);
	assert_int_equal(translated[0].access, VQ_ACCESS_READ);
	assert_int_equal(translated[1].addr, IOVA + AVAIL);
	assert_int_equal(translated[1].len, 6 + 2 * 16);	/* with used_event */
	assert_int_equal(translated[1].access, VQ_ACCESS_READ);
	assert_int_equal(translated[2].addr, IOVA + USED);
	assert_int_equal(translated[2].len, 6 + 8 * 16);	/* with avail_event */
	assert_int_equal(translated[2].access, VQ_ACCESS_READ | VQ_ACCESS_WRITE);

	/* a used ring the device may not write: the queue cannot start */
	q.used_addr = IOVA + RO_START;
	assert_int_equal(vq_attach(&q, &m, true, VQ_TO_DEVICE), -EFAULT);
	assert_false(q.attached);
}

static void test_buffers_are_translated_for_their_direction(void **st)
{
	set_desc(0, BUF, 100, 0, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(translated[0].access, VQ_ACCESS_READ);	/* TX: the device reads */
	assert_int_equal(chain.nr_out, 1);

	attach(16, false, VQ_FROM_DEVICE);
	q.last_avail = avail_idx;
	set_desc(1, BUF, 100, VRING_DESC_F_WRITE, 0);
	offer(1);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(translated[0].access, VQ_ACCESS_WRITE);	/* RX: the device writes */
	assert_int_equal(chain.nr_out, 0);
	assert_int_equal(chain.iov[0].addr, IOVA + BUF);
}

static void test_read_only_memory_refuses_a_writable_buffer(void **st)
{
	attach(16, false, VQ_FROM_DEVICE);
	set_desc(0, RO_START + 0x1000, 64, VRING_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), -EFAULT);
	assert_int_equal(q.last_avail, 0);		/* nothing consumed */

	/* the same buffer is fine for the device to read */
	attach(16, false, VQ_TO_DEVICE);
	set_desc(0, RO_START + 0x1000, 64, 0, 0);
	assert_int_equal(vq_pop(&q, &chain), 1);
}

static void test_control_chain_readable_then_writable(void **st)
{
	attach(16, false, VQ_BOTH);
	set_desc(0, BUF, 2, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF + 0x100, 6, VRING_DESC_F_NEXT, 2);
	set_desc(2, BUF + 0x200, 1, VRING_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.nr, 3);
	assert_int_equal(chain.nr_out, 2);
	assert_int_equal(chain.total, 9);

	/* a readable descriptor after a writable one breaks the ring */
	set_desc(2, BUF + 0x200, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	set_desc(3, BUF + 0x300, 4, 0, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), -EACCES);
}

/* ---- batching ---- */

static void test_avail_index_is_read_once_per_batch(void **st)
{
	for (unsigned i = 0; i < 3; i++) {
		set_desc(i, BUF + i * 64, 64, 0, 0);
		offer(i);
	}
	assert_int_equal(vq_pop(&q, &chain), 1);
	/* The driver's index now claims the impossible; the batch already read is served. */
	avail()->idx = avail_idx + q.size + 1;
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.head, 1);
	vq_unpop(&q);					/* given back: still in the batch */
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.head, 1);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.head, 2);
	/* the batch is used up: the next pop reads the index again */
	assert_int_equal(vq_pop(&q, &chain), -ERANGE);
	avail()->idx = avail_idx;
	assert_int_equal(vq_pop(&q, &chain), 0);
}

static void test_inlined_pop_matches_the_ops_pop(void **st)
{
	struct vq copy;
	struct vq_chain *c2 = malloc(sizeof(*c2));

	set_desc(0, BUF, 12, VRING_DESC_F_NEXT, 4);
	set_desc(4, BUF + 0x1000, 0, VRING_DESC_F_NEXT, 5);	/* empty: left out */
	set_desc(5, BUF + 0x2000, 300, 0, 0);
	offer(0);
	copy = q;
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(vq_pop_with(&copy, c2, fake_translate, mem), 1);
	assert_int_equal(chain.nr, 2);
	assert_int_equal(c2->nr, 2);
	assert_int_equal(chain.total, 312);
	assert_int_equal(c2->total, 312);
	for (unsigned i = 0; i < 2; i++) {
		assert_ptr_equal(chain.iov[i].base, c2->iov[i].base);
		assert_int_equal(chain.iov[i].addr, c2->iov[i].addr);
		assert_int_equal(chain.iov[i].len, c2->iov[i].len);
	}
	assert_int_equal(q.last_avail, copy.last_avail);
	free(c2);
}

/* ---- wrap at 65536 ---- */

static void test_index_wraps_at_65536_with_batches(void **st)
{
	start_at(65533);
	set_desc(7, BUF, 10, 0, 0);
	for (int i = 0; i < 6; i++)
		offer(7);				/* driver's index 65533 -> 3 */
	assert_int_equal(avail()->idx, 3);
	assert_int_equal(vq_pending(&q), 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(vq_pop(&q, &chain), 1);
		vq_push(&q, chain.head, 10 + i);
	}
	assert_int_equal(vq_pop(&q, &chain), 0);
	vq_publish(&q);
	assert_int_equal(q.last_avail, 3);
	assert_int_equal(used()->idx, 3);
	/* entries 65533..65535 sit at slots 13..15, 0..2 at slots 0..2 */
	assert_int_equal(used()->ring[13].len, 10);
	assert_int_equal(used()->ring[15].len, 12);
	assert_int_equal(used()->ring[0].len, 13);
	assert_int_equal(used()->ring[2].len, 15);
}

static void test_written_hook_covers_wrapped_used_entries(void **st)
{
	start_at(14);					/* slots 14, 15, then 0, 1 */
	for (int i = 0; i < 4; i++)
		vq_push(&q, 0, 0);
	assert_int_equal(nr_written, 0);		/* nothing reported before publish */
	vq_publish(&q);
	assert_int_equal(nr_written, 3);
	assert_int_equal(written[0].addr, IOVA + USED);		/* flags, idx */
	assert_int_equal(written[0].len, 4);
	assert_int_equal(written[1].addr, IOVA + USED + 4 + 8 * 14);
	assert_int_equal(written[1].len, 16);
	assert_int_equal(written[2].addr, IOVA + USED + 4);
	assert_int_equal(written[2].len, 16);
	/* an unpushed entry is neither visible nor reported */
	nr_written = 0;
	vq_push(&q, 0, 0);
	vq_unpush(&q);
	vq_publish(&q);
	assert_int_equal(used()->idx, 18);
	assert_int_equal(nr_written, 1);
}

static void test_buffer_writes_are_reported(void **st)
{
	attach(16, false, VQ_FROM_DEVICE);
	set_desc(0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF + 0x3000, 100, VRING_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	vq_chain_written(&q, &chain, 20);		/* 8 in the first, 12 in the second */
	assert_int_equal(nr_written, 2);
	assert_int_equal(written[0].addr, IOVA + BUF);
	assert_int_equal(written[0].len, 8);
	assert_int_equal(written[1].addr, IOVA + BUF + 0x3000);
	assert_int_equal(written[1].len, 12);
}

/* ---- EVENT_IDX ---- */

static void test_event_idx_interrupts_across_the_wrap(void **st)
{
	uint16_t *used_event = &avail()->ring[16];

	attach(16, true, VQ_FROM_DEVICE);
	start_at(65534);
	q.signalled_used = 65534;
	q.signalled_valid = true;
	*used_event = 65535;			/* "interrupt me once entry 65535 is used" */
	vq_push(&q, 0, 0);
	vq_publish(&q);				/* 65534 -> 65535: not crossed yet */
	assert_false(vq_should_interrupt(&q));
	vq_push(&q, 0, 0);
	vq_push(&q, 0, 0);
	vq_publish(&q);				/* 65535 -> 1 crosses it, over the wrap */
	assert_true(vq_should_interrupt(&q));
	*used_event = 0;			/* already passed: no more until it comes round */
	vq_push(&q, 0, 0);
	vq_publish(&q);
	assert_false(vq_should_interrupt(&q));
}

static void test_event_idx_notify_suppression_across_the_wrap(void **st)
{
	uint16_t *avail_event = (uint16_t *)&used()->ring[16];

	attach(16, true, VQ_TO_DEVICE);
	start_at(65535);
	vq_set_notify(&q, true);
	assert_int_equal(*avail_event, 65535);
	/* the driver publishing entry 65535 (idx 65535 -> 0) must kick */
	assert_true(vring_need_event(*avail_event, 0, 65535));
	assert_int_equal(nr_written, 1);		/* avail_event reported as written */
	assert_int_equal(written[0].addr, IOVA + USED + 4 + 8 * 16);
	vq_set_notify(&q, false);
	assert_int_equal(*avail_event, 0x7fff);
	assert_false(vring_need_event(*avail_event, 8, 65535));	/* kicks stop */
}

/* ---- hostile chains ---- */

static void test_chain_longer_than_the_queue_is_a_loop(void **st)
{
	/* every descriptor once, then back to the first: one more than the queue has */
	for (unsigned i = 0; i < q.size; i++)
		set_desc(i, BUF + i * 64, 64, VRING_DESC_F_NEXT, (i + 1) % q.size);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), -ELOOP);
	assert_int_equal(q.last_avail, 0);
}

static void test_loop_of_empty_descriptors_is_a_loop(void **st)
{
	/* nothing is added to the chain, but the walk must still end */
	set_desc(0, BUF, 0, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF, 0, VRING_DESC_F_NEXT, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), -ELOOP);
}

static void test_out_of_range_buffers_are_refused(void **st)
{
	static const struct { uint64_t addr; uint32_t len; } bad[] = {
		{ 0, 64 },				/* below the map */
		{ IOVA + MEM - 8, 64 },			/* runs off the end */
		{ IOVA + RO_START - 8, 64 },		/* straddles two regions */
		{ 0xffffffffffffff00ull, 0x1000 },	/* wraps around */
	};

	offer(0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		*desc(0) = (struct vring_desc){ .addr = bad[i].addr, .len = bad[i].len };
		assert_int_equal(vq_pop(&q, &chain), -EFAULT);
		assert_int_equal(q.last_avail, 0);
	}
	set_desc(0, BUF, 64, 0, q.size);		/* next ignored without F_NEXT */
	assert_int_equal(vq_pop(&q, &chain), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rings_are_translated_with_the_access_they_need),
		T(test_buffers_are_translated_for_their_direction),
		T(test_read_only_memory_refuses_a_writable_buffer),
		T(test_control_chain_readable_then_writable),
		T(test_avail_index_is_read_once_per_batch),
		T(test_inlined_pop_matches_the_ops_pop),
		T(test_index_wraps_at_65536_with_batches),
		T(test_written_hook_covers_wrapped_used_entries),
		T(test_buffer_writes_are_reported),
		T(test_event_idx_interrupts_across_the_wrap),
		T(test_event_idx_notify_suppression_across_the_wrap),
		T(test_chain_longer_than_the_queue_is_a_loop),
		T(test_loop_of_empty_descriptors_is_a_loop),
		T(test_out_of_range_buffers_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
