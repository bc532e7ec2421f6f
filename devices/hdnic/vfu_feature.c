// SPDX-License-Identifier: MIT
/*
 * vfio-user DEVICE_FEATURE and MIG_DATA_READ/WRITE: the migration state
 * machine (vdev_mig.c) and the DMA dirty log (dma_dirty.c) of a function.
 * One entry per feature says which directions it takes and how much
 * payload a request must carry; vfu_handlers.c has already checked the
 * flags every feature shares.  A GET reply is the header (argsz grown to
 * the reply) and the feature's data; SET and PROBE replies echo the request
 * (DMA_LOGGING_START with the page size hdnic chose written back).
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/vdev.h"
#include "devices/hdnic/vfu_server.h"
#include "devices/vfio/vfio_compat.h"
#include "vmm/util.h"

struct vfu_feature {
	const char *name;
	uint32_t dirs;		/* VFIO_DEVICE_FEATURE_GET and/or _SET */
	uint32_t min_in;	/* request payload bytes after the header */
	/*
	 * data holds the request payload (in bytes) and has room for cap;
	 * the handler leaves the reply payload there and its length in *out.
	 */
	int (*handle)(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
		      uint32_t *out);
	bool mig;		/* migration or DMA logging: absent on a no_mig function */
};

static int f_migration(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
		       uint32_t *out)
{
	struct vfio_device_feature_migration m = { .flags = VDEV_MIG_FLAGS };

	if (cap < sizeof(m))
		return -EINVAL;
	memcpy(data, &m, sizeof(m));
	*out = sizeof(m);
	return 0;
}

static int f_mig_state(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
		       uint32_t *out)
{
	struct vfio_device_feature_mig_state s;
	int err = 0;

	if (dir == VFIO_DEVICE_FEATURE_SET) {
		if (in < sizeof(s))
			return -EINVAL;
		memcpy(&s, data, sizeof(s));
		err = vdev_mig_set_state(vd, s.device_state);
	} else if (cap < sizeof(s)) {
		return -EINVAL;
	}
	/* data_fd means nothing over vfio-user: session data goes by MIG_DATA_READ/WRITE. */
	s.device_state = vdev_mig_get_state(vd);
	s.data_fd = -1;
	memcpy(data, &s, sizeof(s));
	*out = dir == VFIO_DEVICE_FEATURE_SET ? in : sizeof(s);
	return err;
}

/* MIG_DATA_SIZE: what STOP_COPY would give now. */
static int f_mig_data_size(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in,
			   uint32_t cap, uint32_t *out)
{
	struct vfio_device_feature_mig_data_size m = {
		.stop_copy_length = vdev_mig_stop_copy_size(vd),
	};

	if (cap < sizeof(m))
		return -EINVAL;
	memcpy(data, &m, sizeof(m));
	*out = sizeof(m);
	return 0;
}

/* hdnic's PRECOPY_INFO (hdnic_vf_abi.h): the session's unread bytes in PRE_COPY*. */
static int f_precopy_info(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in,
			  uint32_t cap, uint32_t *out)
{
	struct hdnic_precopy_info pi;
	int err;

	if (cap < sizeof(pi))
		return -EINVAL;
	err = vdev_mig_precopy_info(vd, &pi.initial_bytes, &pi.dirty_bytes);
	if (err)
		return err;
	memcpy(data, &pi, sizeof(pi));
	*out = sizeof(pi);
	return 0;
}

static const struct vfu_feature precopy_info = {
	"PRECOPY_INFO", VFIO_DEVICE_FEATURE_GET, 0, f_precopy_info, true,
};

/* page_size, num_ranges, reserved, then num_ranges {iova, length} inline. */
static int f_log_start(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
		       uint32_t *out)
{
	static uint64_t ranges[DMA_DIRTY_MAX_RANGES][2];	/* single-threaded */
	uint64_t page_size, chosen = DMA_DIRTY_PAGE_SIZE;
	uint32_t nr;
	int err;

	memcpy(&page_size, data, 8);
	memcpy(&nr, data + 8, 4);
	if (!page_size || (page_size & (page_size - 1)))
		return -EINVAL;
	if (nr > DMA_DIRTY_MAX_RANGES)
		return -E2BIG;
	if (in < 16 + 16ULL * nr)
		return -EINVAL;
	memcpy(ranges, data + 16, 16ULL * nr);
	err = dma_dirty_start(&vd->as, ranges, nr);
	if (err)
		return err;
	memcpy(data, &chosen, 8);	/* the granule hdnic logs at */
	*out = in;
	return 0;
}

static int f_log_stop(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
		      uint32_t *out)
{
	*out = in;
	return dma_dirty_stop(&vd->as);
}

/* Request {iova, length, page_size}; reply the same with the bitmap inline after it. */
static int f_log_report(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in, uint32_t cap,
			uint32_t *out)
{
	uint64_t iova, length, page_size, bytes;
	int err;

	memcpy(&iova, data, 8);
	memcpy(&length, data + 8, 8);
	memcpy(&page_size, data + 16, 8);
	if (page_size < DMA_DIRTY_PAGE_SIZE || (page_size & (page_size - 1)))
		return -EINVAL;
	bytes = dma_dirty_report_bytes(length, page_size);
	if (bytes > cap - 24)
		return -E2BIG;
	err = dma_dirty_report(&vd->as, iova, length, page_size, data + 24);
	if (err)
		return err;
	*out = (uint32_t)(24 + bytes);
	return 0;
}

