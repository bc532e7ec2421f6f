// SPDX-License-Identifier: MIT
/*
 * The ring library bound to guest RAM, for hdvm's own virtio devices: a
 * ring or buffer address is a GPA that must lie entirely inside one RAM
 * range, and every write the device makes (used entries, avail_event,
 * filled buffers) is reported to memory.c, which marks the pages dirty
 * while logging is on (vmm/memory.h: the rule for writing guest RAM).
 */
#include "devices/virtio/virtq.h"
#include "vmm/memory.h"

/* hdvm's devices may read and write all of guest RAM: access needs no check. */
static void *ram_translate(void *m, uint64_t gpa, uint64_t len, uint32_t access)
{
	return guest_mem_translate(m, gpa, len);
}

static void ram_written(void *m, uint64_t gpa, uint64_t len)
{
	guest_mem_mark_dirty(m, gpa, len);
}

static const struct vq_mem_ops ram_ops = {
	.translate = ram_translate,
	.written = ram_written,
};

struct vq_mem vq_guest_ram(struct guest_mem *m)
{
	return (struct vq_mem){ .ops = &ram_ops, .opaque = m };
}
