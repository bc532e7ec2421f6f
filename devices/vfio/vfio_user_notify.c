// SPDX-License-Identifier: MIT
/*
 * vfio-user backend (vfio_user.c), the notification fds both ways: the
 * ioeventfds a server hands over for its regions (GET_REGION_IO_FDS) and
 * the interrupt eventfds we give it (GET_IRQ_INFO, SET_IRQS).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "devices/vfio/vfio_user_int.h"
#include "vmm/util.h"

static void close_all(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* One IO_FDS entry in either layout, decoded. */
struct io_fd_entry {
	uint64_t offset, size, datamatch;
	uint32_t fd_index, type, flags;
};

static void decode_io_fd(const uint8_t *p, size_t stride, struct io_fd_entry *e)
{
	if (stride == sizeof(struct vfio_user_sub_region_ioeventfd_shadow)) {
		struct vfio_user_sub_region_ioeventfd_shadow s;

		memcpy(&s, p, sizeof(s));
		*e = (struct io_fd_entry){ s.offset, s.size, s.datamatch, s.fd_index, s.type,
					   s.flags };
	} else {
		struct vfio_user_sub_region_ioeventfd s;

		memcpy(&s, p, sizeof(s));
		*e = (struct io_fd_entry){ s.offset, s.size, s.datamatch, s.fd_index, s.type,
					   s.flags };
	}
}

/*
 * The entry size comes from the reply: 40 bytes in the spec, 48 in
 * libvfio-user (shadow fd and offset before datamatch).  Only plain
 * ioeventfds are registered.  Shadow ioeventfds need a KVM that is not
 * upstream and ioregionfds a KVM feature that never merged: those entries
 * are dropped with their fds, so the guest's writes there stay trapped and
 * reach the server as REGION_WRITE, which every server must handle anyway.
 */
static int parse_io_fds(struct vfio_user_device *u, uint32_t index, const uint8_t *buf,
			size_t len, int *fds, unsigned nfds, struct vfio_ioeventfd **out,
			unsigned *nr)
{
	struct vfio_user_region_io_fds_reply r;
	struct vfio_ioeventfd *evs;
	bool *used = xzalloc(nfds + 1);
	unsigned n = 0, skipped = 0;
	size_t stride = 0;

	memcpy(&r, buf, sizeof(r));
	if (r.count) {
		stride = r.argsz >= sizeof(r) ? (r.argsz - sizeof(r)) / r.count : 0;
		if (r.argsz > len || (r.argsz - sizeof(r)) % r.count)
			stride = 0;
	}
	if (r.index != index || (r.count &&
	    stride != sizeof(struct vfio_user_sub_region_ioeventfd) &&
	    stride != sizeof(struct vfio_user_sub_region_ioeventfd_shadow))) {
		pr_err("vfio-user %s: IO_FDS reply for region %u has %u entries in %u of %zu bytes",
		       u->dev.name, r.index, r.count, r.argsz, len);
		free(used);
		return -EPROTO;
	}
	evs = xzalloc((r.count ? r.count : 1) * sizeof(*evs));
	for (uint32_t i = 0; i < r.count; i++) {
		struct io_fd_entry s;

		decode_io_fd(buf + sizeof(r) + i * stride, stride, &s);
		if (s.type != VFIO_USER_IO_FD_TYPE_IOEVENTFD) {
			skipped++;
			continue;
		}
		if (s.fd_index >= nfds || (s.size != 0 && s.size != 1 && s.size != 2 &&
		    s.size != 4 && s.size != 8) || s.offset + s.size < s.offset ||
		    (s.flags & ~(KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_PIO))) {
			pr_err("vfio-user %s: bad ioeventfd %u of region %u (fd %u/%u, size %llu, flags %#x)",
			       u->dev.name, i, index, s.fd_index, nfds,
			       (unsigned long long)s.size, s.flags);
			vfio_ioeventfds_free(evs, n);
			free(used);
			return -EPROTO;
		}
		/* fds may be shared between entries: every entry owns its own */
		evs[n].fd = used[s.fd_index] ? dup(fds[s.fd_index]) : fds[s.fd_index];
		if (evs[n].fd < 0) {
			int err = -errno;

			vfio_ioeventfds_free(evs, n);
			free(used);
			return err;
		}
		used[s.fd_index] = true;
		evs[n].offset = s.offset;
		evs[n].size = s.size;
		evs[n].flags = s.flags;
		evs[n].datamatch = s.datamatch;
		n++;
	}
	if (skipped)
		pr_info("vfio-user %s: region %u: %u shadow/ioregionfd entries not supported, "
			"those writes stay trapped", u->dev.name, index, skipped);
	for (unsigned i = 0; i < nfds; i++)
		if (!used[i])
			close(fds[i]);
	free(used);
	if (!n) {
		free(evs);
		evs = NULL;
	}
	*out = evs;
	*nr = n;
	return 0;
}

