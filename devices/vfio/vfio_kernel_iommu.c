// SPDX-License-Identifier: MIT
/*
 * How the kernel backend gets a device fd with DMA translation in place.
 *
 * type1 (legacy): container -> API version -> TYPE1v2 extension -> group
 * (viable) -> group into container -> SET_IOMMU -> device fd by PCI address.
 * DMA windows are pinned from hdvm's virtual addresses with IOMMU_MAP_DMA.
 *
 * iommufd (cdev): open the cdev and /dev/iommu -> BIND_IOMMUFD -> allocate an
 * IOAS -> ATTACH the device to it.  DMA windows go into the IOAS.
 *
 * Built and unit-tested against the ioctl contract, untested on hardware.
 * Limitation: every device gets its own container / IOAS, so two devices of
 * one IOMMU group cannot both be opened.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio_kernel.h"
#include "vmm/util.h"

bool vfio_parse_bdf(const char *s)
{
	static const char shape[] = "xxxx:xx:xx.f";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'x' && !isxdigit((unsigned char)s[i]))
			return false;
		if (shape[i] == 'f' && (s[i] < '0' || s[i] > '7'))
			return false;
		if ((shape[i] == ':' || shape[i] == '.') && s[i] != shape[i])
			return false;
	}
	return true;
}

static void sys_close(struct vfio_kernel_device *k, int *fd)
{
	if (*fd >= 0)
		k->sys->close(*fd);
	*fd = -1;
}

/* ---- type1 container/group ---- */

static int group_of_bdf(struct vfio_kernel_device *k, const char *bdf, unsigned *group)
{
	char path[128], link[256];
	const char *base;
	uint64_t n;
	ssize_t len;

	snprintf(path, sizeof(path), SYSFS_PCI_DEVICES "%s/iommu_group", bdf);
	len = k->sys->readlink(path, link, sizeof(link) - 1);
	if (len < 0) {
		pr_err("vfio %s: no IOMMU group (%s: %s); is the IOMMU on and the device bound to vfio-pci?",
		       bdf, path, strerror((int)-len));
		return (int)len;
	}
	link[len] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	if (parse_u64(base, 0, UINT32_MAX, &n)) {
		pr_err("vfio %s: cannot read a group number from %s -> %s", bdf, path, link);
		return -EINVAL;
	}
	*group = (unsigned)n;
	return 0;
}

