// SPDX-License-Identifier: MIT
/*
 * The passthrough device's pause and resume, end to end without KVM: a real
 * vfio-pci device realized on a VM with buses and guest RAM but no vCPUs,
 * attached by socket path to the fake vfio-user server, paused and resumed
 * through vm_pause()/vm_resume() -- the control socket's path.  The server
 * records every MIG_DEVICE_STATE the client asks for.
 */
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

static void test_pause_stops_device(void **st)
{
	static const uint32_t want[] = { P2P, STOP, P2P, R };
	char why[256] = "";

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(vm.state, VM_PAUSED);
	assert_int_equal(srv->mig_state, STOP);
	expect_seq(want, 2);
	/* pausing a paused VM asks the device nothing */
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	expect_seq(want, 2);

	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(srv->mig_state, R);
	expect_seq(want, 4);
	assert_int_equal(srv->resets, 0);
}

/* The checkpoint driver's output commit reaches the passthrough device's server. */
static void test_output_commit_reaches_the_device(void **st)
{
	assert_int_equal(devices_output_commit(&vm, HOLDQ_OP_START, 4, 32), 0);
	assert_int_equal(devices_output_commit(&vm, HOLDQ_OP_EPOCH, 5, 0), 0);
	assert_int_equal(devices_output_commit(&vm, HOLDQ_OP_COMMIT, 4, 0), 0);
	/* the device's refusal reaches the caller */
	assert_int_equal(devices_output_commit(&vm, HOLDQ_OP_COMMIT, 5, 0), -EINVAL);
	assert_int_equal(devices_output_commit(&vm, HOLDQ_OP_STOP, 0, 0), 0);
	assert_int_equal(srv->nr_oc, 5);
	assert_int_equal(srv->oc[0].op, HOLDQ_OP_START);
	assert_int_equal(srv->oc[0].epoch, 4);
	assert_int_equal(srv->oc[0].max_frames, 32);
	assert_int_equal(srv->oc[2].op, HOLDQ_OP_COMMIT);
	assert_int_equal(srv->oc_committed, 4);
	assert_false(srv->oc_holding);
}

/* Without P2P the arc is direct, as the kernel's table skips the state. */
static void test_pause_without_p2p(void **st)
{
	static const uint32_t want[] = { STOP, R };
	char why[256] = "";

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	expect_seq(want, 2);
}

/* The server refuses STOP: pause fails, the VM keeps running, the device is RUNNING. */
static void test_refused_stop_keeps_running(void **st)
{
	static const uint32_t want[] = { P2P, STOP, R };
	char why[256] = "";

	srv->mig_refuse = STOP;
	srv->mig_refuse_errno = EBUSY;
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci) refused to pause: "));
	assert_non_null(strstr(why, ": the device refused RUNNING_P2P -> STOP: Device or "
			       "resource busy"));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_false(atomic_load(&vm.pause_requested));	/* vCPUs released */
	expect_seq(want, 3);
	assert_int_equal(srv->mig_state, R);
	assert_int_equal(srv->resets, 0);

	/* the control socket's pause says the same to the user */
	{
		char *reply = control_handle_line(vm_control_cmds, vm_nr_control_cmds, &vm,
						  "{\"cmd\":\"pause\"}");

		assert_non_null(strstr(reply, "\"ok\":false"));
		assert_non_null(strstr(reply, "device vfio0 (vfio-pci) refused to pause: "));
		assert_non_null(strstr(reply, "RUNNING_P2P -> STOP: Device or resource busy"));
		free(reply);
		assert_int_equal(vm.state, VM_RUNNING);
		assert_int_equal(srv->mig_state, R);
	}

	/* once the device agrees again, pause works */
	srv->mig_refuse = 0;
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, STOP);
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, R);
}