int vu_get_io_fds(struct vfio_device *dev, uint32_t index,
			 struct vfio_ioeventfd **out, unsigned *nr)
{
	struct vfio_user_device *u = to_udev(dev);
	uint32_t argsz = sizeof(struct vfio_user_region_io_fds_reply) +
			 16 * sizeof(struct vfio_user_sub_region_ioeventfd_shadow);
	int fds[VFIO_USER_MAX_MSG_FDS];
	uint8_t *buf = NULL;
	int ret;

	*out = NULL;
	*nr = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct vfio_user_region_io_fds_request q = { .argsz = argsz, .index = index };
		struct vfio_user_req req = {
			.cmd = VFIO_USER_DEVICE_GET_REGION_IO_FDS,
			.iov = { { &q, sizeof(q) } }, .iovcnt = 1,
		};
		struct vfio_user_rep rep = { .iovcnt = 1, .fds = fds,
					     .max_fds = VFIO_USER_MAX_MSG_FDS };
		struct vfio_user_region_io_fds_reply r;

		free(buf);
		buf = xzalloc(argsz);
		rep.iov[0] = (struct iovec){ buf, argsz };
		ret = vfio_user_call(&u->conn, &req, &rep);
		if (ret)
			break;
		ret = -EPROTO;
		if (rep.len < sizeof(r)) {
			close_all(fds, rep.nfds);
			pr_err("vfio-user %s: IO_FDS reply is %zu bytes", dev->name, rep.len);
			break;
		}
		memcpy(&r, buf, sizeof(r));
		if (r.argsz > argsz) {		/* did not fit: ask again with room */
			close_all(fds, rep.nfds);
			if (r.argsz > VFIO_MAX_INFO_ARGSZ || attempt) {
				pr_err("vfio-user %s: IO_FDS reply wants %u bytes", dev->name,
				       r.argsz);
				break;
			}
			argsz = r.argsz;
			continue;
		}
		ret = parse_io_fds(u, index, buf, rep.len, fds, rep.nfds, out, nr);
		if (ret)
			close_all(fds, rep.nfds);
		break;
	}
	free(buf);
	return ret;
}

int vu_get_irq_info(struct vfio_device *dev, uint32_t index, struct vfio_irq *out)
{
	struct vfio_user_device *u = to_udev(dev);
	struct vfio_irq_info q = { .argsz = sizeof(q), .index = index }, r;
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DEVICE_GET_IRQ_INFO, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
	};
	struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) } }, .iovcnt = 1 };
	int ret;

	if (index >= dev->info.num_irqs)
		return -EINVAL;
	ret = vfio_user_call(&u->conn, &req, &rep);
	if (ret)
		return ret;
	if (rep.len < sizeof(r) || r.index != index || r.count > 65536) {
		pr_err("vfio-user %s: bad IRQ_INFO reply for index %u", dev->name, index);
		return -EPROTO;
	}
	out->index = index;
	out->flags = r.flags;
	out->count = r.count;
	return 0;
}

/* One SET_IRQS message; fds travel as SCM_RIGHTS, never inline. */
static int set_irqs_msg(struct vfio_user_device *u, uint32_t index, uint32_t flags,
			uint32_t start, uint32_t count, const void *data, size_t data_len,
			const int *fds, unsigned nfds)
{
	struct vfio_irq_set q = {
		.argsz = sizeof(q) + data_len, .flags = flags, .index = index,
		.start = start, .count = count,
	};
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DEVICE_SET_IRQS,
		.iov = { { &q, sizeof(q) }, { (void *)data, data_len } },
		.iovcnt = data_len ? 2 : 1,
		.fds = fds, .nfds = nfds,
	};
	struct vfio_user_rep rep = { .iovcnt = 0 };

	return vfio_user_call(&u->conn, &req, &rep);
}

int vu_set_irqs(struct vfio_device *dev, uint32_t index, uint32_t flags,
		       uint32_t start, uint32_t count, const void *data)
{
	struct vfio_user_device *u = to_udev(dev);
	const int32_t *efd = data;
	uint32_t i = 0;
	int ret = 0;

	if (!vfio_irq_set_flags_valid(flags) || count > 65536 ||
	    (start + (uint64_t)count) > UINT32_MAX)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_NONE)
		return set_irqs_msg(u, index, flags, start, count, NULL, 0, NULL, 0);
	if (!data && count)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_BOOL)
		return set_irqs_msg(u, index, flags, start, count, data, count, NULL, 0);

	if (!count)
		return set_irqs_msg(u, index, flags, start, 0, NULL, 0, NULL, 0);
	/*
	 * Eventfds: runs of real fds in chunks the server can receive, runs of
	 * -1 as fd-less messages (which de-assign that range).
	 */
	while (i < count && !ret) {
		uint32_t j = i;

		if (efd[i] >= 0) {
			uint32_t max = u->caps.max_msg_fds;

			if (!max)
				return -ENOTSUP;
			while (j < count && efd[j] >= 0 && j - i < max)
				j++;
			ret = set_irqs_msg(u, index, flags, start + i, j - i, NULL, 0,
					   (const int *)&efd[i], j - i);
		} else {
			while (j < count && efd[j] < 0)
				j++;
			ret = set_irqs_msg(u, index, flags, start + i, j - i, NULL, 0, NULL, 0);
		}
		i = j;
	}
	return ret;
}
