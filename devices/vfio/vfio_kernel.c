// SPDX-License-Identifier: MIT
/*
 * Kernel VFIO backend: the device ioctls on a device fd (<linux/vfio.h>),
 * region access by pread/pwrite at the region's offset, mmap of the device
 * fd, and the migration data_fd kept as the transfer session.
 *
 * Built and unit-tested against the ioctl contract, untested on hardware
 * (the build hosts have no /dev/vfio).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "devices/vfio/vfio_kernel.h"
#include "vmm/util.h"

static struct vfio_kernel_device *to_kdev(struct vfio_device *dev)
{
	return container_of(dev, struct vfio_kernel_device, dev);
}

static int kdev_ioctl(struct vfio_kernel_device *k, unsigned long req, void *arg)
{
	return k->sys->ioctl(k->device_fd, req, (unsigned long)arg);
}

bool vfio_spec_is_kernel(const char *spec)
{
	return !strncmp(spec, VFIO_CDEV_PREFIX, strlen(VFIO_CDEV_PREFIX)) ||
	       vfio_parse_bdf(spec);
}

/* ---- info ---- */

static int vk_get_info(struct vfio_device *dev, struct vfio_device_info *info)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret;

	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	ret = kdev_ioctl(k, VFIO_DEVICE_GET_INFO, info);
	if (ret < 0)
		return ret;
	if (info->num_regions > VFIO_MAX_REGIONS || info->num_irqs > VFIO_MAX_IRQ_INDEXES) {
		pr_err("vfio %s: device reports %u regions and %u irq indexes", dev->name,
		       info->num_regions, info->num_irqs);
		return -E2BIG;
	}
	return 0;
}

static int vk_get_region_info(struct vfio_device *dev, uint32_t index, struct vfio_region *out)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	struct vfio_region_info *info;
	uint32_t argsz = sizeof(*info);
	int ret;

	memset(out, 0, sizeof(*out));
	out->mmap_fd = -1;
	if (index >= dev->info.num_regions)
		return -EINVAL;
	/* argsz two-step: the kernel tells how much room the capabilities need */
	for (int attempt = 0; attempt < 2; attempt++) {
		info = xzalloc(argsz);
		info->argsz = argsz;
		info->index = index;
		ret = kdev_ioctl(k, VFIO_DEVICE_GET_REGION_INFO, info);
		if (ret < 0) {
			free(info);
			return ret;
		}
		if (info->argsz <= argsz || attempt)
			break;
		if (info->argsz > VFIO_MAX_INFO_ARGSZ) {
			free(info);
			return -E2BIG;
		}
		argsz = info->argsz;
		free(info);
	}
	ret = vfio_region_parse(dev->name, info, argsz, index, out);
	free(info);
	if (ret)
		return ret;
	out->mmap_fd = (out->flags & VFIO_REGION_INFO_FLAG_MMAP) ? k->device_fd : -1;
	out->owns_fd = false;
	return 0;
}

static int vk_get_irq_info(struct vfio_device *dev, uint32_t index, struct vfio_irq *out)
{
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = index };
	int ret;

	if (index >= dev->info.num_irqs)
		return -EINVAL;
	ret = kdev_ioctl(to_kdev(dev), VFIO_DEVICE_GET_IRQ_INFO, &info);
	if (ret < 0)
		return ret;
	out->index = index;
	out->flags = info.flags;
	out->count = info.count;
	return 0;
}

static int vk_get_io_fds(struct vfio_device *dev, uint32_t index,
			 struct vfio_ioeventfd **out, unsigned *nr)
{
	/* a kernel device is mmap'd or trapped; it has no server-side doorbells */
	*out = NULL;
	*nr = 0;
	return index < dev->info.num_regions ? 0 : -EINVAL;
}

