// SPDX-License-Identifier: MIT
/*
 * Remus below the CLI, without KVM: a primary VM and a standby VM on the
 * fake KVM, ckpt_primary_run() and standby_receive() over a socketpair.
 * What a user would see: after N epochs the standby's RAM and vCPU state
 * are the primary's at the last acknowledged checkpoint; devices were told
 * "epoch N+1" at each pause and "commit N" only after the standby's ack,
 * in order; a corrupt or incomplete checkpoint is refused and the previous
 * one kept; silence for --failover-ms activates the standby from its last
 * complete checkpoint; a primary killed at each named fail point leaves a
 * standby holding exactly the last acknowledged checkpoint, and no output
 * of an unacknowledged epoch was ever committed; a lost standby makes the
 * primary release (continue) or pause with output held (pause).
 */
#include "tests/unit/checkpoint_harness.h"

static void test_epochs_reach_the_standby_and_commit_in_order(void **state)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t;
	char why[512] = "";
	int sv[2], ret, commits = 0;
	uint64_t last_epoch = 1, expect_commit = 1;

	stop_after = 8;
	o.stop = &stop_flag;
	ckpt_stats_init(&st);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	mig_io_unix(&io, sv[0]);
	ret = ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why));
	assert_int_equal(ret, 0);
	assert_non_null(strstr(why, "stopped on request"));
	pthread_join(t, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.outcome, STANDBY_STOPPED);
	/* the last checkpoint taken was acknowledged before the stop */
	assert_int_equal(st.epoch, 8);
	assert_int_equal(st.committed, 8);
	assert_int_equal(s.sb.applied, 8);
	assert_int_equal(nr_pauses, 8);
	assert_int_equal(nr_resumes, 8);
	assert_true(st.nr_pauses == 8 && ckpt_pause_pct(&st, 99) >= ckpt_pause_pct(&st, 50));
	/* RAM: the primary stopped changing at checkpoint 8 */
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	mine = &dst;
	assert_int_equal(standby_activate(&s.sb, &b, why, sizeof(why)), 0);
	mine = &src;
	assert_regs_equal();
	assert_int_equal(dst.store[VCPU_FD0][S_REGS][0], 7);
	/* devices: START 1, then at each pause EPOCH n+1, each COMMIT n after its ack */
	assert_int_equal(ops_log[0].op, HOLDQ_OP_START);
	assert_int_equal(ops_log[0].epoch, 1);
	for (int i = 1; i < nr_ops - 1; i++) {
		if (ops_log[i].op == HOLDQ_OP_EPOCH) {
			assert_int_equal(ops_log[i].epoch, ++last_epoch);
		} else {
			assert_int_equal(ops_log[i].op, HOLDQ_OP_COMMIT);
			assert_int_equal(ops_log[i].epoch, expect_commit++);
			/* never the epoch still producing frames */
			assert_true(ops_log[i].epoch < last_epoch);
			commits++;
		}
	}
	assert_int_equal(commits, 8);
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
	standby_end(&s.sb);
	mig_io_close(&io);
	mig_io_close(&s.io);
}

/*
 * A checkpoint the primary cannot take (here a device refuses to stop at the
 * 4th pause): the standby, healthy, is told to stop before anything held
 * leaves -- it must not take over from checkpoint 3 while the primary runs
 * on and releases replies of epoch 4 (before, the primary released and
 * closed the stream, and the standby took over on the closed stream).
 */
static void test_checkpoint_failure_stops_the_standby_before_releasing(void **state)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t;
	char why[512] = "";
	int sv[2], ret;

	stop_after = 1000;
	pause_fails_at = 4;
	ckpt_stats_init(&st);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	mig_io_unix(&io, sv[0]);
	ret = ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why));
	assert_int_equal(ret, -EIO);
	assert_non_null(strstr(why, "a device refused to stop"));
	assert_non_null(strstr(why, "the standby stopped"));
	pthread_join(t, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.outcome, STANDBY_STOPPED);	/* it never runs the VM */
	assert_int_equal(s.sb.applied, 3);
	assert_int_equal(st.committed, 3);
	assert_int_equal(st.role, CKPT_UNPROTECTED);
	assert_false(st.paused_by_loss);
	/* released only after the standby's confirmation: STOP is the last op */
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
	standby_end(&s.sb);
	mig_io_close(&io);
	mig_io_close(&s.io);
}

