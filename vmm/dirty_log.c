// SPDX-License-Identifier: MIT
#include "vmm/dirty_log.h"

#include <errno.h>
#include <stdlib.h>

#include "devices/device.h"
#include "vmm/memory.h"
#include "vmm/vm.h"

int vm_dirty_log_start(struct vm *vm)
{
	int ret = guest_mem_log_start(&vm->mem, -1);

	if (ret)
		return ret;
	ret = devices_dirty_log_start(vm);	/* it stops the devices it started */
	if (ret)
		guest_mem_log_stop(&vm->mem, -1);
	return ret;
}

int vm_dirty_log_stop(struct vm *vm)
{
	int dev = devices_dirty_log_stop(vm);
	int mem = guest_mem_log_stop(&vm->mem, -1);

	return dev ? dev : mem;
}

static void mark_dma(void *opaque, uint64_t gpa, uint64_t len)
{
	guest_mem_mark_dirty(opaque, gpa, len);
}

struct sync_ctx {
	struct vm *vm;
	int (*fn)(const struct mem_slot *s, const uint64_t *bitmap, void *opaque);
	void *opaque;
};

static int sync_slot(const struct mem_slot *s, void *opaque)
{
	struct sync_ctx *c = opaque;
	uint64_t *bitmap = calloc(guest_mem_bitmap_words(s), sizeof(uint64_t));
	int ret;

	if (!bitmap)
		return -ENOMEM;
	ret = guest_mem_log_sync(&c->vm->mem, (int)s->id, bitmap);
	if (!ret)
		ret = c->fn(s, bitmap, c->opaque);
	free(bitmap);
	return ret;
}

int vm_dirty_log_sync(struct vm *vm,
		      int (*fn)(const struct mem_slot *s, const uint64_t *bitmap, void *opaque),
		      void *opaque)
{
	struct sync_ctx c = { vm, fn, opaque };
	int ret = devices_dirty_log_sync(vm, mark_dma, &vm->mem);

	return ret ? ret : guest_mem_for_each_ram(&vm->mem, sync_slot, &c);
}