static int vk_set_irqs(struct vfio_device *dev, uint32_t index, uint32_t flags,
		       uint32_t start, uint32_t count, const void *data)
{
	struct vfio_irq_set *set;
	size_t data_len = 0;
	int ret;

	if (!vfio_irq_set_flags_valid(flags) || count > 65536)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_BOOL)
		data_len = count;
	else if (flags & VFIO_IRQ_SET_DATA_EVENTFD)
		data_len = count * sizeof(int32_t);
	if (data_len && !data)
		return -EINVAL;
	set = xzalloc(sizeof(*set) + data_len);
	set->argsz = sizeof(*set) + data_len;
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (data_len)
		memcpy(set->data, data, data_len);
	ret = kdev_ioctl(to_kdev(dev), VFIO_DEVICE_SET_IRQS, set);
	free(set);
	return ret < 0 ? ret : 0;
}

/* ---- region access ---- */

static int region_range(struct vfio_kernel_device *k, uint32_t index, uint64_t offset,
			size_t len, uint32_t need, const struct vfio_kernel_region **r)
{
	if (index >= k->dev.info.num_regions)
		return -EINVAL;
	*r = &k->regions[index];
	if (!((*r)->flags & need))
		return -EACCES;
	if (offset > (*r)->size || len > (*r)->size - offset)
		return -ERANGE;
	return 0;
}

static int vk_region_read(struct vfio_device *dev, uint32_t index, uint64_t offset,
			  void *buf, size_t len)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	const struct vfio_kernel_region *r;
	ssize_t n;
	int ret = region_range(k, index, offset, len, VFIO_REGION_INFO_FLAG_READ, &r);

	if (ret)
		return ret;
	n = k->sys->pread(k->device_fd, buf, len, (off_t)(r->offset + offset));
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

static int vk_region_write(struct vfio_device *dev, uint32_t index, uint64_t offset,
			   const void *buf, size_t len)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	const struct vfio_kernel_region *r;
	ssize_t n;
	int ret = region_range(k, index, offset, len, VFIO_REGION_INFO_FLAG_WRITE, &r);

	if (ret)
		return ret;
	n = k->sys->pwrite(k->device_fd, buf, len, (off_t)(r->offset + offset));
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

static int vk_region_mmap(struct vfio_device *dev, const struct vfio_region *r,
			  uint64_t offset, uint64_t size, int prot, void **addr)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret = vfio_region_check_mmap(r, offset, size);

	if (ret)
		return ret;
	return k->sys->mmap(k->device_fd, size, prot, (off_t)(r->offset + offset), addr);
}

/* ---- DMA, reset ---- */

static int vk_dma_map(struct vfio_device *dev, const struct vfio_dma_map *m)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret;

	if (!m->vaddr || !m->size || ((m->iova | m->size | (uintptr_t)m->vaddr) & 4095) ||
	    m->iova + m->size < m->iova)
		return -EINVAL;
	ret = k->iommu->map(k, m);
	return ret < 0 ? ret : 0;
}

static int vk_dma_unmap(struct vfio_device *dev, uint64_t iova, uint64_t size)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret;

	if (!size || ((iova | size) & 4095))
		return -EINVAL;
	ret = k->iommu->unmap(k, iova, size);
	return ret < 0 ? ret : 0;
}

static void mig_session_end(struct vfio_kernel_device *k)
{
	if (k->mig_fd >= 0)
		k->sys->close(k->mig_fd);
	k->mig_fd = -1;
}

static int vk_reset(struct vfio_device *dev)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret = kdev_ioctl(k, VFIO_DEVICE_RESET, NULL);

	/* a reset returns the device to RUNNING and ends any transfer session */
	pthread_mutex_lock(&k->mig_lock);
	mig_session_end(k);
	pthread_mutex_unlock(&k->mig_lock);
	return ret < 0 ? ret : 0;
}

/* ---- features and migration data ---- */

