// SPDX-License-Identifier: MIT
/*
 * Kernel VFIO backend against the fake kernel of fake_vfio_kernel.h: every
 * test starts from a fresh kernel (reset_fake) and checks the order and
 * arguments of the calls hdvm made (K.log) and what it refused.
 */

#include "fake_vfio_kernel.h"

/* ---- tests ---- */

static void test_group_path(void **state)
{
	static const char *const open_seq[] = {
		"open /dev/vfio/vfio", "GET_API_VERSION", "CHECK_EXTENSION 3", "open /dev/vfio/7",
		"GROUP_GET_STATUS", "GROUP_SET_CONTAINER", "SET_IOMMU 3",
		"GROUP_GET_DEVICE_FD " BDF, "DEVICE_GET_INFO", "GET_REGION_INFO 0",
	};
	static const char *const close_seq[] = {
		"close device", "GROUP_UNSET_CONTAINER", "close group", "close container",
	};
	struct vfio_device *dev;
	static uint8_t ram[0x4000] __attribute__((aligned(4096)));
	struct vfio_dma_map m = {
		.iova = 0x200000, .size = 0x4000, .fd = 9, .fd_offset = 0, .vaddr = ram,
		.prot = VFIO_DMA_PROT_READ | VFIO_DMA_PROT_WRITE,
	};
	unsigned mark;

	assert_int_equal(vfio_kernel_open_sys(BDF, &fake_sys, &dev), 0);
	expect_log(0, open_seq, 10);
	assert_string_equal(dev->name, BDF);
	assert_int_equal(dev->info.num_regions, VFIO_PCI_NUM_REGIONS);

	assert_int_equal(dev->ops->dma_map(dev, &m), 0);
	assert_int_equal(K.nmaps, 1);
	assert_int_equal(K.maps[0].vaddr, (uintptr_t)ram);
	assert_int_equal(K.maps[0].iova, 0x200000);
	assert_int_equal(K.maps[0].size, 0x4000);
	assert_int_equal(K.maps[0].flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x200000, 0x4000), 0);
	assert_false(K.maps[0].live);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x200000, 0x4000), -ENOENT);
	/* bad arguments never reach the kernel */
	mark = K.nlog;
	m.vaddr = ram + 1;
	assert_int_equal(dev->ops->dma_map(dev, &m), -EINVAL);
	m.vaddr = NULL;
	assert_int_equal(dev->ops->dma_map(dev, &m), -EINVAL);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x200000, 0), -EINVAL);
	assert_int_equal(K.nlog, mark);

	mark = K.nlog;
	vfio_device_close(dev);
	expect_log(mark, close_seq, 4);
	assert_int_equal(open_fake_fds(), 0);
	assert_int_equal(K.violations, 0);
}

static void test_cdev_path(void **state)
{
	static const char *const open_seq[] = {
		"open " CDEV, "open /dev/iommu", "BIND_IOMMUFD", "IOAS_ALLOC",
		"ATTACH_IOMMUFD_PT 3", "DEVICE_GET_INFO",
	};
	static const char *const close_seq[] = {
		"DETACH_IOMMUFD_PT", "close device", "DESTROY 3", "close iommufd",
	};
	struct vfio_device *dev;
	static uint8_t ram[0x2000] __attribute__((aligned(4096)));
	struct vfio_dma_map m = {
		.iova = 0x100000, .size = 0x2000, .fd = -1, .vaddr = ram,
		.prot = VFIO_DMA_PROT_READ,
	};
	unsigned mark;

	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	expect_log(0, open_seq, 6);
	assert_true(K.attached);
	assert_int_equal(dev->ops->dma_map(dev, &m), 0);
	assert_int_equal(K.maps[0].vaddr, (uintptr_t)ram);
	assert_int_equal(K.maps[0].iova, 0x100000);
	assert_int_equal(K.maps[0].size, 0x2000);
	assert_int_equal(K.maps[0].flags, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x100000, 0x2000), 0);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x100000, 0x2000), -ENOENT);

	mark = K.nlog;
	vfio_device_close(dev);
	expect_log(mark, close_seq, 4);
	assert_int_equal(open_fake_fds(), 0);
	assert_int_equal(K.violations, 0);
}