/* ---- hand-made streams: what a standby does with bad checkpoints ---- */

struct feeder {
	struct mig_io io;
	struct mig_writer w;
	int fd;
};

static void feed_start(struct feeder *f, int fd, uint32_t failover_ms)
{
	struct ckpt_hello h = { CKPT_PROTO_VERSION, 20, 5, failover_ms };
	struct manifest *m = xzalloc(sizeof(*m));
	void *blob;
	size_t len;

	f->fd = fd;
	mig_io_unix(&f->io, fd);
	assert_int_equal(mig_writer_init(&f->w, &f->io, 0), 0);
	assert_int_equal(manifest_from_vm(&a, m), 0);
	assert_int_equal(manifest_build(m, &blob, &len), 0);
	assert_int_equal(mig_put_section(&f->w, MIG_TAG_MANIFEST, blob, len), 0);
	free(blob);
	free(m);
	assert_int_equal(ckpt_put_hello(&f->w, &h), 0);
}

/* Checkpoint `epoch` of pages [first, first+n) of a, plus a's device state. */
static void feed_ckpt(struct feeder *f, uint64_t epoch, uint64_t since, uint64_t first,
		      uint64_t n, bool corrupt, bool lose_devs)
{
	struct ckpt_mark m;
	struct state_buf sb;

	assert_int_equal(ckpt_put_begin(&f->w, &m, epoch, since), 0);
	for (uint64_t p = first; p < first + n; p++)
		assert_int_equal(mig_put_page(&f->w, (uint32_t)epoch, p, a.mem.host + p * 4096), 0);
	assert_int_equal(mig_flush_ram(&f->w), 0);
	if (corrupt) {
		/* a section whose body does not match its crc */
		uint8_t bad[16 + 8] = { 'R', 'A', 'M', 'B', 1, 2, 3, 4, 8 };

		assert_int_equal(mig_write_all(&f->io, bad, sizeof(bad)), 0);
		f->w.nr_sections++;
	}
	if (epoch) {
		state_init_writer(&sb);
		mine = &src;
		assert_int_equal(devices_save(&a, &sb), 0);
		if (!lose_devs)
			assert_int_equal(mig_put_section(&f->w, MIG_TAG_DEVS, sb.data, sb.len), 0);
		else
			f->w.nr_sections++;	/* claimed, never sent */
		state_free(&sb);
	}
	assert_int_equal(ckpt_put_end(&f->w, &m, epoch), 0);
}

static void expect_reply(int fd, uint32_t kind, uint64_t epoch)
{
	uint8_t r[CKPT_REPLY_LEN];
	uint32_t k;
	uint64_t e;

	do {
		assert_int_equal(read(fd, r, sizeof(r)), sizeof(r));
		assert_int_equal(ckpt_reply_decode(r, &k, &e), 0);
	} while (k == CKPT_ALIVE);
	assert_int_equal(k, kind);
	assert_int_equal(e, epoch);
}

