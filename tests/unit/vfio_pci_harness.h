/* SPDX-License-Identifier: MIT */
/*
 * A real vfio-pci device realized on a VM with buses and guest RAM but no
 * vCPUs, attached by socket path to the fake vfio-user server
 * (vfio_fake_server.h), which records every MIG_DEVICE_STATE the client asks
 * for.  Shared by test_vfio_pci.c, test_vfio_pci_precopy.c,
 * test_vfio_pci_reattach.c and test_vfio_compsc.c: attach() with a tweak of
 * the server, the setups and teardown cmocka runs around each test.
 */
#ifndef HDVM_TEST_VFIO_PCI_HARNESS_H
#define HDVM_TEST_VFIO_PCI_HARNESS_H
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <sys/stat.h>

#include "tests/unit/vfio_fake_server.h"

#include "devices/device.h"
#include "devices/holdq.h"
#include "devices/pci/pci.h"
#include "devices/platform.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_pci_int.h"
#include "vmm/control.h"
#include "vmm/kvm_ops.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/vm.h"

#define R	VFIO_DEVICE_STATE_RUNNING
#define P2P	VFIO_DEVICE_STATE_RUNNING_P2P
#define STOP	VFIO_DEVICE_STATE_STOP
#define PRE	VFIO_DEVICE_STATE_PRE_COPY
#define PRE_P2P	VFIO_DEVICE_STATE_PRE_COPY_P2P
#define SCOPY	VFIO_DEVICE_STATE_STOP_COPY
#define RESUME	VFIO_DEVICE_STATE_RESUMING
#define PRE_BYTES 1000

static struct vm vm;
static uint64_t ram_size = 2 << 20;
static struct fake_srv *srv;
static char sock_path[64], path_b[80];
static struct fake_srv *srv_b;	/* a second device's server, when a test adds one */

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* KVM_IOEVENTFD/IRQFD for the BARs and vectors: accepted, nothing to check here */
static int kvm_accepts(int fd, unsigned long req, void *arg) { return 0; }

/* Build the VM, start the server as tweak says, realize the passthrough device. */
static void attach(void (*tweak)(struct fake_srv *))
{
	irq_set_ioctl(kvm_accepts);
	memset(&vm, 0, sizeof(vm));
	iobus_init(&vm.pio, "pio");
	iobus_init(&vm.mmio, "mmio");
	pthread_mutex_init(&vm.state_lock, NULL);
	pthread_cond_init(&vm.state_cond, NULL);
	assert_int_equal(guest_mem_init(&vm.mem, ram_size), 0);
	vm.pci = pci_bus_create(&vm);
	assert_non_null(vm.pci);

	srv = srv_new();
	put16(srv->cfg + PCI_VENDOR_ID, 0x8086);
	put16(srv->cfg + PCI_DEVICE_ID, 0x10ca);
	srv->cfg[PCI_CLASS_DEVICE + 1] = 0x02;		/* network controller */
	if (tweak)
		tweak(srv);
	snprintf(sock_path, sizeof(sock_path), "/tmp/hdvm-test-vfio-pci.%d", getpid());
	srv_listen(srv, sock_path);
	assert_int_equal(vfio_pci_add(&vm, sock_path, false, "vfio0"), 0);
	assert_int_equal(devices_realize(&vm), 0);	/* attaching works either way */
	vm.state = VM_RUNNING;
}

static void no_p2p(struct fake_srv *s) { s->mig_flags = VFIO_MIGRATION_STOP_COPY; }
static void no_migration(struct fake_srv *s) { s->no_migration = true; }

static void precopy(struct fake_srv *s)
{
	s->mig_flags |= VFIO_MIGRATION_PRE_COPY;
	s->pre_bytes = PRE_BYTES;
}

static void precopy_no_p2p(struct fake_srv *s)
{
	precopy(s);
	s->mig_flags &= ~(uint64_t)VFIO_MIGRATION_P2P;
}

static int setup(void **st) { attach(NULL); return 0; }
static int setup_precopy(void **st) { attach(precopy); return 0; }
static int setup_precopy_no_p2p(void **st) { attach(precopy_no_p2p); return 0; }
static int setup_no_p2p(void **st) { attach(no_p2p); return 0; }
static int setup_no_migration(void **st) { attach(no_migration); return 0; }

/* RAM on both sides of the MMIO hole: two slots in vmm/memory.c's layout */
static int setup_high_ram(void **st)
{
	ram_size = PLAT_MMIO_HOLE_START + (8 << 20);
	attach(NULL);
	ram_size = 2 << 20;
	return 0;
}

static int teardown(void **st)
{
	devices_unrealize(&vm);		/* closes the connection: the server thread ends */
	srv_finish(srv, NULL);
	if (srv_b) {
		srv_finish(srv_b, NULL);
		unlink(path_b);
		srv_b = NULL;
	}
	unlink(sock_path);
	while (vm.devices) {
		struct device *d = vm.devices;

		vm.devices = d->next;
		free(d);
	}
	guest_mem_destroy(&vm.mem);
	iobus_destroy(&vm.pio);
	iobus_destroy(&vm.mmio);
	return 0;
}

static void expect_seq(const uint32_t *want, unsigned n)
{
	assert_int_equal(srv->nr_mig_seq, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(srv->mig_seq[i], want[i]);
}

#endif