static bool state_has_session(uint32_t s)
{
	return s == VFIO_DEVICE_STATE_STOP_COPY || s == VFIO_DEVICE_STATE_RESUMING ||
	       s == VFIO_DEVICE_STATE_PRE_COPY || s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/* After a successful SET of MIG_DEVICE_STATE: keep, replace or end the session. */
static void track_mig_state(struct vfio_kernel_device *k, struct vfio_device_feature *f)
{
	struct vfio_device_feature_mig_state st;

	memcpy(&st, f->data, sizeof(st));
	if (st.data_fd >= 0) {
		mig_session_end(k);
		k->mig_fd = st.data_fd;
	} else if (!state_has_session(st.device_state)) {
		mig_session_end(k);
	}
	st.data_fd = -1;	/* the fd stays ours */
	memcpy(f->data, &st, sizeof(st));
}

static int vk_feature(struct vfio_device *dev, uint32_t flags, const void *in, size_t in_len,
		      void *out, size_t out_cap, size_t *out_len)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	size_t data = MAX(in_len, out_cap);
	struct vfio_device_feature *f;
	bool mig_set = (flags & VFIO_DEVICE_FEATURE_MASK) == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
		       (flags & VFIO_DEVICE_FEATURE_SET) && !(flags & VFIO_DEVICE_FEATURE_PROBE);
	int ret;

	if (out_len)
		*out_len = 0;
	if (data > (1u << 20))
		return -EMSGSIZE;
	if (mig_set && data < sizeof(struct vfio_device_feature_mig_state))
		return -EINVAL;
	f = xzalloc(sizeof(*f) + data);
	f->argsz = sizeof(*f) + data;
	f->flags = flags;
	if (in_len)
		memcpy(f->data, in, in_len);
	pthread_mutex_lock(&k->mig_lock);
	ret = kdev_ioctl(k, VFIO_DEVICE_FEATURE, f);
	if (ret >= 0 && mig_set)
		track_mig_state(k, f);
	pthread_mutex_unlock(&k->mig_lock);
	if (ret >= 0 && out_cap) {
		memcpy(out, f->data, out_cap);
		if (out_len)
			*out_len = out_cap;
	}
	free(f);
	return ret < 0 ? ret : 0;
}

static ssize_t vk_mig_data_read(struct vfio_device *dev, void *buf, size_t len)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	ssize_t n;

	pthread_mutex_lock(&k->mig_lock);
	n = k->mig_fd >= 0 ? k->sys->read(k->mig_fd, buf, len) : -EBADF;
	pthread_mutex_unlock(&k->mig_lock);
	return n;
}

static int vk_mig_data_write(struct vfio_device *dev, const void *buf, size_t len)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	int ret = 0;

	pthread_mutex_lock(&k->mig_lock);
	while (len && !ret) {
		ssize_t n = k->mig_fd >= 0 ? k->sys->write(k->mig_fd, buf, len) : -EBADF;

		if (n <= 0) {
			ret = n < 0 ? (int)n : -EIO;
			break;
		}
		buf = (const char *)buf + n;
		len -= n;
	}
	pthread_mutex_unlock(&k->mig_lock);
	return ret;
}

/* Issued on the session's data_fd, as the uAPI asks (PRE_COPY* only). */
static int vk_mig_precopy_info(struct vfio_device *dev, uint64_t *initial, uint64_t *dirty)
{
	struct vfio_kernel_device *k = to_kdev(dev);
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	int ret;

	pthread_mutex_lock(&k->mig_lock);
	ret = k->mig_fd >= 0 ? k->sys->ioctl(k->mig_fd, VFIO_MIG_GET_PRECOPY_INFO,
					     (unsigned long)&info) : -EINVAL;
	pthread_mutex_unlock(&k->mig_lock);
	if (ret == -ENOTTY)
		ret = -ENOTSUP;
	*initial = ret < 0 ? 0 : info.initial_bytes;
	*dirty = ret < 0 ? 0 : info.dirty_bytes;
	return ret < 0 ? ret : 0;
}

/* ---- lifetime ---- */

