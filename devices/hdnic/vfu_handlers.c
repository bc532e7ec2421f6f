// SPDX-License-Identifier: MIT
/*
 * vfio-user commands: one handler per command in a table indexed by the
 * command number.  The dispatcher checks what every command shares (type
 * flags, negotiation, minimum size, fd count); each handler checks the rest.
 * Handlers and the dispatcher return 0 or -errno.
 *
 * argsz follows the spec's "at least" rule everywhere: a request may carry
 * more than the fixed struct (a client that sends its whole buffer, room for
 * capabilities), the extra bytes are ignored, and a reply's argsz says how
 * much the full answer needs when the client's room was too small.
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

struct vfu_cmd {
	const char *name;
	uint32_t min_len;	/* payload bytes */
	uint8_t max_fds;
	bool before_version;
	int (*handle)(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r);
};

static uint8_t reply_buf[VFU_REPLY_CAP];

uint8_t *vfu_reply_buf(void)
{
	return reply_buf;
}

static void reply_put(struct vfu_reply *r, const void *p, uint32_t len)
{
	memcpy(r->buf + r->len, p, len);
	r->len += len;
}

/* ---- VERSION ---- */

static int h_version(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_version v;
	int err, n;

	if (c->negotiated)
		return -EINVAL;		/* exactly once per connection */
	memcpy(&v, m->payload, sizeof(v));
	if (v.major != VFIO_USER_MAJOR)
		return -ENOTSUP;
	err = vfu_caps_parse(c, (const char *)m->payload + sizeof(v), m->len - sizeof(v));
	if (err)
		return err;
	v.minor = MIN(v.minor, VFIO_USER_MINOR);
	reply_put(r, &v, sizeof(v));
	n = vfu_caps_reply(c, (char *)r->buf + r->len, 4096);
	if (n < 0)
		return n;
	r->len += n;
	c->negotiated = true;
	return 0;
}

/* ---- DMA ---- */

static int h_dma_map(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vdev *vd = conn_vdev(c);
	struct vfio_user_dma_map q;
	uint32_t prot = 0;
	int err;

	memcpy(&q, m->payload, sizeof(q));
	if (q.argsz < sizeof(q))
		return -EINVAL;
	if (q.flags & ~(VFIO_USER_DMA_MAP_F_READ | VFIO_USER_DMA_MAP_F_WRITE))
		return -EINVAL;
	if (q.flags & VFIO_USER_DMA_MAP_F_READ)
		prot |= DMA_PROT_READ;
	if (q.flags & VFIO_USER_DMA_MAP_F_WRITE)
		prot |= DMA_PROT_WRITE;
	/*
	 * Without an fd the spec has the server use DMA_READ/WRITE messages.
	 * Clients map that way what is not shared memory (QEMU: ROMs, RAM not
	 * backed by a file): the function goes on the slow path (dma_slow.h).
	 */
	if (!m->nr_fds) {
		err = dma_slow_create(vd);
		if (!err)
			err = dma_space_map_nofd(&vd->as, q.address, q.size, prot);
	} else
		err = dma_space_map_fd(&vd->as, q.address, q.size, m->fds[0], q.offset, prot);
	if (err)
		return err;
	vdev_dma_changed(vd);
	return 0;
}

static int h_dma_unmap(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vdev *vd = conn_vdev(c);
	struct vfio_user_dma_unmap q;
	int err = 0;

	memcpy(&q, m->payload, sizeof(q));
	if (q.argsz < sizeof(q))
		return -EINVAL;
	if (q.flags & ~VFIO_USER_DMA_UNMAP_F_ALL)
		return -EINVAL;	/* dirty bitmaps are not supported */
	if (q.flags & VFIO_USER_DMA_UNMAP_F_ALL) {
		if (q.address || q.size)
			return -EINVAL;
		dma_space_unmap_all(&vd->as);
	} else {
		err = dma_space_unmap(&vd->as, q.address, q.size);
	}
	if (err)
		return err;
	/* Rings that lived there are gone: no access survives this reply. */
	vdev_dma_changed(vd);
	reply_put(r, &q, sizeof(q));
	return 0;
}