/* A refusal that leaves the device in ERROR: the only way out is a reset. */
static void test_refusal_into_error_resets(void **st)
{
	char why[256] = "";

	srv->mig_refuse = P2P;
	srv->mig_refuse_to_error = true;
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "the device refused RUNNING -> RUNNING_P2P"));
	assert_int_equal(srv->mig_gets, 1);		/* asked where it was left */
	assert_int_equal(srv->resets, 1);
	assert_int_equal(srv->mig_state, R);
	assert_int_equal(vm.state, VM_RUNNING);
}

/* No FEATURE_MIGRATION: the device cannot be stopped, so the VM is not paused. */
static void test_no_migration_support(void **st)
{
	char why[256] = "";

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "cannot be stopped: it has no VFIO migration support "
			       "(FEATURE_MIGRATION absent)"));
	assert_int_equal(vm.state, VM_RUNNING);
	assert_int_equal(srv->nr_mig_seq, 0);
}

/*
 * The device's own state: a STOP_COPY session read to its end into the
 * device section, and written back in RESUMING; the device ends where it was.
 */
static void test_save_load_device_state(void **st)
{
	static const uint32_t want[] = {
		P2P, STOP, VFIO_DEVICE_STATE_STOP_COPY, STOP,		/* pause, save */
		P2P, R,							/* resume */
		P2P, STOP, VFIO_DEVICE_STATE_RESUMING, STOP, P2P, R,	/* load */
	};
	struct state_buf sb, rd;
	char why[256] = "";

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save(&vm, &sb), 0);
	assert_int_equal(srv->mig_state, STOP);			/* still paused */
	assert_non_null(memmem(sb.data, sb.len, srv->mig_out, MIG_BLOB));
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);

	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(&vm, &rd, why, sizeof(why)), 0);
	assert_true(state_at_end(&rd));
	assert_int_equal(srv->mig_in_len, MIG_BLOB);
	assert_memory_equal(srv->mig_in, srv->mig_out, MIG_BLOB);
	assert_int_equal(srv->mig_state, R);			/* the guest runs on */
	expect_seq(want, sizeof(want) / sizeof(want[0]));

	/* the device rejects what it got (RESUMING -> STOP fails into ERROR) */
	srv->mig_refuse = STOP;
	srv->mig_refuse_from = VFIO_DEVICE_STATE_RESUMING;
	srv->mig_refuse_to_error = true;
	srv->mig_in_len = 0;
	state_init_reader(&rd, sb.data, sb.len);
	assert_true(devices_load(&vm, &rd, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci)"));
	assert_non_null(strstr(why, "the device refused RESUMING -> STOP"));
	assert_int_equal(srv->resets, 1);			/* out of ERROR */
	assert_int_equal(srv->mig_state, R);
	state_free(&sb);
}

/* A device without migration support whose guest did not opt into CompSC cannot be saved. */
static void test_save_without_migration_refused(void **st)
{
	struct state_buf sb;

	state_init_writer(&sb);
	assert_int_equal(devices_save(&vm, &sb), -EOPNOTSUPP);
	assert_non_null(strstr(vm.devices->next->error, "has no VFIO migration support and its "
			       "guest driver did not opt into CompSC"));
	state_free(&sb);
}

/* The device's DMA space is guest RAM exactly as memory.c lays it out: one map per slot. */
static void test_dma_maps_every_ram_slot(void **st)
{
	assert_int_equal(srv->nr_dmas, 2);
	assert_int_equal(srv->dmas[0].addr, 0);
	assert_int_equal(srv->dmas[0].size, PLAT_MMIO_HOLE_START);
	assert_int_equal(srv->dmas[0].offset, 0);
	assert_int_equal(srv->dmas[1].addr, PLAT_MMIO_HOLE_END);
	assert_int_equal(srv->dmas[1].size, 8 << 20);
	assert_int_equal(srv->dmas[1].offset, PLAT_MMIO_HOLE_START);
	assert_true(srv->dma_fd_is_memfd);
}

/* ---- the server reaches guest RAM with DMA_READ / DMA_WRITE ---- */