static void test_regions_irqs_reset(void **state)
{
	struct vfio_device *dev;
	struct vfio_region r;
	struct vfio_irq irq;
	uint32_t v = 0x12345678, w = 0;
	int32_t efd[2];
	void *p;

	assert_int_equal(vfio_kernel_open_sys(BDF, &fake_sys, &dev), 0);
	/* region info: argsz two-step picks up the sparse capability */
	assert_int_equal(dev->ops->get_region_info(dev, 0, &r), 0);
	assert_int_equal(r.size, 0x4000);
	assert_int_equal(r.offset, REGION_OFF(0));
	assert_true(r.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(r.nr_sparse, 1);
	assert_int_equal(r.sparse[0].offset, 0x1000);
	assert_int_equal(r.sparse[0].size, 0x3000);
	assert_false(r.owns_fd);
	assert_int_equal(dev->ops->region_mmap(dev, &r, 0, 0x1000, PROT_READ, &p), -EACCES);
	assert_int_equal(dev->ops->region_mmap(dev, &r, 0x1000, 0x2000, PROT_READ, &p), 0);
	assert_int_equal(K.mmap_off, REGION_OFF(0) + 0x1000);
	munmap(p, 0x2000);
	vfio_region_release(&r);

	/* config space through pread/pwrite at the region offset */
	assert_int_equal(dev->ops->region_write(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0x40, &v, 4), 0);
	assert_int_equal(dev->ops->region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0x40, &w, 4), 0);
	assert_int_equal(w, v);
	assert_string_equal(K.log[K.nlog - 1], "pread 0x70000000040");
	assert_int_equal(dev->ops->region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 254, &w, 4),
			 -ERANGE);
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &w, 4), -EACCES);	/* absent BAR */

	assert_int_equal(dev->ops->get_irq_info(dev, VFIO_PCI_MSIX_IRQ_INDEX, &irq), 0);
	assert_int_equal(irq.count, 8);
	efd[0] = 41;
	efd[1] = -1;
	assert_int_equal(dev->ops->set_irqs(dev, VFIO_PCI_MSIX_IRQ_INDEX,
					    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					    2, 2, efd), 0);
	assert_int_equal(K.irq_index, VFIO_PCI_MSIX_IRQ_INDEX);
	assert_int_equal(K.irq_start, 2);
	assert_int_equal(K.irq_count, 2);
	assert_int_equal(K.irq_fds[0], 41);
	assert_int_equal(K.irq_fds[1], -1);
	assert_int_equal(dev->ops->reset(dev), 0);
	assert_int_equal(K.resets, 1);
	vfio_device_close(dev);
	assert_int_equal(K.violations, 0);
}

static void test_migration_session(void **state)
{
	struct vfio_device *dev;
	struct vfio_device_feature_mig_state st = { .device_state = VFIO_DEVICE_STATE_STOP_COPY };
	uint64_t mflags = 0;
	char buf[32] = { 0 };
	int pipe_fd;

	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET |
					   VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
					   &mflags, sizeof(mflags), NULL), 0);
	assert_int_equal(mflags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), -EBADF);

	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st),
					   &st, sizeof(st), NULL), 0);
	assert_int_equal(K.mig_state, VFIO_DEVICE_STATE_STOP_COPY);
	assert_int_equal(st.data_fd, -1);		/* the backend keeps the fd */
	pipe_fd = K.mig_pipe[0];
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "device-state");
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), 0);	/* EOF */

	/* leaving the saving group ends the session and closes the fd */
	st.device_state = VFIO_DEVICE_STATE_STOP;
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st),
					   NULL, 0, NULL), 0);
	assert_int_equal(fcntl(pipe_fd, F_GETFD), -1);
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), -EBADF);
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET | 6, NULL, 0, NULL, 0,
					   NULL), -ENOTTY);
	vfio_device_close(dev);
	assert_int_equal(K.violations, 0);
}

/*
 * PRE_COPY over kernel VFIO, the way vfio_pci_mig drives it: the data_fd of
 * RUNNING -> PRE_COPY, VFIO_MIG_GET_PRECOPY_INFO issued on it, -ENOMSG when
 * nothing is ready, the same fd through PRE_COPY_P2P into STOP_COPY where
 * the rest follows, closed when the session ends.
 */
