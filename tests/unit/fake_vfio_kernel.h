/* SPDX-License-Identifier: MIT */
/*
 * A fake Linux VFIO kernel behind struct vfio_sys_ops, for the kernel VFIO
 * backend's unit tests (this machine has no /dev/vfio).  It enforces the
 * ioctl contract a real kernel does (argsz/size, flags, which fd an ioctl
 * goes to, call order: group into container before SET_IOMMU, IOMMU before
 * GET_DEVICE_FD, BIND before any cdev ioctl, ...) and records every call in
 * K.log, so tests check order and arguments.  reset_fake() is the cmocka
 * setup that gives every test a fresh kernel.
 */
#ifndef HDVM_TEST_FAKE_VFIO_KERNEL_H
#define HDVM_TEST_FAKE_VFIO_KERNEL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_sys.h"

#define FAKE_FD_BASE	1000
#define NR_FAKE_FDS	16
#define BDF		"0000:01:00.1"
#define CDEV		"/dev/vfio/devices/vfio3"
#define IOAS_ID		3
#define DEVID		5
#define REGION_OFF(i)	((uint64_t)(i) << 40)

enum kind { K_FREE, K_CONTAINER, K_GROUP, K_DEVICE, K_IOMMUFD, K_CDEV };

struct map_rec {
	uint64_t vaddr, iova, size;
	uint32_t flags;
	bool live;
};

static struct fake_kernel {
	/* knobs */
	int api_version;
	bool type1v2, viable;
	const char *group_link;		/* NULL: no iommu_group in sysfs */
	/* objects */
	enum kind fds[NR_FAKE_FDS];
	bool group_in_container, iommu_set, bound, attached, ioas;
	/* records */
	char log[96][40];
	unsigned nlog;
	unsigned violations;
	struct map_rec maps[8];
	unsigned nmaps;
	uint32_t irq_flags, irq_index, irq_start, irq_count;
	int32_t irq_fds[8];
	unsigned resets;
	uint8_t cfg[256];
	uint64_t mmap_off;
	int mig_pipe[2];
	uint32_t mig_state;
	uint64_t mig_flags;		/* FEATURE_MIGRATION; 0 = no such feature */
	uint32_t mig_refuse;		/* SET of this state fails with -EBUSY */
	uint32_t mig_seq[16];		/* every MIG_DEVICE_STATE SET, refused ones too */
	unsigned nr_mig_seq;
	bool logging;			/* DMA dirty log */
	uint64_t log_page_size, log_ranges[4][2];
	unsigned nr_log_ranges;
	uint64_t dirty_gpa;		/* one page the device wrote */
} K;

static void klog(const char *fmt, ...)
{
	va_list ap;

	if (K.nlog >= 96)
		return;
	va_start(ap, fmt);
	vsnprintf(K.log[K.nlog++], sizeof(K.log[0]), fmt, ap);
	va_end(ap);
}

static int violation(const char *what)
{
	fprintf(stderr, "fake kernel: contract violation: %s\n", what);
	K.violations++;
	return -EINVAL;
}

static enum kind kind_of(int fd)
{
	if (fd < FAKE_FD_BASE || fd >= FAKE_FD_BASE + NR_FAKE_FDS)
		return K_FREE;
	return K.fds[fd - FAKE_FD_BASE];
}

static int new_fd(enum kind k)
{
	for (int i = 0; i < NR_FAKE_FDS; i++)
		if (K.fds[i] == K_FREE) {
			K.fds[i] = k;
			return FAKE_FD_BASE + i;
		}
	return -EMFILE;
}

static unsigned open_fake_fds(void)
{
	unsigned n = 0;

	for (int i = 0; i < NR_FAKE_FDS; i++)
		n += K.fds[i] != K_FREE;
	return n;
}

/* ---- the fake syscalls ---- */

static int f_open(const char *path, int flags)
{
	if ((flags & O_ACCMODE) != O_RDWR)
		return violation("VFIO nodes must be opened O_RDWR");
	klog("open %s", path);
	if (!strcmp(path, "/dev/vfio/vfio"))
		return new_fd(K_CONTAINER);
	if (!strcmp(path, "/dev/vfio/7"))
		return new_fd(K_GROUP);
	if (!strcmp(path, "/dev/iommu"))
		return new_fd(K_IOMMUFD);
	if (!strcmp(path, CDEV))
		return new_fd(K_CDEV);
	return -ENOENT;
}