static void script_dma(unsigned i, uint16_t cmd, uint64_t addr, const char *data, uint64_t count)
{
	srv->dma[i] = (struct fake_dma){ .cmd = cmd, .addr = addr, .count = count };
	if (cmd == VFIO_USER_DMA_WRITE) {
		srv->dma[i].len = (uint32_t)count;
		memcpy(srv->dma[i].data, data, count);
	}
	srv->nr_dma = MAX(srv->nr_dma, i + 1);
}

/*
 * A server may use DMA_READ/DMA_WRITE for memory it was given an fd for
 * (libvfio-user's do when not asked for direct access): a write lands in
 * guest RAM through the guest-write path, so the dirty log sees it; a read
 * sees guest RAM; outside RAM is refused.
 */
static void test_server_dma_reaches_guest_ram(void **st)
{
	struct vfio_pci *vp = container_of(device_find(&vm, "vfio0"), struct vfio_pci, dev);
	static const char msg[] = "written by the server";
	static const struct kvm_ops any_kvm = { .ioctl = kvm_accepts };
	uint64_t bitmap[64] = { 0 };
	uint32_t one = 1;

	assert_int_equal(guest_mem_register(&vm.mem, &any_kvm, 42), 0);	/* to log dirty pages */
	assert_int_equal(guest_mem_log_start(&vm.mem, 0), 0);
	script_dma(0, VFIO_USER_DMA_WRITE, 0x3010, msg, sizeof(msg));
	script_dma(1, VFIO_USER_DMA_READ, 0x3010, NULL, sizeof(msg));
	script_dma(2, VFIO_USER_DMA_READ, ram_size, NULL, 16);		/* past guest RAM */
	assert_int_equal(vp->vdev->ops->region_write(vp->vdev, 1, FAKE_DMA_DOORBELL, &one, 4), 0);
	assert_string_equal((char *)gpa_to_hva(&vm.mem, 0x3010, sizeof(msg)), msg);
	assert_int_equal(guest_mem_log_sync(&vm.mem, 0, bitmap), 0);
	assert_true(bitmap[0] & (1ull << 3));			/* page 3 is dirty */
	assert_true(srv->dma[1].answered && !(srv->dma[1].flags & VFIO_USER_F_ERROR));
	assert_memory_equal(srv->dma[1].ans + 16, msg, sizeof(msg));
	assert_true(srv->dma[2].flags & VFIO_USER_F_ERROR);
	assert_int_equal(srv->dma[2].error_no, EFAULT);
	assert_int_equal(guest_mem_log_stop(&vm.mem, 0), 0);
	assert_true(vp_alive(vp));
}

/* A request while no call of ours is in flight: the socket watch answers it. */
static void test_server_dma_while_idle(void **st)
{
	struct vfio_pci *vp = container_of(device_find(&vm, "vfio0"), struct vfio_pci, dev);
	static const char msg[] = "idle";
	int fd = vfio_user_socket(vp->vdev);
	struct pollfd p = { .fd = fd, .events = POLLIN };

	script_dma(0, VFIO_USER_DMA_WRITE, 0x5000, msg, sizeof(msg));
	fake_dma_request(srv, &srv->dma[0], 0x8000);
	assert_int_equal(poll(&p, 1, 2000), 1);
	vp_server_event(vp, fd, POLLIN);
	for (int i = 0; i < 200 && !atomic_load(&srv->dma_answers); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&srv->dma_answers), 1);
	assert_string_equal((char *)gpa_to_hva(&vm.mem, 0x5000, sizeof(msg)), msg);
	assert_true(vp_alive(vp));
}

/* ---- the device's DMA dirty log ---- */

struct marks {
	uint64_t gpa[16], len[16];
	unsigned n;
};

static void collect(void *opaque, uint64_t gpa, uint64_t len)
{
	struct marks *m = opaque;

	assert_true(m->n < 16);
	m->gpa[m->n] = gpa;
	m->len[m->n++] = len;
}