static void test_precopy_session(void **state)
{
	static const uint32_t want[] = {
		VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P,
		VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_STOP,
	};
	struct vfio_device *dev;
	uint64_t flags, initial = 1, dirty = 1;
	char buf[32] = { 0 }, why[128];
	int pipe_fd;

	K.mig_flags |= VFIO_MIGRATION_PRE_COPY;
	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	assert_int_equal(vfio_mig_get_flags(dev, &flags), 0);
	assert_int_equal(dev->ops->mig_precopy_info(dev, &initial, &dirty), -EINVAL);
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_RUNNING,
				       VFIO_DEVICE_STATE_PRE_COPY, why, sizeof(why)), 0);
	pipe_fd = K.mig_pipe[0];
	assert_int_equal(dev->ops->mig_precopy_info(dev, &initial, &dirty), 0);
	assert_int_equal(initial, 9);
	assert_int_equal(dirty, 0);
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "pre-state", 9);
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), -ENOMSG);
	assert_int_equal(dev->ops->mig_precopy_info(dev, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_PRE_COPY,
				       VFIO_DEVICE_STATE_PRE_COPY_P2P, why, sizeof(why)), 0);
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_PRE_COPY_P2P,
				       VFIO_DEVICE_STATE_STOP_COPY, why, sizeof(why)), 0);
	assert_int_equal(fcntl(pipe_fd, F_GETFD) >= 0, 1);	/* the same session */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "device-state");
	assert_int_equal(dev->ops->mig_data_read(dev, buf, sizeof(buf)), 0);	/* EOF */
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_STOP_COPY,
				       VFIO_DEVICE_STATE_STOP, why, sizeof(why)), 0);
	assert_int_equal(fcntl(pipe_fd, F_GETFD), -1);		/* session over, fd closed */
	assert_int_equal(K.nr_mig_seq, 4);
	assert_memory_equal(K.mig_seq, want, sizeof(want));
	vfio_device_close(dev);
	assert_int_equal(K.violations, 0);
}

/* Pause and resume of a kernel VFIO device: the FSM over VFIO_DEVICE_FEATURE. */
static void test_mig_fsm_stop_and_run(void **state)
{
	static const uint32_t want[] = {
		VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_STOP,		/* pause */
		VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_RUNNING,	/* resume */
	};
	struct vfio_device *dev;
	uint64_t flags;
	uint32_t st;
	char why[128];

	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	assert_int_equal(vfio_mig_get_flags(dev, &flags), 0);
	assert_int_equal(flags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_RUNNING,
				       VFIO_DEVICE_STATE_STOP, why, sizeof(why)), 0);
	assert_int_equal(vfio_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFIO_DEVICE_STATE_STOP);
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_STOP,
				       VFIO_DEVICE_STATE_RUNNING, why, sizeof(why)), 0);
	assert_int_equal(K.nr_mig_seq, 4);
	assert_memory_equal(K.mig_seq, want, sizeof(want));
	assert_int_equal(K.mig_state, VFIO_DEVICE_STATE_RUNNING);

	/* the device refuses STOP: walked back to RUNNING, the arc named */
	K.nr_mig_seq = 0;
	K.mig_refuse = VFIO_DEVICE_STATE_STOP;
	assert_int_equal(vfio_mig_goto(dev, flags, VFIO_DEVICE_STATE_RUNNING,
				       VFIO_DEVICE_STATE_STOP, why, sizeof(why)), -EBUSY);
	assert_string_equal(why, "the device refused RUNNING_P2P -> STOP: Device or resource busy");
	assert_int_equal(K.nr_mig_seq, 3);
	assert_int_equal(K.mig_seq[2], VFIO_DEVICE_STATE_RUNNING);
	assert_int_equal(K.mig_state, VFIO_DEVICE_STATE_RUNNING);
	assert_int_equal(K.resets, 0);
	vfio_device_close(dev);

	/* no FEATURE_MIGRATION: the FSM is not there at all */
	K.mig_flags = 0;
	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	assert_int_equal(vfio_mig_get_flags(dev, &flags), -ENOTSUP);
	vfio_device_close(dev);
	assert_int_equal(K.violations, 0);
}