static int f_close(int fd)
{
	enum kind k = kind_of(fd);

	if (k == K_FREE)
		return close(fd) ? -errno : 0;	/* a real fd (the migration pipe) */
	klog("close %s", k == K_CONTAINER ? "container" : k == K_GROUP ? "group" :
	     k == K_IOMMUFD ? "iommufd" : "device");
	K.fds[fd - FAKE_FD_BASE] = K_FREE;
	return 0;
}

static ssize_t f_readlink(const char *path, char *buf, size_t len)
{
	if (strcmp(path, "/sys/bus/pci/devices/" BDF "/iommu_group") || !K.group_link)
		return -ENOENT;
	strncpy(buf, K.group_link, len);
	return strlen(K.group_link);
}

static int container_ioctl(unsigned long req, unsigned long arg)
{
	if (req == VFIO_GET_API_VERSION) {
		klog("GET_API_VERSION");
		return K.api_version;
	}
	if (req == VFIO_CHECK_EXTENSION) {
		klog("CHECK_EXTENSION %lu", arg);
		return arg == VFIO_TYPE1v2_IOMMU && K.type1v2;
	}
	if (req == VFIO_SET_IOMMU) {
		klog("SET_IOMMU %lu", arg);
		if (!K.group_in_container)
			return violation("SET_IOMMU before a group is in the container");
		if (arg != VFIO_TYPE1v2_IOMMU)
			return violation("SET_IOMMU with an unexpected type");
		K.iommu_set = true;
		return 0;
	}
	if (req == VFIO_IOMMU_MAP_DMA) {
		struct vfio_iommu_type1_dma_map *m = (void *)arg;

		klog("IOMMU_MAP_DMA");
		if (!K.iommu_set)
			return violation("MAP_DMA before SET_IOMMU");
		if (m->argsz != sizeof(*m) || (m->flags & ~3u) || K.nmaps >= 8)
			return violation("MAP_DMA argsz/flags");
		K.maps[K.nmaps++] = (struct map_rec){ m->vaddr, m->iova, m->size, m->flags, true };
		return 0;
	}
	if (req == VFIO_IOMMU_UNMAP_DMA) {
		struct vfio_iommu_type1_dma_unmap *u = (void *)arg;
		uint64_t size = u->size;

		klog("IOMMU_UNMAP_DMA");
		if (u->argsz < sizeof(*u) || u->flags)
			return violation("UNMAP_DMA argsz/flags");
		u->size = 0;
		for (unsigned i = 0; i < K.nmaps; i++)
			if (K.maps[i].live && K.maps[i].iova == u->iova && K.maps[i].size == size) {
				K.maps[i].live = false;
				u->size = size;
			}
		return 0;
	}
	return violation("unknown container ioctl");
}

