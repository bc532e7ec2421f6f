// SPDX-License-Identifier: MIT
/*
 * Backend-independent VFIO pieces: region-info capability parsing (the same
 * bytes come from an ioctl or from a vfio-user reply), mmap range checks and
 * the release helpers of the plain-data descriptions.
 */
#include "devices/vfio/vfio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/util.h"

void vfio_device_base_init(struct vfio_device *dev, const struct vfio_backend_ops *ops,
			   const char *name)
{
	dev->ops = ops;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	atomic_init(&dev->dead, false);
}

void vfio_device_mark_dead(struct vfio_device *dev, const char *why, int err)
{
	if (!atomic_exchange(&dev->dead, true))
		pr_err("vfio %s: device lost: %s (%s)", dev->name, why, strerror(-err));
}

void vfio_region_release(struct vfio_region *r)
{
	if (!r)
		return;
	free(r->sparse);
	r->sparse = NULL;
	r->nr_sparse = 0;
	if (r->owns_fd && r->mmap_fd >= 0)
		close(r->mmap_fd);
	r->mmap_fd = -1;
	r->owns_fd = false;
}

void vfio_ioeventfds_free(struct vfio_ioeventfd *evs, unsigned nr)
{
	for (unsigned i = 0; evs && i < nr; i++)
		if (evs[i].fd >= 0)
			close(evs[i].fd);
	free(evs);
}

static int parse_sparse(const char *who, const uint8_t *cap, size_t avail,
			struct vfio_region *out)
{
	struct vfio_region_info_cap_sparse_mmap sm;
	struct vfio_region_sparse_mmap_area area;

	if (avail < sizeof(sm)) {
		pr_err("vfio %s: region %u: truncated sparse-mmap capability", who, out->index);
		return -EPROTO;
	}
	memcpy(&sm, cap, sizeof(sm));
	if (sm.header.version != 1 || sm.nr_areas > VFIO_MAX_SPARSE_AREAS ||
	    sm.nr_areas * sizeof(area) > avail - sizeof(sm)) {
		pr_err("vfio %s: region %u: bad sparse-mmap capability (version %u, %u areas)",
		       who, out->index, sm.header.version, sm.nr_areas);
		return -EPROTO;
	}
	if (out->sparse) {
		pr_err("vfio %s: region %u: two sparse-mmap capabilities", who, out->index);
		return -EPROTO;
	}
	out->sparse = xzalloc((sm.nr_areas ? sm.nr_areas : 1) * sizeof(*out->sparse));
	for (uint32_t i = 0; i < sm.nr_areas; i++) {
		memcpy(&area, cap + sizeof(sm) + i * sizeof(area), sizeof(area));
		if (area.offset > out->size || area.size > out->size - area.offset) {
			pr_err("vfio %s: region %u: sparse area %#llx+%#llx outside the region",
			       who, out->index, (unsigned long long)area.offset,
			       (unsigned long long)area.size);
			return -EPROTO;
		}
		if (!area.size)
			continue;
		out->sparse[out->nr_sparse].offset = area.offset;
		out->sparse[out->nr_sparse].size = area.size;
		out->nr_sparse++;
	}
	return 0;
}

static int parse_caps(const char *who, const uint8_t *buf, size_t len, uint32_t first,
		      struct vfio_region *out)
{
	struct vfio_info_cap_header hdr;
	struct vfio_region_info_cap_type type;
	uint32_t off = first;
	unsigned hops = 0;
	int ret;

	while (off) {
		/* next pointers must move forward: no loops, no overlap with the info struct */
		if (off < sizeof(struct vfio_region_info) || off > len ||
		    len - off < sizeof(hdr) || ++hops > 64) {
			pr_err("vfio %s: region %u: capability at %u outside the %zu-byte reply",
			       who, out->index, off, len);
			return -EPROTO;
		}
		memcpy(&hdr, buf + off, sizeof(hdr));
		switch (hdr.id) {
		case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
			ret = parse_sparse(who, buf + off, len - off, out);
			if (ret)
				return ret;
			break;
		case VFIO_REGION_INFO_CAP_TYPE:
			if (len - off < sizeof(type))
				return -EPROTO;
			memcpy(&type, buf + off, sizeof(type));
			out->has_type = true;
			out->type = type.type;
			out->subtype = type.subtype;
			break;
		case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
			out->msix_mappable = true;
			break;
		default:	/* unknown capabilities are skipped, as the kernel ABI intends */
			break;
		}
		if (hdr.next && hdr.next <= off) {
			pr_err("vfio %s: region %u: capability chain goes backwards", who, out->index);
			return -EPROTO;
		}
		off = hdr.next;
	}
	return 0;
}

int vfio_region_parse(const char *who, const void *buf, size_t len, uint32_t index,
		      struct vfio_region *out)
{
	struct vfio_region_info info;
	int ret;

	memset(out, 0, sizeof(*out));
	out->mmap_fd = -1;
	out->index = index;
	if (len < sizeof(info)) {
		pr_err("vfio %s: region %u: info is %zu bytes, need %zu", who, index, len,
		       sizeof(info));
		return -EPROTO;
	}
	memcpy(&info, buf, sizeof(info));
	if (info.index != index) {
		pr_err("vfio %s: asked for region %u, got region %u", who, index, info.index);
		return -EPROTO;
	}
	if (info.size && info.offset + info.size < info.offset) {
		pr_err("vfio %s: region %u: offset+size overflows", who, index);
		return -EPROTO;
	}
	out->flags = info.flags;
	out->size = info.size;
	out->offset = info.offset;
	/* caps that did not fit in argsz are simply absent from this copy */
	if ((info.flags & VFIO_REGION_INFO_FLAG_CAPS) && info.cap_offset &&
	    info.argsz <= len) {
		ret = parse_caps(who, buf, MIN((size_t)info.argsz, len), info.cap_offset, out);
		if (ret) {
			vfio_region_release(out);
			return ret;
		}
	}
	return 0;
}

int vfio_region_check_mmap(const struct vfio_region *r, uint64_t offset, uint64_t size)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP) || r->mmap_fd < 0)
		return -EACCES;
	if (!size || (offset | size) & (page - 1))
		return -EINVAL;
	if (offset > r->size || size > r->size - offset)
		return -ERANGE;
	if (!r->sparse)
		return 0;
	for (unsigned i = 0; i < r->nr_sparse; i++) {
		const struct vfio_sparse_area *a = &r->sparse[i];

		if (offset >= a->offset && offset - a->offset <= a->size &&
		    size <= a->size - (offset - a->offset))
			return 0;
	}
	return -EACCES;
}

int vfio_irq_set_flags_valid(uint32_t flags)
{
	uint32_t data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	if (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
		return 0;
	/* exactly one bit of each group */
	return data && !(data & (data - 1)) && action && !(action & (action - 1));
}