static void vk_close(struct vfio_device *dev)
{
	struct vfio_kernel_device *k = to_kdev(dev);

	mig_session_end(k);
	k->iommu->detach(k);
	pthread_mutex_destroy(&k->mig_lock);
	free(k);
}

static int cache_regions(struct vfio_kernel_device *k)
{
	for (uint32_t i = 0; i < k->dev.info.num_regions; i++) {
		struct vfio_region_info info = { .argsz = sizeof(info), .index = i };
		int ret = kdev_ioctl(k, VFIO_DEVICE_GET_REGION_INFO, &info);

		if (ret < 0) {
			/* vfio-pci answers every index; a hole is just an absent region */
			memset(&k->regions[i], 0, sizeof(k->regions[i]));
			continue;
		}
		if (info.size && info.offset + info.size < info.offset) {
			pr_err("vfio %s: region %u offset+size overflows", k->dev.name, i);
			return -EINVAL;
		}
		k->regions[i].flags = info.flags;
		k->regions[i].size = info.size;
		k->regions[i].offset = info.offset;
	}
	return 0;
}

int vfio_kernel_open_sys(const char *spec, const struct vfio_sys_ops *sys,
			 struct vfio_device **out)
{
	struct vfio_kernel_device *k;
	const struct vfio_iommu_ops *iommu;
	int ret;

	if (!strncmp(spec, VFIO_CDEV_PREFIX, strlen(VFIO_CDEV_PREFIX))) {
		iommu = &vfio_iommu_iommufd;
	} else if (vfio_parse_bdf(spec)) {
		iommu = &vfio_iommu_type1;
	} else {
		pr_err("vfio: '%s' is neither %svfioN nor a PCI address like 0000:01:00.1",
		       spec, VFIO_CDEV_PREFIX);
		return -EINVAL;
	}
	k = xzalloc(sizeof(*k));
	vfio_device_base_init(&k->dev, &vfio_kernel_backend, spec);
	k->sys = sys;
	k->iommu = iommu;
	k->device_fd = k->container_fd = k->group_fd = k->iommufd = k->mig_fd = -1;
	pthread_mutex_init(&k->mig_lock, NULL);

	ret = iommu->attach(k, spec);
	if (ret)
		goto fail;
	ret = vk_get_info(&k->dev, &k->dev.info);
	if (ret) {
		pr_err("vfio %s: VFIO_DEVICE_GET_INFO failed: %s", spec, strerror(-ret));
		goto fail;
	}
	if (!(k->dev.info.flags & VFIO_DEVICE_FLAGS_PCI)) {
		pr_err("vfio %s: not a PCI device (flags %#x)", spec, k->dev.info.flags);
		ret = -ENODEV;
		goto fail;
	}
	ret = cache_regions(k);
	if (ret)
		goto fail;
	*out = &k->dev;
	return 0;
fail:
	vk_close(&k->dev);
	return ret;
}

int vfio_kernel_open(const char *spec, struct vfio_device **out)
{
	return vfio_kernel_open_sys(spec, &vfio_sys_host, out);
}

const struct vfio_backend_ops vfio_kernel_backend = {
	.name = "kernel",
	.open = vfio_kernel_open,
	.close = vk_close,
	.get_info = vk_get_info,
	.get_region_info = vk_get_region_info,
	.region_read = vk_region_read,
	.region_write = vk_region_write,
	.region_mmap = vk_region_mmap,
	.get_io_fds = vk_get_io_fds,
	.get_irq_info = vk_get_irq_info,
	.set_irqs = vk_set_irqs,
	.dma_map = vk_dma_map,
	.dma_unmap = vk_dma_unmap,
	.reset = vk_reset,
	.feature = vk_feature,
	.mig_data_read = vk_mig_data_read,
	.mig_data_write = vk_mig_data_write,
	.mig_precopy_info = vk_mig_precopy_info,
	.dirty = &vfio_kernel_dirty_ops,
};