static int group_ioctl(unsigned long req, unsigned long arg)
{
	if (req == VFIO_GROUP_GET_STATUS) {
		struct vfio_group_status *st = (void *)arg;

		klog("GROUP_GET_STATUS");
		if (st->argsz < sizeof(*st))
			return violation("GROUP_GET_STATUS argsz");
		st->flags = (K.viable ? VFIO_GROUP_FLAGS_VIABLE : 0) |
			    (K.group_in_container ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
		return 0;
	}
	if (req == VFIO_GROUP_SET_CONTAINER) {
		klog("GROUP_SET_CONTAINER");
		if (kind_of(*(int *)arg) != K_CONTAINER)
			return violation("SET_CONTAINER with something that is not a container");
		K.group_in_container = true;
		return 0;
	}
	if (req == VFIO_GROUP_UNSET_CONTAINER) {
		klog("GROUP_UNSET_CONTAINER");
		K.group_in_container = K.iommu_set = false;
		return 0;
	}
	if (req == VFIO_GROUP_GET_DEVICE_FD) {
		klog("GROUP_GET_DEVICE_FD %s", (const char *)arg);
		if (!K.iommu_set || !K.viable)
			return violation("GET_DEVICE_FD without an IOMMU or on a non-viable group");
		if (strcmp((const char *)arg, BDF))
			return -ENODEV;
		return new_fd(K_DEVICE);
	}
	return violation("unknown group ioctl");
}

static int iommufd_ioctl(unsigned long req, unsigned long arg)
{
	if (req == IOMMU_IOAS_ALLOC) {
		struct iommu_ioas_alloc *a = (void *)arg;

		klog("IOAS_ALLOC");
		if (a->size != sizeof(*a) || a->flags)
			return violation("IOAS_ALLOC size/flags");
		a->out_ioas_id = IOAS_ID;
		K.ioas = true;
		return 0;
	}
	if (req == IOMMU_IOAS_MAP) {
		struct iommu_ioas_map *m = (void *)arg;

		klog("IOAS_MAP");
		if (m->size != sizeof(*m) || m->ioas_id != IOAS_ID || m->__reserved ||
		    !(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA) || K.nmaps >= 8)
			return violation("IOAS_MAP size/ioas/flags");
		K.maps[K.nmaps++] = (struct map_rec){ m->user_va, m->iova, m->length, m->flags, true };
		return 0;
	}
	if (req == IOMMU_IOAS_UNMAP) {
		struct iommu_ioas_unmap *u = (void *)arg;

		klog("IOAS_UNMAP");
		if (u->size != sizeof(*u) || u->ioas_id != IOAS_ID)
			return violation("IOAS_UNMAP size/ioas");
		for (unsigned i = 0; i < K.nmaps; i++)
			if (K.maps[i].live && K.maps[i].iova == u->iova && K.maps[i].size == u->length) {
				K.maps[i].live = false;
				return 0;
			}
		return -ENOENT;
	}
	if (req == IOMMU_DESTROY) {
		struct iommu_destroy *d = (void *)arg;

		klog("DESTROY %u", d->id);
		if (d->size != sizeof(*d) || d->id != IOAS_ID)
			return violation("DESTROY size/id");
		K.ioas = false;
		return 0;
	}
	return violation("unknown iommufd ioctl");
}

static int region_info(struct vfio_region_info *ri)
{
	struct vfio_region_info_cap_sparse_mmap sm = {
		.header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1 },
		.nr_areas = 1,
	};
	struct vfio_region_sparse_mmap_area a = { .offset = 0x1000, .size = 0x3000 };
	uint32_t need = sizeof(*ri) + sizeof(sm) + sizeof(a);
	uint32_t argsz = ri->argsz;

	if (argsz < sizeof(*ri) || ri->index >= VFIO_PCI_NUM_REGIONS)
		return violation("GET_REGION_INFO argsz/index");
	ri->offset = REGION_OFF(ri->index);
	ri->cap_offset = 0;
	ri->flags = 0;
	ri->size = 0;
	if (ri->index == 0) {
		ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			    VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
		ri->size = 0x4000;
		ri->argsz = need;
		if (argsz >= need) {
			ri->cap_offset = sizeof(*ri);
			memcpy((char *)ri + sizeof(*ri), &sm, sizeof(sm));
			memcpy((char *)ri + sizeof(*ri) + sizeof(sm), &a, sizeof(a));
		}
	} else if (ri->index == VFIO_PCI_CONFIG_REGION_INDEX) {
		ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		ri->size = sizeof(K.cfg);
	}
	return 0;
}

