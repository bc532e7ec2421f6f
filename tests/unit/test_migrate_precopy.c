// SPDX-License-Identifier: MIT
/*
 * What pre-copy decides and drives, without KVM:
 *  - the convergence policy as a table (switch over, continue, throttle
 *    with QEMU's steps, give up at --timeout, --max-bandwidth in the
 *    prediction);
 *  - the vCPU throttle itself: real vCPU threads on a fake KVM_RUN, the
 *    guest's share of time measured at 0, 50 and 80 %;
 *  - device pre-copy through vm_migrate_send: a device's iterations go out
 *    between RAM passes (DEVP) and reach the destination's device before its
 *    final state, its estimate feeds the expected downtime;
 *  - cancel: the source's device runs on, the destination is told why.
 */
#include "tests/unit/migrate_harness.h"

#include <signal.h>
#include <time.h>

#include "vmm/migrate_policy.h"
#include "vmm/throttle.h"

/* ---- the policy, as a table ---- */

struct policy_case {
	const char *what;
	struct converge_in in;
	enum converge_action action;
	uint64_t expected_ms;
	uint32_t throttle_pct, high_dirty_passes;
};


static const struct policy_case policy_cases[] = {
	{ "pass 0 never switches over, however little is left",
	  { .pass = 0, .remaining_bytes = 0, .bandwidth = 100 * MiB, .downtime_ms = 300 },
	  CONVERGE_CONTINUE, 0, 0, 0 },
	{ "10 MiB left at 100 MiB/s: 100 ms, within 300",
	  { .pass = 1, .remaining_bytes = 10 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 300 },
	  CONVERGE_SWITCHOVER, 100, 0, 0 },
	{ "10 MiB left at 100 MiB/s: 100 ms, not within 50",
	  { .pass = 1, .remaining_bytes = 10 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 50 },
	  CONVERGE_CONTINUE, 100, 0, 0 },
	{ "--max-bandwidth 10M caps the measured 100 MiB/s: 1000 ms",
	  { .pass = 1, .remaining_bytes = 10 * MiB, .bandwidth = 100 * MiB,
	    .max_bandwidth = 10 * MiB, .downtime_ms = 300 },
	  CONVERGE_CONTINUE, 1000, 0, 0 },
	{ "device pending bytes alone keep it from converging",
	  { .pass = 3, .remaining_bytes = 64 * MiB, .bandwidth = 64 * MiB, .downtime_ms = 500 },
	  CONVERGE_CONTINUE, 1000, 0, 0 },
	{ "one byte is not 0 ms",
	  { .pass = 1, .remaining_bytes = 1, .bandwidth = 1000, .downtime_ms = 0 },
	  CONVERGE_CONTINUE, 1, 0, 0 },
	{ "nothing measured yet with bytes left: unbounded",
	  { .pass = 1, .remaining_bytes = 4096, .bandwidth = 0, .downtime_ms = 300 },
	  CONVERGE_CONTINUE, UINT64_MAX, 0, 0 },
	{ "timeout reached without converging: give up",
	  { .pass = 5, .remaining_bytes = 100 * MiB, .bandwidth = 10 * MiB, .downtime_ms = 300,
	    .elapsed_ms = 3000, .timeout_ms = 3000 },
	  CONVERGE_GIVE_UP, 10000, 0, 0 },
	{ "converging at the timeout still switches over",
	  { .pass = 5, .remaining_bytes = MiB, .bandwidth = 100 * MiB, .downtime_ms = 300,
	    .elapsed_ms = 9000, .timeout_ms = 3000 },
	  CONVERGE_SWITCHOVER, 10, 0, 0 },
	{ "dirtied 60 % of what was sent, first time: count it, no throttle yet",
	  { .pass = 2, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true },
	  CONVERGE_CONTINUE, 600, 0, 1 },
	{ "second time in a row: throttle 20 %",
	  { .pass = 3, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .high_dirty_passes = 1 },
	  CONVERGE_THROTTLE, 600, 20, 0 },
	{ "still too fast at 20 %: 30 %",
	  { .pass = 5, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .throttle_pct = 20, .high_dirty_passes = 1 },
	  CONVERGE_THROTTLE, 600, 30, 0 },
	{ "at most 99 %",
	  { .pass = 9, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .throttle_pct = 95, .high_dirty_passes = 1 },
	  CONVERGE_THROTTLE, 600, 99, 0 },
	{ "at 99 % nothing more to give: continue until the timeout",
	  { .pass = 9, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .throttle_pct = 99, .high_dirty_passes = 1 },
	  CONVERGE_CONTINUE, 600, 99, 0 },
	{ "dirtying 40 % of what was sent is not a trigger, and resets the count",
	  { .pass = 3, .remaining_bytes = 40 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 40 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .high_dirty_passes = 1 },
	  CONVERGE_CONTINUE, 400, 0, 0 },
	{ "auto-converge off: never throttle",
	  { .pass = 3, .remaining_bytes = 60 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = false, .high_dirty_passes = 5 },
	  CONVERGE_CONTINUE, 600, 0, 6 },
	{ "a throttled guest that converges switches over",
	  { .pass = 7, .remaining_bytes = 5 * MiB, .pass_sent_bytes = 100 * MiB,
	    .pass_dirty_bytes = 60 * MiB, .bandwidth = 100 * MiB, .downtime_ms = 100,
	    .auto_converge = true, .throttle_pct = 40, .high_dirty_passes = 1 },
	  CONVERGE_SWITCHOVER, 50, 40, 2 },
};

