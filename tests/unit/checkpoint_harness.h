/* SPDX-License-Identifier: MIT */
/*
 * The harness of the Remus unit tests (test_checkpoint.c, test_checkpoint_etcd.c):
 * a primary VM `a` and a standby VM `b` on the fake KVM with a NIC-like
 * device that logs its output-commit ops, a "guest" that writes known pages
 * each epoch, the standby receiver on a thread, and lose_standby() (a standby
 * process SIGKILLed while applying checkpoint 3).  Included once per test.
 */
#ifndef HDVM_TEST_CHECKPOINT_HARNESS_H
#define HDVM_TEST_CHECKPOINT_HARNESS_H

/* each test binary uses only some of these */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"

#include "devices/device.h"
#include "devices/holdq.h"
#include "devices/legacy/legacy.h"
#include "migration/checkpoint_proto.h"
#include "migration/manifest.h"
#include "migration/stream.h"
#include "migration/transport.h"
#include "vmm/checkpoint.h"
#include "vmm/checkpoint_job.h"
#include "vmm/control.h"
#include "vmm/failpoint.h"
#include "vmm/machine_dev.h"
#include "vmm/memory.h"
#include "vmm/migrate.h"
#include "vmm/owner_helper.h"
#include "vmm/standby.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define RAM		(4ull << 20)
#define HOT_PAGE	50		/* rewritten every epoch */
#define FIRST_PAGE	100		/* epoch n writes page FIRST_PAGE + n */

static struct vm a, b;

/* ---- a device that sends output: it logs every output-commit op ---- */

struct nic {
	struct device dev;
};

#define MAX_OPS 256
static struct { uint32_t op; uint64_t epoch; } ops_log[MAX_OPS];
static int nr_ops;
static int ops_fd = -1;		/* fork tests: the child's ops go to the parent here */
static struct holdq *nic_q;	/* tests that count frames: a real hold queue behind it */

static int nic_output(struct device *dev, uint32_t op, uint64_t epoch, uint32_t max)
{
	if (ops_fd >= 0) {
		uint64_t rec[2] = { op, epoch };

		assert_int_equal(write(ops_fd, rec, sizeof(rec)), sizeof(rec));
	}
	if (nic_q)
		holdq_control(nic_q, op, epoch, max);
	if (nr_ops < MAX_OPS) {
		ops_log[nr_ops].op = op;
		ops_log[nr_ops++].epoch = epoch;
	}
	return 0;
}

static int nic_held(struct device *dev, uint64_t *frames)
{
	*frames = 3;	/* what a NIC would say it holds */
	return 0;
}

static const struct device_mig_ops nic_mig = {
	.version = 1, .output_commit = nic_output, .output_held = nic_held,
};
static const struct device_ops nic_ops = {
	.type = "test-nic", .pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume, .mig = &nic_mig,
};

static void vm_build(struct vm *vm, uint64_t ram)
{
	struct nic *n = xzalloc(sizeof(*n));

	fake_vm_init(vm, &slot_kvm, ram, NR_VCPUS);
	vm->cfg.cmdline = "app=counter";
	vm->mem.kvm = &slot_kvm;
	vm->mem.vm_fd = VM_FD;
	device_add(vm, machine_dev_create());
	device_add(vm, serial_create());
	device_init(&n->dev, &nic_ops, "nic0");
	device_add(vm, &n->dev);
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_RUNNING;
}

static void vm_free(struct vm *vm)
{
	fake_vm_free(vm);
	memset(vm, 0, sizeof(*vm));
}

/* The fake KVM runs no vCPU: pausing is the devices' part (P2P then STOP). */
static int nr_pauses, nr_resumes;
static int pause_fails_at;		/* this pause (1: the first) is refused */

static int test_pause(struct vm *vm, char *why, size_t len)
{
	if (++nr_pauses == pause_fails_at) {
		snprintf(why, len, "a device refused to stop");
		return -EIO;
	}
	return devices_pause(vm, why, len);
}

static int test_resume(struct vm *vm, char *why, size_t len)
{
	nr_resumes++;
	return devices_resume(vm, why, len);
}

/* ---- the "guest": what it does during epoch n (after checkpoint n) ---- */

static atomic_bool stop_flag;
static uint64_t stop_after;

