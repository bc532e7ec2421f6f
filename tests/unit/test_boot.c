// SPDX-License-Identifier: MIT
/*
 * Kernel loaders (vmm/boot/): ELF64, bzImage, boot_load() with the zero page,
 * command line, initrd and PVH start_info.  Kernel images are built in
 * memory; what the loaders write to guest RAM is decoded from raw byte
 * offsets (as a guest reads it), not through the loaders' own structs.
 */
#include "tests/unit/boot_test_util.h"

static void test_elf_valid(void **state)
{
	struct elf_img im;
	struct boot_entry e;
	uint64_t pvh = 1;

	make_elf(&im, true);
	memset(gpa(ELF_DATA_GPA), 0xaa, ELF_DATA_MEMSZ + 16);	/* BSS must be cleared */
	assert_int_equal(elf_load(&mem, im.b, im.len, &e, &pvh), 0);
	assert_int_equal(e.entry, ELF_TEXT_GPA);
	assert_int_equal(e.kernel_end, ELF_DATA_GPA + ELF_DATA_MEMSZ);
	assert_int_equal(pvh, ELF_PVH_ENTRY);
	assert_memory_equal(gpa(ELF_TEXT_GPA), im.b + ELF_TEXT_OFF, ELF_TEXT_LEN);
	assert_memory_equal(gpa(ELF_DATA_GPA), im.b + ELF_DATA_OFF, ELF_DATA_FILESZ);
	for (uint64_t a = ELF_DATA_GPA + ELF_DATA_FILESZ; a < ELF_DATA_GPA + ELF_DATA_MEMSZ; a++)
		if (*gpa(a))
			fail_msg("BSS byte at 0x%llx is 0x%x", (unsigned long long)a, *gpa(a));
	assert_int_equal(*gpa(ELF_DATA_GPA + ELF_DATA_MEMSZ), 0xaa);	/* nothing past memsz */
	assert_int_equal(*gpa(ELF_TEXT_GPA - 1), 0);
	assert_int_equal(*gpa(ELF_TEXT_GPA + ELF_TEXT_LEN), 0);
}

static void test_elf_pvh_note(void **state)
{
	struct elf_img im;
	struct boot_entry e;
	uint64_t pvh = 1;
	Elf64_Nhdr other = { .n_namesz = 4, .n_descsz = 4, .n_type = 1 };

	make_elf(&im, false);
	assert_int_equal(elf_load(&mem, im.b, im.len, &e, &pvh), 0);
	assert_int_equal(pvh, 0);

	/* The right type under another name is not a PVH note. */
	make_elf(&im, true);
	memcpy(im.b + ELF_NOTE_OFF + sizeof(Elf64_Nhdr), "GNU", 4);
	pvh = 1;
	assert_int_equal(elf_load(&mem, im.b, im.len, &e, &pvh), 0);
	assert_int_equal(pvh, 0);

	/* A second note before it: the walk must step over the first one. */
	make_elf(&im, true);
	memmove(im.b + ELF_NOTE_OFF + 20, im.b + ELF_NOTE_OFF, 20);
	memcpy(im.b + ELF_NOTE_OFF, &other, sizeof(other));
	memcpy(im.b + ELF_NOTE_OFF + 12, "Xen\0\x11\x11\x11\x11", 8);
	im.ph[2].p_filesz = 40;
	pvh = 0;
	assert_int_equal(elf_load(&mem, im.b, im.len, &e, &pvh), 0);
	assert_int_equal(pvh, ELF_PVH_ENTRY);

	/* A note whose descriptor runs past its segment. */
	make_elf(&im, true);
	wr32(im.b + ELF_NOTE_OFF + 4, 0x1000);
	assert_error(elf_load(&mem, im.b, im.len, &e, &pvh), "runs past the end of its PT_NOTE");

	/* A PVH entry that is not inside the loaded image. */
	make_elf(&im, true);
	wr32(im.b + ELF_NOTE_OFF + sizeof(Elf64_Nhdr) + 4, 0x5000000);
	assert_error(elf_load(&mem, im.b, im.len, &e, &pvh), "PVH entry point 0x5000000");
}