static void test_bad_checkpoints_refused_previous_kept(void **state)
{
	struct stby s = { 0 };
	struct feeder f;
	uint8_t *at1 = malloc(RAM);
	char why[256];
	pthread_t t;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	feed_start(&f, sv[0], 5000);
	feed_ckpt(&f, 0, 0, 0, RAM / 4096, false, false);
	guest_runs(1, NULL);
	feed_ckpt(&f, 1, 0, HOT_PAGE, FIRST_PAGE + 2 - HOT_PAGE, false, false);
	expect_reply(sv[0], CKPT_ACK, 1);
	memcpy(at1, a.mem.host, RAM);

	guest_runs(2, NULL);
	feed_ckpt(&f, 2, 1, HOT_PAGE, 60, true, false);		/* corrupt section */
	expect_reply(sv[0], CKPT_REFUSE, 2);
	feed_ckpt(&f, 2, 1, HOT_PAGE, 60, false, true);		/* a section lost */
	expect_reply(sv[0], CKPT_REFUSE, 2);
	feed_ckpt(&f, 3, 2, HOT_PAGE, 60, false, false);	/* based on a refused one */
	expect_reply(sv[0], CKPT_REFUSE, 3);
	/* the standby still holds checkpoint 1, untouched by the refused ones */
	assert_int_equal(s.sb.applied, 1);
	assert_memory_equal(b.mem.host, at1, RAM);

	/* the primary resends since its last acknowledged checkpoint: accepted */
	feed_ckpt(&f, 4, 1, HOT_PAGE, 60, false, false);
	expect_reply(sv[0], CKPT_ACK, 4);
	mig_writer_free(&f.w);
	close(sv[0]);		/* the primary dies */
	pthread_join(t, NULL);
	assert_int_equal(s.outcome, STANDBY_ACTIVATE);
	assert_non_null(strstr(s.sb.why, "connection ended"));
	assert_int_equal(s.sb.applied, 4);
	assert_int_equal(s.sb.refused, 3);
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	mine = &dst;
	assert_int_equal(standby_activate(&s.sb, &b, why, sizeof(why)), 0);
	mine = &src;
	assert_regs_equal();
	standby_end(&s.sb);
	mig_io_close(&s.io);
	free(at1);
}

static void test_silence_activates_from_the_last_complete_checkpoint(void **state)
{
	struct stby s = { 0 };
	struct feeder f;
	struct ckpt_mark m;
	uint8_t *at1 = malloc(RAM), regs1[sizeof(struct kvm_regs)];
	uint64_t t0;
	char why[256];
	pthread_t t;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	feed_start(&f, sv[0], 300);
	feed_ckpt(&f, 0, 0, 0, RAM / 4096, false, false);
	guest_runs(1, NULL);
	feed_ckpt(&f, 1, 0, 0, RAM / 4096, false, false);
	expect_reply(sv[0], CKPT_ACK, 1);
	memcpy(at1, a.mem.host, RAM);
	memcpy(regs1, src.store[VCPU_FD0][S_REGS], sizeof(regs1));
	/* checkpoint 2 begins, half of it arrives, then nothing: the primary hangs */
	guest_runs(2, NULL);
	src.store[VCPU_FD0][S_REGS][0] = 0x77;
	t0 = now_ns();
	assert_int_equal(ckpt_put_begin(&f.w, &m, 2, 1), 0);
	for (uint64_t p = 0; p < 10; p++)
		assert_int_equal(mig_put_page(&f.w, 2, HOT_PAGE + p, a.mem.host + (HOT_PAGE + p) * 4096), 0);
	assert_int_equal(mig_flush_ram(&f.w), 0);
	pthread_join(t, NULL);
	assert_int_equal(s.outcome, STANDBY_ACTIVATE);
	assert_non_null(strstr(s.sb.why, "no word from the primary for 300 ms"));
	assert_true(now_ns() - t0 >= 290000000ull);
	assert_int_equal(s.sb.applied, 1);
	assert_memory_equal(b.mem.host, at1, RAM);
	mine = &dst;
	assert_int_equal(standby_activate(&s.sb, &b, why, sizeof(why)), 0);
	mine = &src;
	assert_memory_equal(dst.store[VCPU_FD0][S_REGS], regs1, sizeof(regs1));
	mig_writer_free(&f.w);
	close(sv[0]);
	standby_end(&s.sb);
	mig_io_close(&s.io);
	free(at1);
}

/* ---- fail points: a primary process killed at each named step ---- */

static void run_primary_child(int fd, int ops_pipe, const char *point, uint64_t epoch)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct mig_io io;
	char why[256];

	alarm(30);
	ops_fd = ops_pipe;
	stop_after = 1000;
	failpoint_clear();
	assert_int_equal(failpoint_arm(point, epoch), 0);
	ckpt_stats_init(&st);
	mig_io_unix(&io, fd);
	ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why));
	_exit(3);	/* the fail point should have killed it */
}

