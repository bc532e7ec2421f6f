/* SPDX-License-Identifier: MIT */
/*
 * Kernel loading and the boot CPU's initial state.
 *
 *   ELF64 (vmlinux, hdguest) -> Linux 64-bit boot protocol: long mode, identity
 *                               paging of the first 4 GiB, rsi = boot_params
 *   ELF with a PVH note        -> (with --boot pvh) 32-bit protected mode, paging
 *                               off, ebx = hvm_start_info
 *   bzImage                    -> protected-mode kernel at 1 MiB, 64-bit entry at
 *                               +0x200, rsi = boot_params (setup header copied in)
 *
 * Every loader validates the image against the file size and guest RAM and
 * reports the exact problem with pr_err() before returning -errno: -ENOEXEC
 * for a malformed or unsupported image, -ENOMEM when it does not fit in
 * guest RAM, the file error from read_file().
 *
 * The platform is described by an Intel MP table and the e820 map only: no
 * ACPI tables (no MADT) are written, the MP table covers CPUs and the IOAPIC.
 */
#ifndef HDVM_BOOT_H
#define HDVM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;

enum boot_proto { BOOT_AUTO, BOOT_LINUX64, BOOT_PVH };

struct boot_request {
	const char *kernel_path;
	const char *initrd_path;	/* NULL: none */
	const char *cmdline;		/* NULL: empty */
	enum boot_proto proto;		/* AUTO: LINUX64 for ELF64 and bzImage */
	int ncpus;			/* for the MP table */
};

struct boot_entry {
	enum boot_proto proto;	/* resolved */
	uint64_t entry;		/* first instruction (GPA) */
	uint64_t boot_info;	/* LINUX64: boot_params GPA (rsi); PVH: start_info GPA (ebx) */
	uint64_t kernel_end;	/* highest loaded byte + 1 */
};

int boot_load(struct guest_mem *mem, const struct boot_request *req, struct boot_entry *out);
/* Set regs/sregs (and FPU defaults) of the boot vCPU for the resolved protocol. */
int boot_setup_bsp(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e);

/* Pieces exposed for unit tests and other loaders. */
int elf_load(struct guest_mem *mem, const uint8_t *img, size_t len, struct boot_entry *out,
	     uint64_t *pvh_entry /* 0 if the ELF has no PVH note */);
int bzimage_load(struct guest_mem *mem, const uint8_t *img, size_t len, struct boot_entry *out,
		 uint8_t *zero_page /* 4096 bytes, setup header copied here */);
bool is_bzimage(const uint8_t *img, size_t len);
/*
 * MP table (Intel MP spec 1.4) for ncpus CPUs, one IOAPIC, ISA IRQs 0-15.
 * The floating pointer sits in the last KiB of base memory (PLAT_MPTABLE_ADDR),
 * the configuration table right after it, inside the e820-reserved range that
 * ends at PLAT_BIOS_END.  The limit on ncpus is the 8-bit APIC id space: CPUs
 * take ids 0..ncpus-1, the IOAPIC takes ncpus, 0xff is the broadcast id.
 */
#define MPTABLE_MAX_CPUS	254
int mptable_write(struct guest_mem *mem, int ncpus);
/*
 * e820 entries for the RAM layout: returns how many the layout needs (like
 * snprintf) and fills at most max of them; -1 if the layout is unusable.
 */
struct e820_entry_le { uint64_t addr, size; uint32_t type; } __attribute__((packed));
int e820_build(const struct guest_mem *mem, struct e820_entry_le *ents, int max);

#endif