static void test_elf_bad_headers(void **state)
{
	struct elf_img im;
	struct boot_entry e;

	make_elf(&im, false);
	assert_error(elf_load(&mem, im.b, 40, &e, NULL), "ELF header truncated");

	make_elf(&im, false);
	im.eh.e_ident[EI_CLASS] = ELFCLASS32;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "not ELF64");

	make_elf(&im, false);
	im.eh.e_machine = EM_386;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "machine 3 is not x86-64");

	make_elf(&im, false);
	im.eh.e_type = ET_DYN;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "not an executable");

	make_elf(&im, false);
	im.eh.e_phoff = im.len - 10;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "program header table");

	make_elf(&im, false);
	im.eh.e_phnum = 0xffff;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "program header table");

	make_elf(&im, false);
	im.eh.e_phoff = ~0ULL - 8;	/* offset + size wraps */
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "program header table");

	make_elf(&im, false);
	im.eh.e_entry = 0x5000000;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "entry point 0x5000000");
}

static void test_elf_bad_segments(void **state)
{
	struct elf_img im;
	struct boot_entry e;

	make_elf(&im, false);
	im.ph[1].p_filesz = im.len - ELF_DATA_OFF + 1;
	im.ph[1].p_memsz = 0x10000;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "segment 1: file bytes");

	make_elf(&im, false);
	im.ph[1].p_offset = ~0ULL - 4;	/* offset + filesz wraps */
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "past the end of the file");

	make_elf(&im, false);
	im.ph[1].p_filesz = ELF_DATA_MEMSZ + 1;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL),
		     "segment 1: file size 0x2001 is larger than its memory size 0x2000");

	make_elf(&im, false);
	im.ph[1].p_paddr = RAM_SIZE - 0x1000;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL),
		     "segment 1 [0x3fff000-0x4001000) outside guest RAM (size 64 MiB)");

	make_elf(&im, false);
	im.ph[0].p_paddr = ~0ULL - 0x10;	/* paddr + memsz wraps */
	im.eh.e_entry = ELF_DATA_GPA;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "segment 0");

	make_elf(&im, false);
	im.ph[0].p_paddr = 0x8000;
	im.eh.e_entry = 0x8000;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "overlaps the boot area");

	make_elf(&im, false);
	im.ph[0].p_type = PT_NULL;
	im.ph[1].p_type = PT_NULL;
	assert_error(elf_load(&mem, im.b, im.len, &e, NULL), "no loadable segments");

	/* Validation happens before copying: a bad second segment leaves RAM alone. */
	make_elf(&im, false);
	im.ph[1].p_paddr = RAM_SIZE;
	assert_errno(elf_load(&mem, im.b, im.len, &e, NULL), ENOMEM, "outside guest RAM");
	assert_int_equal(*gpa(ELF_TEXT_GPA), 0);
}

/* ---- a synthetic bzImage ------------------------------------------------ */

#define BZ_SETUP_SECTS	3
#define BZ_SETUP_LEN	((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PM_LEN	0x800
#define BZ_INIT_SIZE	0x40000
#define BZ_HDR_END	0x268
#define BZ_PREF_ADDR	0x1000000

struct bz_img {
	uint8_t b[5 * 512 + BZ_PM_LEN];
	size_t len;
};

static void make_bzimage(struct bz_img *im, uint8_t setup_sects)
{
	unsigned sects = setup_sects ? setup_sects : 4;
	size_t setup_len = (sects + 1) * 512;

	for (size_t i = 0; i < sizeof(im->b); i++)
		im->b[i] = 0x5a ^ i ^ (i >> 8) * 0x3b;	/* junk that differs per sector */
	memset(im->b + 0x1f1, 0, BZ_HDR_END - 0x1f1);
	im->len = setup_len + BZ_PM_LEN;
	im->b[0x1f1] = setup_sects;
	wr32(im->b + 0x1f4, BZ_PM_LEN / 16);		/* syssize */
	wr16(im->b + 0x1fe, 0xaa55);			/* boot_flag */
	im->b[0x200] = 0xeb;				/* jmp short */
	im->b[0x201] = BZ_HDR_END - 0x202;
	memcpy(im->b + 0x202, "HdrS", 4);
	wr16(im->b + 0x206, 0x020f);			/* version */
	im->b[0x211] = 0x01;				/* loadflags: LOADED_HIGH */
	wr32(im->b + 0x22c, 0x7fffffff);		/* initrd_addr_max */
	wr32(im->b + 0x230, 0x200000);			/* kernel_alignment */
	im->b[0x234] = 1;				/* relocatable */
	wr16(im->b + 0x236, 0x0003);			/* xloadflags: KERNEL_64 | ABOVE_4G */
	wr32(im->b + 0x238, 2047);			/* cmdline_size */
	wr32(im->b + 0x258, BZ_PREF_ADDR);		/* pref_address */
	wr32(im->b + 0x260, BZ_INIT_SIZE);		/* init_size */
}

