// SPDX-License-Identifier: MIT
/*
 * The per-epoch cost of the parts of a Remus checkpoint that are not the
 * vCPUs (this host has no /dev/kvm): `make bench-remus-parts`.
 *
 *  1. the whole driver on the fake KVM (tests/unit/fake_kvm.h: 2 vCPUs whose
 *     state is a store of bytes), 64 MiB of RAM, P scattered pages written
 *     each epoch through hdvm's tracked path, shipped to a standby thread over
 *     a socketpair: pause p50/p99 (harvest, state save, staging copy, epoch
 *     boundary) and the checkpoint's bytes;
 *  2. its pieces alone: devices_save() on the fake, the copy of P scattered
 *     pages into a staging buffer;
 *  3. with a real hdnic (build/hdnic, in a network namespace of its own): the
 *     same driver pausing a real VF over vfio-user (RUNNING_P2P, STOP,
 *     STOP_COPY state, RUNNING) and the output-commit round trip (epoch
 *     boundary + commit) per epoch.
 * KVM's own parts (kicking vCPUs out of KVM_RUN, their state ioctls, the
 * write-protect faults after a dirty-log reset) are not here: DESIGN.md
 * has them measured (kick ~37 us p50, full state save ~0.23 ms).
 * Medians of one run; figures drift run to run on this shared host.
 */
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/fake_kvm.h"

#include "devices/device.h"
#include "devices/holdq.h"
#include "devices/legacy/legacy.h"
#include "devices/pci/pci.h"
#include "devices/vfio/vfio_pci.h"
#include "vmm/checkpoint.h"
#include "vmm/irq.h"
#include "vmm/machine_dev.h"
#include "vmm/memory.h"
#include "vmm/migrate.h"
#include "vmm/standby.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define RAM	(64ull << 20)
#define PAGES	(RAM / 4096)

static struct vm a, b;
static unsigned nr_pages = 1000, nr_epochs = 200;
static atomic_bool stop_flag;
static uint64_t epochs_done;

static int accept_ioctl(int fd, unsigned long req, void *arg) { return 0; }

static void vm_build(struct vm *vm, const char *vfio_sock)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm = &slot_kvm;
	vm->kvm_fd = KVM_FD;
	vm->vm_fd = VM_FD;
	vm->exit_efd = vm->console_out_fd = vm->console_in_fd = -1;
	vm->cfg.kernel = "hdguest.elf";
	vm->cfg.nr_vfio_user = vfio_sock ? 1 : 0;
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	if (guest_mem_init(&vm->mem, RAM))
		abort();
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
	if (vfio_sock) {
		vm->pci = pci_bus_create(vm);
		if (vfio_pci_add(vm, vfio_sock, false, "vfio0"))
			abort();
	}
	if (devices_realize(vm))
		abort();
	vm->state = VM_RUNNING;
}

static int dev_pause(struct vm *vm, char *why, size_t len) { return devices_pause(vm, why, len); }
static int dev_resume(struct vm *vm, char *why, size_t len) { return devices_resume(vm, why, len); }

/* The guest: P pages, scattered over RAM, written each epoch. */
static void dirty_pages(uint64_t epoch, void *opaque)
{
	uint8_t v[8];

	memset(v, (int)epoch, sizeof(v));
	for (unsigned i = 0; i < nr_pages; i++) {
		uint64_t page = (i * 7919ull + epoch * 104729ull) % PAGES;

		guest_mem_write(&a.mem, page * 4096, v, sizeof(v));
	}
	epochs_done = epoch;
	if (epoch >= nr_epochs)
		atomic_store(&stop_flag, true);
}

struct stby {
	int fd;
	struct mig_io io;
	struct standby sb;
	char why[256];
};

static void *standby_main(void *arg)
{
	struct stby *s = arg;

	mine = &dst;
	mig_io_unix(&s->io, s->fd);
	if (standby_begin(&s->sb, &s->io, s->why, sizeof(s->why))) {
		fprintf(stderr, "standby: %s\n", s->why);
		return NULL;
	}
	standby_receive(&s->sb, &b);
	return NULL;
}

static void run_driver(const char *label)
{
	struct ckpt_opts o = {
		.epoch_ms = 2, .heartbeat_ms = 50, .failover_ms = 5000,
		.pause = dev_pause, .resume = dev_resume, .epoch_done = dirty_pages,
		.stop = &stop_flag,
	};
	struct ckpt_stats st;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t;
	char why[256];
	int sv[2];

	atomic_store(&stop_flag, false);
	ckpt_stats_init(&st);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	s.fd = sv[1];
	pthread_create(&t, NULL, standby_main, &s);
	mig_io_unix(&io, sv[0]);
	cur = &src;
	if (ckpt_primary_run(&a, &io, &o, &st, why, sizeof(why)))
		fprintf(stderr, "driver: %s\n", why);
	pthread_join(t, NULL);
	printf("%-44s pause p50 %6llu us  p99 %6llu us  checkpoint %7.1f KiB (%llu pages)  "
	       "%llu epochs, %llu acknowledged\n", label,
	       (unsigned long long)ckpt_pause_pct(&st, 50), (unsigned long long)ckpt_pause_pct(&st, 99),
	       st.last_bytes / 1024.0, (unsigned long long)st.last_pages,
	       (unsigned long long)st.epoch, (unsigned long long)st.committed);
	standby_end(&s.sb);
	mig_io_close(&io);
	mig_io_close(&s.io);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

	return p < q ? -1 : p > q;
}