static int device_feature(struct vfio_device_feature *f)
{
	uint32_t idx = f->flags & VFIO_DEVICE_FEATURE_MASK;

	klog("DEVICE_FEATURE %u", idx);
	if (f->argsz < sizeof(*f))
		return violation("DEVICE_FEATURE argsz");
	if (idx == VFIO_DEVICE_FEATURE_MIGRATION && (f->flags & VFIO_DEVICE_FEATURE_GET)) {
		uint64_t fl = K.mig_flags;

		if (!fl)
			return -ENOTTY;	/* what vfio_ioctl_device_feature says for "none" */
		if (f->argsz < sizeof(*f) + sizeof(fl))
			return violation("MIGRATION GET argsz");
		memcpy(f->data, &fl, sizeof(fl));
		return 0;
	}
	if (idx == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && (f->flags & VFIO_DEVICE_FEATURE_SET)) {
		struct vfio_device_feature_mig_state st;

		if (f->argsz < sizeof(*f) + sizeof(st))
			return violation("MIG_DEVICE_STATE argsz");
		memcpy(&st, f->data, sizeof(st));
		if (K.nr_mig_seq < 16)
			K.mig_seq[K.nr_mig_seq++] = st.device_state;
		if (K.mig_refuse && st.device_state == K.mig_refuse)
			return -EBUSY;
		st.data_fd = -1;
		if (st.device_state == VFIO_DEVICE_STATE_PRE_COPY &&
		    K.mig_state == VFIO_DEVICE_STATE_RUNNING) {
			/* a session that gives "pre-state" now and more after STOP_COPY */
			assert_int_equal(pipe2(K.mig_pipe, O_CLOEXEC | O_NONBLOCK), 0);
			assert_int_equal(write(K.mig_pipe[1], "pre-state", 9), 9);
			st.data_fd = K.mig_pipe[0];
		} else if (st.device_state == VFIO_DEVICE_STATE_STOP_COPY &&
			   K.mig_state == VFIO_DEVICE_STATE_PRE_COPY_P2P) {
			/* the same fd goes on (no new one), the rest follows, then EOF */
			assert_int_equal(write(K.mig_pipe[1], "device-state", 12), 12);
			close(K.mig_pipe[1]);
			K.mig_state = st.device_state;
			memcpy(f->data, &st, sizeof(st));
			return 0;
		}
		K.mig_state = st.device_state;
		if (st.data_fd >= 0) {
			memcpy(f->data, &st, sizeof(st));
			return 0;
		}
		if (st.device_state == VFIO_DEVICE_STATE_STOP_COPY) {
			assert_int_equal(pipe2(K.mig_pipe, O_CLOEXEC), 0);
			assert_int_equal(write(K.mig_pipe[1], "device-state", 12), 12);
			close(K.mig_pipe[1]);
			st.data_fd = K.mig_pipe[0];
		}
		memcpy(f->data, &st, sizeof(st));
		return 0;
	}
	if (idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_START && (f->flags & VFIO_DEVICE_FEATURE_SET)) {
		struct vfio_device_feature_dma_logging_control ctl;
		const struct vfio_device_feature_dma_logging_range *r;

		if (f->argsz < sizeof(*f) + sizeof(ctl))
			return violation("DMA_LOGGING_START argsz");
		memcpy(&ctl, f->data, sizeof(ctl));
		if (K.logging || ctl.num_ranges > 4)
			return -EINVAL;
		r = (const void *)(uintptr_t)ctl.ranges;	/* a user pointer */
		for (unsigned i = 0; i < ctl.num_ranges; i++) {
			K.log_ranges[i][0] = r[i].iova;
			K.log_ranges[i][1] = r[i].length;
		}
		K.nr_log_ranges = ctl.num_ranges;
		K.log_page_size = ctl.page_size;
		K.logging = true;
		return 0;
	}
	if (idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP && (f->flags & VFIO_DEVICE_FEATURE_SET)) {
		K.logging = false;
		return 0;
	}
	if (idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT && (f->flags & VFIO_DEVICE_FEATURE_GET)) {
		struct vfio_device_feature_dma_logging_report rep;
		uint64_t *bits, pg;

		if (f->argsz < sizeof(*f) + sizeof(rep))
			return violation("DMA_LOGGING_REPORT argsz");
		memcpy(&rep, f->data, sizeof(rep));
		if (!K.logging)
			return -EINVAL;
		bits = (uint64_t *)(uintptr_t)rep.bitmap;	/* only sets bits, as the kernel */
		if (K.dirty_gpa >= rep.iova && K.dirty_gpa < rep.iova + rep.length) {
			pg = (K.dirty_gpa - rep.iova) / rep.page_size;
			bits[pg / 64] |= 1ull << (pg % 64);
			K.dirty_gpa = 0;
		}
		return 0;
	}
	if (idx == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE && (f->flags & VFIO_DEVICE_FEATURE_GET)) {
		struct vfio_device_feature_mig_state st = { .device_state = K.mig_state,
							    .data_fd = -1 };

		if (f->argsz < sizeof(*f) + sizeof(st))
			return violation("MIG_DEVICE_STATE GET argsz");
		memcpy(f->data, &st, sizeof(st));
		return 0;
	}
	return -ENOTTY;
}