static void test_bzimage_valid(void **state)
{
	static uint8_t zp[4096];
	struct bz_img im;
	struct boot_entry e;
	struct elf_img elf;

	make_bzimage(&im, BZ_SETUP_SECTS);
	make_elf(&elf, false);
	assert_true(is_bzimage(im.b, im.len));
	assert_false(is_bzimage(elf.b, elf.len));
	assert_false(is_bzimage(im.b, 0x205));

	memset(zp, 0xee, sizeof(zp));
	assert_int_equal(bzimage_load(&mem, im.b, im.len, &e, zp), 0);
	assert_int_equal(e.entry, MB1 + 0x200);
	/* It decompresses itself to pref_address: that is the kernel's too. */
	assert_int_equal(e.kernel_end, BZ_PREF_ADDR + BZ_INIT_SIZE);
	assert_memory_equal(gpa(MB1), im.b + BZ_SETUP_LEN, BZ_PM_LEN);
	/* The setup header, and nothing around it, lands in the zero page. */
	assert_memory_equal(zp + 0x1f1, im.b + 0x1f1, BZ_HDR_END - 0x1f1);
	assert_int_equal(zp[0x1f0], 0);
	assert_int_equal(zp[BZ_HDR_END], 0);
	assert_int_equal(zp[0], 0);

	/* setup_sects == 0 means 4 sectors. */
	make_bzimage(&im, 0);
	assert_int_equal(bzimage_load(&mem, im.b, im.len, &e, zp), 0);
	assert_memory_equal(gpa(MB1), im.b + 5 * 512, BZ_PM_LEN);

	/* Relocatable with a low pref_address: rounded up to kernel_alignment. */
	make_bzimage(&im, BZ_SETUP_SECTS);
	wr32(im.b + 0x258, 0);
	assert_int_equal(bzimage_load(&mem, im.b, im.len, &e, zp), 0);
	assert_int_equal(e.kernel_end, 0x200000 + BZ_INIT_SIZE);
	/* Tiny init_size: the loaded image itself is the end. */
	wr32(im.b + 0x260, 0x10);
	im.b[0x234] = 0;
	assert_int_equal(bzimage_load(&mem, im.b, im.len, &e, zp), 0);
	assert_int_equal(e.kernel_end, MB1 + BZ_PM_LEN);
}

static void test_bzimage_bad(void **state)
{
	static uint8_t zp[4096];
	struct bz_img im;
	struct boot_entry e;

	make_bzimage(&im, BZ_SETUP_SECTS);
	assert_error(bzimage_load(&mem, im.b, BZ_SETUP_LEN, &e, zp),
		     "bzImage truncated: 3 setup sectors (2048 bytes) but the file has 2048 bytes");
	assert_error(bzimage_load(&mem, im.b, 0x300, &e, zp), "but the file has 768 bytes");
	assert_error(bzimage_load(&mem, im.b, BZ_SETUP_LEN + 0x100, &e, zp), "syssize");
	assert_error(bzimage_load(&mem, im.b, 0x100, &e, zp), "not a bzImage");
	im.b[0x201] = 0xff;	/* header claims to end past a short file */
	assert_error(bzimage_load(&mem, im.b, 0x280, &e, zp), "setup header ends at 0x301");

	make_bzimage(&im, BZ_SETUP_SECTS);
	wr16(im.b + 0x206, 0x020a);
	assert_error(bzimage_load(&mem, im.b, im.len, &e, zp),
		     "bzImage has no 64-bit entry point (boot protocol 2.10");

	make_bzimage(&im, BZ_SETUP_SECTS);
	wr16(im.b + 0x236, 0x0002);
	assert_error(bzimage_load(&mem, im.b, im.len, &e, zp), "bzImage has no 64-bit entry point");

	make_bzimage(&im, BZ_SETUP_SECTS);
	im.b[0x211] = 0;
	assert_error(bzimage_load(&mem, im.b, im.len, &e, zp), "not loaded high");

	make_bzimage(&im, BZ_SETUP_SECTS);
	wr32(im.b + 0x260, RAM_SIZE - BZ_PREF_ADDR + 1);
	assert_error(bzimage_load(&mem, im.b, im.len, &e, zp),
		     "decompresses to [0x1000000-0x4000001) (pref_address, init_size) but low guest RAM ends at 0x4000000");
	assert_int_equal(*gpa(MB1), 0);	/* nothing was copied */
}

