// SPDX-License-Identifier: MIT
/*
 * ELF64 kernels (vmlinux, hdguest).  Segments go to their physical address
 * (p_paddr) and e_entry is physical too, as in vmlinux.  Every header field is
 * checked against the file length and every segment against guest RAM before
 * a single byte is copied, so a bad image changes nothing.
 */
#include <errno.h>
#include <elf.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

/* Xen's ELF note carrying the 32-bit PVH entry point (public/elfnote.h). */
#define XEN_ELFNOTE_PHYS32_ENTRY	18
#define XEN_NOTE_NAME			"Xen"

static bool elf_probe(const uint8_t *img, size_t len)
{
	return len >= SELFMAG && !memcmp(img, ELFMAG, SELFMAG);
}

static int elf_check_header(const uint8_t *img, size_t len, Elf64_Ehdr *eh)
{
	if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG)) {
		pr_err("not an ELF file");
		return -ENOEXEC;
	}
	if (img[EI_CLASS] != ELFCLASS64) {
		pr_err("ELF class %u is not ELF64 (32-bit kernels are not supported)",
		       img[EI_CLASS]);
		return -ENOEXEC;
	}
	if (len < sizeof(*eh)) {
		pr_err("ELF header truncated: file has %zu bytes, the header needs %zu",
		       len, sizeof(*eh));
		return -ENOEXEC;
	}
	memcpy(eh, img, sizeof(*eh));
	if (img[EI_DATA] != ELFDATA2LSB) {
		pr_err("ELF data encoding %u is not little-endian", img[EI_DATA]);
		return -ENOEXEC;
	}
	if (eh->e_machine != EM_X86_64) {
		pr_err("ELF machine %u is not x86-64 (%u)", eh->e_machine, EM_X86_64);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		pr_err("ELF type %u is not an executable (ET_EXEC)", eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phnum == 0) {
		pr_err("ELF has no program headers");
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr)) {
		pr_err("ELF program header size %u, expected %zu", eh->e_phentsize,
		       sizeof(Elf64_Phdr));
		return -ENOEXEC;
	}
	if (eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		pr_err("ELF program header table [0x%llx, +%u x %zu) extends past the end of the file (%zu bytes)",
		       (unsigned long long)eh->e_phoff, eh->e_phnum, sizeof(Elf64_Phdr), len);
		return -ENOEXEC;
	}
	return 0;
}

