// SPDX-License-Identifier: MIT
/*
 * Post-copy through vm_migrate_send() and the destination's receive, on the
 * fake KVM and the real userfaultfd: two VMs over a socketpair, the
 * destination's "guest" a thread reading its RAM through the registered
 * mapping.  What a user would see: `--postcopy` moves RAM (pattern verified
 * page by page as the guest touches it, then all of it) and vCPU/device
 * state; `--postcopy-after N` switches when pre-copy does not converge and
 * the pages dirtied after their pass arrive; a device that DMAs on its own
 * is held (stopped before its state is loaded, resumed when RAM is
 * complete); a Remus-protected VM is refused; a destination that dies after
 * the switchover is reported as the VM lost, and the source does not
 * resume it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"
#include "tests/unit/migrate_thread.h"

#include "migration/stream.h"
#include "vmm/migrate.h"
#include "vmm/postcopy_dst.h"
#include "vmm/postcopy_vm.h"

#define RAM		(16ull << 20)
#define STRIDE		(4096 * 37)	/* one pattern page every 37 */

static struct vm a, b;

/* ---- a device that writes guest RAM on its own (a passthrough NIC's shape) ---- */

struct dmadev {
	struct device dev;
	bool paused, logging;
	bool paused_at_load;		/* held before its state arrived? */
	int resumes;
	uint32_t value;
};

static int dd_pause(struct device *d) { container_of(d, struct dmadev, dev)->paused = true; return 0; }

static int dd_resume(struct device *d)
{
	struct dmadev *dd = container_of(d, struct dmadev, dev);

	dd->paused = false;
	dd->resumes++;
	return 0;
}

static int dd_log_start(struct device *d) { container_of(d, struct dmadev, dev)->logging = true; return 0; }
static int dd_log_stop(struct device *d) { container_of(d, struct dmadev, dev)->logging = false; return 0; }
static int dd_log_sync(struct device *d, device_dirty_fn *mark, void *opaque) { return 0; }

static int dd_save(struct device *d, struct state_buf *sb)
{
	state_put_u32(sb, container_of(d, struct dmadev, dev)->value);
	return 0;
}

static int dd_load(struct device *d, struct state_buf *sb)
{
	struct dmadev *dd = container_of(d, struct dmadev, dev);

	dd->value = state_get_u32(sb);
	dd->paused_at_load = dd->paused;
	return 0;
}

static const struct device_mig_ops dd_mig = {
	.version = 1, .dirty_log_start = dd_log_start, .dirty_log_stop = dd_log_stop,
	.dirty_log_sync = dd_log_sync, .save_final = dd_save, .load = dd_load,
};

static const struct device_ops dd_ops = {
	.type = "dmadev", .pause = dd_pause, .resume = dd_resume, .mig = &dd_mig,
};

static struct dmadev *dmadev_of(struct vm *vm)
{
	return container_of(device_find(vm, "dma0"), struct dmadev, dev);
}

static void vm_build(struct vm *vm, uint64_t ram)
{
	struct dmadev *dd = xzalloc(sizeof(*dd));

	fake_vm_build(vm, &slot_kvm, ram, NR_VCPUS, true);
	vm->mem.kvm = &slot_kvm;
	vm->mem.vm_fd = VM_FD;
	device_init(&dd->dev, &dd_ops, "dma0");
	device_add(vm, &dd->dev);
}

static int setup(void **state)
{
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	mine = &src;
	vm_build(&a, RAM);
	for (uint64_t p = 0; p < RAM; p += STRIDE)
		memset(a.mem.host + p, (int)(p >> 12) | 1, 4096);
	dmadev_of(&a)->value = 0xfeed;
	return 0;
}

static int teardown(void **state)
{
	fake_vm_free(&a);
	fake_vm_free(&b);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	fake_reset(&src);
	fake_reset(&dst);
	return 0;
}

/* ---- the destination: `hdvm run --incoming` without KVM ---- */