static void test_policy_table(void **state)
{
	for (size_t i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		const struct policy_case *c = &policy_cases[i];
		struct converge_out out;

		memset(&out, 0xa5, sizeof(out));
		migrate_converge(&c->in, &out);
		if (out.action != c->action || out.expected_downtime_ms != c->expected_ms ||
		    out.throttle_pct != c->throttle_pct ||
		    out.high_dirty_passes != c->high_dirty_passes)
			fail_msg("case %zu (%s): got %s, %llu ms, %u %%, %u passes; want %s, "
				 "%llu ms, %u %%, %u passes", i, c->what,
				 migrate_converge_action_name(out.action),
				 (unsigned long long)out.expected_downtime_ms, out.throttle_pct,
				 out.high_dirty_passes, migrate_converge_action_name(c->action),
				 (unsigned long long)c->expected_ms, c->throttle_pct,
				 c->high_dirty_passes);
	}
	assert_int_equal(throttle_sleep_ns(0), 0);
	assert_int_equal(throttle_sleep_ns(50), THROTTLE_TIMESLICE_NS);
	assert_int_equal(throttle_sleep_ns(80), 4 * THROTTLE_TIMESLICE_NS);
	assert_int_equal(throttle_sleep_ns(99), 99 * THROTTLE_TIMESLICE_NS);
	assert_int_equal(throttle_sleep_ns(150), 99 * THROTTLE_TIMESLICE_NS);
}

/* ---- the throttle: vCPU threads on a fake KVM_RUN ---- */

static atomic_ullong guest_ns[NR_VCPUS];
static struct kvm_run fake_runs[NR_VCPUS];

/* "Runs the guest" in 1 ms steps until kicked (immediate_exit), counting the time. */
static int run_ioctl(int fd, unsigned long req, void *arg)
{
	int id = fd - VCPU_FD0;

	if (req != KVM_RUN || id < 0 || id >= NR_VCPUS)
		return slot_ioctl(fd, req, arg);
	while (!__atomic_load_n(&fake_runs[id].immediate_exit, __ATOMIC_SEQ_CST)) {
		struct timespec ts = { 0, 1000000 };
		uint64_t t = now_ns();

		nanosleep(&ts, NULL);
		atomic_fetch_add(&guest_ns[id], now_ns() - t);
	}
	return -EINTR;
}

static const struct kvm_ops run_kvm = { .ioctl = run_ioctl };