/* ---- boot_load: zero page, command line, initrd, PVH -------------------- */

#define ZP	PLAT_ZERO_PAGE_ADDR
#define CMDLINE	"console=ttyS0 app=hello quiet"

static void test_zero_page_elf(void **state)
{
	static uint8_t initrd[5000];
	struct elf_img im;
	struct boot_entry e;
	struct boot_request req = { .cmdline = CMDLINE, .ncpus = 2 };
	const uint8_t *zp = gpa(ZP);
	uint32_t rd_addr, rd_size;

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = i * 13;
	make_elf(&im, true);
	req.kernel_path = write_tmp("vmlinux", im.b, im.len);
	req.initrd_path = write_tmp("initrd", initrd, sizeof(initrd));
	assert_int_equal(boot_load(&mem, &req, &e), 0);

	assert_int_equal(e.proto, BOOT_LINUX64);	/* AUTO resolves to the 64-bit protocol */
	assert_int_equal(e.entry, ELF_TEXT_GPA);
	assert_int_equal(e.boot_info, ZP);
	assert_int_equal(e.kernel_end, ELF_DATA_GPA + ELF_DATA_MEMSZ);
	assert_int_equal(rd16(zp + 0x1fe), 0xaa55);		/* boot_flag */
	assert_int_equal(rd32(zp + 0x202), 0x53726448);		/* "HdrS" */
	assert_int_equal(zp[0x210], 0xff);			/* type_of_loader */
	assert_int_equal(rd32(zp + 0x228), PLAT_CMDLINE_ADDR);	/* cmd_line_ptr */
	assert_int_equal(rd32(zp + 0xc8), 0);			/* ext_cmd_line_ptr */
	assert_int_equal(rd32(zp + 0x238), strlen(CMDLINE));	/* cmdline_size */
	assert_string_equal((char *)gpa(PLAT_CMDLINE_ADDR), CMDLINE);
	check_e820_small(zp + 0x2d0, zp[0x1e8]);

	rd_addr = rd32(zp + 0x218);
	rd_size = rd32(zp + 0x21c);
	assert_int_equal(rd_size, sizeof(initrd));
	assert_int_equal(rd_addr % 4096, 0);
	/* As high as possible: the last page of RAM holds its tail. */
	assert_true(rd_addr + rd_size <= RAM_SIZE);
	assert_true(rd_addr + rd_size > RAM_SIZE - 4096);
	assert_int_equal(rd32(zp + 0xc0), 0);			/* ext_ramdisk_image */
	assert_int_equal(rd32(zp + 0xc4), 0);			/* ext_ramdisk_size */
	assert_memory_equal(gpa(rd_addr), initrd, sizeof(initrd));

	/* And the MP table came along. */
	assert_memory_equal(gpa(PLAT_MPTABLE_ADDR), "_MP_", 4);
}

