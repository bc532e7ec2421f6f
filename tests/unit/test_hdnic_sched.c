// SPDX-License-Identifier: MIT
/*
 * hdnic's TX scheduler on its own (sched.c, qos.c): fake transmitters with
 * endless or finite backlogs behind the transmit callback, a simulated
 * clock of 1 ms loop passes.  Shares follow DWRR weights under a line rate
 * and idle share goes to the others; egress token buckets cap a
 * transmitter; a port's buffers being full suspends a turn that resumes
 * first; a transmitter that breaks or goes idle leaves the ring cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/hdnic/sched.h"
#include "vmm/compiler.h"
#include "vmm/util.h"

#define PASS_NS		1000000ULL	/* 1 ms */
#define FRAME		1000

struct fake {
	struct sched_entry e;
	unsigned port;		/* where its frames go */
	uint64_t backlog;	/* frames queued; UINT64_MAX: endless */
	uint64_t sent[SCHED_NR_PORTS];	/* bytes */
	uint64_t refused[5];	/* by enum sched_refusal */
	bool breaks;		/* the next transmit finds its ring broken */
	unsigned turns, idles;
};

static struct sched s;
static bool room[SCHED_NR_PORTS];	/* the ports' buffers take more */
static uint64_t now;

static enum sched_tx fake_transmit(struct sched *sc, struct sched_entry *e, unsigned port)
{
	struct fake *f = container_of(e, struct fake, e);

	if (f->breaks) {
		sched_remove(sc, e);
		return SCHED_TX_GONE;
	}
	if (!f->backlog)
		return SCHED_TX_EMPTY;
	if (!sched_admit(sc, e, f->port, FRAME, room[f->port])) {
		f->refused[sc->refusal]++;
		return SCHED_TX_WAIT;
	}
	f->sent[f->port] += FRAME;
	if (f->backlog != UINT64_MAX)
		f->backlog--;
	return SCHED_TX_SENT;
}

static void fake_turn_done(struct sched_entry *e)
{
	container_of(e, struct fake, e)->turns++;
}

static bool fake_pending(const struct sched_entry *e)
{
	return container_of(e, const struct fake, e)->backlog != 0;
}

/* Nothing queued: it sleeps at once (leaves the ring). */
static void fake_idle(struct sched_entry *e, uint64_t now_ns)
{
	container_of(e, struct fake, e)->idles++;
	sched_remove(&s, e);
}

static const struct sched_ops fake_ops = {
	.transmit = fake_transmit, .turn_done = fake_turn_done,
	.pending = fake_pending, .idle = fake_idle,
};

static int setup(void **state)
{
	now = 1000 * PASS_NS;
	sched_init(&s, &fake_ops);
	room[SCHED_PORT_UPLINK] = room[SCHED_PORT_SWITCH] = true;
	return 0;
}

static void fake_init(struct fake *f, uint32_t weight, unsigned port, uint64_t backlog)
{
	memset(f, 0, sizeof(*f));
	sched_entry_init(&f->e, now);
	f->e.weight = weight;
	f->port = port;
	f->backlog = backlog;
	sched_add(&s, &f->e);
}

static void run(unsigned passes)
{
	for (unsigned i = 0; i < passes; i++) {
		now += PASS_NS;
		sched_pass(&s, now);
	}
}

static double ratio(uint64_t a, uint64_t b)
{
	return (double)a / (double)b;
}