/* The guest's share of [0, ms] with the throttle at pct, all vCPUs together. */
static double guest_share(uint32_t pct, unsigned ms)
{
	uint64_t t0, total = 0;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000l };

	for (int i = 0; i < NR_VCPUS; i++)
		atomic_store(&guest_ns[i], 0);
	assert_int_equal(vm_throttle_set(&a, pct), 0);
	t0 = now_ns();
	nanosleep(&ts, NULL);
	for (int i = 0; i < NR_VCPUS; i++)
		total += atomic_load(&guest_ns[i]);
	return (double)total / NR_VCPUS / (double)(now_ns() - t0);
}

static void test_throttle_gives_the_guest_its_share(void **state)
{
	double free_run, half, fifth;
	struct timespec settle = { 0, 50000000 };

	a.kvm = &run_kvm;
	for (int i = 0; i < NR_VCPUS; i++) {
		a.vcpus[i]->run = &fake_runs[i];
		a.vcpus[i]->id = i;
	}
	vcpu_signals_init();
	a.state = VM_RUNNING;
	for (int i = 0; i < NR_VCPUS; i++)
		assert_int_equal(vcpu_start(a.vcpus[i]), 0);

	free_run = guest_share(0, 300);
	half = guest_share(50, 600);
	fifth = guest_share(80, 600);
	/* a pause request ends a throttle sleep at once: the switchover does not wait */
	atomic_store(&a.throttle.slept_ns, 0);
	vm_throttle_stop(&a);
	nanosleep(&settle, NULL);
	atomic_store(&a.shutdown, true);
	for (int i = 0; i < NR_VCPUS; i++) {
		vcpu_kick(a.vcpus[i]);
		pthread_join(a.vcpus[i]->thread, NULL);
		a.vcpus[i]->started = false;
		a.vcpus[i]->run = NULL;
	}
	a.kvm = &slot_kvm;
	print_message("guest share: %.2f free, %.2f at 50 %%, %.2f at 80 %%\n", free_run, half,
		      fifth);
	/* wide bounds: two cores shared by many; a broken throttle gives ~1.0 */
	if (!(free_run > 0.80 && half > 0.25 && half < 0.70 && fifth > 0.04 && fifth < 0.35 &&
	      fifth < half && half < free_run))
		fail_msg("guest share %.2f free, %.2f at 50 %%, %.2f at 80 %%", free_run, half,
			 fifth);
}

/* ---- device pre-copy through vm_migrate_send ---- */

#define CHUNKS	3
#define CHUNK	8

/* A device with VFIO-like pre-copy: CHUNKS parts ahead, the rest when stopped. */
struct pcdev {
	struct device dev;
	bool precopy;			/* source: between save_setup and cleanup */
	unsigned sent, setups, cleanups, aborts;
	uint8_t got[256];		/* destination: every byte, in order */
	size_t got_len;
	unsigned iters_before_load;	/* load_iterate calls before load */
	bool loaded;
};

static struct pcdev *pc_a, *pc_b;

static int pc_setup(struct device *dev)
{
	struct pcdev *p = (struct pcdev *)dev;

	p->precopy = true;
	p->setups++;
	return 0;
}

static void pc_cleanup(struct device *dev)
{
	struct pcdev *p = (struct pcdev *)dev;

	p->precopy = false;
	p->cleanups++;
}

static int pc_pending(struct device *dev, uint64_t *bytes)
{
	struct pcdev *p = (struct pcdev *)dev;

	*bytes = p->precopy ? (uint64_t)(CHUNKS - p->sent) * CHUNK : 0;
	return 0;
}

static void put_chunk(struct pcdev *p, struct state_buf *sb)
{
	char c[CHUNK + 1];

	snprintf(c, sizeof(c), "chunk-%02u", p->sent++);
	state_put_bytes(sb, c, CHUNK);
}

static int pc_iterate(struct device *dev, struct state_buf *sb)
{
	struct pcdev *p = (struct pcdev *)dev;

	if (!p->precopy || p->sent >= CHUNKS)
		return 1;
	put_chunk(p, sb);	/* one per pass: RAM goes on between */
	return 0;
}

static int pc_final(struct device *dev, struct state_buf *sb)
{
	struct pcdev *p = (struct pcdev *)dev;

	while (p->sent < CHUNKS)	/* what pre-copy did not get to, as STOP_COPY */
		put_chunk(p, sb);
	state_put_bytes(sb, "final---", CHUNK);
	return 0;
}

