// SPDX-License-Identifier: MIT
/*
 * Linux boot_params ("zero page") and PVH hvm_start_info parsing.  Only the
 * fields hdguest uses are read, by offset, and every pointer the loader hands
 * over is checked against what our page tables map before it is followed.
 */
#include "guest/asm.h"
#include "guest/bootinfo.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/lib.h"

extern uint64_t boot_info_ptr;
extern uint32_t boot_proto;

/* Linux boot_params offsets (Documentation/arch/x86/zero-page.rst) */
#define BP_ACPI_RSDP_ADDR	0x070	/* u64 */
#define BP_EXT_CMD_LINE_PTR	0x0c8	/* u32: bits 63:32 of the command line */
#define BP_E820_ENTRIES		0x1e8	/* u8 */
#define BP_CMD_LINE_PTR		0x228	/* u32 */
#define BP_E820_TABLE		0x2d0	/* 128 x struct boot_e820_entry */
#define BP_E820_MAX		128
#define BP_SIZE			0x1000

/* PVH hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h) */
#define PVH_MAGIC		0x336ec578
#define PVH_VERSION		0x04	/* u32 */
#define PVH_CMDLINE_PADDR	0x18	/* u64 */
#define PVH_RSDP_PADDR		0x20	/* u64 */
#define PVH_MEMMAP_PADDR	0x28	/* u64, version >= 1 */
#define PVH_MEMMAP_ENTRIES	0x30	/* u32, version >= 1 */
#define PVH_INFO_SIZE		0x38

#define E820_TYPE_RAM		1

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

struct pvh_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

static uint64_t rd64(uint64_t base, unsigned off)
{
	return *(const uint64_t *)(base + off);
}

static uint32_t rd32(uint64_t base, unsigned off)
{
	return *(const uint32_t *)(base + off);
}

static void add_ram(struct boot_info *bi, uint64_t addr, uint64_t size, uint32_t type)
{
	struct ram_range *last = bi->nr_ram ? &bi->ram[bi->nr_ram - 1] : NULL;

	if (type != E820_TYPE_RAM || !size)
		return;
	if (last && last->end == addr) {	/* loaders may split RAM: merge */
		last->end = addr + size;
		return;
	}
	if (bi->nr_ram == BOOT_RAM_RANGES_MAX) {
		printf("hdguest: more than %d RAM ranges, ignoring 0x%lx+0x%lx\n",
		       BOOT_RAM_RANGES_MAX, addr, size);
		return;
	}
	bi->ram[bi->nr_ram++] = (struct ram_range){ addr, addr + size };
}

static int copy_cmdline(struct boot_info *bi, uint64_t addr)
{
	size_t len;

	bi->cmdline[0] = '\0';
	if (!addr)
		return 0;
	if (!phys_mapped(addr, 1)) {
		printf("hdguest: command line at 0x%lx is outside mapped memory\n", addr);
		return -1;
	}
	len = strnlen((const char *)addr, MIN(sizeof(bi->cmdline) - 1, PHYS_MAPPED_END - addr));
	memcpy(bi->cmdline, (const char *)addr, len);
	bi->cmdline[len] = '\0';
	return 0;
}

static int parse_linux(struct boot_info *bi, uint64_t bp)
{
	uint64_t cmdline;
	unsigned n, i;

	if (!phys_mapped(bp, BP_SIZE)) {
		printf("hdguest: boot_params at 0x%lx is outside mapped memory\n", bp);
		return -1;
	}
	cmdline = rd32(bp, BP_CMD_LINE_PTR) | (uint64_t)rd32(bp, BP_EXT_CMD_LINE_PTR) << 32;
	if (copy_cmdline(bi, cmdline))
		return -1;
	n = *(const uint8_t *)(bp + BP_E820_ENTRIES);
	if (n > BP_E820_MAX) {
		printf("hdguest: boot_params has %u e820 entries, using the first %u\n", n, BP_E820_MAX);
		n = BP_E820_MAX;
	}
	for (i = 0; i < n; i++) {
		const struct e820_entry *e =
			(const void *)(bp + BP_E820_TABLE + i * sizeof(struct e820_entry));

		add_ram(bi, e->addr, e->size, e->type);
	}
	bi->rsdp = rd64(bp, BP_ACPI_RSDP_ADDR);
	return 0;
}

static int parse_pvh(struct boot_info *bi, uint64_t si)
{
	uint64_t memmap;
	uint32_t n, i;

	if (!phys_mapped(si, PVH_INFO_SIZE)) {
		printf("hdguest: hvm_start_info at 0x%lx is outside mapped memory\n", si);
		return -1;
	}
	if (rd32(si, 0) != PVH_MAGIC) {
		printf("hdguest: hvm_start_info at 0x%lx has bad magic 0x%x (want 0x%x)\n",
		       si, rd32(si, 0), PVH_MAGIC);
		return -1;
	}
	if (copy_cmdline(bi, rd64(si, PVH_CMDLINE_PADDR)))
		return -1;
	bi->rsdp = rd64(si, PVH_RSDP_PADDR);
	if (rd32(si, PVH_VERSION) < 1)
		return 0;	/* no memory map in version 0 */
	memmap = rd64(si, PVH_MEMMAP_PADDR);
	n = rd32(si, PVH_MEMMAP_ENTRIES);
	for (i = 0; i < n; i++) {
		struct pvh_memmap_entry e;

		/* phys_copy: QEMU -M pc puts the map in page 0 */
		if (!phys_copy(&e, memmap + (uint64_t)i * sizeof(e), sizeof(e))) {
			printf("hdguest: PVH memory map at 0x%lx (%u entries) is outside mapped memory\n",
			       memmap, n);
			return -1;
		}
		add_ram(bi, e.addr, e.size, e.type);
	}
	return 0;
}

int bootinfo_parse(struct boot_info *bi)
{
	bi->nr_ram = 0;
	bi->rsdp = 0;
	bi->cmdline[0] = '\0';
	switch (boot_proto) {
	case BOOT_PROTO_LINUX64:
		bi->proto_name = "linux64";
		return parse_linux(bi, boot_info_ptr);
	case BOOT_PROTO_LINUX32:
		bi->proto_name = "linux32";
		return parse_linux(bi, boot_info_ptr);
	case BOOT_PROTO_PVH:
		bi->proto_name = "pvh";
		return parse_pvh(bi, boot_info_ptr);
	}
	printf("hdguest: unknown boot protocol %u\n", boot_proto);
	return -1;
}

bool bootinfo_ram_covers(const struct boot_info *bi, uint64_t start, uint64_t len)
{
	int i;

	for (i = 0; i < bi->nr_ram; i++)
		if (start >= bi->ram[i].start && start < bi->ram[i].end &&
		    len <= bi->ram[i].end - start)
			return true;
	return false;
}
