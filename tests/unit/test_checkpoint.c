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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/fake_kvm.h"

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
#include "vmm/standby.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define RAM		(4ull << 20)
#define HOT_PAGE	50		/* rewritten every epoch */
#define FIRST_PAGE	100		/* epoch n writes page FIRST_PAGE + n */

static struct vm a, b;
static __thread struct fake *mine;

static int slot_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == KVM_SET_USER_MEMORY_REGION || req == KVM_GET_DIRTY_LOG)
		return 0;	/* no vCPU runs: KVM's own log stays empty */
	cur = mine ? mine : &src;
	return fake_ioctl(fd, req, arg);
}

static const struct kvm_ops slot_kvm = { .ioctl = slot_ioctl };

/* ---- a device that sends output: it logs every output-commit op ---- */

struct nic {
	struct device dev;
};

#define MAX_OPS 256
static struct { uint32_t op; uint64_t epoch; } ops_log[MAX_OPS];
static int nr_ops;
static int ops_fd = -1;		/* fork tests: the child's ops go to the parent here */

static int nic_output(struct device *dev, uint32_t op, uint64_t epoch, uint32_t max)
{
	if (ops_fd >= 0) {
		uint64_t rec[2] = { op, epoch };

		assert_int_equal(write(ops_fd, rec, sizeof(rec)), sizeof(rec));
	}
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

	memset(vm, 0, sizeof(*vm));
	vm->kvm = &slot_kvm;
	vm->kvm_fd = KVM_FD;
	vm->vm_fd = VM_FD;
	vm->exit_efd = vm->console_out_fd = vm->console_in_fd = -1;
	snprintf(vm->cfg.name, sizeof(vm->cfg.name), "unit");
	vm->cfg.kernel = "hdguest.elf";
	vm->cfg.cmdline = "app=counter";
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	assert_int_equal(guest_mem_init(&vm->mem, ram), 0);
	vm->mem.kvm = &slot_kvm;
	vm->mem.vm_fd = VM_FD;
	vm->ncpus = NR_VCPUS;
	vm->vcpus = xzalloc(sizeof(*vm->vcpus) * NR_VCPUS);
	for (int i = 0; i < NR_VCPUS; i++) {
		vm->vcpus[i] = xzalloc(sizeof(struct vcpu));
		vm->vcpus[i]->vm = vm;
		vm->vcpus[i]->fd = VCPU_FD0 + i;
	}
	device_add(vm, machine_dev_create());
	device_add(vm, serial_create());
	device_init(&n->dev, &nic_ops, "nic0");
	device_add(vm, &n->dev);
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_RUNNING;
}

static void vm_free(struct vm *vm)
{
	if (!vm->vcpus)
		return;
	devices_unrealize(vm);
	while (vm->devices) {
		struct device *d = vm->devices;

		vm->devices = d->next;
		free(d);
	}
	for (int i = 0; i < vm->ncpus; i++)
		free(vm->vcpus[i]);
	free(vm->vcpus);
	guest_mem_destroy(&vm->mem);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
	memset(vm, 0, sizeof(*vm));
}

/* The fake KVM runs no vCPU: pausing is the devices' part (P2P then STOP). */
static int nr_pauses, nr_resumes;

static int test_pause(struct vm *vm, char *why, size_t len)
{
	nr_pauses++;
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

/* ---- the standby is lost: --on-standby-loss ---- */

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
	ckpt_stats_init(&st);
	mig_io_unix(&io, sv[0]);
	assert_int_equal(ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why)), -EPIPE);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(st.committed, 2);
	assert_int_equal(st.role, CKPT_UNPROTECTED);
	assert_non_null(strstr(st.why, "standby"));
	assert_int_equal(st.paused_by_loss, pause_on_loss);
	if (pause_on_loss) {
		/* output stays held: no STOP (release), the VM paused once more */
		assert_int_not_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
		assert_int_equal(nr_pauses, nr_resumes + 1);
	} else {
		assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
		assert_int_equal(nr_pauses, nr_resumes);
	}
	mig_io_close(&io);
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

/* ---- the control socket: hdvm checkpoint, status, --stop ---- */

static char *request(const char *line)
{
	return control_handle_line(vm_control_cmds, vm_nr_control_cmds, &a, line);
}