static void report(const char *label, uint64_t *ns, unsigned n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("%-44s p50 %8.1f us  p99 %8.1f us\n", label, ns[n / 2] / 1000.0,
	       ns[(n - 1) * 99 / 100] / 1000.0);
}

static void pieces(void)
{
	uint64_t *ns = xzalloc(nr_epochs * sizeof(*ns));
	uint8_t *stage = xzalloc((size_t)nr_pages * 4096);

	cur = &src;
	for (unsigned e = 0; e < nr_epochs; e++) {
		struct state_buf sb;
		uint64_t t = now_ns();

		state_init_writer(&sb);
		devices_save(&a, &sb);
		ns[e] = now_ns() - t;
		state_free(&sb);
	}
	report("devices_save() (fake vCPUs, serial)", ns, nr_epochs);
	for (unsigned e = 0; e < nr_epochs; e++) {
		uint64_t t = now_ns();

		for (unsigned i = 0; i < nr_pages; i++) {
			uint64_t page = (i * 7919ull + e * 104729ull) % PAGES;

			memcpy(stage + (size_t)i * 4096, a.mem.host + page * 4096, 4096);
		}
		ns[e] = now_ns() - t;
	}
	char label[64];

	snprintf(label, sizeof(label), "copy of %u scattered pages to staging", nr_pages);
	report(label, ns, nr_epochs);
	free(stage);
	free(ns);
}

/* ---- with a real hdnic ---- */

static char nic_dir[64];
static pid_t nic_pid = -1;

static bool start_hdnic(const char *self)
{
	char hdnic[PATH_MAX], copy[PATH_MAX], path[128];

	snprintf(copy, sizeof(copy), "%s", self);
	snprintf(hdnic, sizeof(hdnic), "%s/hdnic", dirname(copy));
	if (access(hdnic, X_OK) || unshare(CLONE_NEWNET) || access("/dev/net/tun", R_OK | W_OK))
		return false;
	snprintf(nic_dir, sizeof(nic_dir), "/tmp/hdvm-bench-remus.%d", getpid());
	mkdir(nic_dir, 0700);
	nic_pid = fork();
	if (!nic_pid) {
		execl(hdnic, hdnic, "--dir", nic_dir, "--vfs", "2", "--uplink", "tap:hdb0",
		      "--name", "bench", (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/vf0.sock", nic_dir);
	for (int i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
	return !access(path, F_OK);
}

static void stop_hdnic(void)
{
	char cmd[128];

	if (nic_pid > 0) {
		kill(nic_pid, SIGTERM);
		waitpid(nic_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", nic_dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", nic_dir);
}

static void commit_round_trips(void)
{
	uint64_t *ns = xzalloc(nr_epochs * sizeof(*ns));

	devices_output_commit(&a, HOLDQ_OP_START, 1, 0);
	for (unsigned e = 0; e < nr_epochs; e++) {
		uint64_t t = now_ns();

		devices_output_commit(&a, HOLDQ_OP_EPOCH, e + 2, 0);
		devices_output_commit(&a, HOLDQ_OP_COMMIT, e + 1, 0);
		ns[e] = now_ns() - t;
	}
	devices_output_commit(&a, HOLDQ_OP_STOP, 0, 0);
	report("output commit: epoch + commit (real VF)", ns, nr_epochs);
	free(ns);
}

int main(int argc, char **argv)
{
	char sock[128], label[96];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pages"))
			nr_pages = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--epochs"))
			nr_epochs = (unsigned)atoi(argv[i + 1]);
	}
	if (!nr_pages || nr_pages > PAGES || !nr_epochs) {
		fprintf(stderr, "usage: bench_remus_parts [--pages P] [--epochs N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	printf("Remus per-epoch costs without the vCPUs: %u dirty pages/epoch, %u epochs, "
	       "64 MiB RAM, 2 fake vCPUs\n", nr_pages, nr_epochs);
	vm_build(&a, NULL);
	cur = &dst;
	vm_build(&b, NULL);
	pieces();
	snprintf(label, sizeof(label), "whole epoch, fake KVM, no passthrough");
	run_driver(label);

	if (!start_hdnic(argv[0])) {
		printf("(no hdnic, namespace or /dev/net/tun: the real-VF figures are skipped)\n");
		return 0;
	}
	irq_set_ioctl(accept_ioctl);
	devices_unrealize(&a);
	devices_unrealize(&b);
	snprintf(sock, sizeof(sock), "%s/vf0.sock", nic_dir);
	cur = &src;
	vm_build(&a, sock);
	snprintf(sock, sizeof(sock), "%s/vf1.sock", nic_dir);
	cur = &dst;
	vm_build(&b, sock);		/* the standby's own function, idle */
	commit_round_trips();
	snprintf(label, sizeof(label), "whole epoch, fake KVM + a real hdnic VF");
	run_driver(label);
	devices_unrealize(&a);
	devices_unrealize(&b);
	stop_hdnic();
	return 0;
}