static int pc_take(struct pcdev *p, struct state_buf *sb)
{
	size_t n = sb->len - sb->pos;

	if (p->got_len + n > sizeof(p->got))
		return -EFBIG;
	state_get_bytes(sb, p->got + p->got_len, n);
	p->got_len += n;
	return 0;
}

static int pc_load_iterate(struct device *dev, struct state_buf *sb)
{
	struct pcdev *p = (struct pcdev *)dev;

	if (!p->loaded)
		p->iters_before_load++;
	return pc_take(p, sb);
}

static int pc_load(struct device *dev, struct state_buf *sb)
{
	struct pcdev *p = (struct pcdev *)dev;

	p->loaded = true;
	return pc_take(p, sb);
}

static void pc_abort(struct device *dev)
{
	((struct pcdev *)dev)->aborts++;
}

static const struct device_mig_ops pc_mig = {
	.version = 1, .save_setup = pc_setup, .save_cleanup = pc_cleanup,
	.pending_bytes = pc_pending, .save_iterate = pc_iterate, .save_final = pc_final,
	.load_iterate = pc_load_iterate, .load_abort = pc_abort, .load = pc_load,
};

static const struct device_ops pc_ops = {
	.type = "precopy-test", .pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume, .mig = &pc_mig,
};

static void add_pcdev(struct vm *vm)
{
	struct pcdev *p = xzalloc(sizeof(*p));

	device_init(&p->dev, &pc_ops, "pc0");
	device_add(vm, &p->dev);
	if (vm == &a)
		pc_a = p;
	else
		pc_b = p;
}

static int setup_pc(void **state)
{
	harness_devices = add_pcdev;
	return setup(state);
}

static int teardown_pc(void **state)
{
	harness_devices = NULL;
	pc_a = pc_b = NULL;
	return teardown(state);
}

static uint64_t max_device_pending;
static unsigned passes_seen, cancel_at_pass = ~0u;
static atomic_bool cancel_flag;

static void watch_progress(const struct migrate_progress *p, void *opaque)
{
	passes_seen++;
	if (p->device_pending_bytes > max_device_pending)
		max_device_pending = p->device_pending_bytes;
	/* the devices' estimate is part of what would go while stopped */
	assert_true(p->remaining_bytes >= p->device_pending_bytes);
	dirty_between_passes(p, opaque);
	if (p->pass == cancel_at_pass)
		atomic_store(&cancel_flag, true);
}

static int migrate_with(struct dest *d, struct migrate_opts *o, struct migrate_result *res,
			char *why, size_t len)
{
	return migrate_to_thread(&a, AF_UNIX, true, dest_main, d, &d->fd, o, res, why, len);
}

static void test_device_precopy_travels_between_ram_passes(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 10000,
				  .progress = watch_progress };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	max_device_pending = 0;
	passes_seen = 0;
	cancel_at_pass = ~0u;
	ret = migrate_with(&d, &o, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_state_arrived();
	/* the destination's device got every part once, in order, the final last */
	assert_int_equal(pc_b->got_len, (CHUNKS + 1) * CHUNK);
	assert_memory_equal(pc_b->got, "chunk-00chunk-01chunk-02final---", (CHUNKS + 1) * CHUNK);
	/* ... and some of it while the source was still in pre-copy */
	assert_true(pc_b->iters_before_load >= 1);
	assert_true(res.device_precopy_bytes >= CHUNK);
	assert_int_equal(pc_a->setups, 1);
	assert_int_equal(pc_a->cleanups, 1);
	assert_int_equal(pc_b->aborts, 0);
	/* after pass 0 one part was out and two pending: that was in the prediction */
	assert_int_equal(max_device_pending, (CHUNKS - 1) * CHUNK);
}

/*
 * unix: on one host: the RAM is the source's memfd, so there are no RAM
 * passes, but the device's PRE_COPY data still goes while the guest runs
 * (QEMU's VFIO iterates with x-ignore-shared too): all of it reaches the
 * destination's device before its final state, none of it waits for
 * STOP_COPY, and no page is sent.
 */
