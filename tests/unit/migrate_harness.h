/* SPDX-License-Identifier: MIT */
/*
 * Two VMs on the fake KVM (fake_vm.h) and a destination thread running what
 * `hdvm run --incoming` does: shared by the migration unit tests
 * (test_migrate.c, test_migrate_precopy.c).  harness_devices, when set,
 * adds a test's own devices to both VMs.
 */
#ifndef HDVM_TEST_MIGRATE_HARNESS_H
#define HDVM_TEST_MIGRATE_HARNESS_H
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"
#include "tests/unit/migrate_thread.h"

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "migration/manifest.h"
#include "migration/stream.h"
#include "vmm/machine_dev.h"
#include "vmm/memory.h"
#include "migration/transport.h"
#include "vmm/control.h"
#include "vmm/migrate.h"
#include "vmm/migrate_job.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define RAM		(16ull << 20)
#define COM1_SCR	(PLAT_COM1_PORT + 7)
#define DIRTIED_GPA	(5ull << 20)		/* zero before, written between passes */
#define ZEROED_GPA	(4096 * 37 * 3)		/* pattern before, zeroed between passes */

static struct vm a, b;
static void (*harness_devices)(struct vm *vm);

static void vm_build(struct vm *vm, uint64_t ram, bool with_i8042)
{
	fake_vm_build(vm, &slot_kvm, ram, NR_VCPUS, with_i8042);
	if (harness_devices)
		harness_devices(vm);
	vm->mem.kvm = &slot_kvm;
	vm->mem.vm_fd = VM_FD;
}

static void vm_free(struct vm *vm)
{
	fake_vm_free(vm);
	memset(vm, 0, sizeof(*vm));
}

static int setup(void **state)
{
	srand(7);
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	mine = &src;
	vm_build(&a, RAM, true);
	for (uint64_t p = 0; p < RAM; p += 4096 * 37)
		memset(a.mem.host + p, (int)(p >> 12) | 1, 100);
	fake_vm_pio_write(&a, COM1_SCR, 0x5a);
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

/* ---- the destination, on its own thread ---- */

struct dest {
	int fd;
	bool unix_fds, i8042, vanish;
	unsigned build_ms;		/* building the VM takes this long (KVM, memslots) */
	struct mig_io *pre;		/* accepted (and TLS-wrapped) already */
	int ret;
	char why[512];
	uint64_t pages, zero_pages;
};

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct migrate_incoming in;
	struct vm_config cfg = { 0 };
	struct mig_io io;

	mine = &dst;
	if (d->pre)
		io = *d->pre;
	else if (d->unix_fds)
		mig_io_unix(&io, d->fd);
	else
		mig_io_fd(&io, d->fd);
	d->ret = migrate_recv_begin(&in, &io, d->why, sizeof(d->why));
	if (!d->ret && d->vanish) {
		migrate_recv_end(&in);
		mig_io_close(&io);
		return NULL;
	}
	if (!d->ret)
		d->ret = migrate_config_from_manifest(&in.m, &cfg, d->why, sizeof(d->why));
	if (!d->ret) {
		/* what `hdvm run --incoming` does: a VM built from the manifest */
		if (d->build_ms)
			usleep(d->build_ms * 1000);
		vm_build(&b, cfg.mem_size, d->i8042);
		d->ret = migrate_recv_finish(&in, &b, d->why, sizeof(d->why));
	}
	d->pages = in.r.pages;
	d->zero_pages = in.r.zero_pages;
	migrate_recv_answer(&in, d->ret, d->why);
	migrate_recv_end(&in);
	mig_io_close(&io);
	free((char *)cfg.kernel);
	free((char *)cfg.cmdline);
	return NULL;
}

/* Between passes the "guest" writes one page and zeroes another. */
static int nr_progress;

static void dirty_between_passes(const struct migrate_progress *p, void *opaque)
{
	static const uint8_t zero[4096];
	uint8_t data[64];

	nr_progress++;
	if (p->pass != 0)
		return;
	memset(data, 0xd7, sizeof(data));
	assert_int_equal(guest_mem_write(&a.mem, DIRTIED_GPA, data, sizeof(data)), 0);
	assert_int_equal(guest_mem_write(&a.mem, ZEROED_GPA, zero, sizeof(zero)), 0);
}

static int migrate(struct dest *d, int domain, bool by_fd, struct migrate_result *res,
		   char *why, size_t len)
{
	struct migrate_opts o = {
		.downtime_ms = 300, .timeout_ms = 10000, .ram_by_fd = by_fd,
		.progress = dirty_between_passes,
	};

	d->unix_fds = by_fd;
	return migrate_to_thread(&a, domain, true, dest_main, d, &d->fd, &o, res, why, len);
}

static void assert_state_arrived(void)
{
	assert_memory_equal(b.mem.host, a.mem.host, RAM);
	assert_int_equal(fake_vm_pio_read(&b, COM1_SCR), 0x5a);
	fake_assert_state_copied();
}

/* A guest that dirties faster than the link: --timeout gives up cleanly. */
static void dirty_everything(const struct migrate_progress *p, void *opaque)
{
	uint8_t data[64];

	memset(data, (int)p->pass + 1, sizeof(data));
	for (uint64_t gpa = 0; gpa < RAM; gpa += 4096)
		guest_mem_write(&a.mem, gpa, data, sizeof(data));
	usleep(20000);
}

#endif
