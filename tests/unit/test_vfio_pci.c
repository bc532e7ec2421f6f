// SPDX-License-Identifier: MIT
/*
 * The passthrough device's pause and resume, end to end without KVM
 * (vfio_pci_harness.h): paused and resumed through vm_pause()/vm_resume()
 * -- the control socket's path; its state saved and loaded, its DMA maps,
 * the server's DMA_READ/DMA_WRITE into guest RAM, the device's dirty log.
 * Pre-copy: test_vfio_pci_precopy.c; re-attach: test_vfio_pci_reattach.c.
 */
#include "tests/unit/vfio_pci_harness.h"

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
		cmocka_unit_test_setup_teardown(test_dirty_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_without_migration_refused,
						setup_no_migration, teardown),
		cmocka_unit_test_setup_teardown(test_dma_maps_every_ram_slot, setup_high_ram,
						teardown),
		cmocka_unit_test_setup_teardown(test_dirty_log_high_ram, setup_high_ram, teardown),
		cmocka_unit_test_setup_teardown(test_server_dma_reaches_guest_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_dma_while_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_devices_p2p_first, setup, teardown),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
