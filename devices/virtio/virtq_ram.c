// SPDX-License-Identifier: MIT
/*
 * The ring library bound to guest RAM, for hdvm's own virtio devices: a
 * ring or buffer address is a GPA that must lie entirely inside one RAM
 * range (gpa_to_hva), and every write the device makes is reported to the
 * guest-memory owner so dirty logging sees it.
 */
#include "devices/virtio/virtq.h"
#include "vmm/memory.h"

/* hdvm's devices may read and write all of guest RAM: access needs no check. */
static void *ram_translate(void *m, uint64_t gpa, uint64_t len, uint32_t access)
{
	return gpa_to_hva(m, gpa, len);
}

static const struct vq_mem_ops ram_ops = {
	.translate = ram_translate,
};

struct vq_mem vq_guest_ram(struct guest_mem *m)
{
	return (struct vq_mem){ .ops = &ram_ops, .opaque = m };
}