/* hdnic's vendor feature: epochs and commits of the output hold queue (hdnic_vf_abi.h). */
static int f_output_commit(struct vdev *vd, uint32_t dir, uint8_t *data, uint32_t in,
			   uint32_t cap, uint32_t *out)
{
	struct hdnic_output_commit oc;
	struct hdnic_output_status st;

	if (dir == VFIO_DEVICE_FEATURE_GET) {
		if (cap < sizeof(st))
			return -EINVAL;
		vdev_output_status(vd, &st);
		memcpy(data, &st, sizeof(st));
		*out = sizeof(st);
		return 0;
	}
	if (in < sizeof(oc))
		return -EINVAL;
	memcpy(&oc, data, sizeof(oc));
	*out = in;
	return vdev_output_control(vd, oc.op, oc.epoch, oc.max_frames);
}

static const struct vfu_feature output_commit = {
	"OUTPUT_COMMIT", VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET, 0, f_output_commit,
	false,
};

static const struct vfu_feature features[] = {
	[VFIO_DEVICE_FEATURE_MIGRATION] = {
		"MIGRATION", VFIO_DEVICE_FEATURE_GET, 0, f_migration, true },
	[VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE] = {
		"MIG_DEVICE_STATE", VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET, 0,
		f_mig_state, true },
	[VFIO_DEVICE_FEATURE_DMA_LOGGING_START] = {
		"DMA_LOGGING_START", VFIO_DEVICE_FEATURE_SET, 16, f_log_start, true },
	[VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP] = {
		"DMA_LOGGING_STOP", VFIO_DEVICE_FEATURE_SET, 0, f_log_stop, true },
	[VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT] = {
		"DMA_LOGGING_REPORT", VFIO_DEVICE_FEATURE_GET, 24, f_log_report, true },
	[VFIO_DEVICE_FEATURE_MIG_DATA_SIZE] = {
		"MIG_DATA_SIZE", VFIO_DEVICE_FEATURE_GET, 0, f_mig_data_size, true },
};

int vfu_device_feature(struct vfu_conn *c, const struct vfio_user_device_feature *q,
		       struct vfu_msg *m, struct vfu_reply *r)
{
	uint32_t index = q->flags & VFIO_DEVICE_FEATURE_MASK;
	uint32_t dir = q->flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
	uint32_t in = m->len - sizeof(*q), cap, out = 0;
	const struct vfu_feature *f;
	struct vfio_user_device_feature h = *q;
	uint8_t *data = r->buf + sizeof(h);
	int err;

	if (index == HDNIC_FEATURE_OUTPUT_COMMIT)
		f = &output_commit;
	else if (index == HDNIC_FEATURE_PRECOPY_INFO)
		f = &precopy_info;
	else if (index < ARRAY_SIZE(features) && features[index].handle)
		f = &features[index];
	else
		return -EOPNOTSUPP;
	if (f->mig && conn_vdev(c)->no_mig)
		return -ENOTTY;		/* the kernel's answer without mig_ops/log_ops, PROBE too */
	if ((dir & f->dirs) != dir)
		return -EINVAL;		/* known feature, not that way (as the kernel says) */
	cap = MIN(q->argsz, (uint32_t)VFU_REPLY_CAP) - sizeof(h);
	if (q->flags & VFIO_DEVICE_FEATURE_PROBE) {
		memcpy(r->buf, m->payload, m->len);	/* supported: echo */
		r->len = m->len;
		return 0;
	}
	if (in < f->min_in || in > cap)
		return -EINVAL;
	memcpy(data, m->payload + sizeof(h), in);
	err = f->handle(conn_vdev(c), dir, data, in, cap, &out);
	if (err) {
		pr_debug("%s: %s: %s", conn_vdev(c)->dev.id, f->name, strerror(-err));
		return err;
	}
	h.argsz = (uint32_t)sizeof(h) + out;
	memcpy(r->buf, &h, sizeof(h));
	r->len = h.argsz;
	return 0;
}

int vfu_mig_data_read(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_mig_data q;
	uint32_t got = 0;
	int err;

	memcpy(&q, m->payload, sizeof(q));
	if (m->len != sizeof(q) || q.argsz < sizeof(q) || conn_vdev(c)->no_mig)
		return -EINVAL;		/* libvfio-user's answer when migration is off */
	if (q.size > MIN(c->peer_max_xfer, (uint32_t)HDNIC_VFU_MAX_XFER))
		return -E2BIG;
	err = vdev_mig_read(conn_vdev(c), r->buf + sizeof(q), q.size, &got);
	if (err)
		return err;
	/*
	 * size says how much is data (short: the end of the stream); the reply
	 * is as long as asked, zero-padded, as libvfio-user sends it and its
	 * client expects.
	 */
	memset(r->buf + sizeof(q) + got, 0, q.size - got);
	r->len = (uint32_t)sizeof(q) + q.size;
	q.size = got;
	q.argsz = (uint32_t)sizeof(q) + got;
	memcpy(r->buf, &q, sizeof(q));
	return 0;
}

int vfu_mig_data_write(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_mig_data q;

	memcpy(&q, m->payload, sizeof(q));
	if (conn_vdev(c)->no_mig || q.size > HDNIC_VFU_MAX_XFER || m->len != sizeof(q) + q.size || q.argsz != m->len)
		return -EINVAL;
	return vdev_mig_write(conn_vdev(c), m->payload + sizeof(q), q.size);
}