struct dest {
	int fd;
	bool die_after_switch;
	int ret, pc_ret;
	char why[512], pc_why[320];
	uint64_t bad_pages, touched;
	struct postcopy_stats st;
	bool held_during, released_after, busy_during, busy_after, committed_during;
};

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct migrate_incoming in;
	struct vm_config cfg = { 0 };
	struct mig_io io;

	mine = &dst;
	mig_io_fd(&io, d->fd);
	d->ret = migrate_recv_begin(&in, &io, d->why, sizeof(d->why));
	if (!d->ret)
		d->ret = migrate_config_from_manifest(&in.m, &cfg, d->why, sizeof(d->why));
	if (!d->ret) {
		vm_build(&b, cfg.mem_size);
		b.cfg.incoming = &in;
		b.cfg.incoming_uri = "unit";
		d->ret = migrate_recv_finish(&in, &b, d->why, sizeof(d->why));
		if (d->ret)
			migrate_recv_answer(&in, d->ret, d->why);
	}
	if (!d->ret)
		d->ret = postcopy_vm_start(&b);	/* answers the source */
	if (!d->ret && in.pc && d->die_after_switch) {
		shutdown(d->fd, SHUT_RDWR);	/* this host "dies" */
	} else if (!d->ret && in.pc) {
		d->held_during = dmadev_of(&b)->paused;
		d->busy_during = postcopy_vm_busy(&b);
		/* the guest reads its RAM from the top down */
		for (int64_t p = (int64_t)((RAM - 1) / STRIDE * STRIDE); p >= 0; p -= STRIDE) {
			if (b.mem.host[p] != (uint8_t)((p >> 12) | 1) ||
			    b.mem.host[p + 4095] != (uint8_t)((p >> 12) | 1))
				d->bad_pages++;
			/* a page came: the source (same process) serves, most pages still to come */
			if (!d->touched++)
				d->committed_during = postcopy_src_committed();
		}
		d->pc_ret = postcopy_dst_wait(in.pc, d->pc_why, sizeof(d->pc_why));
		postcopy_dst_stats(in.pc, &d->st);
		d->released_after = !dmadev_of(&b)->paused && dmadev_of(&b)->resumes == 1;
		d->busy_after = postcopy_vm_busy(&b);
	}
	migrate_recv_answer(&in, d->ret, d->why);
	postcopy_vm_stop(&b);
	migrate_recv_end(&in);
	mig_io_close(&io);
	free((char *)cfg.kernel);
	free((char *)cfg.cmdline);
	return NULL;
}

/* The "guest" on the source dirties 64 pages after every pass: pre-copy cannot converge. */
static void dirty_every_pass(const struct migrate_progress *p, void *opaque)
{
	uint8_t data[4096];

	for (int i = 0; i < 64; i++) {
		uint64_t gpa = (1ull << 20) + (uint64_t)i * 4096;

		memset(data, (int)(p->pass * 64 + i) | 1, sizeof(data));
		assert_int_equal(guest_mem_write(&a.mem, gpa, data, sizeof(data)), 0);
	}
}

static int migrate(struct dest *d, struct migrate_opts *o, struct migrate_result *res,
		   char *why, size_t len)
{
	return migrate_to_thread(&a, AF_UNIX, false, dest_main, d, &d->fd, o, res, why, len);
}

static void assert_state_arrived(void)
{
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	fake_assert_state_copied();
	assert_int_equal(dmadev_of(&b)->value, 0xfeed);
}

static void test_postcopy_at_once_moves_ram_and_state(void **state)
{
	struct migrate_opts o = { .postcopy = true, .max_bandwidth = 1ull << 20 };
	struct migrate_result res;
	struct dest d = { 0 };
	uint64_t pattern = (RAM + STRIDE - 1) / STRIDE;
	char why[512] = "";
	int ret = migrate(&d, &o, &res, why, sizeof(why));

	if (ret || d.ret || d.pc_ret)
		fail_msg("source %d %s / destination %d %s / post-copy %d %s", ret, why, d.ret,
			 d.why, d.pc_ret, d.pc_why);
	assert_int_equal(d.touched, pattern);
	assert_int_equal(d.bad_pages, 0);
	assert_state_arrived();
	/* nothing pre-copied: every page with data came after the switchover */
	assert_true(res.postcopy);
	assert_false(res.vm_lost);
	assert_int_equal(res.passes, 0);
	assert_int_equal(res.pc_needed, pattern);
	assert_int_equal(res.pc_served + res.pc_pushed, pattern);
	assert_int_equal(d.st.needed, pattern);
	assert_int_equal(d.st.on_demand + d.st.pushed, pattern);
	/* the DMA-capable device: stopped before its state was loaded, until RAM was whole */
	assert_true(dmadev_of(&b)->paused_at_load);
	assert_true(d.held_during);
	assert_true(d.released_after);
	/* snapshot, migrate, pause and checkpoint wait while pages are still coming */
	assert_true(d.busy_during);
	assert_false(d.busy_after);
	/* past the switchover a cancel is refused (it would lose the VM); not after */
	assert_true(d.committed_during);
	assert_false(postcopy_src_committed());
	assert_int_equal(a.state, VM_PAUSED);	/* the source does not run it again */
}

