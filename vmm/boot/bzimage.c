// SPDX-License-Identifier: MIT
/*
 * bzImage (Linux x86 boot protocol).  The real-mode setup code is skipped: the
 * protected-mode kernel that follows it goes to 1 MiB and is entered at its
 * 64-bit entry point (load address + 0x200) with boot_params in rsi, which
 * needs boot protocol 2.12+ and XLF_KERNEL_64.  Relocatable kernels are still
 * loaded at 1 MiB: their decompressor moves itself to an aligned address, so
 * the kernel owns both what was loaded and the range it decompresses into.
 */
#include <errno.h>
#include <asm/bootparam.h>
#include <stddef.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define SETUP_HDR_OFFSET	0x1f1	/* offsetof(struct boot_params, hdr) */
#define SETUP_HDR_MAGIC		0x53726448	/* "HdrS" */
#define SETUP_BOOT_FLAG		0xaa55
#define SETUP_SECTOR_SIZE	512
#define SETUP_SECTS_DEFAULT	4	/* setup_sects == 0 means 4 */
#define BZ_64BIT_ENTRY_OFFSET	0x200
#define BZ_MIN_VERSION		0x020c	/* first with xloadflags / XLF_KERNEL_64 */
#define BZ_CMDLINE_MAX_OLD	255	/* limit before protocol 2.06 */
/* The header ends at 0x202 + the byte at 0x201 (the jump's displacement). */
#define SETUP_HDR_JUMP_DISP	0x201
#define SETUP_HDR_JUMP_END	0x202
/* Never copy past the setup header's slot in boot_params. */
#define SETUP_HDR_SLOT_END	offsetof(struct boot_params, edd_mbr_sig_buffer)

#define HDR_FIELD_END(f)	(SETUP_HDR_OFFSET + offsetof(struct setup_header, f) + \
				 sizeof(((struct setup_header *)0)->f))

static uint16_t get_le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

bool is_bzimage(const uint8_t *img, size_t len)
{
	const size_t flag = SETUP_HDR_OFFSET + offsetof(struct setup_header, boot_flag);
	const size_t magic = SETUP_HDR_OFFSET + offsetof(struct setup_header, header);

	return len >= HDR_FIELD_END(header) && get_le16(img + flag) == SETUP_BOOT_FLAG &&
	       get_le32(img + magic) == SETUP_HDR_MAGIC;
}

/* Copy the setup header out of the image; returns its length in bytes or 0. */
static size_t bz_read_header(const uint8_t *img, size_t len, struct setup_header *hdr)
{
	size_t end = SETUP_HDR_JUMP_END + img[SETUP_HDR_JUMP_DISP];

	if (end > len) {
		pr_err("bzImage truncated: setup header ends at 0x%zx but the file has %zu bytes",
		       end, len);
		return 0;
	}
	/* Fields past the end of an old kernel's header read as zero. */
	end = MIN(end, SETUP_HDR_SLOT_END);
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr, img + SETUP_HDR_OFFSET, MIN(end - SETUP_HDR_OFFSET, sizeof(*hdr)));
	return end - SETUP_HDR_OFFSET;
}

/*
 * Where the decompressor puts the kernel: a relocatable kernel rounds its load
 * address up to kernel_alignment (read from boot_params at run time), and no
 * kernel goes below pref_address (LOAD_PHYSICAL_ADDR, usually 16 MiB).  It
 * needs init_size bytes from there.
 */
static uint64_t bz_run_addr(const struct setup_header *hdr)
{
	uint64_t addr = PLAT_KERNEL_ADDR, align = hdr->kernel_alignment;

	if (hdr->relocatable_kernel && align && !(align & (align - 1)))
		addr = ALIGN_UP(addr, align);
	return MAX(addr, hdr->pref_address);
}

