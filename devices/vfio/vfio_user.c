// SPDX-License-Identifier: MIT
/*
 * vfio-user backend: the VFIO device operations as messages to a device
 * server (QEMU docs/interop/vfio-user.rst, digest §2).  Every reply field we
 * rely on is checked against what we asked for; the transport below kills
 * the connection on anything that breaks the protocol.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "devices/device.h"
#include "devices/vfio/vfio_user_int.h"
#include "vmm/util.h"

static void udev_dead(void *opaque, const char *why, int err)
{
	struct vfio_user_device *u = opaque;

	vfio_device_mark_dead(&u->dev, why, err);
}

static void close_all(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- device and region info ---- */

static int vu_get_info(struct vfio_device *dev, struct vfio_device_info *info)
{
	struct vfio_user_device *u = to_udev(dev);
	/* the wire struct is the first 16 bytes of struct vfio_device_info */
	struct { uint32_t argsz, flags, num_regions, num_irqs; } q = { .argsz = sizeof(q) }, r;
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DEVICE_GET_INFO, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
	};
	struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) } }, .iovcnt = 1 };
	int ret = vfio_user_call(&u->conn, &req, &rep);

	if (ret)
		return ret;
	if (rep.len < sizeof(r) || r.num_regions > VFIO_MAX_REGIONS ||
	    r.num_irqs > VFIO_MAX_IRQ_INDEXES) {
		pr_err("vfio-user %s: bad DEVICE_GET_INFO reply (%zu bytes, %u regions, %u irqs)",
		       dev->name, rep.len, r.num_regions, r.num_irqs);
		return -EPROTO;
	}
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->flags = r.flags;
	info->num_regions = r.num_regions;
	info->num_irqs = r.num_irqs;
	return 0;
}

/* One GET_REGION_INFO round trip with the given argsz; keeps at most one fd. */
static int region_info_call(struct vfio_user_device *u, uint32_t index, uint32_t argsz,
			    void *buf, size_t *len, int *fd)
{
	struct vfio_region_info q = { .argsz = argsz, .index = index };
	int fds[VFIO_USER_MAX_MSG_FDS];
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DEVICE_GET_REGION_INFO, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
	};
	struct vfio_user_rep rep = {
		.iov = { { buf, argsz } }, .iovcnt = 1,
		.fds = fds, .max_fds = VFIO_USER_MAX_MSG_FDS,
	};
	int ret = vfio_user_call(&u->conn, &req, &rep);

	if (ret)
		return ret;
	*len = rep.len;
	*fd = rep.nfds ? fds[0] : -1;
	if (rep.nfds > 1)
		close_all(fds + 1, rep.nfds - 1);
	return 0;
}

static int vu_get_region_info(struct vfio_device *dev, uint32_t index, struct vfio_region *out)
{
	struct vfio_user_device *u = to_udev(dev);
	struct vfio_region_info first;
	size_t len;
	void *buf = &first;
	uint32_t argsz = sizeof(first);
	int fd, ret;

	memset(out, 0, sizeof(*out));
	out->mmap_fd = -1;
	if (index >= dev->info.num_regions)
		return -EINVAL;
	ret = region_info_call(u, index, argsz, &first, &len, &fd);
	if (ret)
		return ret;
	/* argsz two-step: the server says how much room its capabilities need */
	if (len >= sizeof(first) && first.argsz > sizeof(first) &&
	    (first.flags & VFIO_REGION_INFO_FLAG_CAPS)) {
		if (first.argsz > VFIO_MAX_INFO_ARGSZ) {
			pr_err("vfio-user %s: region %u info wants %u bytes", dev->name, index,
			       first.argsz);
			if (fd >= 0)
				close(fd);
			return -EPROTO;
		}
		if (fd >= 0)
			close(fd);
		argsz = first.argsz;
		buf = xzalloc(argsz);
		ret = region_info_call(u, index, argsz, buf, &len, &fd);
		if (ret) {
			free(buf);
			return ret;
		}
	}
	ret = vfio_region_parse(dev->name, buf, len, index, out);
	if (buf != &first)
		free(buf);
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	if ((out->flags & VFIO_REGION_INFO_FLAG_MMAP) && fd >= 0) {
		out->mmap_fd = fd;
		out->owns_fd = true;
	} else {
		/* no fd, nothing to map: the region is reached by messages only */
		if (fd >= 0)
			close(fd);
		out->flags &= ~VFIO_REGION_INFO_FLAG_MMAP;
	}
	return 0;
}

