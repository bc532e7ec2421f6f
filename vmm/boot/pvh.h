/* SPDX-License-Identifier: MIT */
/*
 * PVH start of day ABI (Xen public/arch-x86/hvm/start_info.h, version 1), as
 * written at PLAT_PVH_INFO_ADDR.  All addresses are guest physical.
 */
#ifndef HDVM_BOOT_PVH_H
#define HDVM_BOOT_PVH_H

#include <stdint.h>

#define HVM_START_MAGIC_VALUE	0x336ec578
#define HVM_START_INFO_VERSION	1	/* the first with a memory map */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;		/* array of hvm_modlist_entry */
	uint64_t cmdline_paddr;		/* NUL-terminated */
	uint64_t rsdp_paddr;		/* 0: no ACPI */
	uint64_t memmap_paddr;		/* version 1: array of hvm_memmap_table_entry */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

/* Types are the e820 ones (1 = RAM, 2 = reserved). */
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* Where things sit inside the PVH page. */
#define PVH_MODLIST_OFFSET	0x40
#define PVH_MEMMAP_OFFSET	0x80
#define PVH_MEMMAP_MAX		64

#endif