static void test_shares_follow_weights_under_a_line_rate(void **state)
{
	struct fake a, b;

	sched_set_rate(&s, SCHED_PORT_UPLINK, 20000000, now);	/* 20 Mbit/s */
	fake_init(&a, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	fake_init(&b, 3, SCHED_PORT_UPLINK, UINT64_MAX);
	run(2000);
	/* 2 s at 20 Mbit/s: 5 MB, plus the line bucket's first 50 ms */
	assert_in_range(a.sent[0] + b.sent[0], 4900000, 5200000);
	assert_in_range((uint64_t)(1000 * ratio(b.sent[0], a.sent[0])), 2940, 3060);
	assert_true(s.port[SCHED_PORT_UPLINK].full > 0);
	/* weights changed live: 1:1 */
	b.e.weight = 1;
	a.sent[0] = b.sent[0] = 0;
	run(2000);
	assert_in_range((uint64_t)(1000 * ratio(b.sent[0], a.sent[0])), 980, 1020);
}

static void test_idle_share_goes_to_the_others(void **state)
{
	struct fake a, b;

	sched_set_rate(&s, SCHED_PORT_UPLINK, 20000000, now);
	fake_init(&a, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	fake_init(&b, 3, SCHED_PORT_UPLINK, 0);		/* weighted, but nothing to send */
	run(1000);
	assert_in_range(a.sent[0], 2450000, 2700000);	/* all of 20 Mbit/s (+ 50 ms) */
	assert_int_equal(b.sent[0], 0);
	assert_true(b.idles >= 1 && !b.e.queued);	/* it went to sleep */
	assert_true(a.e.queued);
}

static void test_egress_bucket_caps_a_transmitter(void **state)
{
	struct fake a, b;

	fake_init(&a, 1, SCHED_PORT_SWITCH, UINT64_MAX);
	fake_init(&b, 1, SCHED_PORT_SWITCH, UINT64_MAX);
	tb_set(&a.e.tx, 4000000, now);			/* 4 Mbit/s */
	run(1000);
	/* 1 s at 4 Mbit/s = 500 kB, plus its 50 ms bucket (25 kB) */
	assert_in_range(a.sent[1], 490000, 530000);
	assert_true(a.refused[SCHED_REFUSED_THROTTLED] > 0);
	/* the neighbour is not held back by it */
	assert_true(b.sent[1] > 10 * a.sent[1]);
}

static void test_everyone_throttled_lets_the_loop_sleep(void **state)
{
	struct fake a;

	fake_init(&a, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	tb_set(&a.e.tx, 4000000, now);
	run(200);	/* the first 50 ms of bucket are gone: a frame every 2 ms */
	for (int i = 0; i < 3 && !s.sleep_ok; i++)
		run(1);
	assert_true(s.sleep_ok);
	assert_true(s.wake_ns > now);
	assert_true(s.wake_ns - now <= 2 * PASS_NS);
}

static void test_full_port_suspends_the_turn_and_resumes_it(void **state)
{
	struct fake a, b;

	fake_init(&a, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	fake_init(&b, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	room[SCHED_PORT_UPLINK] = false;
	run(5);
	assert_int_equal(a.sent[0] + b.sent[0], 0);
	assert_true(s.port[SCHED_PORT_UPLINK].full >= 5);
	/* the suspended turn is the first served when the buffers drain */
	assert_ptr_equal(s.port[SCHED_PORT_UPLINK].cursor, &a.e);
	room[SCHED_PORT_UPLINK] = true;
	run(1);
	assert_true(a.sent[0] > 0);
}

static void test_frames_for_the_other_port_wait_their_turn(void **state)
{
	struct fake a;

	fake_init(&a, 1, SCHED_PORT_SWITCH, 3);
	run(1);
	assert_int_equal(a.sent[SCHED_PORT_SWITCH], 3 * FRAME);
	assert_int_equal(a.sent[SCHED_PORT_UPLINK], 0);
	assert_true(a.refused[SCHED_REFUSED_OTHER_PORT] >= 1);
	assert_int_equal(a.e.deficit[SCHED_PORT_UPLINK], 0);	/* no credit saved up there */
}

static void test_a_broken_transmitter_leaves_the_ring(void **state)
{
	struct fake a, b, c;

	fake_init(&a, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	fake_init(&b, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	fake_init(&c, 1, SCHED_PORT_UPLINK, UINT64_MAX);
	b.breaks = true;
	run(3);
	assert_false(b.e.queued);
	assert_int_equal(s.nr_active, 2);
	assert_true(a.sent[0] > 0 && c.sent[0] > 0);
	assert_int_equal(b.turns, 0);
	/* the last ones leaving empty the ring */
	sched_remove(&s, &a.e);
	sched_remove(&s, &c.e);
	assert_null(s.ring);
	run(1);
	assert_false(s.sleep_ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_shares_follow_weights_under_a_line_rate, setup),
		cmocka_unit_test_setup(test_idle_share_goes_to_the_others, setup),
		cmocka_unit_test_setup(test_egress_bucket_caps_a_transmitter, setup),
		cmocka_unit_test_setup(test_everyone_throttled_lets_the_loop_sleep, setup),
		cmocka_unit_test_setup(test_full_port_suspends_the_turn_and_resumes_it, setup),
		cmocka_unit_test_setup(test_frames_for_the_other_port_wait_their_turn, setup),
		cmocka_unit_test_setup(test_a_broken_transmitter_leaves_the_ring, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