static void test_postcopy_after_n_passes_when_precopy_does_not_converge(void **state)
{
	struct migrate_opts o = {
		.postcopy = true, .postcopy_after = 2, .downtime_ms = 1,
		.max_bandwidth = 16ull << 20, .progress = dirty_every_pass,
	};
	struct migrate_result res;
	struct dest d = { 0 };
	char why[512] = "";
	int ret = migrate(&d, &o, &res, why, sizeof(why));

	if (ret || d.ret || d.pc_ret)
		fail_msg("source %d %s / destination %d %s / post-copy %d %s", ret, why, d.ret,
			 d.why, d.pc_ret, d.pc_why);
	assert_true(res.postcopy);
	assert_int_equal(res.passes, 2);
	/* the 64 pages the guest dirtied after pass 1 are exactly what post-copy moved */
	assert_int_equal(res.pc_needed, 64);
	assert_int_equal(d.st.needed, 64);
	assert_int_equal(b.mem.host[(1ull << 20) + 5 * 4096], (1 * 64 + 5) | 1);
	assert_state_arrived();
	assert_false(guest_mem_logging(&a.mem, 0));	/* the source's dirty log stopped */
}

/* Pre-copy converged before N passes: no switchover, the held device runs again. */
static void test_postcopy_after_n_that_converges_first_stays_precopy(void **state)
{
	struct migrate_opts o = { .postcopy = true, .postcopy_after = 5 };
	struct migrate_result res;
	struct dest d = { 0 };
	char why[512] = "";
	int ret = migrate(&d, &o, &res, why, sizeof(why));

	if (ret || d.ret)
		fail_msg("source %d %s / destination %d %s", ret, why, d.ret, d.why);
	assert_false(res.postcopy);
	assert_true(res.passes < 5);
	assert_state_arrived();
	assert_true(dmadev_of(&b)->paused_at_load);	/* held while state arrived */
	assert_false(dmadev_of(&b)->paused);		/* and released after the load */
	assert_int_equal(dmadev_of(&b)->resumes, 1);
}

static void test_remus_protected_vm_refuses_postcopy(void **state)
{
	struct migrate_opts o = { .postcopy = true };
	struct migrate_result res;
	struct dest d = { 0 };
	char why[512] = "";

	atomic_store(&a.remus_protected, true);
	assert_int_equal(migrate(&d, &o, &res, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "Remus protection"));
	assert_non_null(strstr(why, "loses it"));
	assert_int_equal(dst.nr_log, 0);	/* nothing reached the destination */
	assert_false(res.vm_lost);
	/* pre-copy is still allowed */
	o.postcopy = false;
	memset(&d, 0, sizeof(d));
	assert_int_equal(postcopy_src_check(&a, NULL, &o, why, sizeof(why)), 0);
}

/* A kernel VFIO device pins RAM in the IOMMU at attach: post-copy would race it. */
static void test_kernel_vfio_device_refuses_postcopy(void **state)
{
	struct migrate_opts o = { .postcopy = true };
	char why[512] = "";

	a.cfg.nr_vfio_kernel = 1;
	assert_int_equal(postcopy_src_check(&a, NULL, &o, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "kernel VFIO"));
	assert_int_equal(postcopy_hold_devices(&a, why, sizeof(why)), -EOPNOTSUPP);
	a.cfg.nr_vfio_kernel = 0;
}

static void test_destination_dying_after_the_switchover_loses_the_vm(void **state)
{
	struct migrate_opts o = { .postcopy = true, .max_bandwidth = 1ull << 20 };
	struct migrate_result res;
	struct dest d = { .die_after_switch = true };
	char why[512] = "";
	int ret = migrate(&d, &o, &res, why, sizeof(why));

	assert_int_equal(d.ret, 0);
	assert_true(ret < 0);
	assert_true(res.vm_lost);
	assert_non_null(strstr(why, "the VM is lost"));
	/* no resume on the source: its copy is stale once the destination ran */
	assert_int_equal(a.state, VM_PAUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_postcopy_at_once_moves_ram_and_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_postcopy_after_n_passes_when_precopy_does_not_converge,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_postcopy_after_n_that_converges_first_stays_precopy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_remus_protected_vm_refuses_postcopy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_vfio_device_refuses_postcopy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_dying_after_the_switchover_loses_the_vm,
						setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