static void test_dirty_log(void **st)
{
	struct marks m = { .n = 0 };

	assert_int_equal(devices_dirty_log_start(&vm), 0);
	assert_true(srv->logging);
	assert_int_equal(srv->log_page_size, 4096);
	assert_int_equal(srv->nr_log_ranges, 1);		/* all of guest RAM */
	assert_int_equal(srv->log_ranges[0][0], 0);
	assert_int_equal(srv->log_ranges[0][1], 2 << 20);

	/* the device wrote three pages, two of them adjacent, one at the very end */
	srv->dirty[0] = 0x3000;
	srv->dirty[1] = 0x4000;
	srv->dirty[2] = (2 << 20) - 4096;
	srv->nr_dirty = 3;
	assert_int_equal(devices_dirty_log_sync(&vm, collect, &m), 0);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.gpa[0], 0x3000);
	assert_int_equal(m.len[0], 0x2000);
	assert_int_equal(m.gpa[1], (2 << 20) - 4096);
	assert_int_equal(m.len[1], 4096);

	/* read means cleared: nothing new, nothing reported */
	m.n = 0;
	assert_int_equal(devices_dirty_log_sync(&vm, collect, &m), 0);
	assert_int_equal(m.n, 0);
	assert_int_equal(devices_dirty_log_stop(&vm), 0);
	assert_false(srv->logging);
}

/* Both RAM slots are logged and reported, the one above 4 GiB at its own address. */
static void test_dirty_log_high_ram(void **st)
{
	struct marks m = { .n = 0 };

	assert_int_equal(devices_dirty_log_start(&vm), 0);
	assert_int_equal(srv->nr_log_ranges, 2);
	assert_int_equal(srv->log_ranges[1][0], PLAT_MMIO_HOLE_END);
	assert_int_equal(srv->log_ranges[1][1], 8 << 20);
	srv->dirty[0] = PLAT_MMIO_HOLE_START - 4096;	/* the last page below the hole */
	srv->dirty[1] = PLAT_MMIO_HOLE_END + 0x5000;
	srv->nr_dirty = 2;
	assert_int_equal(devices_dirty_log_sync(&vm, collect, &m), 0);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.gpa[0], PLAT_MMIO_HOLE_START - 4096);
	assert_int_equal(m.gpa[1], PLAT_MMIO_HOLE_END + 0x5000);
	assert_int_equal(m.len[1], 4096);
	assert_int_equal(devices_dirty_log_stop(&vm), 0);
}

/*
 * Two passthrough devices: both reach RUNNING_P2P before either is stopped
 * (no device is stopped while its peer may still DMA into it); when the
 * second refuses STOP, both end up RUNNING again.
 */
static void test_two_devices_p2p_first(void **st)
{
	static const uint32_t paused[] = { P2P, STOP };
	struct fake_srv *a = srv, *b = srv_b = srv_new();
	char why[256] = "";
	struct device *dev_b;

	put16(b->cfg + PCI_VENDOR_ID, 0x8086);
	snprintf(path_b, sizeof(path_b), "%s.b", sock_path);	/* a second function */
	srv_listen(b, path_b);
	assert_int_equal(vfio_pci_add(&vm, path_b, false, "vfio1"), 0);
	dev_b = device_find(&vm, "vfio1");
	assert_int_equal(dev_b->ops->realize(dev_b, &vm), 0);

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	srv = a;
	expect_seq(paused, 2);
	srv = b;
	expect_seq(paused, 2);
	assert_true(a->mig_when[0] < a->mig_when[1] && b->mig_when[0] < a->mig_when[1]);
	assert_true(a->mig_when[0] < b->mig_when[1] && b->mig_when[0] < b->mig_when[1]);
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	assert_int_equal(a->mig_state, R);
	assert_int_equal(b->mig_state, R);

	b->mig_refuse = STOP;
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "device vfio1 (vfio-pci) refused to pause"));
	assert_int_equal(a->mig_state, R);	/* stopped, then run again */
	assert_int_equal(b->mig_state, R);	/* walked back, then run again */
	assert_int_equal(a->mig_seq[a->nr_mig_seq - 1], R);
	assert_int_equal(vm.state, VM_RUNNING);

	srv = a;	/* teardown finishes both */
}