static int type1_attach(struct vfio_kernel_device *k, const char *bdf)
{
	const struct vfio_sys_ops *sys = k->sys;
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	int ret;

	ret = group_of_bdf(k, bdf, &k->group);
	if (ret)
		return ret;
	k->container_fd = sys->open(VFIO_CONTAINER_PATH, O_RDWR);
	if (k->container_fd < 0) {
		ret = k->container_fd;
		pr_err("vfio %s: cannot open %s: %s", bdf, VFIO_CONTAINER_PATH, strerror(-ret));
		return ret;
	}
	ret = sys->ioctl(k->container_fd, VFIO_GET_API_VERSION, 0);
	if (ret != VFIO_API_VERSION) {
		pr_err("vfio %s: kernel VFIO API version %d, we speak %d", bdf, ret,
		       VFIO_API_VERSION);
		return ret < 0 ? ret : -EPROTONOSUPPORT;
	}
	ret = sys->ioctl(k->container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
	if (ret <= 0) {
		pr_err("vfio %s: the kernel has no type1v2 IOMMU support", bdf);
		return ret < 0 ? ret : -EOPNOTSUPP;
	}

	snprintf(path, sizeof(path), VFIO_GROUP_PATH_FMT, k->group);
	k->group_fd = sys->open(path, O_RDWR);
	if (k->group_fd < 0) {
		ret = k->group_fd;
		pr_err("vfio %s: cannot open %s: %s", bdf, path, strerror(-ret));
		return ret;
	}
	ret = sys->ioctl(k->group_fd, VFIO_GROUP_GET_STATUS, (unsigned long)&status);
	if (ret < 0)
		return ret;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		pr_err("vfio %s: IOMMU group %u is not viable: bind every device in it to vfio-pci",
		       bdf, k->group);
		return -EBUSY;
	}
	ret = sys->ioctl(k->group_fd, VFIO_GROUP_SET_CONTAINER, (unsigned long)&k->container_fd);
	if (ret < 0) {
		pr_err("vfio %s: cannot add group %u to the container: %s", bdf, k->group,
		       strerror(-ret));
		return ret;
	}
	ret = sys->ioctl(k->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
	if (ret < 0) {
		pr_err("vfio %s: VFIO_SET_IOMMU(type1v2) failed: %s", bdf, strerror(-ret));
		return ret;
	}
	ret = sys->ioctl(k->group_fd, VFIO_GROUP_GET_DEVICE_FD, (unsigned long)bdf);
	if (ret < 0) {
		pr_err("vfio %s: group %u has no such device: %s", bdf, k->group, strerror(-ret));
		return ret;
	}
	k->device_fd = ret;
	return 0;
}

static int type1_map(struct vfio_kernel_device *k, const struct vfio_dma_map *m)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = ((m->prot & VFIO_DMA_PROT_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
			 ((m->prot & VFIO_DMA_PROT_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = (uintptr_t)m->vaddr,
		.iova = m->iova,
		.size = m->size,
	};

	return k->sys->ioctl(k->container_fd, VFIO_IOMMU_MAP_DMA, (unsigned long)&map);
}

static int type1_unmap(struct vfio_kernel_device *k, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap), .iova = iova, .size = size,
	};
	int ret = k->sys->ioctl(k->container_fd, VFIO_IOMMU_UNMAP_DMA, (unsigned long)&unmap);

	if (ret < 0)
		return ret;
	/* the kernel reports how much it unmapped; nothing means no such window */
	return unmap.size ? 0 : -ENOENT;
}

static void type1_detach(struct vfio_kernel_device *k)
{
	sys_close(k, &k->device_fd);
	if (k->group_fd >= 0 && k->container_fd >= 0)
		k->sys->ioctl(k->group_fd, VFIO_GROUP_UNSET_CONTAINER, 0);
	sys_close(k, &k->group_fd);
	sys_close(k, &k->container_fd);
}

const struct vfio_iommu_ops vfio_iommu_type1 = {
	.name = "type1v2",
	.attach = type1_attach,
	.map = type1_map,
	.unmap = type1_unmap,
	.detach = type1_detach,
};

/* ---- iommufd cdev ---- */

static int iommufd_attach(struct vfio_kernel_device *k, const char *path)
{
	const struct vfio_sys_ops *sys = k->sys;
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	int ret;

	k->device_fd = sys->open(path, O_RDWR);
	if (k->device_fd < 0) {
		ret = k->device_fd;
		pr_err("vfio %s: cannot open the device: %s", path, strerror(-ret));
		return ret;
	}
	k->iommufd = sys->open(IOMMUFD_PATH, O_RDWR);
	if (k->iommufd < 0) {
		ret = k->iommufd;
		pr_err("vfio %s: cannot open %s: %s", path, IOMMUFD_PATH, strerror(-ret));
		return ret;
	}
	/* a cdev accepts nothing but BIND until it is bound */
	bind.iommufd = k->iommufd;
	ret = sys->ioctl(k->device_fd, VFIO_DEVICE_BIND_IOMMUFD, (unsigned long)&bind);
	if (ret < 0) {
		pr_err("vfio %s: VFIO_DEVICE_BIND_IOMMUFD failed: %s", path, strerror(-ret));
		return ret;
	}
	k->devid = bind.out_devid;
	ret = sys->ioctl(k->iommufd, IOMMU_IOAS_ALLOC, (unsigned long)&alloc);
	if (ret < 0) {
		pr_err("vfio %s: IOMMU_IOAS_ALLOC failed: %s", path, strerror(-ret));
		return ret;
	}
	k->ioas_id = alloc.out_ioas_id;
	attach.pt_id = k->ioas_id;
	ret = sys->ioctl(k->device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, (unsigned long)&attach);
	if (ret < 0) {
		pr_err("vfio %s: attaching to IOAS %u failed: %s", path, k->ioas_id,
		       strerror(-ret));
		return ret;
	}
	return 0;
}

static int iommufd_map(struct vfio_kernel_device *k, const struct vfio_dma_map *m)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA |
			 ((m->prot & VFIO_DMA_PROT_READ) ? IOMMU_IOAS_MAP_READABLE : 0) |
			 ((m->prot & VFIO_DMA_PROT_WRITE) ? IOMMU_IOAS_MAP_WRITEABLE : 0),
		.ioas_id = k->ioas_id,
		.user_va = (uintptr_t)m->vaddr,
		.length = m->size,
		.iova = m->iova,
	};

	return k->sys->ioctl(k->iommufd, IOMMU_IOAS_MAP, (unsigned long)&map);
}

static int iommufd_unmap(struct vfio_kernel_device *k, uint64_t iova, uint64_t size)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = k->ioas_id, .iova = iova, .length = size,
	};

	return k->sys->ioctl(k->iommufd, IOMMU_IOAS_UNMAP, (unsigned long)&unmap);
}

static void iommufd_detach(struct vfio_kernel_device *k)
{
	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	struct iommu_destroy destroy = { .size = sizeof(destroy), .id = k->ioas_id };

	if (k->device_fd >= 0 && k->ioas_id)
		k->sys->ioctl(k->device_fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, (unsigned long)&detach);
	sys_close(k, &k->device_fd);
	if (k->iommufd >= 0 && k->ioas_id)
		k->sys->ioctl(k->iommufd, IOMMU_DESTROY, (unsigned long)&destroy);
	sys_close(k, &k->iommufd);
}

const struct vfio_iommu_ops vfio_iommu_iommufd = {
	.name = "iommufd",
	.attach = iommufd_attach,
	.map = iommufd_map,
	.unmap = iommufd_unmap,
	.detach = iommufd_detach,
};