static void guest_runs(uint64_t n, uint8_t *ram_expect)
{
	uint8_t v[64];

	memset(v, (int)(n & 0xff) | 0x80, sizeof(v));
	if (ram_expect) {
		memcpy(ram_expect + HOT_PAGE * 4096, v, sizeof(v));
		memcpy(ram_expect + (FIRST_PAGE + n) * 4096, v, sizeof(v));
		return;
	}
	assert_int_equal(guest_mem_write(&a.mem, HOT_PAGE * 4096, v, sizeof(v)), 0);
	assert_int_equal(guest_mem_write(&a.mem, (FIRST_PAGE + n) * 4096, v, sizeof(v)), 0);
	/* a vCPU register the next checkpoint must carry */
	src.store[VCPU_FD0][S_REGS][0] = (uint8_t)n;
}

static void epoch_done(uint64_t n, void *opaque)
{
	if (n >= stop_after) {
		atomic_store(&stop_flag, true);
		return;
	}
	guest_runs(n, NULL);
	if (nic_q)	/* and sends a frame (tagged n + 1) */
		assert_int_equal(holdq_submit(nic_q, (const uint8_t *)"frame", 5), 0);
}

static int setup(void **state)
{
	srand(11);
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	mine = &src;
	vm_build(&a, RAM);
	for (uint64_t p = 0; p < 40; p++)
		memset(a.mem.host + p * 4096 * 3, (int)p | 1, 100);
	nr_ops = 0;
	nr_pauses = nr_resumes = 0;
	pause_fails_at = 0;
	atomic_store(&stop_flag, false);
	failpoint_clear();
	return 0;
}

static int teardown(void **state)
{
	vm_free(&a);
	vm_free(&b);
	fake_reset(&src);
	fake_reset(&dst);
	return 0;
}

/* ---- the standby, on its own thread ---- */

struct stby {
	int fd;
	struct mig_io io;
	struct standby sb;
	enum standby_outcome outcome;
	int ret;
	char why[512];
};

static void *standby_main(void *arg)
{
	struct stby *s = arg;
	struct vm_config cfg = { 0 };

	mine = &dst;
	mig_io_unix(&s->io, s->fd);
	s->ret = standby_begin(&s->sb, &s->io, s->why, sizeof(s->why));
	if (!s->ret)
		s->ret = migrate_config_from_manifest(&s->sb.in.m, &cfg, s->why, sizeof(s->why));
	if (s->ret)
		return NULL;
	vm_build(&b, cfg.mem_size);	/* what `hdvm run --standby` builds from the manifest */
	b.state = VM_CREATED;
	s->outcome = standby_receive(&s->sb, &b);
	free((char *)cfg.kernel);
	free((char *)cfg.cmdline);
	return NULL;
}

static const struct ckpt_opts base_opts = {
	.epoch_ms = 2, .heartbeat_ms = 20, .failover_ms = 3000,
	.pause = test_pause, .resume = test_resume, .epoch_done = epoch_done,
};

static void assert_regs_equal(void)
{
	for (int fd = VCPU_FD0; fd < NR_FDS; fd++)
		assert_memory_equal(dst.store[fd][S_REGS], src.store[fd][S_REGS],
				    sizeof(struct kvm_regs));
}


/* ---- the standby is lost: --on-standby-loss ---- */

static struct owner_helper *loss_owner;	/* --etcd for lose_standby() */
static bool loss_expect_pause;		/* paused although the policy says continue */
static struct ckpt_stats loss_stats;	/* what lose_standby()'s run ended with */

static void lose_standby(bool pause_on_loss)
{
	struct ckpt_opts o = base_opts;
	struct ckpt_stats st;
	struct mig_io io;
	char why[256];
	int sv[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct stby s = { .fd = sv[1] };

		close(sv[0]);
		alarm(30);
		failpoint_clear();
		assert_int_equal(failpoint_arm("standby-apply", 3), 0);
		standby_main(&s);
		_exit(3);
	}
	close(sv[1]);
	stop_after = 1000;
	o.pause_on_loss = pause_on_loss;
	o.failover_ms = 200;
	o.owner = loss_owner;
	ckpt_stats_init(&st);
	mig_io_unix(&io, sv[0]);
	assert_int_equal(ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why)), -EPIPE);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(st.committed, 2);
	assert_int_equal(st.role, CKPT_UNPROTECTED);
	assert_non_null(strstr(st.why, "standby"));
	pause_on_loss |= loss_expect_pause;
	assert_int_equal(st.paused_by_loss, pause_on_loss);
	if (pause_on_loss) {
		/* output stays held: no STOP (release), the VM paused once more */
		assert_int_not_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
		assert_int_equal(nr_pauses, nr_resumes + 1);
	} else {
		assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
		assert_int_equal(nr_pauses, nr_resumes);
	}
	loss_stats = st;
	mig_io_close(&io);
}


#endif
