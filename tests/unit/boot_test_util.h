/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the vmm/boot unit tests: a guest RAM per test, stderr
 * capture so a test can check the error message, raw little-endian reads of
 * guest structures, and a synthetic ELF64 kernel.
 */
#ifndef HDVM_TEST_BOOT_UTIL_H
#define HDVM_TEST_BOOT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/platform.h"
#include "vmm/boot/boot.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define RAM_SIZE	(64 * MiB)
#define MB1		0x100000ULL

static struct guest_mem mem;	/* each test file has its own */
static char tmpdir[64];
static char errbuf[4096];
static int saved_stderr = -1;

static inline int setup(void **state)
{
	strcpy(tmpdir, "/tmp/test_boot.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return guest_mem_init(&mem, RAM_SIZE);
}

static inline int teardown(void **state)
{
	char cmd[128];

	guest_mem_destroy(&mem);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Collect what pr_err() prints between capture_start() and capture_end(). */
static inline void capture_start(void)
{
	FILE *f = tmpfile();

	assert_non_null(f);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	fclose(f);	/* stderr now holds the only reference */
}

static inline const char *capture_end(void)
{
	ssize_t n;

	fflush(stderr);
	n = pread(STDERR_FILENO, errbuf, sizeof(errbuf) - 1, 0);
	errbuf[n > 0 ? n : 0] = '\0';
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	return errbuf;
}

/* call fails with -err (any negative errno if err is 0) and prints text. */
#define assert_errno(call, err, text) do {				\
	capture_start();						\
	int ret_ = (call);						\
	const char *msg_ = capture_end();				\
	if ((err) ? ret_ != -(err) : (ret_ >= 0 || ret_ < -4095))	\
		fail_msg("expected -errno %d, got %d", (err), ret_);	\
	if (!strstr(msg_, (text)))					\
		fail_msg("expected \"%s\" in: %s", (text), msg_);	\
} while (0)
#define assert_error(call, text)	assert_errno(call, 0, text)

static inline uint8_t *gpa(uint64_t addr)
{
	uint8_t *p = gpa_to_hva(&mem, addr, 1);

	assert_non_null(p);
	return p;
}

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static inline const char *write_tmp(const char *name, const void *data, size_t len)
{
	static char paths[4][128];
	static int next;
	char *path = paths[next++ % 4];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

/* ---- a synthetic ELF64 kernel ------------------------------------------ */

#define ELF_TEXT_OFF	0x1000
#define ELF_TEXT_GPA	0x200000
#define ELF_TEXT_LEN	0x100
#define ELF_DATA_OFF	0x1100
#define ELF_DATA_GPA	0x300000
#define ELF_DATA_FILESZ	0x80
#define ELF_DATA_MEMSZ	0x2000
#define ELF_NOTE_OFF	0x1200
#define ELF_PVH_ENTRY	(ELF_TEXT_GPA + 0x40)
#define ELF_LEN		0x1300

struct elf_img {
	union {
		uint8_t b[ELF_LEN];
		Elf64_Ehdr eh;
	};
	Elf64_Phdr *ph;		/* [0] text, [1] data+bss, [2] PVH note */
	size_t len;
};

static inline void make_elf(struct elf_img *im, bool pvh_note)
{
	Elf64_Nhdr nh = { .n_namesz = 4, .n_descsz = 4, .n_type = 18 };
	uint32_t pvh = ELF_PVH_ENTRY;

	memset(im, 0, sizeof(*im));
	im->len = ELF_LEN;
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_ident[EI_VERSION] = EV_CURRENT;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_X86_64;
	im->eh.e_version = EV_CURRENT;
	im->eh.e_entry = ELF_TEXT_GPA;
	im->eh.e_phoff = sizeof(Elf64_Ehdr);
	im->eh.e_ehsize = sizeof(Elf64_Ehdr);
	im->eh.e_phentsize = sizeof(Elf64_Phdr);
	im->eh.e_phnum = 3;
	im->ph = (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr));
	im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = ELF_TEXT_OFF,
		.p_vaddr = 0xffffffff80000000ULL + ELF_TEXT_GPA, .p_paddr = ELF_TEXT_GPA,
		.p_filesz = ELF_TEXT_LEN, .p_memsz = ELF_TEXT_LEN };
	im->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = ELF_DATA_OFF,
		.p_paddr = ELF_DATA_GPA, .p_filesz = ELF_DATA_FILESZ, .p_memsz = ELF_DATA_MEMSZ };
	im->ph[2] = (Elf64_Phdr){ .p_type = pvh_note ? PT_NOTE : PT_NULL,
		.p_offset = ELF_NOTE_OFF, .p_filesz = sizeof(nh) + 4 + 4 };
	for (int i = 0; i < ELF_TEXT_LEN; i++)
		im->b[ELF_TEXT_OFF + i] = 0x40 + i;
	for (int i = 0; i < ELF_DATA_FILESZ; i++)
		im->b[ELF_DATA_OFF + i] = 0xd0 ^ i;
	memcpy(im->b + ELF_NOTE_OFF, &nh, sizeof(nh));
	memcpy(im->b + ELF_NOTE_OFF + sizeof(nh), "Xen", 4);
	memcpy(im->b + ELF_NOTE_OFF + sizeof(nh) + 4, &pvh, 4);
}

/* The e820 map of a RAM_SIZE guest, as 20-byte entries at t. */
static inline void check_e820_small(const uint8_t *t, int n)
{
	assert_int_equal(n, 3);
	assert_int_equal(rd64(t + 0), 0);
	assert_int_equal(rd64(t + 8), 0x9fc00);
	assert_int_equal(rd32(t + 16), 1);
	assert_int_equal(rd64(t + 20), 0x9fc00);
	assert_int_equal(rd64(t + 28), 0x100000 - 0x9fc00);
	assert_int_equal(rd32(t + 36), 2);
	assert_int_equal(rd64(t + 40), 0x100000);
	assert_int_equal(rd64(t + 48), RAM_SIZE - 0x100000);
	assert_int_equal(rd32(t + 56), 1);
}

#endif
