// SPDX-License-Identifier: MIT
/*
 * hdnic's hold queue (devices/hdnic/holdq.c) on its own: frames leave only
 * when their epoch is committed and in the order they came, a full queue
 * says so before anything is taken (never drops), the arena wraps, a
 * discard throws away only what is not committed, and release waits for
 * the output's room without reordering.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/holdq.h"

struct sink {
	unsigned n;
	uint32_t seq[8192];	/* first 4 bytes of each frame out */
	bool blocked;		/* the output has no room */
};

static void out(void *ctx, const uint8_t *frame, size_t len)
{
	struct sink *s = ctx;

	memcpy(&s->seq[s->n++], frame, 4);
}

static bool ready(void *ctx)
{
	return !((struct sink *)ctx)->blocked;
}

static const struct holdq_ops ops = { .output = out, .ready = ready };

static int submit(struct holdq *q, uint32_t seq, size_t len)
{
	uint8_t frame[1518] = { 0 };

	memcpy(frame, &seq, 4);
	return holdq_submit(q, frame, len);
}

static struct sink sink;

static void test_frames_wait_for_their_epoch(void **st)
{
	struct holdq q;

	memset(&sink, 0, sizeof(sink));
	holdq_init(&q, &ops, &sink);
	assert_int_equal(submit(&q, 1, 60), 0);		/* pass mode: straight out */
	assert_int_equal(sink.n, 1);
	assert_int_equal(holdq_hold(&q, 10, 0), 0);
	assert_int_equal(submit(&q, 2, 60), 0);
	assert_int_equal(holdq_next_epoch(&q, 11), 0);
	assert_int_equal(submit(&q, 3, 60), 0);
	assert_int_equal(sink.n, 1);
	assert_int_equal(holdq_commit(&q, 11), -EINVAL);	/* still open */
	assert_int_equal(holdq_next_epoch(&q, 11), -EINVAL);	/* not forward */
	assert_int_equal(holdq_commit(&q, 10), 0);
	assert_int_equal(sink.n, 2);
	assert_int_equal(sink.seq[1], 2);
	holdq_pass(&q);
	assert_int_equal(sink.n, 3);
	assert_int_equal(sink.seq[2], 3);
	assert_int_equal(q.stats.released, 2);
	holdq_destroy(&q);
}

static void test_full_queue_refuses_before_taking(void **st)
{
	struct holdq q;

	memset(&sink, 0, sizeof(sink));
	holdq_init(&q, &ops, &sink);
	assert_int_equal(holdq_hold(&q, 1, 3), 0);
	for (uint32_t i = 0; i < 3; i++) {
		assert_true(holdq_room(&q, 1518));
		assert_int_equal(submit(&q, i, 1518), 0);
	}
	assert_false(holdq_room(&q, 60));
	assert_int_equal(submit(&q, 99, 60), -ENOBUFS);
	assert_int_equal(q.stats.held, 3);
	assert_int_equal(holdq_hold(&q, 1, HOLDQ_MAX_FRAMES + 1), -EINVAL);
	holdq_destroy(&q);
}

static void test_arena_wraps_in_order(void **st)
{
	struct holdq q;
	uint32_t next_in = 0, next_out = 0;

	memset(&sink, 0, sizeof(sink));
	holdq_init(&q, &ops, &sink);
	assert_int_equal(holdq_hold(&q, 1, HOLDQ_MAX_FRAMES), 0);
	/* 4 MiB arena, ~1.4 KiB frames: several laps of the arena */
	for (uint64_t e = 1; e < 12; e++) {
		while (holdq_room(&q, 1400))
			assert_int_equal(submit(&q, next_in++, 1400), 0);
		assert_int_equal(holdq_next_epoch(&q, e + 1), 0);
		assert_int_equal(holdq_commit(&q, e), 0);
		for (unsigned i = 0; i < sink.n; i++)
			assert_int_equal(sink.seq[i], next_out++);
		sink.n = 0;
	}
	assert_true(q.stats.released > 2 * (HOLDQ_BYTES / 1400));
	assert_int_equal(q.stats.released, next_in);
	assert_int_equal(next_out, next_in);
	holdq_destroy(&q);
}

static void test_discard_keeps_what_was_committed(void **st)
{
	struct holdq q;

	memset(&sink, 0, sizeof(sink));
	holdq_init(&q, &ops, &sink);
	assert_int_equal(holdq_hold(&q, 1, 0), 0);
	submit(&q, 1, 60);
	submit(&q, 2, 60);
	holdq_next_epoch(&q, 2);
	submit(&q, 3, 60);
	sink.blocked = true;			/* the uplink is full */
	assert_int_equal(holdq_commit(&q, 1), 0);
	assert_int_equal(sink.n, 0);
	assert_true(holdq_releasable(&q));
	holdq_discard(&q);			/* the client died */
	assert_int_equal(q.stats.discarded, 1);
	assert_int_equal(q.count, 2);
	sink.blocked = false;
	assert_false(holdq_release(&q));
	assert_int_equal(sink.n, 2);
	assert_int_equal(sink.seq[0], 1);
	assert_int_equal(sink.seq[1], 2);
	assert_int_equal(q.count, 0);
	holdq_pass(&q);
	submit(&q, 4, 60);
	assert_int_equal(sink.n, 3);		/* went straight: nothing queued */
	holdq_destroy(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_wait_for_their_epoch),
		cmocka_unit_test(test_full_queue_refuses_before_taking),
		cmocka_unit_test(test_arena_wraps_in_order),
		cmocka_unit_test(test_discard_keeps_what_was_committed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
