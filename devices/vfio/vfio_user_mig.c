// SPDX-License-Identifier: MIT
/*
 * vfio-user backend (vfio_user.c), migration: DEVICE_FEATURE (the VFIO
 * migration v2 states, DMA logging, vendor features), the device state as
 * MIG_DATA_READ/WRITE messages, and the pre-copy sizes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio_user_int.h"
#include "vmm/util.h"

int vu_feature(struct vfio_device *dev, uint32_t flags, const void *in, size_t in_len,
		      void *out, size_t out_cap, size_t *out_len)
{
	struct vfio_user_device *u = to_udev(dev);
	size_t data = MAX(in_len, out_cap);
	struct vfio_user_device_feature q = { .argsz = sizeof(q) + data, .flags = flags }, r;
	/* SET/PROBE replies echo the request: room for it beyond out_cap */
	size_t spare = in_len > out_cap ? in_len - out_cap : 0;
	void *scratch = spare ? xzalloc(spare) : NULL;
	size_t got;
	struct vfio_user_req req = {
		.cmd = VFIO_USER_DEVICE_FEATURE,
		.iov = { { &q, sizeof(q) }, { (void *)in, in_len } }, .iovcnt = 2,
	};
	struct vfio_user_rep rep = {
		.iov = { { &r, sizeof(r) }, { out, out_cap }, { scratch, spare } }, .iovcnt = 3,
	};
	int ret;

	if (out_len)
		*out_len = 0;
	if (data > u->xfer_max) {
		free(scratch);
		return -EMSGSIZE;
	}
	ret = vfio_user_call(&u->conn, &req, &rep);
	free(scratch);
	if (ret)
		return ret;
	if (rep.len < sizeof(r)) {
		pr_err("vfio-user %s: DEVICE_FEATURE reply is %zu bytes", dev->name, rep.len);
		return -EPROTO;
	}
	got = MIN(rep.len - sizeof(r), out_cap);
	/* data_fd means nothing over vfio-user: never let a caller see one */
	if ((flags & VFIO_DEVICE_FEATURE_MASK) == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
	    got >= sizeof(struct vfio_device_feature_mig_state)) {
		int32_t none = -1;

		memcpy((char *)out + offsetof(struct vfio_device_feature_mig_state, data_fd),
		       &none, sizeof(none));
	}
	if (out_len)
		*out_len = got;
	return 0;
}

ssize_t vu_mig_data_read(struct vfio_device *dev, void *buf, size_t len)
{
	struct vfio_user_device *u = to_udev(dev);
	uint32_t n = MIN(len, u->xfer_max);
	struct vfio_user_mig_data q = { .argsz = sizeof(q) + n, .size = n }, r;
	struct vfio_user_req req = {
		.cmd = VFIO_USER_MIG_DATA_READ, .iov = { { &q, sizeof(q) } }, .iovcnt = 1,
	};
	struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) }, { buf, n } }, .iovcnt = 2 };
	int ret = vfio_user_call(&u->conn, &req, &rep);

	if (ret)
		return ret;
	/* libvfio-user pads a short read to the size asked: size is what counts */
	if (rep.len < sizeof(r) || r.size > n || rep.len < sizeof(r) + r.size) {
		pr_err("vfio-user %s: MIG_DATA_READ reply of %zu bytes claims %u", dev->name,
		       rep.len, r.size);
		return -EPROTO;
	}
	return r.size;
}

int vu_mig_data_write(struct vfio_device *dev, const void *buf, size_t len)
{
	struct vfio_user_device *u = to_udev(dev);

	while (len) {
		uint32_t n = MIN(len, u->xfer_max);
		struct vfio_user_mig_data q = { .argsz = sizeof(q) + n, .size = n }, r;
		struct vfio_user_req req = {
			.cmd = VFIO_USER_MIG_DATA_WRITE,
			.iov = { { &q, sizeof(q) }, { (void *)buf, n } }, .iovcnt = 2,
		};
		struct vfio_user_rep rep = { .iov = { { &r, sizeof(r) } }, .iovcnt = 1 };
		int ret = vfio_user_call(&u->conn, &req, &rep);

		if (ret)
			return ret;
		buf = (const char *)buf + n;
		len -= n;
	}
	return 0;
}

/*
 * vfio-user has no data_fd to issue VFIO_MIG_GET_PRECOPY_INFO on: hdnic
 * answers the same two numbers as its vendor feature (hdnic_vf_abi.h);
 * another server does not know it (-ENOTSUP: the caller reads blind).
 */
int vu_mig_precopy_info(struct vfio_device *dev, uint64_t *initial, uint64_t *dirty)
{
	struct hdnic_precopy_info pi = { 0 };
	size_t got = 0;
	int ret = vu_feature(dev, VFIO_DEVICE_FEATURE_GET | HDNIC_FEATURE_PRECOPY_INFO, NULL, 0,
			     &pi, sizeof(pi), &got);

	if (ret == -ENOTTY || ret == -ENOSYS || ret == -EOPNOTSUPP)
		ret = -ENOTSUP;
	if (!ret && got < sizeof(pi))
		ret = -EPROTO;
	*initial = ret ? 0 : pi.initial_bytes;
	*dirty = ret ? 0 : pi.dirty_bytes;
	return ret;
}