static int device_ioctl(enum kind k, unsigned long req, unsigned long arg)
{
	if (k == K_CDEV && req == VFIO_DEVICE_BIND_IOMMUFD) {
		struct vfio_device_bind_iommufd *b = (void *)arg;

		klog("BIND_IOMMUFD");
		if (b->argsz < sizeof(*b) || b->flags || kind_of(b->iommufd) != K_IOMMUFD)
			return violation("BIND argsz/flags/iommufd");
		b->out_devid = DEVID;
		K.bound = true;
		return 0;
	}
	if (k == K_CDEV && !K.bound)
		return violation("cdev ioctl before VFIO_DEVICE_BIND_IOMMUFD");
	if (k == K_CDEV && req == VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
		struct vfio_device_attach_iommufd_pt *a = (void *)arg;

		klog("ATTACH_IOMMUFD_PT %u", a->pt_id);
		if (a->argsz < sizeof(*a) || a->flags || a->pt_id != IOAS_ID || !K.ioas)
			return violation("ATTACH argsz/flags/pt_id");
		K.attached = true;
		return 0;
	}
	if (k == K_CDEV && req == VFIO_DEVICE_DETACH_IOMMUFD_PT) {
		struct vfio_device_detach_iommufd_pt *d = (void *)arg;

		klog("DETACH_IOMMUFD_PT");
		if (d->argsz < sizeof(*d) || d->flags)
			return violation("DETACH argsz/flags");
		K.attached = false;
		return 0;
	}
	if (req == VFIO_DEVICE_GET_INFO) {
		struct vfio_device_info *i = (void *)arg;

		klog("DEVICE_GET_INFO");
		if (i->argsz < 16)
			return violation("DEVICE_GET_INFO argsz");
		i->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		i->num_regions = VFIO_PCI_NUM_REGIONS;
		i->num_irqs = VFIO_PCI_NUM_IRQS;
		return 0;
	}
	if (req == VFIO_DEVICE_GET_REGION_INFO) {
		klog("GET_REGION_INFO %u", ((struct vfio_region_info *)arg)->index);
		return region_info((void *)arg);
	}
	if (req == VFIO_DEVICE_GET_IRQ_INFO) {
		struct vfio_irq_info *i = (void *)arg;

		klog("GET_IRQ_INFO %u", i->index);
		if (i->argsz < sizeof(*i) || i->index >= VFIO_PCI_NUM_IRQS)
			return violation("GET_IRQ_INFO argsz/index");
		i->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		i->count = i->index == VFIO_PCI_MSIX_IRQ_INDEX ? 8 : 1;
		return 0;
	}
	if (req == VFIO_DEVICE_SET_IRQS) {
		struct vfio_irq_set *s = (void *)arg;
		size_t data = (s->flags & VFIO_IRQ_SET_DATA_EVENTFD) ? s->count * 4 :
			      (s->flags & VFIO_IRQ_SET_DATA_BOOL) ? s->count : 0;

		klog("SET_IRQS");
		if (s->argsz != sizeof(*s) + data || s->count > 8)
			return violation("SET_IRQS argsz");
		K.irq_flags = s->flags;
		K.irq_index = s->index;
		K.irq_start = s->start;
		K.irq_count = s->count;
		if (s->flags & VFIO_IRQ_SET_DATA_EVENTFD)
			memcpy(K.irq_fds, s->data, data);
		return 0;
	}
	if (req == VFIO_DEVICE_RESET) {
		klog("DEVICE_RESET");
		K.resets++;
		K.mig_state = VFIO_DEVICE_STATE_RUNNING;
		return 0;
	}
	if (req == VFIO_DEVICE_FEATURE)
		return device_feature((void *)arg);
	return violation("unknown device ioctl");
}