static void test_zero_page_bzimage(void **state)
{
	static uint8_t initrd[3 * 4096];
	struct bz_img im;
	struct boot_entry e;
	struct boot_request req = { .cmdline = "root=/dev/vda", .ncpus = 1 };
	const uint8_t *zp = gpa(ZP);
	uint32_t rd_addr;

	memset(initrd, 0x77, sizeof(initrd));
	make_bzimage(&im, BZ_SETUP_SECTS);
	wr32(im.b + 0x22c, 0x1ffffff);		/* initrd below 32 MiB */
	req.kernel_path = write_tmp("bzImage", im.b, im.len);
	req.initrd_path = write_tmp("initrd", initrd, sizeof(initrd));
	assert_int_equal(boot_load(&mem, &req, &e), 0);

	assert_int_equal(e.proto, BOOT_LINUX64);
	assert_int_equal(e.entry, MB1 + 0x200);
	assert_int_equal(e.boot_info, ZP);
	assert_int_equal(rd16(zp + 0x206), 0x020f);		/* header copied */
	assert_int_equal(rd32(zp + 0x238), 2047);		/* kernel's own limit kept */
	assert_int_equal(rd32(zp + 0x260), BZ_INIT_SIZE);
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(rd32(zp + 0x228), PLAT_CMDLINE_ADDR);
	assert_string_equal((char *)gpa(PLAT_CMDLINE_ADDR), "root=/dev/vda");
	check_e820_small(zp + 0x2d0, zp[0x1e8]);
	rd_addr = rd32(zp + 0x218);
	assert_int_equal(rd_addr, 0x2000000 - sizeof(initrd));	/* top below initrd_addr_max */
	assert_int_equal(rd32(zp + 0x21c), sizeof(initrd));
	assert_memory_equal(gpa(rd_addr), initrd, sizeof(initrd));

	/* The kernel's cmdline_size is enforced. */
	wr32(im.b + 0x238, 8);
	req.kernel_path = write_tmp("bzImage", im.b, im.len);
	assert_error(boot_load(&mem, &req, &e), "command line too long: 13 bytes");
}

static void test_boot_load_errors(void **state)
{
	static char longline[PLAT_CMDLINE_MAX + 1];
	struct elf_img im;
	struct boot_entry e;
	struct boot_request req = { .ncpus = 1 };
	uint8_t *big = calloc(1, RAM_SIZE);

	assert_non_null(big);
	req.kernel_path = "/nonexistent/vmlinux";
	assert_errno(boot_load(&mem, &req, &e), ENOENT, "/nonexistent/vmlinux: cannot open");
	req.kernel_path = write_tmp("empty", "", 0);
	assert_errno(boot_load(&mem, &req, &e), ENOEXEC, "kernel file is empty");
	req.kernel_path = write_tmp("junk", "#!/bin/sh\necho hello\n", 21);
	assert_errno(boot_load(&mem, &req, &e), ENOEXEC, "not an ELF64 or bzImage kernel");
	req.kernel_path = tmpdir;
	assert_error(boot_load(&mem, &req, &e), "not a regular file");

	make_elf(&im, false);
	im.eh.e_machine = EM_AARCH64;
	req.kernel_path = write_tmp("arm", im.b, im.len);
	assert_errno(boot_load(&mem, &req, &e), ENOEXEC, "cannot load this ELF64 kernel");

	make_elf(&im, false);
	req.kernel_path = write_tmp("vmlinux", im.b, im.len);
	memset(longline, 'x', PLAT_CMDLINE_MAX);
	req.cmdline = longline;
	assert_errno(boot_load(&mem, &req, &e), E2BIG, "command line too long");
	longline[PLAT_CMDLINE_MAX - 1] = '\0';	/* the longest that fits */
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	assert_int_equal(strlen((char *)gpa(PLAT_CMDLINE_ADDR)), PLAT_CMDLINE_MAX - 1);
	req.cmdline = NULL;
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	assert_string_equal((char *)gpa(PLAT_CMDLINE_ADDR), "");

	/* An initrd that would reach down into the kernel. */
	req.initrd_path = write_tmp("big", big, RAM_SIZE - ELF_DATA_GPA - ELF_DATA_MEMSZ + 1);
	assert_errno(boot_load(&mem, &req, &e), ENOMEM,
		     "does not fit between the kernel end 0x302000");
	req.initrd_path = write_tmp("big", big, RAM_SIZE / 2);
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	req.initrd_path = write_tmp("empty", "", 0);
	assert_error(boot_load(&mem, &req, &e), "initrd file is empty");
	req.initrd_path = NULL;
	free(big);

	req.ncpus = MPTABLE_MAX_CPUS + 1;
	assert_errno(boot_load(&mem, &req, &e), EINVAL, "MP table: 255 CPUs");
}