static void elf_phdr(const uint8_t *img, const Elf64_Ehdr *eh, int i, Elf64_Phdr *ph)
{
	memcpy(ph, img + eh->e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

/* The segment's file bytes must lie inside the file. */
static int elf_check_file_range(const Elf64_Phdr *ph, int i, size_t len)
{
	if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset) {
		pr_err("segment %d: file bytes [0x%llx, +0x%llx) extend past the end of the file (%zu bytes)",
		       i, (unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz, len);
		return -ENOEXEC;
	}
	return 0;
}

static int elf_check_load(const struct guest_mem *mem, const Elf64_Phdr *ph, int i, size_t len)
{
	int err;

	if (ph->p_filesz > ph->p_memsz) {
		pr_err("segment %d: file size 0x%llx is larger than its memory size 0x%llx",
		       i, (unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
		return -ENOEXEC;
	}
	err = elf_check_file_range(ph, i, len);
	if (err)
		return err;
	if (ph->p_paddr + ph->p_memsz < ph->p_paddr ||
	    !gpa_to_hva(mem, ph->p_paddr, ph->p_memsz)) {
		pr_err("segment %d [0x%llx-0x%llx) outside guest RAM (size %llu MiB)", i,
		       (unsigned long long)ph->p_paddr,
		       (unsigned long long)(ph->p_paddr + ph->p_memsz),
		       (unsigned long long)(mem->size >> 20));
		return -ENOMEM;
	}
	/* The loaders own [0, 1 MiB): boot_params, page tables, MP table, stack. */
	if (ph->p_paddr < PLAT_KERNEL_ADDR) {
		pr_err("segment %d [0x%llx-0x%llx) overlaps the boot area below 0x%llx", i,
		       (unsigned long long)ph->p_paddr,
		       (unsigned long long)(ph->p_paddr + ph->p_memsz), PLAT_KERNEL_ADDR);
		return -ENOEXEC;
	}
	return 0;
}

/*
 * Walk the notes of one PT_NOTE segment up to Xen's PHYS32_ENTRY.  Returns 0
 * (entry left untouched when absent) or -ENOEXEC for a malformed note.
 */
static int elf_find_pvh_note(const uint8_t *img, const Elf64_Phdr *ph, int i, uint64_t *entry)
{
	const uint8_t *p = img + ph->p_offset;
	uint64_t left = ph->p_filesz;

	while (left >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name_sz, desc_sz, off = ph->p_filesz - left;

		memcpy(&nh, p, sizeof(nh));
		name_sz = ALIGN_UP((uint64_t)nh.n_namesz, 4);
		desc_sz = ALIGN_UP((uint64_t)nh.n_descsz, 4);
		if (name_sz + desc_sz > left - sizeof(nh)) {
			pr_err("segment %d: note at offset 0x%llx runs past the end of its PT_NOTE segment",
			       i, (unsigned long long)off);
			return -ENOEXEC;
		}
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == sizeof(XEN_NOTE_NAME) &&
		    !memcmp(p + sizeof(nh), XEN_NOTE_NAME, sizeof(XEN_NOTE_NAME))) {
			const uint8_t *desc = p + sizeof(nh) + name_sz;
			uint32_t e32;
			uint64_t e64;

			/* Linux emits a 32-bit value, other kernels a 64-bit one. */
			if (nh.n_descsz == 4) {
				memcpy(&e32, desc, 4);
				*entry = e32;
			} else if (nh.n_descsz == 8) {
				memcpy(&e64, desc, 8);
				*entry = e64;
			} else {
				pr_err("segment %d: PVH entry note has a %u-byte value (expected 4 or 8)",
				       i, nh.n_descsz);
				return -ENOEXEC;
			}
			if (!*entry || *entry > 0xffffffffULL) {
				pr_err("PVH entry point 0x%llx is not a 32-bit address",
				       (unsigned long long)*entry);
				return -ENOEXEC;
			}
			return 0;
		}
		p += sizeof(nh) + name_sz + desc_sz;
		left -= sizeof(nh) + name_sz + desc_sz;
	}
	return 0;
}

static bool elf_addr_loaded(const uint8_t *img, const Elf64_Ehdr *eh, uint64_t addr)
{
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		elf_phdr(img, eh, i, &ph);
		if (ph.p_type == PT_LOAD && addr >= ph.p_paddr && addr - ph.p_paddr < ph.p_memsz)
			return true;
	}
	return false;
}

int elf_load(struct guest_mem *mem, const uint8_t *img, size_t len, struct boot_entry *out,
	     uint64_t *pvh_entry)
{
	Elf64_Ehdr eh;
	uint64_t end = 0, pvh = 0;
	int nload = 0, err;

	err = elf_check_header(img, len, &eh);
	if (err)
		return err;

	/* Validate everything first. */
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		elf_phdr(img, &eh, i, &ph);
		if (ph.p_type == PT_NOTE) {
			err = elf_check_file_range(&ph, i, len);
			if (!err)
				err = elf_find_pvh_note(img, &ph, i, &pvh);
			if (err)
				return err;
			continue;
		}
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		err = elf_check_load(mem, &ph, i, len);
		if (err)
			return err;
		end = MAX(end, ph.p_paddr + ph.p_memsz);
		nload++;
	}
	if (!nload) {
		pr_err("ELF has no loadable segments");
		return -ENOEXEC;
	}
	if (!elf_addr_loaded(img, &eh, eh.e_entry)) {
		pr_err("ELF entry point 0x%llx is not inside any loaded segment",
		       (unsigned long long)eh.e_entry);
		return -ENOEXEC;
	}
	if (pvh && !elf_addr_loaded(img, &eh, pvh)) {
		pr_err("PVH entry point 0x%llx is not inside any loaded segment",
		       (unsigned long long)pvh);
		return -ENOEXEC;
	}

	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		elf_phdr(img, &eh, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		dst = gpa_to_hva(mem, ph.p_paddr, ph.p_memsz);
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);	/* BSS */
	}

	memset(out, 0, sizeof(*out));
	out->proto = BOOT_AUTO;
	out->entry = eh.e_entry;
	out->kernel_end = end;
	if (pvh_entry)
		*pvh_entry = pvh;
	return 0;
}

static int elf_format_load(struct guest_mem *mem, const uint8_t *img, size_t len,
			   struct loaded_kernel *k)
{
	struct boot_entry e;
	int err;

	err = elf_load(mem, img, len, &e, &k->pvh_entry);
	if (err)
		return err;
	k->entry = e.entry;
	k->kernel_end = e.kernel_end;
	k->initrd_addr_max = BOOT_INITRD_ADDR_MAX;
	k->cmdline_max = BOOT_CMDLINE_MAX;
	return 0;
}

const struct kernel_format elf_kernel_format = {
	.name = "ELF64",
	.probe = elf_probe,
	.load = elf_format_load,
};
