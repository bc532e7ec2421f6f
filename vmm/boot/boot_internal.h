/* SPDX-License-Identifier: MIT */
/*
 * Private to vmm/boot/: the two tables boot_load() is driven by.
 *
 *   kernel formats (ELF64, bzImage): recognise an image and load it into RAM
 *   boot protocols (Linux 64-bit, PVH): check that a loaded kernel can be
 *       entered that way, write the structure the kernel reads at entry
 *       (boot_params or hvm_start_info) and set up the boot vCPU
 *
 * Platform description: an Intel MP 1.4 table (mptable.c) and the e820 map.
 * There is deliberately no ACPI (no MADT): the MP table is enough for Linux
 * to find the CPUs and the IOAPIC, and hdguest reads the same table.
 */
#ifndef HDVM_BOOT_INTERNAL_H
#define HDVM_BOOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/platform.h"
#include "vmm/boot/boot.h"

struct guest_mem;

#define BOOT_PAGE_SIZE		4096ULL
/* Largest kernel image read from disk (a distro bzImage is ~10 MiB). */
#define BOOT_KERNEL_FILE_MAX	(512ULL << 20)
/* Initrd ceiling when the kernel does not state one (boot protocol < 2.03). */
#define BOOT_INITRD_ADDR_MAX	0x37ffffffULL
/* Longest command line for kernels that do not state a limit (ELF). */
#define BOOT_CMDLINE_MAX	(PLAT_CMDLINE_MAX - 1)

/* What a kernel format's loader found out about the image it loaded. */
struct loaded_kernel {
	const char *format;		/* "ELF64", "bzImage" */
	bool is_bzimage;
	uint64_t entry;			/* Linux 64-bit entry point */
	uint64_t pvh_entry;		/* 32-bit PVH entry, 0 when absent */
	uint64_t kernel_end;		/* highest byte the kernel owns + 1 */
	uint64_t initrd_addr_max;	/* last byte an initrd may occupy */
	uint64_t cmdline_max;		/* longest command line, NUL excluded */
	uint8_t zero_page[BOOT_PAGE_SIZE]; /* bzImage: its setup header at 0x1f1 */
};

struct kernel_format {
	const char *name;
	bool (*probe)(const uint8_t *img, size_t len);
	int (*load)(struct guest_mem *mem, const uint8_t *img, size_t len,
		    struct loaded_kernel *k);
};

extern const struct kernel_format elf_kernel_format;
extern const struct kernel_format bzimage_kernel_format;

/* Everything placed in RAM besides the kernel, handed to write_info(). */
struct boot_layout {
	const struct loaded_kernel *kernel;
	uint64_t cmdline_gpa;		/* NUL-terminated, always present */
	uint64_t cmdline_len;		/* without the NUL */
	uint64_t initrd_gpa;		/* 0 when there is no initrd */
	uint64_t initrd_size;
};

struct boot_protocol {
	const char *name;
	enum boot_proto proto;
	/* Can this kernel be entered this way?  Returns the entry point or 0. */
	uint64_t (*entry)(const struct loaded_kernel *k, const char *path);
	/* Write boot_params / start_info; returns its GPA or 0 on error. */
	uint64_t (*write_info)(struct guest_mem *mem, const struct boot_layout *l);
	int (*setup_cpu)(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e);
};

extern const struct boot_protocol linux64_boot_protocol;
extern const struct boot_protocol pvh_boot_protocol;

/* zeropage.c: boot_params at PLAT_ZERO_PAGE_ADDR; returns that GPA or 0. */
uint64_t zero_page_write(struct guest_mem *mem, const struct boot_layout *l);
/* pvh.c: hvm_start_info at PLAT_PVH_INFO_ADDR; returns that GPA or 0. */
uint64_t pvh_info_write(struct guest_mem *mem, const struct boot_layout *l);
/* initrd.c: highest page-aligned GPA for `size` bytes above the kernel, or 0. */
uint64_t initrd_place(const struct guest_mem *mem, const struct loaded_kernel *k,
		      uint64_t size);
/* cpu_setup.c */
int cpu_setup_long_mode(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e);
int cpu_setup_protected_mode(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e);

#endif