static void test_initrd_place(void **state)
{
	struct loaded_kernel *k = calloc(1, sizeof(*k));

	k->kernel_end = 0x1234567;
	k->initrd_addr_max = 0x37ffffff;
	assert_int_equal(initrd_place(&mem, k, 1), RAM_SIZE - 4096);
	assert_int_equal(initrd_place(&mem, k, 4097), RAM_SIZE - 8192);
	/* The lowest legal spot is the page after the kernel's end. */
	assert_int_equal(initrd_place(&mem, k, RAM_SIZE - 0x1235000), 0x1235000);
	assert_int_equal(initrd_place(&mem, k, RAM_SIZE - 0x1235000 + 1), 0);
	assert_int_equal(initrd_place(&mem, k, 0), 0);
	k->initrd_addr_max = 0xffffff;	/* below the kernel: nowhere to go */
	assert_int_equal(initrd_place(&mem, k, 1), 0);
	free(k);
}

static void test_pvh(void **state)
{
	static uint8_t initrd[4096 + 1];
	struct elf_img im;
	struct bz_img bz;
	struct boot_entry e;
	struct boot_request req = { .cmdline = "app=hello", .ncpus = 1, .proto = BOOT_PVH };
	const uint8_t *si = gpa(PLAT_PVH_INFO_ADDR);
	const uint8_t *m;

	memset(initrd, 0x31, sizeof(initrd));
	make_elf(&im, true);
	req.kernel_path = write_tmp("pvh.elf", im.b, im.len);
	req.initrd_path = write_tmp("initrd", initrd, sizeof(initrd));
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	assert_int_equal(e.proto, BOOT_PVH);
	assert_int_equal(e.entry, ELF_PVH_ENTRY);
	assert_int_equal(e.boot_info, PLAT_PVH_INFO_ADDR);

	assert_int_equal(rd32(si + 0), 0x336ec578);		/* magic */
	assert_int_equal(rd32(si + 4), 1);			/* version */
	assert_int_equal(rd32(si + 12), 1);			/* nr_modules */
	assert_int_equal(rd64(si + 24), PLAT_CMDLINE_ADDR);	/* cmdline_paddr */
	assert_string_equal((char *)gpa(rd64(si + 24)), "app=hello");
	assert_int_equal(rd64(si + 32), 0);			/* rsdp_paddr */
	m = gpa(rd64(si + 16));					/* modlist_paddr */
	assert_int_equal(rd64(m + 0) % 4096, 0);
	assert_int_equal(rd64(m + 8), sizeof(initrd));
	assert_memory_equal(gpa(rd64(m)), initrd, sizeof(initrd));
	assert_int_equal(rd32(si + 48), 3);			/* memmap_entries */
	m = gpa(rd64(si + 40));					/* memmap_paddr */
	assert_int_equal(rd64(m + 0), 0);
	assert_int_equal(rd64(m + 8), 0x9fc00);
	assert_int_equal(rd32(m + 16), 1);
	assert_int_equal(rd64(m + 24), 0x9fc00);
	assert_int_equal(rd32(m + 40), 2);
	assert_int_equal(rd64(m + 48), 0x100000);
	assert_int_equal(rd64(m + 56), RAM_SIZE - 0x100000);
	assert_int_equal(rd32(m + 64), 1);

	/* Without an initrd there is no module list. */
	req.initrd_path = NULL;
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	assert_int_equal(rd32(si + 12), 0);
	assert_int_equal(rd64(si + 16), 0);

	make_elf(&im, false);
	req.kernel_path = write_tmp("plain.elf", im.b, im.len);
	assert_error(boot_load(&mem, &req, &e), "the ELF has no PVH entry note");
	req.proto = BOOT_AUTO;
	assert_int_equal(boot_load(&mem, &req, &e), 0);
	assert_int_equal(e.proto, BOOT_LINUX64);

	make_bzimage(&bz, BZ_SETUP_SECTS);
	req.kernel_path = write_tmp("bzImage", bz.b, bz.len);
	req.proto = BOOT_PVH;
	assert_error(boot_load(&mem, &req, &e), "this is a bzImage");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_elf_valid),
		T(test_elf_pvh_note),
		T(test_elf_bad_headers),
		T(test_elf_bad_segments),
		T(test_bzimage_valid),
		T(test_bzimage_bad),
		T(test_zero_page_elf),
		T(test_zero_page_bzimage),
		T(test_boot_load_errors),
		T(test_initrd_place),
		T(test_pvh),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