static void test_device_precopy_over_unix_with_the_memfd(void **state)
{
	struct dest d = { .i8042 = true, .unix_fds = true };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 10000, .ram_by_fd = true };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	ret = migrate_with(&d, &o, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_int_equal(res.pages, 0);
	assert_int_equal(d.pages, 0);
	assert_state_arrived();
	assert_int_equal(pc_b->got_len, (CHUNKS + 1) * CHUNK);
	assert_memory_equal(pc_b->got, "chunk-00chunk-01chunk-02final---", (CHUNKS + 1) * CHUNK);
	assert_int_equal(pc_b->iters_before_load, CHUNKS);
	/* each part in its device section: id hash and length, 8 bytes */
	assert_int_equal(res.device_precopy_bytes, CHUNKS * (CHUNK + 8));
	assert_int_equal(pc_a->setups, 1);
	assert_int_equal(pc_a->cleanups, 1);
	assert_false(pc_a->precopy);
	assert_int_equal(pc_b->aborts, 0);
}

static void test_cancel_tells_the_destination_why(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = { .downtime_ms = 1, .timeout_ms = 10000,
				  .progress = watch_progress, .cancel = &cancel_flag,
				  .cancel_reason = "Ctrl-C" };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	atomic_store(&cancel_flag, false);
	cancel_at_pass = 0;
	ret = migrate_with(&d, &o, &res, why, sizeof(why));
	cancel_at_pass = ~0u;
	assert_int_equal(ret, -ECANCELED);
	assert_string_equal(why, "cancelled by Ctrl-C");
	/* the source: its VM as it was, its device out of pre-copy, no dirty log */
	assert_int_equal(a.state, VM_PAUSED);
	assert_false(pc_a->precopy);
	assert_int_equal(pc_a->cleanups, 1);
	assert_false(guest_mem_logging(&a.mem, 0));
	/* the destination: refused with the source's reason, its device told to drop it */
	assert_int_equal(d.ret, -ECANCELED);
	assert_string_equal(d.why, "the source stopped the migration: cancelled by Ctrl-C");
	assert_int_equal(pc_b->aborts, 1);
	assert_false(pc_b->loaded);
	assert_int_equal(dst.nr_log, 0);		/* nothing reached its KVM */
}

static void test_timeout_is_named_at_the_destination(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = { .downtime_ms = 1, .timeout_ms = 200,
				  .progress = dirty_everything };
	struct migrate_result res;
	char why[512] = "";

	assert_int_equal(migrate_with(&d, &o, &res, why, sizeof(why)), -ETIMEDOUT);
	assert_non_null(strstr(d.why, "the source stopped the migration: did not converge"));
	assert_int_equal(d.ret, -ECANCELED);
	assert_int_equal(pc_b->aborts, 1);
}

/* --max-bandwidth: the measured rate stays under it, the time follows from it. */
static uint64_t max_pass_bandwidth;

static void note_bandwidth(const struct migrate_progress *p, void *opaque)
{
	if (p->pass == 0 && p->bandwidth > max_pass_bandwidth)
		max_pass_bandwidth = p->bandwidth;
}

static void test_max_bandwidth_honoured(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 20000,
				  .max_bandwidth = 4 * MiB, .progress = note_bandwidth };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	max_pass_bandwidth = 0;
	ret = migrate_with(&d, &o, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_state_arrived();
	/* what went out took at least its time at 4 MiB/s, and never faster than asked */
	if (res.total_ms < res.bytes * 1000 / (4 * MiB) * 8 / 10 ||
	    max_pass_bandwidth > 4 * MiB + MiB / 2)
		fail_msg("%llu bytes in %llu ms, pass 0 at %llu B/s (limit %llu)",
			 (unsigned long long)res.bytes, (unsigned long long)res.total_ms,
			 (unsigned long long)max_pass_bandwidth, 4 * MiB);
}