/* ---- re-attach: the server dies and comes back on the same socket path ---- */

static struct fake_srv *kill_server(void)
{
	struct fake_srv *dead = srv;

	shutdown(dead->sock, SHUT_RDWR);	/* kill -9: the connection drops */
	pthread_join(dead->thr, NULL);
	return dead;
}

static void free_server(struct fake_srv *s)
{
	srv_free(s);
}

/* An MSI-X capability: 4 vectors, table and PBA in BAR1 */
static void with_msix(struct fake_srv *s)
{
	uint16_t ctrl = 3;
	uint32_t table = 1, pba = 0x800 | 1;

	s->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	s->cfg[PCI_CAPABILITY_LIST] = 0x40;
	s->cfg[0x40] = PCI_CAP_ID_MSIX;
	s->cfg[0x41] = 0;
	memcpy(s->cfg + 0x40 + PCI_MSIX_FLAGS, &ctrl, 2);
	memcpy(s->cfg + 0x40 + PCI_MSIX_TABLE, &table, 4);
	memcpy(s->cfg + 0x40 + PCI_MSIX_PBA, &pba, 4);
}

static int setup_msix(void **st) { attach(with_msix); return 0; }

/* With the main loop, as hdvm runs: hang-ups and the re-attach timer are watched. */
static void with_msix_loop(struct fake_srv *s)
{
	with_msix(s);
	vm.loop = loop_create(16);
	assert_non_null(vm.loop);
}

static int setup_msix_loop(void **st) { attach(with_msix_loop); return 0; }

static int teardown_loop(void **st)
{
	struct event_loop *l = vm.loop;

	teardown(st);
	loop_destroy(l);
	return 0;
}

static struct fake_srv *restart_server(uint16_t vendor)
{
	struct fake_srv *s = srv_new();

	with_msix(s);
	put16(s->cfg + PCI_VENDOR_ID, vendor);
	put16(s->cfg + PCI_DEVICE_ID, 0x10ca);
	s->cfg[PCI_CLASS_DEVICE + 1] = 0x02;
	memcpy(s->bar1, "back", 4);
	srv_listen(s, sock_path);
	return s;
}

static void test_reattach_redoes_setup(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server();
	uint8_t buf[4] = { 0 };

	assert_int_equal(vp->nr_vectors, 4);
	/* the client notices (a guest access, or the main loop's hang-up watch) */
	vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
	assert_true(vfio_device_dead(vp->vdev));
	assert_false(vp_alive(vp));

	srv = restart_server(0x8086);
	assert_int_equal(vfio_pci_reattach(dev), 0);
	assert_true(vp_alive(vp));
	/* everything a VMM sets up, done again on the new server */
	assert_int_equal(srv->client_major, VFIO_USER_MAJOR);	/* VERSION */
	assert_int_equal(srv->nr_dmas, 1);			/* all guest RAM */
	assert_int_equal(srv->dmas[0].size, ram_size);
	assert_true(srv->dma_fd_is_memfd);
	assert_true(srv->nr_irq >= 1);				/* MSI-X eventfds */
	assert_int_equal(srv->irq[srv->nr_irq - 1].nfds, vp->nr_vectors);
	assert_true(srv->irq[srv->nr_irq - 1].all_eventfds);
	assert_int_equal(srv->resets, 1);			/* a function-level reset */
	/* and guest accesses reach the new server */
	assert_int_equal(vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4), 0);
	assert_memory_equal(buf, "back", 4);
	free_server(dead);
}

static void test_reattach_refuses_another_device(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server(), *other;
	uint8_t buf[4];

	vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
	other = restart_server(0x1af4);		/* some other vendor's device */
	assert_int_equal(vfio_pci_reattach(dev), -ENODEV);
	assert_false(vp_alive(vp));		/* still removed */
	pthread_join(other->thr, NULL);		/* we hung up on it */
	free_server(other);
	srv = restart_server(0x8086);		/* the right one comes back */
	assert_int_equal(vfio_pci_reattach(dev), 0);
	assert_true(vp_alive(vp));
	free_server(dead);
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		pr_debug("connect: %s", strerror(errno));
	return fd;
}