/* VFIO_MIG_GET_PRECOPY_INFO on the PRE_COPY data_fd: what the pipe still holds. */
static int mig_fd_ioctl(int fd, unsigned long req, unsigned long arg)
{
	struct vfio_precopy_info *info = (void *)arg;
	int avail = 0;

	if (req != VFIO_MIG_GET_PRECOPY_INFO || info->argsz < sizeof(*info))
		return violation("ioctl on the migration fd");
	if (K.mig_state != VFIO_DEVICE_STATE_PRE_COPY &&
	    K.mig_state != VFIO_DEVICE_STATE_PRE_COPY_P2P)
		return -EINVAL;
	assert_int_equal(ioctl(fd, FIONREAD, &avail), 0);
	info->initial_bytes = (uint64_t)avail;
	info->dirty_bytes = 0;
	return 0;
}

static int f_ioctl(int fd, unsigned long req, unsigned long arg)
{
	if (K.mig_pipe[0] > 0 && fd == K.mig_pipe[0] && kind_of(fd) == K_FREE)
		return mig_fd_ioctl(fd, req, arg);
	switch (kind_of(fd)) {
	case K_CONTAINER: return container_ioctl(req, arg);
	case K_GROUP: return group_ioctl(req, arg);
	case K_IOMMUFD: return iommufd_ioctl(req, arg);
	case K_DEVICE: return device_ioctl(K_DEVICE, req, arg);
	case K_CDEV: return device_ioctl(K_CDEV, req, arg);
	default: return violation("ioctl on an fd the fake kernel never gave out");
	}
}

static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
	uint64_t o = off - REGION_OFF(VFIO_PCI_CONFIG_REGION_INDEX);

	klog("pread %#llx", (unsigned long long)off);
	if (kind_of(fd) != K_DEVICE && kind_of(fd) != K_CDEV)
		return violation("pread on a non-device fd");
	if ((uint64_t)off < REGION_OFF(VFIO_PCI_CONFIG_REGION_INDEX) || o + len > sizeof(K.cfg))
		return -EINVAL;
	memcpy(buf, K.cfg + o, len);
	return len;
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	uint64_t o = off - REGION_OFF(VFIO_PCI_CONFIG_REGION_INDEX);

	klog("pwrite %#llx", (unsigned long long)off);
	if (kind_of(fd) != K_DEVICE && kind_of(fd) != K_CDEV)
		return violation("pwrite on a non-device fd");
	if ((uint64_t)off < REGION_OFF(VFIO_PCI_CONFIG_REGION_INDEX) || o + len > sizeof(K.cfg))
		return -EINVAL;
	memcpy(K.cfg + o, buf, len);
	return len;
}

static ssize_t f_read(int fd, void *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	/* PRE_COPY with nothing now: the kernel says ENOMSG, not "would block" */
	if (n < 0 && errno == EAGAIN && K.mig_state == VFIO_DEVICE_STATE_PRE_COPY)
		return -ENOMSG;
	return n < 0 ? -errno : n;
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	return n < 0 ? -errno : n;
}

static int f_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
	void *p;

	if (kind_of(fd) != K_DEVICE && kind_of(fd) != K_CDEV)
		return violation("mmap on a non-device fd");
	K.mmap_off = off;
	p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

static const struct vfio_sys_ops fake_sys = {
	.open = f_open, .close = f_close, .ioctl = f_ioctl, .pread = f_pread,
	.pwrite = f_pwrite, .read = f_read, .write = f_write, .mmap = f_mmap,
	.readlink = f_readlink,
};

static int reset_fake(void **state)
{
	memset(&K, 0, sizeof(K));
	K.api_version = VFIO_API_VERSION;
	K.type1v2 = true;
	K.viable = true;
	K.group_link = "../../../../kernel/iommu_groups/7";
	K.mig_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
	K.mig_state = VFIO_DEVICE_STATE_RUNNING;
	return 0;
}

/* log[from..] must start with the given entries, in order */
static void expect_log(unsigned from, const char *const *want, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_true(from + i < K.nlog);
		assert_string_equal(K.log[from + i], want[i]);
	}
}


#endif /* HDVM_TEST_FAKE_VFIO_KERNEL_H */
