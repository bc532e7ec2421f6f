// SPDX-License-Identifier: MIT
/*
 * PVH boot (Xen's HVM direct boot ABI, also used by QEMU and Firecracker): the
 * kernel's 32-bit entry from its ELF note is entered in flat protected mode
 * with ebx pointing at struct hvm_start_info.  Version 1 carries the memory
 * map, so no e820 or zero page is needed.
 *
 * One page at PLAT_PVH_INFO_ADDR holds start_info, the module list (the
 * initrd) and the memory map.
 */
#include <errno.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/boot/pvh.h"
#include "vmm/memory.h"
#include "vmm/util.h"

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info v1 is 56 bytes");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry is 24 bytes");
_Static_assert(PVH_MEMMAP_OFFSET + PVH_MEMMAP_MAX * sizeof(struct hvm_memmap_table_entry)
	       <= BOOT_PAGE_SIZE, "PVH memory map fits its page");

static int pvh_memmap(const struct guest_mem *mem, uint8_t *page, struct hvm_start_info *si)
{
	struct e820_entry_le ents[PVH_MEMMAP_MAX];
	struct hvm_memmap_table_entry *map = (void *)(page + PVH_MEMMAP_OFFSET);
	int n = e820_build(mem, ents, PVH_MEMMAP_MAX);

	if (n < 0)
		return n;
	if (n > PVH_MEMMAP_MAX) {
		pr_err("PVH memory map has %d entries, room for %d", n, PVH_MEMMAP_MAX);
		return -ENOSPC;
	}
	for (int i = 0; i < n; i++) {
		map[i].addr = ents[i].addr;
		map[i].size = ents[i].size;
		map[i].type = ents[i].type;
		map[i].reserved = 0;
	}
	si->memmap_paddr = PLAT_PVH_INFO_ADDR + PVH_MEMMAP_OFFSET;
	si->memmap_entries = n;
	return 0;
}

uint64_t pvh_info_write(struct guest_mem *mem, const struct boot_layout *l)
{
	uint8_t *page = gpa_to_hva(mem, PLAT_PVH_INFO_ADDR, BOOT_PAGE_SIZE);
	struct hvm_start_info *si = (void *)page;

	if (!page) {
		pr_err("PVH start_info at 0x%llx is outside guest RAM", PLAT_PVH_INFO_ADDR);
		return 0;
	}
	memset(page, 0, BOOT_PAGE_SIZE);
	si->magic = HVM_START_MAGIC_VALUE;
	si->version = HVM_START_INFO_VERSION;
	si->cmdline_paddr = l->cmdline_gpa;
	if (l->initrd_size) {
		struct hvm_modlist_entry *mod = (void *)(page + PVH_MODLIST_OFFSET);

		mod->paddr = l->initrd_gpa;
		mod->size = l->initrd_size;
		si->nr_modules = 1;
		si->modlist_paddr = PLAT_PVH_INFO_ADDR + PVH_MODLIST_OFFSET;
	}
	if (pvh_memmap(mem, page, si))
		return 0;
	return PLAT_PVH_INFO_ADDR;
}

static uint64_t pvh_entry(const struct loaded_kernel *k, const char *path)
{
	if (k->is_bzimage) {
		pr_err("%s: PVH boot needs an ELF kernel with a PVH entry note; this is a bzImage",
		       path);
		return 0;
	}
	if (!k->pvh_entry) {
		pr_err("%s: PVH boot requested but the ELF has no PVH entry note (Xen note XEN_ELFNOTE_PHYS32_ENTRY)",
		       path);
		return 0;
	}
	return k->pvh_entry;
}

const struct boot_protocol pvh_boot_protocol = {
	.name = "pvh",
	.proto = BOOT_PVH,
	.entry = pvh_entry,
	.write_info = pvh_info_write,
	.setup_cpu = cpu_setup_protected_mode,
};