/* Nobody calls anything: the hang-up is seen, and the new server found, by the loop. */
static void test_reattach_automatic(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server();
	uint64_t t0 = now_ns();

	while (vp_alive(vp) && now_ns() - t0 < 2000000000ull)
		loop_run_once(vm.loop, 50);
	assert_false(vp_alive(vp));
	unlink(sock_path);		/* the dead server's file goes, a new one comes */
	loop_run_once(vm.loop, VFIO_REATTACH_MS + 100);	/* no server yet: nothing */
	assert_false(vp_alive(vp));
	srv = restart_server(0x8086);
	t0 = now_ns();
	while (!vp_alive(vp) && now_ns() - t0 < 3000000000ull)
		loop_run_once(vm.loop, 100);
	if (!vp_alive(vp))
		close(connect_to(sock_path));	/* let the waiting server thread end */
	assert_true(vp_alive(vp));
	assert_int_equal(srv->resets, 1);
	free_server(dead);
}

/*
 * A server stopped for longer than --vfio-timeout (SIGSTOP) is declared lost;
 * when it runs again it answers on the same connection and hangs up, and the
 * device is re-attached as after a restart -- with no new socket file.
 */
static void with_msix_loop_stall(struct fake_srv *s)
{
	with_msix_loop(s);
	memcpy(s->bar1, "live", 4);
	s->serve = 2;				/* the same listening socket, again */
	vm.cfg.vfio_timeout_ms = 300;
}

/* realize arms the default stall for the guest's accesses: 20 ms, as hdvm runs */
static int setup_msix_loop_stall(void **st)
{
	setenv("HDVM_VFIO_STALL_MS", "20", 1);
	attach(with_msix_loop_stall);
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);	/* the re-attached device's */
	return 0;
}

static void test_reattach_after_stall(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct stat before, after;
	uint64_t t0;
	uint8_t buf[4];
	int ret;

	assert_int_equal(stat(sock_path, &before), 0);

	srv->sabotage_cmd = VFIO_USER_REGION_READ;
	srv->sabotage = S_DELAY;		/* stopped for 1.2 s */
	srv->delay_ms = 1200;
	t0 = now_ns();
	do {					/* the guest keeps looking */
		ret = vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
		loop_run_once(vm.loop, 20);
	} while (ret == -EAGAIN && now_ns() - t0 < 1000000000ull);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_false(vp_alive(vp));		/* lost after the timeout */

	t0 = now_ns();
	while (!vp_alive(vp) && now_ns() - t0 < 3000000000ull)
		loop_run_once(vm.loop, 100);
	if (!vp_alive(vp))
		close(connect_to(sock_path));	/* let the waiting server thread end */
	assert_true(vp_alive(vp));
	assert_int_equal(stat(sock_path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);	/* no new socket file */
	assert_int_equal(srv->resets, 1);		/* a function reset */
	assert_int_equal(srv->nr_dmas, 2);		/* setup redone */
	assert_true(srv->nr_irq >= 2);
	assert_int_equal(vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4), 0);
	assert_memory_equal(buf, "live", 4);
}

/* ---- pre-copy, as vm_migrate_send drives it ---- */

/* The device's precopy sections (devices_save_iterate) hold exactly these bytes. */
static void assert_precopy_section(struct state_buf *sb, const uint8_t *want, size_t n)
{
	struct state_buf rd;

	state_init_reader(&rd, sb->data, sb->len);
	assert_int_equal(state_get_u32(&rd), device_id_tag("vfio0"));
	assert_int_equal(state_get_u32(&rd), n);
	assert_int_equal(sb->len, 8 + n);
	assert_memory_equal(sb->data + 8, want, n);
}