/* A cancel while a slow link is waited for: seen at once, the reason reaches the destination. */
static void *cancel_soon(void *arg)
{
	usleep(300000);
	atomic_store(&cancel_flag, true);
	return NULL;
}

static void test_cancel_during_a_bandwidth_wait(void **state)
{
	struct dest d = { .i8042 = true };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 60000,
				  .max_bandwidth = 64 << 10, .cancel = &cancel_flag,
				  .cancel_reason = "Ctrl-C" };
	struct migrate_result res;
	char why[512] = "";
	uint64_t t0 = now_ns();
	pthread_t t;

	atomic_store(&cancel_flag, false);
	assert_int_equal(pthread_create(&t, NULL, cancel_soon, NULL), 0);
	assert_int_equal(migrate_with(&d, &o, &res, why, sizeof(why)), -ECANCELED);
	pthread_join(t, NULL);
	if (now_ns() - t0 > 1500000000ull)	/* 481 KB at 64 KiB/s would be 7 s */
		fail_msg("the cancel took %llu ms", (unsigned long long)((now_ns() - t0) / 1000000));
	assert_string_equal(d.why, "the source stopped the migration: cancelled by Ctrl-C");
	assert_false(guest_mem_logging(&a.mem, 0));
}

/*
 * The destination goes away during pre-copy (with RAM passes, or over unix:
 * with the memfd and the device's part only): the source's device leaves
 * PRE_COPY.
 */
static void destination_gone_ends_device_precopy(bool over_unix)
{
	struct dest d = { .i8042 = true, .vanish = true, .unix_fds = over_unix };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 10000,
				  .ram_by_fd = over_unix };
	struct migrate_result res;
	char why[512] = "";

	assert_true(migrate_with(&d, &o, &res, why, sizeof(why)) < 0);
	assert_true(why[0]);
	assert_int_equal(pc_a->setups, 1);
	assert_int_equal(pc_a->cleanups, 1);
	assert_false(pc_a->precopy);
	assert_int_equal(a.state, VM_PAUSED);
	assert_false(guest_mem_logging(&a.mem, 0));
}

static void test_destination_gone_ends_device_precopy(void **state)
{
	destination_gone_ends_device_precopy(false);
}

static void test_unix_destination_gone_ends_device_precopy(void **state)
{
	destination_gone_ends_device_precopy(true);
}

/*
 * The destination builds its VM (KVM, memslots, devices: 4-7 ms for the
 * first memslot on a real host, 300 ms here) after the manifest and before
 * it takes RAM, while the source's guest still runs: the source's pause
 * starts only after pass 0 went through, so none of the build is downtime.
 */
static void test_destination_builds_while_the_source_runs(void **state)
{
	struct dest d = { .i8042 = true, .build_ms = 300 };
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 10000,
				  .progress = dirty_between_passes };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	ret = migrate_with(&d, &o, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	assert_state_arrived();
	assert_true(res.total_ms >= 300);		/* the build was waited for ... */
	if (res.downtime_ms >= 150)			/* ... while the guest ran */
		fail_msg("downtime %llu ms of a %llu ms migration with a 300 ms build",
			 (unsigned long long)res.downtime_ms, (unsigned long long)res.total_ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_table),
		cmocka_unit_test_setup_teardown(test_throttle_gives_the_guest_its_share, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_device_precopy_travels_between_ram_passes,
						setup_pc, teardown_pc),
		cmocka_unit_test_setup_teardown(test_device_precopy_over_unix_with_the_memfd,
						setup_pc, teardown_pc),
		cmocka_unit_test_setup_teardown(test_unix_destination_gone_ends_device_precopy,
						setup_pc, teardown_pc),
		cmocka_unit_test_setup_teardown(test_cancel_tells_the_destination_why, setup_pc,
						teardown_pc),
		cmocka_unit_test_setup_teardown(test_timeout_is_named_at_the_destination, setup_pc,
						teardown_pc),
		cmocka_unit_test_setup_teardown(test_max_bandwidth_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_during_a_bandwidth_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_gone_ends_device_precopy, setup_pc,
						teardown_pc),
		cmocka_unit_test_setup_teardown(test_destination_builds_while_the_source_runs,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