/* DMA dirty logging: ranges and bitmap travel by pointer on the kernel backend. */
static void test_dirty_log_pointers(void **state)
{
	const struct vfio_dirty_range r[2] = { { 0, 1 << 20 }, { 1ull << 32, 2 << 20 } };
	struct vfio_device *dev;
	uint8_t bitmap[64];

	assert_int_equal(vfio_kernel_open_sys(CDEV, &fake_sys, &dev), 0);
	assert_int_equal(vfio_dirty_start(dev, 4096, r, 2), 0);
	assert_true(K.logging);
	assert_int_equal(K.log_page_size, 4096);
	assert_int_equal(K.nr_log_ranges, 2);
	assert_int_equal(K.log_ranges[1][0], 1ull << 32);
	assert_int_equal(K.log_ranges[1][1], 2 << 20);

	K.dirty_gpa = (1ull << 32) + 0x41000;		/* page 65 of the second range */
	memset(bitmap, 0xee, sizeof(bitmap));		/* cleared by the call, not the kernel */
	assert_int_equal(vfio_dirty_report(dev, 1ull << 32, 2 << 20, 4096, bitmap), 0);
	assert_int_equal(vfio_dirty_bitmap_bytes(2 << 20, 4096), 64);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(bitmap[i], i == 8 ? 0x02 : 0);
	assert_int_equal(vfio_dirty_report(dev, 1ull << 32, 4095, 4096, bitmap), -EINVAL);
	assert_int_equal(vfio_dirty_stop(dev), 0);
	assert_false(K.logging);
	assert_int_equal(vfio_dirty_report(dev, 0, 1 << 20, 4096, bitmap), -EINVAL);
	vfio_device_close(dev);
	assert_int_equal(K.violations, 0);
}

static void open_fails(const char *spec, int err)
{
	struct vfio_device *dev = NULL;

	assert_int_equal(vfio_kernel_open_sys(spec, &fake_sys, &dev), err);
	assert_null(dev);
	assert_int_equal(open_fake_fds(), 0);	/* everything opened was closed */
	assert_int_equal(K.violations, 0);
}

static void test_wrong_api_version(void **state)
{
	K.api_version = 1;
	open_fails(BDF, -EPROTONOSUPPORT);
	assert_string_equal(K.log[K.nlog - 1], "close container");
}

static void test_no_type1v2(void **state)
{
	K.type1v2 = false;
	open_fails(BDF, -EOPNOTSUPP);
}

static void test_group_not_viable(void **state)
{
	K.viable = false;
	open_fails(BDF, -EBUSY);
	for (unsigned i = 0; i < K.nlog; i++)
		assert_string_not_equal(K.log[i], "GROUP_SET_CONTAINER");
}

static void test_missing_iommu_group(void **state)
{
	K.group_link = NULL;
	open_fails(BDF, -ENOENT);
	assert_int_equal(K.nlog, 0);	/* nothing opened */
}

static void test_missing_cdev(void **state)
{
	open_fails("/dev/vfio/devices/vfio9", -ENOENT);
}

static void test_bad_spec(void **state)
{
	open_fails("eth0", -EINVAL);
	open_fails("01:00.1", -EINVAL);
	open_fails("0000:01:00.8", -EINVAL);
	open_fails("0000:01:0g.1", -EINVAL);
	assert_true(vfio_spec_is_kernel(BDF));
	assert_true(vfio_spec_is_kernel(CDEV));
	assert_false(vfio_spec_is_kernel("/run/hdnic/vf0.sock"));
	assert_int_equal(K.nlog, 0);
}

/* The fake must be able to fail: wrong order is refused. */
static void test_fake_enforces_contract(void **state)
{
	int c = f_open("/dev/vfio/vfio", O_RDWR), cd = f_open(CDEV, O_RDWR);
	struct vfio_device_info info = { .argsz = sizeof(info) };

	assert_int_equal(f_ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), -EINVAL);
	assert_int_equal(f_ioctl(cd, VFIO_DEVICE_GET_INFO, (unsigned long)&info), -EINVAL);
	assert_int_equal(K.violations, 2);
	f_close(c);
	f_close(cd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_group_path, reset_fake),
		cmocka_unit_test_setup(test_cdev_path, reset_fake),
		cmocka_unit_test_setup(test_regions_irqs_reset, reset_fake),
		cmocka_unit_test_setup(test_migration_session, reset_fake),
		cmocka_unit_test_setup(test_precopy_session, reset_fake),
		cmocka_unit_test_setup(test_mig_fsm_stop_and_run, reset_fake),
		cmocka_unit_test_setup(test_dirty_log_pointers, reset_fake),
		cmocka_unit_test_setup(test_wrong_api_version, reset_fake),
		cmocka_unit_test_setup(test_no_type1v2, reset_fake),
		cmocka_unit_test_setup(test_group_not_viable, reset_fake),
		cmocka_unit_test_setup(test_missing_iommu_group, reset_fake),
		cmocka_unit_test_setup(test_missing_cdev, reset_fake),
		cmocka_unit_test_setup(test_bad_spec, reset_fake),
		cmocka_unit_test_setup(test_fake_enforces_contract, reset_fake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