/*
 * Source: RUNNING -> PRE_COPY at setup, PRECOPY_INFO's estimate as pending
 * bytes, the first PRE_BYTES read while the guest runs; the switchover goes
 * PRE_COPY -> PRE_COPY_P2P -> STOP_COPY (no STOP in between: the session
 * goes on) and the final state is only the rest.  Destination: the pre-copy
 * part opens RESUMING, the rest completes the same session, the device gets
 * the whole stream once, in order.
 */
static void test_precopy_alongside_ram(void **st)
{
	static const uint32_t src_seq[] = { PRE, PRE_P2P, SCOPY, STOP, P2P, R };
	static const uint32_t dst_seq[] = { P2P, STOP, RESUME, STOP, P2P, R };
	struct state_buf pre, pre2, fin, rd;
	uint64_t pending = 0, bytes = 0;
	char why[256] = "";
	unsigned seq0;
	uint8_t *rest;
	uint64_t blob_len;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, PRE);
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, PRE_BYTES);		/* PRECOPY_INFO's initial_bytes */
	assert_true(srv->precopy_infos >= 1);

	state_init_writer(&pre);
	assert_int_equal(devices_save_iterate(&vm, &pre, &bytes), 0);
	assert_int_equal(bytes, 8 + PRE_BYTES);
	assert_precopy_section(&pre, srv->mig_out, PRE_BYTES);
	assert_int_equal(srv->mig_state, PRE);		/* the guest's device still runs */
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, 0);
	state_init_writer(&pre2);				/* nothing more now: no section */
	assert_int_equal(devices_save_iterate(&vm, &pre2, &bytes), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(pre2.len, 0);
	state_free(&pre2);

	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, SCOPY);
	state_init_writer(&fin);
	assert_int_equal(devices_save(&vm, &fin), 0);
	assert_int_equal(srv->mig_state, STOP);
	/* the final state is what pre-copy did not send, and nothing of what it did */
	rest = memmem(fin.data, fin.len, srv->mig_out + PRE_BYTES, MIG_BLOB - PRE_BYTES);
	assert_non_null(rest);
	memcpy(&blob_len, rest - 8, 8);			/* vp_save_final's length prefix */
	assert_int_equal(blob_len, MIG_BLOB - PRE_BYTES);
	devices_save_cleanup(&vm);			/* success: nothing to undo */
	assert_int_equal(vm_resume(&vm, why, sizeof(why)), 0);
	expect_seq(src_seq, sizeof(src_seq) / sizeof(src_seq[0]));

	/* the same device as a destination */
	seq0 = srv->nr_mig_seq;
	srv->nr_mig_seq = 0;
	state_init_reader(&rd, pre.data, pre.len);
	assert_int_equal(devices_load_iterate(&vm, &rd, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, RESUME);
	assert_int_equal(srv->mig_in_len, PRE_BYTES);	/* written while the source runs */
	state_init_reader(&rd, fin.data, fin.len);
	if (devices_load(&vm, &rd, why, sizeof(why)))
		fail_msg("load: %s", why);
	assert_int_equal(srv->mig_in_len, MIG_BLOB);
	assert_memory_equal(srv->mig_in, srv->mig_out, MIG_BLOB);
	assert_int_equal(srv->mig_state, R);
	expect_seq(dst_seq, sizeof(dst_seq) / sizeof(dst_seq[0]));
	assert_true(seq0 > 0);
	state_free(&pre);
	state_free(&fin);
}

/* Cancelled (or failed) while in PRE_COPY: the session ends, the device runs on. */
static void test_precopy_cancel_leaves_device_running(void **st)
{
	static const uint32_t want[] = { PRE, R };
	struct state_buf sb;
	uint64_t bytes;
	char why[256] = "";

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	devices_save_cleanup(&vm);
	assert_int_equal(srv->mig_state, R);
	expect_seq(want, 2);
	state_free(&sb);
	/* refused PRE_COPY: migration says which device and why, nothing left behind */
	srv->mig_refuse = PRE;
	srv->mig_refuse_errno = EBUSY;
	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci): starting its pre-copy"));
	assert_non_null(strstr(why, "RUNNING -> PRE_COPY"));
	assert_int_equal(srv->mig_state, R);
}

