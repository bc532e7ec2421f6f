// SPDX-License-Identifier: MIT
/*
 * mkbzimage: wrap the hdguest ELF into a Linux bzImage (boot protocol 2.15).
 *
 *   usage: mkbzimage hdguest.elf hdguest.bzImage
 *
 * Output: a boot sector and one setup sector holding the setup header, then
 * the protected-mode kernel: the flat image of the ELF's PT_LOAD segments
 * from PLAT_KERNEL_ADDR (what `objcopy -O binary` produces), 64-bit entry at
 * +0x200.  The image is not relocatable and has no real-mode setup code: the
 * 16-bit entry powers the machine off with status 3 through the exit port.
 */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "devices/platform.h"
#include "guest/asm.h"

#define SECTOR			512
#define SETUP_SECTS		1
#define SETUP_SIZE		((1 + SETUP_SECTS) * SECTOR)
#define BOOT_PROTOCOL		0x020f
#define LOADED_HIGH		0x01
#define XLF_KERNEL_64		0x01
#define KERNEL_ALIGN		0x100000
#define CMDLINE_SIZE		4095	/* hdguest keeps BOOT_CMDLINE_MAX - 1 bytes */
#define MAX_IMAGE		(16u << 20)	/* hdguest must end below 16 MiB */

/* Setup header offsets (Documentation/arch/x86/boot.rst) */
#define HDR_SETUP_SECTS		0x1f1
#define HDR_SYSSIZE		0x1f4
#define HDR_BOOT_FLAG		0x1fe
#define HDR_JUMP		0x200
#define HDR_MAGIC		0x202
#define HDR_VERSION		0x206
#define HDR_LOADFLAGS		0x211
#define HDR_CODE32_START	0x214
#define HDR_INITRD_ADDR_MAX	0x22c
#define HDR_KERNEL_ALIGNMENT	0x230
#define HDR_RELOCATABLE		0x234
#define HDR_MIN_ALIGNMENT	0x235
#define HDR_XLOADFLAGS		0x236
#define HDR_CMDLINE_SIZE	0x238
#define HDR_PREF_ADDRESS	0x258
#define HDR_INIT_SIZE		0x260
#define HDR_KERNEL_INFO_OFFSET	0x268
#define HDR_END			0x26c
#define REALMODE_STUB		0x280	/* where the 0x200 jump lands */

/*
 * 16-bit entry for loaders that run the real-mode setup (e.g. QEMU with a
 * bzImage): hdguest only supports the 32/64-bit protocols, so say so through
 * the exit port rather than hang.
 */
static const uint8_t realmode_stub[] = {
	0xba, PLAT_EXIT_PORT, 0x00,		/* mov $PLAT_EXIT_PORT, %dx */
	0x66, 0xb8, 0x03, 0x00, 0x00, 0x00,	/* mov $3, %eax */
	0x66, 0xef,				/* out %eax, (%dx) */
	0xfa,					/* 1: cli */
	0xf4,					/*    hlt */
	0xeb, 0xfc,				/*    jmp 1b */
};

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, v); put32(p + 4, v >> 32); }

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "mkbzimage: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;

	if (!f || fstat(fileno(f), &st))
		die("cannot open %s", path);
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf || fread(buf, 1, st.st_size, f) != (size_t)st.st_size)
		die("cannot read %s", path);
	fclose(f);
	*len = st.st_size;
	return buf;
}

struct flat_image {
	uint8_t *data;
	uint32_t file_size;	/* bytes present in the file */
	uint32_t mem_size;	/* bytes needed at run time (bss and stacks included) */
};