static void check_failpoint(const char *point, uint64_t kill_epoch, uint64_t want_applied)
{
	struct stby s = { 0 };
	uint8_t *expect = malloc(RAM);
	uint64_t rec[2], max_commit = 0;
	char why[256];
	int sv[2], pp[2], status;
	pthread_t t;
	pid_t pid;

	nr_ops = 0;
	memcpy(expect, a.mem.host, RAM);	/* checkpoint m = start + epochs 1..m-1 */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(pp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(sv[1]);
		close(pp[0]);
		run_primary_child(sv[0], pp[1], point, kill_epoch);
	}
	close(sv[0]);
	close(pp[1]);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	pthread_join(t, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.outcome, STANDBY_ACTIVATE);
	print_message("  %s:%llu -> standby holds checkpoint %llu\n", point,
		      (unsigned long long)kill_epoch, (unsigned long long)s.sb.applied);
	assert_int_equal(s.sb.applied, want_applied);
	/* no output of an epoch the standby does not hold was ever committed */
	while (read(pp[0], rec, sizeof(rec)) == sizeof(rec))
		if (rec[0] == HOLDQ_OP_COMMIT)
			max_commit = rec[1] > max_commit ? rec[1] : max_commit;
	close(pp[0]);
	assert_true(max_commit <= s.sb.applied);
	/* exactly the last acknowledged checkpoint: RAM and vCPU state */
	for (uint64_t n = 1; n < want_applied; n++)
		guest_runs(n, expect);
	assert_memory_equal(b.mem.host, expect, RAM);
	mine = &dst;
	assert_int_equal(standby_activate(&s.sb, &b, why, sizeof(why)), 0);
	mine = &src;
	assert_int_equal(dst.store[VCPU_FD0][S_REGS][0],
			 want_applied > 1 ? want_applied - 1 : src.store[VCPU_FD0][S_REGS][0]);
	standby_end(&s.sb);
	mig_io_close(&s.io);
	vm_free(&b);
	fake_reset(&dst);
	free(expect);
}

static void test_primary_killed_at_each_fail_point(void **state)
{
	/* before the checkpoint left whole: the standby keeps the one before */
	check_failpoint("after-pause", 3, 2);
	check_failpoint("harvest", 3, 2);
	check_failpoint("stop-copy", 3, 2);
	check_failpoint("send", 3, 2);
	/* acknowledged: the standby has it, whether or not the output left */
	check_failpoint("after-ack-before-release", 3, 3);
	check_failpoint("release", 3, 3);
}

static void test_standby_lost_continue_releases(void **state)
{
	lose_standby(false);
}

static void test_standby_lost_pause_keeps_output_held(void **state)
{
	lose_standby(true);
}

static void test_hello_checked(void **state)
{
	uint8_t b16[16];
	struct ckpt_hello h;
	char why[128];

	memset(b16, 0, sizeof(b16));
	b16[0] = 9;
	assert_int_equal(ckpt_parse_hello(b16, 16, &h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version 9"));
	b16[0] = CKPT_PROTO_VERSION;
	b16[8] = 50;
	b16[12] = 20;
	assert_int_equal(ckpt_parse_hello(b16, 16, &h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "shorter"));
	ckpt_reply_encode(b16, CKPT_ACK, 42);
	b16[0] ^= 1;
	assert_int_equal(ckpt_reply_decode(b16, &h.version, (uint64_t *)why), -EPROTO);
}

/* A write burst ends the epoch before its timer: --dirty-budget. */
static int burst_pages;

static void burst(uint64_t n, void *opaque)
{
	uint8_t v[8];

	epoch_done(n, opaque);
	if (n >= stop_after)
		return;		/* the last checkpoint is the end state */
	memset(v, (int)n, sizeof(v));
	for (int i = 0; i < burst_pages; i++)
		assert_int_equal(guest_mem_write(&a.mem, (200 + i * 3) * 4096ull, v, sizeof(v)), 0);
}

static void *first_burst(void *arg)
{
	usleep(100000);
	for (int i = 0; i < burst_pages; i++)
		assert_int_equal(guest_mem_write(&a.mem, (400 + i) * 4096ull, "x", 1), 0);
	return NULL;
}

static void test_dirty_budget_ends_an_epoch_early(void **state)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t, w;
	char why[256];
	uint64_t t0;
	int sv[2];

	stop_after = 5;
	burst_pages = 60;
	o.epoch_ms = 20000;		/* the timer alone would take 100 s */
	o.dirty_budget = 50;
	o.epoch_done = burst;
	o.stop = &stop_flag;
	ckpt_stats_init(&st);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	mig_io_unix(&io, sv[0]);
	t0 = now_ns();
	/* the guest's burst during epoch 1, while the driver waits for its timer */
	assert_int_equal(pthread_create(&w, NULL, first_burst, NULL), 0);
	assert_int_equal(ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why)), 0);
	pthread_join(w, NULL);
	pthread_join(t, NULL);
	assert_true(now_ns() - t0 < 10000000000ull);
	assert_int_equal(st.epoch, 5);
	assert_int_equal(s.sb.applied, 5);
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	standby_end(&s.sb);
	mig_io_close(&io);
	mig_io_close(&s.io);
}