/* Destination: the stream broke after pre-copy data: RESUMING is left, reset if it must. */
static void test_precopy_destination_abort(void **st)
{
	struct state_buf sb, rd;
	char why[256] = "";
	uint64_t bytes;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	devices_save_cleanup(&vm);
	/* the device refuses a half stream on RESUMING -> STOP, as hdnic does */
	srv->mig_refuse = STOP;
	srv->mig_refuse_from = RESUME;
	srv->mig_refuse_to_error = true;
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load_iterate(&vm, &rd, why, sizeof(why)), 0);
	assert_int_equal(srv->mig_state, RESUME);
	devices_load_abort(&vm);
	assert_int_equal(srv->resets, 1);		/* out of ERROR */
	assert_int_equal(srv->mig_state, R);
	state_free(&sb);
}

/* PRE_COPY without P2P: PRE_COPY -> STOP_COPY direct, as the kernel's table says. */
static void test_precopy_without_p2p(void **st)
{
	static const uint32_t want[] = { PRE, SCOPY, STOP };
	struct state_buf sb;
	char why[256] = "";
	uint64_t bytes;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(devices_save(&vm, &sb), 0);
	expect_seq(want, 3);
	state_free(&sb);
}

/* A device without PRE_COPY: setup and iterate leave it alone; all goes in STOP_COPY. */
static void test_no_precopy_goes_straight_to_stop_copy(void **st)
{
	static const uint32_t want[] = { P2P, STOP, SCOPY, STOP };
	struct state_buf sb;
	char why[256] = "";
	uint64_t bytes = 1, pending = 1;

	assert_int_equal(devices_save_setup(&vm, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save_iterate(&vm, &sb, &bytes), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(devices_pending_bytes(&vm, &pending), 0);
	assert_int_equal(pending, 0);
	assert_int_equal(srv->nr_mig_seq, 0);
	assert_int_equal(vm_pause(&vm, why, sizeof(why)), 0);
	assert_int_equal(devices_save(&vm, &sb), 0);
	assert_non_null(memmem(sb.data, sb.len, srv->mig_out, MIG_BLOB));
	expect_seq(want, 4);
	state_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pause_stops_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_commit_reaches_the_device, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused_stop_keeps_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_into_error_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_migration_support, setup_no_migration,
						teardown),
		cmocka_unit_test_setup_teardown(test_pause_without_p2p, setup_no_p2p, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_device_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precopy_alongside_ram, setup_precopy, teardown),
		cmocka_unit_test_setup_teardown(test_precopy_cancel_leaves_device_running,
						setup_precopy, teardown),
		cmocka_unit_test_setup_teardown(test_precopy_destination_abort, setup_precopy,
						teardown),
		cmocka_unit_test_setup_teardown(test_precopy_without_p2p, setup_precopy_no_p2p,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_precopy_goes_straight_to_stop_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dirty_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_without_migration_refused,
						setup_no_migration, teardown),
		cmocka_unit_test_setup_teardown(test_dma_maps_every_ram_slot, setup_high_ram,
						teardown),
		cmocka_unit_test_setup_teardown(test_dirty_log_high_ram, setup_high_ram, teardown),
		cmocka_unit_test_setup_teardown(test_server_dma_reaches_guest_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_dma_while_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_devices_p2p_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reattach_redoes_setup, setup_msix, teardown),
		cmocka_unit_test_setup_teardown(test_reattach_refuses_another_device, setup_msix,
						teardown),
		cmocka_unit_test_setup_teardown(test_reattach_automatic, setup_msix_loop,
						teardown_loop),
		cmocka_unit_test_setup_teardown(test_reattach_after_stall, setup_msix_loop_stall,
						teardown_loop),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