static void expect_ctl(const char *line, const char *needle)
{
	char *reply = request(line);

	if (!strstr(reply, needle))
		fail_msg("reply '%s' to '%s' lacks '%s'", reply, line, needle);
	free(reply);
}

static long long status_field(const char *key)
{
	char *reply = request("{\"cmd\":\"status\"}"), pat[64], *p;
	long long v = -1;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(reply, pat);
	if (p)
		v = strtoll(p + strlen(pat), NULL, 10);
	free(reply);
	return v;
}

struct listener {
	char uri[128];
	struct stby s;
	pthread_t t;
};

static void *listen_main(void *arg)
{
	struct listener *l = arg;
	struct mig_uri u;
	char why[256];
	int lfd;

	assert_int_equal(mig_uri_parse(l->uri, &u, why, sizeof(why)), 0);
	assert_int_equal(mig_listen(&u, &lfd, why, sizeof(why)), 0);
	assert_int_equal(mig_accept(&u, NULL, lfd, 10000, &l->s.io, why, sizeof(why)), 0);
	mig_listen_close(&u, lfd);
	l->s.fd = l->s.io.fd;
	mine = &dst;
	l->s.ret = standby_begin(&l->s.sb, &l->s.io, l->s.why, sizeof(l->s.why));
	if (!l->s.ret) {
		vm_build(&b, RAM);
		b.state = VM_CREATED;
		l->s.outcome = standby_receive(&l->s.sb, &b);
	}
	return NULL;
}

static void test_control_checkpoint_job(void **state)
{
	struct listener l = { 0 };
	char line[256];

	a.cfg.kernel = "hdguest.elf";
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"unprotected\"");
	expect_ctl("{\"cmd\":\"checkpoint\"}", "expected");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"file:/tmp/x\"}", "not a file");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"unix:/tmp/x\",\"heartbeat_ms\":50,"
		     "\"failover_ms\":40}", "must be shorter");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"unix:/tmp/x\",\"on_standby_loss\":"
		     "\"panic\"}", "continue or pause");
	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "not protected");

	snprintf(l.uri, sizeof(l.uri), "unix:/tmp/hdvm-ckpt-test.%d.sock", getpid());
	assert_int_equal(pthread_create(&l.t, NULL, listen_main, &l), 0);
	usleep(50000);
	stop_after = ~0ull;
	checkpoint_job_test_pause(test_pause, test_resume);
	snprintf(line, sizeof(line), "{\"cmd\":\"checkpoint\",\"uri\":\"%s\",\"epoch_ms\":5,"
		 "\"heartbeat_ms\":20,\"failover_ms\":3000}", l.uri);
	expect_ctl(line, "\"started\":true");
	for (int i = 0; i < 500 && status_field("committed_epoch") < 3; i++)
		usleep(10000);
	assert_true(status_field("committed_epoch") >= 3);
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"primary\"");
	assert_true(status_field("pause_p99_us") >= status_field("pause_p50_us"));
	assert_true(status_field("checkpoint_bytes_total") > 0);
	assert_int_equal(status_field("frames_held"), 3);
	/* while protected: no second protection, no pause, no snapshot */
	expect_ctl(line, "protected already");
	expect_ctl("{\"cmd\":\"pause\"}", "protected");

	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "\"stopping\":true");
	for (int i = 0; i < 500 && checkpoint_job_running(); i++)
		usleep(10000);
	assert_false(checkpoint_job_running());
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"unprotected\"");
	expect_ctl("{\"cmd\":\"status\"}", "stopped on request");
	pthread_join(l.t, NULL);
	assert_int_equal(l.s.ret, 0);
	assert_int_equal(l.s.outcome, STANDBY_STOPPED);
	assert_int_equal(l.s.sb.applied, (uint64_t)status_field("committed_epoch"));
	/* the held output left: the devices' last op was STOP */
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
	checkpoint_job_stop();
	checkpoint_job_test_pause(NULL, NULL);
	standby_end(&l.s.sb);
	mig_io_close(&l.s.io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_checked),
		cmocka_unit_test_setup_teardown(test_epochs_reach_the_standby_and_commit_in_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_checkpoints_refused_previous_kept,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_silence_activates_from_the_last_complete_checkpoint,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_primary_killed_at_each_fail_point,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_lost_continue_releases,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_lost_pause_keeps_output_held,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_budget_ends_an_epoch_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_checkpoint_job, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
