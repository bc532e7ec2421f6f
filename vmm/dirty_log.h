/* SPDX-License-Identifier: MIT */
/*
 * The VM's dirty pages, for migration and checkpointing: KVM's log (what the
 * vCPUs wrote) OR hdvm's own bitmap (what hdvm's devices wrote through
 * vmm/memory.c) OR each device's DMA log (passthrough devices).
 */
#ifndef HDVM_DIRTY_LOG_H
#define HDVM_DIRTY_LOG_H

#include <stdint.h>

struct mem_slot;
struct vm;

/* All RAM slots and every device that logs; undone if a device refuses. */
int vm_dirty_log_start(struct vm *vm);
int vm_dirty_log_stop(struct vm *vm);
/*
 * Pages written since start or the last sync: devices first (their ranges go
 * into hdvm's bitmap), then each RAM slot's union, handed to fn (bit i of
 * word w = page 64w+i of the slot).  0 or the first -errno.
 */
int vm_dirty_log_sync(struct vm *vm,
		      int (*fn)(const struct mem_slot *s, const uint64_t *bitmap, void *opaque),
		      void *opaque);

#endif