/* ---- device, region and IRQ info ---- */

static int h_device_get_info(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct { uint32_t argsz, flags, num_regions, num_irqs; } info;

	memcpy(&info, m->payload, sizeof(info));
	if (info.argsz < sizeof(info))
		return -EINVAL;
	info.argsz = sizeof(info);
	info.flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	reply_put(r, &info, sizeof(info));
	return 0;
}

static int h_get_region_info(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vdev *vd = conn_vdev(c);
	struct vfio_region_info q, info = { 0 };
	/* vfio_region_info_cap_sparse_mmap with its one area, spelled out */
	struct {
		struct vfio_info_cap_header header;
		uint32_t nr_areas, reserved;
		struct vfio_region_sparse_mmap_area area;
	} cap = { 0 };
	bool mappable = c->peer_max_fds >= 1 && vd->db_fd >= 0;

	memcpy(&q, m->payload, sizeof(q));
	if (q.argsz < sizeof(q))
		return -EINVAL;
	if (q.index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	info.argsz = sizeof(info);
	info.index = q.index;
	if (q.index == VFIO_PCI_BAR0_REGION_INDEX) {
		info.size = HDNIC_BAR0_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		info.offset = 0;	/* mmap offset within the doorbell memfd */
		if (mappable) {
			info.flags |= VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
			info.argsz = sizeof(info) + sizeof(cap);
		}
	} else if (q.index == VFIO_PCI_CONFIG_REGION_INDEX) {
		info.size = VDEV_CFG_REGION_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	}
	/* Capabilities and the fd only when the client made room for them. */
	if (info.argsz > sizeof(info) && q.argsz >= info.argsz) {
		info.cap_offset = sizeof(info);
		cap.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
		cap.header.version = 1;
		cap.header.next = 0;
		cap.nr_areas = 1;
		cap.area.offset = HDNIC_BAR0_DOORBELL_OFF;
		cap.area.size = HDNIC_PAGE_SIZE;
		reply_put(r, &info, sizeof(info));
		reply_put(r, &cap, sizeof(cap));
		r->fds[r->nr_fds++] = vd->db_fd;
		return 0;
	}
	reply_put(r, &info, sizeof(info));
	return 0;
}

static int h_get_region_io_fds(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vdev *vd = conn_vdev(c);
	struct vfio_user_region_io_fds_request q;
	struct vfio_user_region_io_fds_reply rep;
	unsigned n = 0, nfds;

	memcpy(&q, m->payload, sizeof(q));
	if (q.argsz < sizeof(q) || q.flags)
		return -EINVAL;
	if (q.index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	if (q.index == VFIO_PCI_BAR0_REGION_INDEX && c->peer_max_fds && vd->kick[0].fd >= 0)
		n = vdev_nr_kick_queues(vd);
	/* One eventfd per queue while they last; queue i then shares fd i % nfds. */
	nfds = MIN(MIN(n, vd->nr_kicks), c->peer_max_fds);
	rep.argsz = sizeof(rep) + n * sizeof(struct vfio_user_sub_region_ioeventfd);
	rep.flags = 0;
	rep.index = q.index;
	rep.count = n;
	if (q.argsz < rep.argsz) {	/* tell the client how much room it needs */
		reply_put(r, &rep, sizeof(rep));
		return 0;
	}
	reply_put(r, &rep, sizeof(rep));
	for (unsigned i = 0; i < n; i++) {
		struct vfio_user_sub_region_ioeventfd s = {
			.offset = HDNIC_BAR0_NOTIFY_OFF + i * HDNIC_NOTIFY_MULTIPLIER,
			.size = 2,	/* virtio notify writes are 16-bit */
			.fd_index = i % nfds,
			.type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
		};

		reply_put(r, &s, sizeof(s));
	}
	for (unsigned i = 0; i < nfds; i++)
		r->fds[r->nr_fds++] = vd->kick[i].fd;
	if (nfds)
		vd->kick_fold = nfds;
	return 0;
}

static int h_get_irq_info(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_irq_info q;

	memcpy(&q, m->payload, sizeof(q));
	if (q.argsz < sizeof(q))
		return -EINVAL;
	if (q.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	q.argsz = sizeof(q);
	q.flags = 0;
	q.count = 0;
	/* A VF or an ADI has no INTx, no MSI: only MSI-X. */
	if (q.index == VFIO_PCI_MSIX_IRQ_INDEX) {
		q.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		q.count = conn_vdev(c)->nr_vectors;
	}
	reply_put(r, &q, sizeof(q));
	return 0;
}

static int set_irqs_mask(struct vdev *vd, const struct vfio_irq_set *q, const uint8_t *data,
			 bool mask)
{
	for (uint32_t i = 0; i < q->count; i++) {
		if ((q->flags & VFIO_IRQ_SET_DATA_BOOL) && !data[i])
			continue;
		vdev_set_irq_mask(vd, q->start + i, mask);
	}
	vdev_flush_irqs(vd);
	return 0;
}

static int h_set_irqs(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vdev *vd = conn_vdev(c);
	struct vfio_irq_set q;
	uint32_t data_type, action;
	const uint8_t *data = m->payload + sizeof(q);
	uint32_t data_len = m->len - sizeof(q);

	memcpy(&q, m->payload, sizeof(q));
	/* The data is what the message carries; eventfds never count (SCM_RIGHTS). */
	if (q.argsz < sizeof(q))
		return -EINVAL;
	data_type = q.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	action = q.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	if (q.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
		return -EINVAL;
	if (__builtin_popcount(data_type) != 1 || __builtin_popcount(action) != 1)
		return -EINVAL;
	if (q.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	if (q.index != VFIO_PCI_MSIX_IRQ_INDEX)
		return q.count ? -EINVAL : 0;
	if ((uint64_t)q.start + q.count > vd->nr_vectors)
		return -EINVAL;
	if (data_type == VFIO_IRQ_SET_DATA_BOOL && data_len != q.count)
		return -EINVAL;
	if (data_type != VFIO_IRQ_SET_DATA_BOOL && data_len)
		return -EINVAL;	/* eventfds travel as SCM_RIGHTS, never inline */
	if (data_type != VFIO_IRQ_SET_DATA_EVENTFD && m->nr_fds)
		return -EINVAL;

	switch (action) {
	case VFIO_IRQ_SET_ACTION_MASK:
	case VFIO_IRQ_SET_ACTION_UNMASK:
		if (data_type == VFIO_IRQ_SET_DATA_EVENTFD)
			return -EINVAL;
		return set_irqs_mask(vd, &q, data, action == VFIO_IRQ_SET_ACTION_MASK);
	default:	/* TRIGGER */
		break;
	}
	if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
		int err;

		/* No fds de-assigns the range; otherwise exactly one per vector. */
		if (m->nr_fds && m->nr_fds != q.count)
			return -EINVAL;
		if (!m->nr_fds && !q.count) {
			vdev_clear_irq_fds(vd);
			return 0;
		}
		err = vdev_set_irq_fds(vd, q.start, q.count, m->nr_fds ? m->fds : NULL);
		if (!err)
			for (unsigned i = 0; i < m->nr_fds; i++)
				m->fds[i] = -1;	/* the VF owns them now */
		return err;
	}
	if (data_type == VFIO_IRQ_SET_DATA_NONE && !q.count) {
		if (q.start)
			return -EINVAL;
		vdev_clear_irq_fds(vd);	/* count 0 + NONE: disable the index */
		return 0;
	}
	for (uint32_t i = 0; i < q.count; i++)
		if (data_type == VFIO_IRQ_SET_DATA_NONE || data[i])
			vdev_raise(vd, q.start + i);
	vdev_flush_irqs(vd);
	return 0;
}

/* ---- region access ---- */

static int region_size(uint32_t region, uint64_t *size)
{
	switch (region) {
	case VFIO_PCI_BAR0_REGION_INDEX:
		*size = HDNIC_BAR0_SIZE;
		return 0;
	case VFIO_PCI_CONFIG_REGION_INDEX:
		*size = VDEV_CFG_REGION_SIZE;
		return 0;
	default:
		return -EINVAL;	/* absent regions have nothing to access */
	}
}

static int region_access(struct vdev *vd, uint32_t region, uint64_t off, void *data,
			 uint32_t count, bool write)
{
	uint64_t size;
	int err = region_size(region, &size);

	if (err)
		return err;
	if (!count || off >= size || count > size - off)
		return -EINVAL;
	if (region == VFIO_PCI_CONFIG_REGION_INDEX)
		return write ? vdev_pci_write(vd, off, data, count) : vdev_pci_read(vd, off, data, count);
	return write ? vdev_bar0_write(vd, off, data, count) : vdev_bar0_read(vd, off, data, count);
}

static int h_region_read(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access q;
	int err;

	memcpy(&q, m->payload, sizeof(q));
	if (m->len != sizeof(q))
		return -EINVAL;
	if (q.count > MIN(c->peer_max_xfer, (uint32_t)HDNIC_VFU_MAX_XFER))
		return -E2BIG;
	reply_put(r, &q, sizeof(q));
	err = region_access(conn_vdev(c), q.region, q.offset, r->buf + r->len, q.count, false);
	if (err)
		return err;
	r->len += q.count;
	return 0;
}

static int h_region_write(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_region_access q;
	int err;

	memcpy(&q, m->payload, sizeof(q));
	if (m->len != sizeof(q) + (uint64_t)q.count)
		return -EINVAL;
	/* What VERSION announced we take, exactly as for reads. */
	if (q.count > MIN(c->peer_max_xfer, (uint32_t)HDNIC_VFU_MAX_XFER))
		return -E2BIG;
	err = region_access(conn_vdev(c), q.region, q.offset, m->payload + sizeof(q), q.count, true);
	if (err)
		return err;
	reply_put(r, &q, sizeof(q));
	return 0;
}

/* REGION_WRITE_MULTI: u64 count, then {u64 offset; u32 region; u32 count; u8 data[8]} */
struct vfu_write_multi_entry {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[8];
} __attribute__((packed));

static int h_region_write_multi(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	uint64_t n;

	if (!c->write_multiple)
		return -ENOTSUP;
	memcpy(&n, m->payload, sizeof(n));
	if (!n || n > 256 || m->len != sizeof(n) + n * sizeof(struct vfu_write_multi_entry))
		return -EINVAL;
	for (uint64_t i = 0; i < n; i++) {
		struct vfu_write_multi_entry e;
		int err;

		memcpy(&e, m->payload + sizeof(n) + i * sizeof(e), sizeof(e));
		if (e.count > sizeof(e.data))
			return -EINVAL;
		err = region_access(conn_vdev(c), e.region, e.offset, e.data, e.count, true);
		if (err)
			return err;
	}
	reply_put(r, &n, sizeof(n));
	return 0;
}

/* ---- reset, features, migration ---- */

static int h_device_reset(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	if (m->len)
		return -EINVAL;
	vdev_function_reset(conn_vdev(c));
	return 0;
}

static int h_device_feature(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	struct vfio_user_device_feature q;
	uint32_t known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET |
			 VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
	uint32_t dir;

	memcpy(&q, m->payload, sizeof(q));
	/* argsz is the largest reply the client takes: at least the request. */
	if (q.argsz < m->len)
		return -EINVAL;
	if (q.flags & ~known)
		return -EINVAL;
	dir = q.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
	if (dir == (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) &&
	    !(q.flags & VFIO_DEVICE_FEATURE_PROBE))
		return -EINVAL;
	if (!dir && !(q.flags & VFIO_DEVICE_FEATURE_PROBE))
		return -EINVAL;
	return vfu_device_feature(c, &q, m, r);	/* migration, dirty logging */
}

static int h_wrong_direction(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	return -EINVAL;		/* DMA_READ/WRITE are server-to-client only */
}

static const struct vfu_cmd vfu_cmds[VFIO_USER_MAX_COMMAND] = {
	[VFIO_USER_VERSION] = { "VERSION", sizeof(struct vfio_user_version), 0, true, h_version },
	[VFIO_USER_DMA_MAP] = { "DMA_MAP", sizeof(struct vfio_user_dma_map), 1, false, h_dma_map },
	[VFIO_USER_DMA_UNMAP] = { "DMA_UNMAP", sizeof(struct vfio_user_dma_unmap), 0, false,
				  h_dma_unmap },
	[VFIO_USER_DEVICE_GET_INFO] = { "DEVICE_GET_INFO", 16, 0, false, h_device_get_info },
	[VFIO_USER_DEVICE_GET_REGION_INFO] = { "GET_REGION_INFO", sizeof(struct vfio_region_info),
					       0, false, h_get_region_info },
	[VFIO_USER_DEVICE_GET_REGION_IO_FDS] = {
		"GET_REGION_IO_FDS", sizeof(struct vfio_user_region_io_fds_request), 0, false,
		h_get_region_io_fds },
	[VFIO_USER_DEVICE_GET_IRQ_INFO] = { "GET_IRQ_INFO", sizeof(struct vfio_irq_info), 0, false,
					    h_get_irq_info },
	[VFIO_USER_DEVICE_SET_IRQS] = { "SET_IRQS", sizeof(struct vfio_irq_set),
					VDEV_MAX_VECTORS, false, h_set_irqs },
	[VFIO_USER_REGION_READ] = { "REGION_READ", sizeof(struct vfio_user_region_access), 0, false,
				    h_region_read },
	[VFIO_USER_REGION_WRITE] = { "REGION_WRITE", sizeof(struct vfio_user_region_access), 0,
				     false, h_region_write },
	[VFIO_USER_DMA_READ] = { "DMA_READ", 0, 0, false, h_wrong_direction },
	[VFIO_USER_DMA_WRITE] = { "DMA_WRITE", 0, 0, false, h_wrong_direction },
	[VFIO_USER_DEVICE_RESET] = { "DEVICE_RESET", 0, 0, false, h_device_reset },
	[VFIO_USER_REGION_WRITE_MULTI] = { "REGION_WRITE_MULTI", 8, 0, false,
					   h_region_write_multi },
	[VFIO_USER_DEVICE_FEATURE] = { "DEVICE_FEATURE", sizeof(struct vfio_user_device_feature),
				       0, false, h_device_feature },
	[VFIO_USER_MIG_DATA_READ] = { "MIG_DATA_READ", 8, 0, false, vfu_mig_data_read },
	[VFIO_USER_MIG_DATA_WRITE] = { "MIG_DATA_WRITE", 8, 0, false, vfu_mig_data_write },
};

int vfu_dispatch(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	const struct vfu_cmd *cmd;
	uint32_t known_flags = VFIO_USER_F_TYPE_MASK | VFIO_USER_F_NO_REPLY;
	int err;

	r->len = 0;
	r->nr_fds = 0;
	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND ||
	    (m->hdr.flags & ~known_flags) || m->hdr.error_no)
		return -EINVAL;
	if (m->hdr.command >= VFIO_USER_MAX_COMMAND || !vfu_cmds[m->hdr.command].handle)
		return -ENOSYS;
	cmd = &vfu_cmds[m->hdr.command];
	if (!c->negotiated && !cmd->before_version)
		return -EINVAL;		/* VERSION comes first */
	if (m->len < cmd->min_len)
		return -EINVAL;
	if (m->nr_fds > cmd->max_fds || m->nr_fds > c->offer_max_fds)
		return -EINVAL;
	err = cmd->handle(c, m, r);
	if (err)
		pr_debug("%s: %s: %s", conn_vdev(c)->dev.id, cmd->name, strerror(-err));
	return err;
}
