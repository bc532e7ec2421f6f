// SPDX-License-Identifier: MIT
/*
 * RAM above the MMIO hole.  The static page tables stop at 4 GiB, so an app
 * that wants the first GiB above the hole maps it here: a page directory of
 * 2 MiB pages hooked into the PDPT from ring 3 (every paging level has the
 * user bit, like phys_copy's edit of page 0).  The PDPT entry was not
 * present and a non-present entry is never cached, so no TLB flush.
 */
#include "devices/platform.h"
#include "guest/cpu.h"
#include "guest/io.h"

#define PTE_P		0x001
#define PTE_W		0x002
#define PTE_U		0x004
#define PTE_PS		0x080

extern uint64_t pdpt[512];
static uint64_t pd_high[512] __attribute__((aligned(4096)));

void *highmem_map(void)
{
	volatile uint64_t *slot = &pdpt[PLAT_MMIO_HOLE_END >> 30];

	if (!(*slot & PTE_P)) {
		for (unsigned i = 0; i < 512; i++)
			pd_high[i] = (PLAT_MMIO_HOLE_END + ((uint64_t)i << 21)) |
				     PTE_P | PTE_W | PTE_U | PTE_PS;
		barrier();	/* the directory before the entry that points at it */
		*slot = (uint64_t)(uintptr_t)pd_high | PTE_P | PTE_W | PTE_U;
	}
	return (void *)(uintptr_t)PLAT_MMIO_HOLE_END;
}