/* Lay the PT_LOAD segments out as they sit in memory from PLAT_KERNEL_ADDR. */
static void flatten(const char *path, const uint8_t *elf, size_t len, struct flat_image *img)
{
	const Elf64_Ehdr *eh = (const void *)elf;
	uint64_t file_end = 0, mem_end = 0;
	int i;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_type != ET_EXEC)
		die("%s is not an x86-64 ELF64 executable", path);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		die("%s: program headers lie outside the file", path);
	if (eh->e_entry != PLAT_KERNEL_ADDR + IMAGE_ENTRY64_OFFSET)
		die("%s: entry point is not at load address + 0x200", path);

	img->data = calloc(1, MAX_IMAGE);
	if (!img->data)
		die("%s", strerror(errno));
	for (i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(elf + eh->e_phoff + i * sizeof(*ph));
		uint64_t off;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_paddr < PLAT_KERNEL_ADDR || ph->p_memsz > MAX_IMAGE ||
		    ph->p_paddr - PLAT_KERNEL_ADDR > MAX_IMAGE - ph->p_memsz ||
		    ph->p_filesz > ph->p_memsz)
			die("%s: a PT_LOAD segment lies outside 1..17 MiB", path);
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
			die("%s: a PT_LOAD segment lies outside the file", path);
		off = ph->p_paddr - PLAT_KERNEL_ADDR;
		memcpy(img->data + off, elf + ph->p_offset, ph->p_filesz);
		if (ph->p_filesz && off + ph->p_filesz > file_end)
			file_end = off + ph->p_filesz;
		if (off + ph->p_memsz > mem_end)
			mem_end = off + ph->p_memsz;
	}
	if (file_end <= IMAGE_ENTRY64_OFFSET)
		die("%s: nothing is loaded at the entry point", path);
	if (memcmp(img->data + IMAGE_KERNEL_INFO_OFFSET, "LToP", 4))
		die("%s: no kernel_info (\"LToP\") at image offset 0x100", path);
	img->file_size = file_end;
	img->mem_size = (mem_end + 4095) & ~4095ull;
}

static void build_setup(uint8_t *setup, const struct flat_image *img)
{
	uint32_t padded = (img->file_size + 15) & ~15u;

	memset(setup, 0, SETUP_SIZE);
	setup[HDR_SETUP_SECTS] = SETUP_SECTS;
	put32(setup + HDR_SYSSIZE, padded / 16);
	put16(setup + HDR_BOOT_FLAG, 0xaa55);
	setup[HDR_JUMP] = 0xeb;				/* jmp short REALMODE_STUB */
	setup[HDR_JUMP + 1] = REALMODE_STUB - (HDR_JUMP + 2);
	memcpy(setup + HDR_MAGIC, "HdrS", 4);
	put16(setup + HDR_VERSION, BOOT_PROTOCOL);
	setup[HDR_LOADFLAGS] = LOADED_HIGH;
	put32(setup + HDR_CODE32_START, PLAT_KERNEL_ADDR + IMAGE_ENTRY32_OFFSET);
	put32(setup + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	put32(setup + HDR_KERNEL_ALIGNMENT, KERNEL_ALIGN);
	setup[HDR_RELOCATABLE] = 0;
	setup[HDR_MIN_ALIGNMENT] = 12;
	put16(setup + HDR_XLOADFLAGS, XLF_KERNEL_64);
	put32(setup + HDR_CMDLINE_SIZE, CMDLINE_SIZE);
	put64(setup + HDR_PREF_ADDRESS, PLAT_KERNEL_ADDR);
	put32(setup + HDR_INIT_SIZE, img->mem_size);
	put32(setup + HDR_KERNEL_INFO_OFFSET, IMAGE_KERNEL_INFO_OFFSET);
	memcpy(setup + REALMODE_STUB, realmode_stub, sizeof(realmode_stub));
}

int main(int argc, char **argv)
{
	uint8_t setup[SETUP_SIZE], *elf;
	struct flat_image img;
	char tmp[4096];
	size_t len;
	uint32_t padded;
	FILE *out;

	_Static_assert(HDR_END <= REALMODE_STUB, "real-mode stub overlaps the header");
	_Static_assert(REALMODE_STUB + sizeof(realmode_stub) <= SETUP_SIZE, "stub too big");
	if (argc != 3) {
		fprintf(stderr, "usage: mkbzimage KERNEL.elf OUT.bzImage\n");
		return 2;
	}
	elf = read_file(argv[1], &len);
	flatten(argv[1], elf, len, &img);
	build_setup(setup, &img);
	padded = (img.file_size + 15) & ~15u;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", argv[2]) >= (int)sizeof(tmp))
		die("output path too long: %s", argv[2]);
	out = fopen(tmp, "wb");
	if (!out)
		die("cannot create %s", tmp);
	if (fwrite(setup, 1, SETUP_SIZE, out) != SETUP_SIZE ||
	    fwrite(img.data, 1, padded, out) != padded || fclose(out)) {
		remove(tmp);
		die("cannot write %s", tmp);
	}
	if (rename(tmp, argv[2])) {
		remove(tmp);
		die("cannot rename to %s", argv[2]);
	}
	free(img.data);
	free(elf);
	return 0;
}