static int vu_region_mmap(struct vfio_device *dev, const struct vfio_region *r,
			  uint64_t offset, uint64_t size, int prot, void **addr)
{
	int ret = vfio_region_check_mmap(r, offset, size);
	void *p;

	if (ret)
		return ret;
	p = mmap(NULL, size, prot, MAP_SHARED, r->mmap_fd, (off_t)(r->offset + offset));
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

/* ---- region access ---- */

static int vu_region_read(struct vfio_device *dev, uint32_t index, uint64_t offset,
			  void *buf, size_t len)
{
	struct vfio_user_device *u = to_udev(dev);

	while (len) {
		uint32_t n = MIN(len, u->xfer_max);
		struct vfio_user_region_access q = { .offset = offset, .region = index, .count = n };
		struct vfio_user_region_access r;
		struct vfio_user_req req = {
			.cmd = VFIO_USER_REGION_READ, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
			.may_stall = true,	/* a guest's read: all-ones beats a frozen vCPU */
		};
		struct vfio_user_rep rep = {
			.iov = { { &r, sizeof(r) }, { buf, n } }, .iovcnt = 2,
		};
		int ret = vfio_user_call(&u->conn, &req, &rep);

		if (ret)
			return ret;
		if (rep.len != sizeof(r) + n || r.count != n || r.offset != offset ||
		    r.region != index) {
			pr_err("vfio-user %s: REGION_READ reply does not match %u@%#llx of region %u",
			       dev->name, n, (unsigned long long)offset, index);
			return -EPROTO;
		}
		buf = (char *)buf + n;
		offset += n;
		len -= n;
	}
	return 0;
}

static int vu_region_write(struct vfio_device *dev, uint32_t index, uint64_t offset,
			   const void *buf, size_t len)
{
	struct vfio_user_device *u = to_udev(dev);

	while (len) {
		uint32_t n = MIN(len, u->xfer_max);
		struct vfio_user_region_access q = { .offset = offset, .region = index, .count = n };
		struct vfio_user_region_access r;
		struct vfio_user_req req = {
			.cmd = VFIO_USER_REGION_WRITE,
			.iov = { { &q, sizeof(q) }, { (void *)buf, n } }, .iovcnt = 2,
			.may_stall = true, .posted = true,	/* sent even if not answered */
		};
		struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) } }, .iovcnt = 1 };
		int ret = vfio_user_call(&u->conn, &req, &rep);

		if (ret)
			return ret;
		if (rep.len != sizeof(r) || r.count != n) {
			pr_err("vfio-user %s: REGION_WRITE reply does not match %u@%#llx",
			       dev->name, n, (unsigned long long)offset);
			return -EPROTO;
		}
		buf = (const char *)buf + n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* ---- DMA ---- */

static int vu_dma_map(struct vfio_device *dev, const struct vfio_dma_map *m)
{
	struct vfio_user_device *u = to_udev(dev);
	uint64_t page = u->caps.pgsizes & -u->caps.pgsizes;	/* smallest */
	struct vfio_user_dma_map q = {
		.argsz = sizeof(q),
		.flags = ((m->prot & VFIO_DMA_PROT_READ) ? VFIO_USER_DMA_MAP_F_READ : 0) |
			 ((m->prot & VFIO_DMA_PROT_WRITE) ? VFIO_USER_DMA_MAP_F_WRITE : 0),
		.offset = m->fd >= 0 ? m->fd_offset : 0,
		.address = m->iova,
		.size = m->size,
	};
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DMA_MAP, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
		.fds = &m->fd, .nfds = m->fd >= 0,
	};
	struct vfio_user_rep rep = { .iovcnt = 0 };
	int ret;

	if (!m->size || ((m->iova | m->size | q.offset) & (page - 1)) ||
	    m->iova + m->size < m->iova)
		return -EINVAL;
	if (m->fd >= 0 && !u->caps.max_msg_fds)
		return -ENOTSUP;
	if (atomic_fetch_add(&u->nr_dma_maps, 1) >= u->caps.max_dma_maps) {
		atomic_fetch_sub(&u->nr_dma_maps, 1);
		return -ENOSPC;
	}
	ret = vfio_user_call(&u->conn, &req, &rep);
	if (!ret)
		ret = vfio_user_dma_add(&u->dma, m->iova, m->size, m->prot);
	if (ret)
		atomic_fetch_sub(&u->nr_dma_maps, 1);
	return ret;
}

static int vu_dma_unmap(struct vfio_device *dev, uint64_t iova, uint64_t size)
{
	struct vfio_user_device *u = to_udev(dev);
	struct vfio_user_dma_unmap q = { .argsz = sizeof(q), .address = iova, .size = size }, r;
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DMA_UNMAP, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
	};
	/* the reply may echo the entry */
	struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) } }, .iovcnt = 1 };
	int ret = vfio_user_call(&u->conn, &req, &rep);

	if (ret)
		return ret;
	vfio_user_dma_remove(&u->dma, iova, size);
	if (atomic_load(&u->nr_dma_maps))
		atomic_fetch_sub(&u->nr_dma_maps, 1);
	return 0;
}

static int vu_reset(struct vfio_device *dev)
{
	struct vfio_user_req req = { .cmd = VFIO_USER_DEVICE_RESET };
	struct vfio_user_rep rep = { .iovcnt = 0 };

	return vfio_user_call(&to_udev(dev)->conn, &req, &rep);
}

/* ---- lifetime ---- */

static void vu_close(struct vfio_device *dev)
{
	struct vfio_user_device *u = to_udev(dev);

	/* the server unmaps DMA and drops IRQ fds when we go (protocol rule) */
	vfio_user_conn_destroy(&u->conn);
	vfio_user_dma_destroy(&u->dma);
	free(u);
}