int bzimage_load(struct guest_mem *mem, const uint8_t *img, size_t len, struct boot_entry *out,
		 uint8_t *zero_page)
{
	struct setup_header hdr;
	size_t hdr_len, setup_len, kernel_len;
	uint64_t run_addr;
	uint8_t *dst;
	unsigned setup_sects;

	if (!is_bzimage(img, len)) {
		pr_err("not a bzImage (no \"HdrS\" setup header with boot flag 0xaa55)");
		return -ENOEXEC;
	}
	hdr_len = bz_read_header(img, len, &hdr);
	if (!hdr_len)
		return -ENOEXEC;
	if (hdr.version < BZ_MIN_VERSION || !(hdr.xloadflags & XLF_KERNEL_64)) {
		pr_err("bzImage has no 64-bit entry point (boot protocol %u.%02u, xloadflags 0x%x; need 2.12+ with XLF_KERNEL_64)",
		       hdr.version >> 8, hdr.version & 0xff, hdr.xloadflags);
		return -ENOEXEC;
	}
	if (!(hdr.loadflags & LOADED_HIGH)) {
		pr_err("bzImage is not loaded high (a zImage): not supported");
		return -ENOEXEC;
	}

	setup_sects = hdr.setup_sects ? hdr.setup_sects : SETUP_SECTS_DEFAULT;
	setup_len = (size_t)(setup_sects + 1) * SETUP_SECTOR_SIZE;
	if (setup_len >= len) {
		pr_err("bzImage truncated: %u setup sectors (%zu bytes) but the file has %zu bytes",
		       setup_sects, setup_len, len);
		return -ENOEXEC;
	}
	kernel_len = len - setup_len;
	/* syssize counts 16-byte paragraphs: allow the last one to be partial. */
	if ((uint64_t)hdr.syssize * 16 > kernel_len + 15) {
		pr_err("bzImage truncated: the kernel is %llu bytes (syssize) but only %zu follow the setup code",
		       (unsigned long long)hdr.syssize * 16, kernel_len);
		return -ENOEXEC;
	}
	dst = gpa_to_hva(mem, PLAT_KERNEL_ADDR, kernel_len);
	if (!dst) {
		pr_err("bzImage kernel of %zu bytes at 0x%llx does not fit in low guest RAM (ends at 0x%llx)",
		       kernel_len, PLAT_KERNEL_ADDR, (unsigned long long)mem->low_size);
		return -ENOMEM;
	}
	run_addr = bz_run_addr(&hdr);
	if (!gpa_to_hva(mem, run_addr, hdr.init_size)) {
		pr_err("bzImage decompresses to [0x%llx-0x%llx) (pref_address, init_size) but low guest RAM ends at 0x%llx",
		       (unsigned long long)run_addr, (unsigned long long)(run_addr + hdr.init_size),
		       (unsigned long long)mem->low_size);
		return -ENOMEM;
	}
	memcpy(dst, img + setup_len, kernel_len);

	memset(zero_page, 0, BOOT_PAGE_SIZE);
	memcpy(zero_page + SETUP_HDR_OFFSET, img + SETUP_HDR_OFFSET, hdr_len);

	memset(out, 0, sizeof(*out));
	out->proto = BOOT_AUTO;
	out->entry = PLAT_KERNEL_ADDR + BZ_64BIT_ENTRY_OFFSET;
	out->kernel_end = MAX(PLAT_KERNEL_ADDR + kernel_len, run_addr + hdr.init_size);
	return 0;
}

static int bzimage_format_load(struct guest_mem *mem, const uint8_t *img, size_t len,
			       struct loaded_kernel *k)
{
	const struct boot_params *bp = (const void *)k->zero_page;
	struct boot_entry e;
	int err;

	err = bzimage_load(mem, img, len, &e, k->zero_page);
	if (err)
		return err;
	k->is_bzimage = true;
	k->entry = e.entry;
	k->kernel_end = e.kernel_end;
	/* Fields of protocol 2.03 and 2.06; bzimage_load() demands 2.12. */
	k->initrd_addr_max = bp->hdr.initrd_addr_max ? bp->hdr.initrd_addr_max
						     : BOOT_INITRD_ADDR_MAX;
	k->cmdline_max = bp->hdr.cmdline_size ? bp->hdr.cmdline_size : BZ_CMDLINE_MAX_OLD;
	return 0;
}

const struct kernel_format bzimage_kernel_format = {
	.name = "bzImage",
	.probe = is_bzimage,
	.load = bzimage_format_load,
};
