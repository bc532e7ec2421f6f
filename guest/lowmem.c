// SPDX-License-Identifier: MIT
/*
 * Reads of guest-physical page 0.  hdguest leaves page 0 unmapped so NULL
 * dereferences fault, but some loaders put boot data there (QEMU's PVH
 * memory map on -M pc lands at 0x5a8).  The page is mapped read-only for
 * the copy and unmapped again; a non-present entry is never cached by the
 * TLB, so only the unmap needs a flush (one short syscall).
 */
#include "guest/cpu.h"
#include "guest/lib.h"

#define PTE_P	0x001
#define PTE_U	0x004

extern uint64_t pt_low[512];

bool phys_copy(void *dst, uint64_t addr, uint64_t len)
{
	volatile uint64_t *pte0 = &pt_low[0];
	uint64_t head;

	if (addr >= PHYS_MAPPED_END || len > PHYS_MAPPED_END - addr)
		return false;
	if (addr < PHYS_MAPPED_START && len) {
		head = MIN(len, PHYS_MAPPED_START - addr);
		*pte0 = PTE_P | PTE_U;
		memcpy(dst, (const void *)addr, head);
		*pte0 = 0;
		syscall1(SYS_INVLPG, 0);
		dst = (uint8_t *)dst + head;
		addr += head;
		len -= head;
	}
	if (len)
		memcpy(dst, (const void *)addr, len);
	return true;
}