/* --epoch-phase-ms: the schedule itself, exactly */
static void test_epoch_due_keeps_the_phase(void **state)
{
	const uint64_t ms = 1000000;

	/* no phase: an epoch after the resume */
	assert_int_equal(ckpt_epoch_due(1234 * ms, 50, -1), 1284 * ms);
	/* phase 7 of 50: the next slot 7 past a multiple of 50, half an epoch away at least */
	assert_int_equal(ckpt_epoch_due(1001 * ms, 50, 7), 1057 * ms);
	assert_int_equal(ckpt_epoch_due(1007 * ms + 900000, 50, 7), 1057 * ms);
	/* a late resume (40 ms into the epoch) skips to the slot after: phase kept */
	assert_int_equal(ckpt_epoch_due(1047 * ms, 50, 7), 1107 * ms);
	/* exactly half an epoch before a slot: that slot */
	assert_int_equal(ckpt_epoch_due(1032 * ms, 50, 7), 1057 * ms);
	/* every due instant is on the phase, an epoch away at most 1.5 */
	for (uint64_t t = 5000 * ms; t < 5000 * ms + 200 * ms; t += 3 * ms + 17) {
		uint64_t due = ckpt_epoch_due(t, 20, 13);

		assert_int_equal(due % (20 * ms), 13 * ms);
		assert_true(due >= t + 10 * ms && due < t + 30 * ms);
	}
}

static uint64_t pause_at[16];

static int phase_pause(struct vm *vm, char *why, size_t len)
{
	if (nr_pauses < 16)
		pause_at[nr_pauses] = now_ns();
	return test_pause(vm, why, len);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* The driver pauses on the phase it was given (what tools/protect staggers by). */
static void test_epochs_pause_on_their_phase(void **state)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t;
	char why[256];
	uint64_t off[8];
	int sv[2];

	stop_after = 8;
	o.epoch_ms = 40;
	o.phased = true;
	o.epoch_phase_ms = 13;
	o.pause = phase_pause;
	o.stop = &stop_flag;
	ckpt_stats_init(&st);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	mig_io_unix(&io, sv[0]);
	/* start on the grid: without the phase every pause would come ~27 ms off it */
	while (now_ns() % 40000000ull > 2000000ull)
		usleep(500);
	assert_int_equal(ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why)), 0);
	pthread_join(t, NULL);
	assert_int_equal(nr_pauses, 8);
	/* how far past its slot (13 ms into the 40 ms grid) each pause began */
	for (int i = 0; i < 8; i++)
		off[i] = (pause_at[i] + 40000000ull - 13000000ull) % 40000000ull;
	qsort(off, 8, sizeof(off[0]), cmp_u64);
	/* on time, give or take a busy host's wake-up: never a random phase */
	assert_true(off[4] < 10000000ull);
	standby_end(&s.sb);
	mig_io_close(&io);
	mig_io_close(&s.io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_checked),
		cmocka_unit_test(test_epoch_due_keeps_the_phase),
		cmocka_unit_test_setup_teardown(test_epochs_pause_on_their_phase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epochs_reach_the_standby_and_commit_in_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_checkpoints_refused_previous_kept,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_silence_activates_from_the_last_complete_checkpoint,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_primary_killed_at_each_fail_point,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_failure_stops_the_standby_before_releasing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_lost_continue_releases,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_lost_pause_keeps_output_held,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_budget_ends_an_epoch_early, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

