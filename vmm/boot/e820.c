// SPDX-License-Identifier: MIT
/*
 * The e820 memory map both boot protocols hand to the kernel.  Base memory
 * stops at the EBDA (where the MP table lives); everything from there to
 * 1 MiB is reserved, as on a PC with its VGA window and BIOS ROM.
 */
#include <errno.h>
#include <asm/e820.h>

#include "devices/platform.h"
#include "vmm/boot/boot.h"
#include "vmm/memory.h"
#include "vmm/util.h"

static void e820_add(struct e820_entry_le *ents, int max, int *n, uint64_t addr,
		     uint64_t size, uint32_t type)
{
	if (*n < max) {
		ents[*n].addr = addr;
		ents[*n].size = size;
		ents[*n].type = type;
	}
	(*n)++;
}

int e820_build(const struct guest_mem *mem, struct e820_entry_le *ents, int max)
{
	int n = 0;

	if (mem->low_size <= PLAT_BIOS_END) {
		pr_err("guest RAM below 4 GiB (%llu KiB) ends inside the first MiB",
		       (unsigned long long)(mem->low_size >> 10));
		return -EINVAL;
	}
	e820_add(ents, max, &n, 0, PLAT_EBDA_START, E820_RAM);
	e820_add(ents, max, &n, PLAT_EBDA_START, PLAT_BIOS_END - PLAT_EBDA_START, E820_RESERVED);
	e820_add(ents, max, &n, PLAT_BIOS_END, mem->low_size - PLAT_BIOS_END, E820_RAM);
	if (mem->high_size)
		e820_add(ents, max, &n, PLAT_MMIO_HOLE_END, mem->high_size, E820_RAM);
	return n;
}