int vfio_user_open_fd(int sock, const char *name, struct vfio_device **out)
{
	struct vfio_user_device *u = xzalloc(sizeof(*u));
	int ret;

	vfio_device_base_init(&u->dev, &vfio_user_backend, name);
	vfio_user_conn_init(&u->conn, sock, u->dev.name, &u->dev.dead);
	u->conn.timeout_ms = VFIO_USER_DEFAULT_TIMEOUT_MS;
	u->conn.on_dead = udev_dead;
	u->conn.opaque = u;
	atomic_init(&u->nr_dma_maps, 0);
	vfio_user_dma_init(&u->dma);
	u->conn.dma = &vfio_user_dma_answer;
	u->conn.dma_opaque = &u->dma;
	u->conn.dma_max = VFIO_USER_MAX_DATA_XFER;	/* what VERSION announces */

	ret = vfio_user_negotiate(&u->conn, u->dev.name, &u->caps, &u->minor);
	if (ret)
		goto fail;
	u->xfer_max = MIN(u->caps.max_data_xfer_size, VFIO_USER_MAX_DATA_XFER);
	ret = vu_get_info(&u->dev, &u->dev.info);
	if (ret) {
		pr_err("vfio-user %s: DEVICE_GET_INFO failed: %s", name, strerror(-ret));
		goto fail;
	}
	if (!(u->dev.info.flags & VFIO_DEVICE_FLAGS_PCI)) {
		pr_err("vfio-user %s: not a PCI device (flags %#x)", name, u->dev.info.flags);
		ret = -ENODEV;
		goto fail;
	}
	*out = &u->dev;
	return 0;
fail:
	vu_close(&u->dev);
	return ret;
}

int vfio_user_open(const char *path, struct vfio_device **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_err("vfio-user: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		pr_err("vfio-user: cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	return vfio_user_open_fd(fd, path, out);
}

void vfio_user_set_timeout(struct vfio_device *dev, int timeout_ms)
{
	struct vfio_user_device *u = to_udev(dev);

	pthread_mutex_lock(&u->conn.lock);
	u->conn.timeout_ms = timeout_ms > 0 ? timeout_ms : VFIO_USER_DEFAULT_TIMEOUT_MS;
	pthread_mutex_unlock(&u->conn.lock);
}

void vfio_user_set_stall(struct vfio_device *dev, int stall_ms)
{
	struct vfio_user_device *u = to_udev(dev);

	pthread_mutex_lock(&u->conn.lock);
	u->conn.stall_ms = stall_ms > 0 ? stall_ms : vfio_user_default_stall_ms();
	pthread_mutex_unlock(&u->conn.lock);
}

void vfio_user_get_caps(struct vfio_device *dev, struct vfio_user_caps *caps, uint16_t *minor)
{
	struct vfio_user_device *u = to_udev(dev);

	*caps = u->caps;
	if (minor)
		*minor = u->minor;
}

const struct vfio_backend_ops vfio_user_backend = {
	.name = "vfio-user",
	.open = vfio_user_open,
	.close = vu_close,
	.get_info = vu_get_info,
	.get_region_info = vu_get_region_info,
	.region_read = vu_region_read,
	.region_write = vu_region_write,
	.region_mmap = vu_region_mmap,
	.get_io_fds = vu_get_io_fds,
	.get_irq_info = vu_get_irq_info,
	.set_irqs = vu_set_irqs,
	.dma_map = vu_dma_map,
	.dma_unmap = vu_dma_unmap,
	.reset = vu_reset,
	.feature = vu_feature,
	.mig_data_read = vu_mig_data_read,
	.mig_data_write = vu_mig_data_write,
	.mig_precopy_info = vu_mig_precopy_info,
	.dirty = &vfio_user_dirty_ops,
};

int vfio_user_socket(struct vfio_device *dev)
{
	return to_udev(dev)->conn.sock;
}

void vfio_user_set_dma_mem(struct vfio_device *dev, const struct vfio_dma_mem_ops *ops,
			   void *opaque)
{
	struct vfio_user_device *u = to_udev(dev);

	pthread_mutex_lock(&u->dma.lock);
	u->dma.mem = ops;
	u->dma.mem_opaque = opaque;
	pthread_mutex_unlock(&u->dma.lock);
}

int vfio_user_serve(struct vfio_device *dev)
{
	return vfio_user_conn_serve(&to_udev(dev)->conn);
}

void vfio_user_dma_counts(struct vfio_device *dev, uint64_t *answered, uint64_t *refused)
{
	struct vfio_user_device *u = to_udev(dev);

	pthread_mutex_lock(&u->conn.lock);
	*answered = u->conn.served;
	*refused = u->conn.refused;
	pthread_mutex_unlock(&u->conn.lock);
}

bool vfio_user_lost_stalled(struct vfio_device *dev)
{
	struct vfio_user_device *u = to_udev(dev);
	bool stalled;

	pthread_mutex_lock(&u->conn.lock);
	stalled = u->conn.lost_err == -ETIMEDOUT;
	pthread_mutex_unlock(&u->conn.lock);
	return stalled;
}
