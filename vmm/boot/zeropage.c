// SPDX-License-Identifier: MIT
/*
 * Linux 64-bit boot protocol: the zero page (struct boot_params) the kernel
 * finds in rsi.  A bzImage brings its own setup header (copied by the loader);
 * for an ELF vmlinux we write the few header fields the kernel looks at.
 */
#include <errno.h>
#include <asm/bootparam.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define BP_BOOT_FLAG		0xaa55
#define BP_HDR_MAGIC		0x53726448	/* "HdrS" */
#define BP_LOADER_UNDEFINED	0xff		/* type_of_loader: no assigned id */
#define BP_KERNEL_ALIGN		(2ULL << 20)

_Static_assert(sizeof(struct boot_params) == BOOT_PAGE_SIZE, "boot_params is one page");
_Static_assert(sizeof(struct boot_e820_entry) == sizeof(struct e820_entry_le),
	       "e820 entry layouts match");

static int zero_page_e820(const struct guest_mem *mem, struct boot_params *bp)
{
	struct e820_entry_le ents[E820_MAX_ENTRIES_ZEROPAGE];
	int n = e820_build(mem, ents, E820_MAX_ENTRIES_ZEROPAGE);

	if (n < 0)
		return n;
	if (n > E820_MAX_ENTRIES_ZEROPAGE) {
		pr_err("e820 map has %d entries, the zero page holds %d", n,
		       E820_MAX_ENTRIES_ZEROPAGE);
		return -ENOSPC;
	}
	memcpy(bp->e820_table, ents, n * sizeof(ents[0]));
	bp->e820_entries = n;
	return 0;
}

uint64_t zero_page_write(struct guest_mem *mem, const struct boot_layout *l)
{
	const struct loaded_kernel *k = l->kernel;
	struct boot_params *bp;

	bp = gpa_to_hva(mem, PLAT_ZERO_PAGE_ADDR, sizeof(*bp));
	if (!bp) {
		pr_err("zero page at 0x%llx is outside guest RAM", PLAT_ZERO_PAGE_ADDR);
		return 0;
	}
	/* A bzImage's page holds its setup header; for ELF it is all zero. */
	memcpy(bp, k->zero_page, sizeof(*bp));
	if (!k->is_bzimage) {
		bp->hdr.boot_flag = BP_BOOT_FLAG;
		bp->hdr.header = BP_HDR_MAGIC;
		bp->hdr.kernel_alignment = BP_KERNEL_ALIGN;
		bp->hdr.cmdline_size = l->cmdline_len;
	}
	bp->hdr.type_of_loader = BP_LOADER_UNDEFINED;
	bp->hdr.cmd_line_ptr = (uint32_t)l->cmdline_gpa;
	bp->ext_cmd_line_ptr = (uint32_t)(l->cmdline_gpa >> 32);
	bp->hdr.ramdisk_image = (uint32_t)l->initrd_gpa;
	bp->ext_ramdisk_image = (uint32_t)(l->initrd_gpa >> 32);
	bp->hdr.ramdisk_size = (uint32_t)l->initrd_size;
	bp->ext_ramdisk_size = (uint32_t)(l->initrd_size >> 32);
	if (zero_page_e820(mem, bp))
		return 0;
	return PLAT_ZERO_PAGE_ADDR;
}

static uint64_t linux64_entry(const struct loaded_kernel *k, const char *path)
{
	return k->entry;
}

const struct boot_protocol linux64_boot_protocol = {
	.name = "linux64",
	.proto = BOOT_LINUX64,
	.entry = linux64_entry,
	.write_info = zero_page_write,
	.setup_cpu = cpu_setup_long_mode,
};
