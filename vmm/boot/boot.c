// SPDX-License-Identifier: MIT
/*
 * boot_load(): read the kernel, let the first kernel format that recognises
 * it load it, pick the boot protocol, place the command line and the initrd,
 * write the protocol's boot structure and the MP table.
 *
 * Guest physical layout below the kernel (devices/platform.h): GDT 0x500,
 * PVH start_info 0x6000, zero page 0x7000, page tables 0x9000-0xefff,
 * command line 0x20000, stack below 0x8ff00, MP table 0x9fc00.  Kernels load
 * at 1 MiB or above; the initrd goes as high in low RAM as the kernel allows.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

static const struct kernel_format *const kernel_formats[] = {
	&bzimage_kernel_format,
	&elf_kernel_format,
};

static const struct boot_protocol *const boot_protocols[] = {
	&linux64_boot_protocol,
	&pvh_boot_protocol,
};

static const struct boot_protocol *boot_protocol_for(enum boot_proto proto)
{
	if (proto == BOOT_AUTO)
		proto = BOOT_LINUX64;	/* both formats have a 64-bit entry */
	for (size_t i = 0; i < ARRAY_SIZE(boot_protocols); i++)
		if (boot_protocols[i]->proto == proto)
			return boot_protocols[i];
	return NULL;
}

static const struct kernel_format *kernel_format_for(const uint8_t *img, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(kernel_formats); i++)
		if (kernel_formats[i]->probe(img, len))
			return kernel_formats[i];
	return NULL;
}

static int load_kernel(struct guest_mem *mem, const char *path, struct loaded_kernel *k)
{
	const struct kernel_format *fmt;
	uint8_t *img;
	size_t len;
	int ret;

	ret = read_file(path, MIN(BOOT_KERNEL_FILE_MAX, mem->size), &img, &len);
	if (ret)
		return ret;
	if (!len) {
		pr_err("%s: kernel file is empty", path);
		free(img);
		return -ENOEXEC;
	}
	fmt = kernel_format_for(img, len);
	if (!fmt) {
		pr_err("%s: not an ELF64 or bzImage kernel", path);
		free(img);
		return -ENOEXEC;
	}
	ret = fmt->load(mem, img, len, k);
	free(img);
	if (ret) {
		pr_err("%s: cannot load this %s kernel", path, fmt->name);
		return ret;
	}
	k->format = fmt->name;
	return 0;
}

static int place_cmdline(struct guest_mem *mem, const char *cmdline,
			 const struct loaded_kernel *k, struct boot_layout *l)
{
	size_t len = cmdline ? strlen(cmdline) : 0;
	char *dst;

	if (len > k->cmdline_max || len > BOOT_CMDLINE_MAX) {
		pr_err("command line too long: %zu bytes, this kernel accepts at most %llu",
		       len, (unsigned long long)MIN(k->cmdline_max, BOOT_CMDLINE_MAX));
		return -E2BIG;
	}
	dst = gpa_to_hva(mem, PLAT_CMDLINE_ADDR, len + 1);
	if (!dst) {
		pr_err("command line at 0x%llx is outside guest RAM", PLAT_CMDLINE_ADDR);
		return -EFAULT;
	}
	memcpy(dst, cmdline ? cmdline : "", len);
	dst[len] = '\0';
	l->cmdline_gpa = PLAT_CMDLINE_ADDR;
	l->cmdline_len = len;
	return 0;
}

uint64_t initrd_place(const struct guest_mem *mem, const struct loaded_kernel *k, uint64_t size)
{
	uint64_t floor = ALIGN_UP(MAX(k->kernel_end, PLAT_KERNEL_ADDR), BOOT_PAGE_SIZE);
	uint64_t top = MIN(mem->low_size, k->initrd_addr_max + 1);
	uint64_t addr;

	if (!size || size > top || top - size < floor)
		return 0;
	addr = (top - size) & ~(BOOT_PAGE_SIZE - 1);
	return addr >= floor ? addr : 0;
}

static int place_initrd(struct guest_mem *mem, const char *path, const struct loaded_kernel *k,
			struct boot_layout *l)
{
	uint8_t *img, *dst;
	size_t len;
	uint64_t gpa;
	int err;

	if (!path)
		return 0;
	err = read_file(path, mem->low_size, &img, &len);
	if (err)
		return err;
	if (!len) {
		pr_err("%s: initrd file is empty", path);
		free(img);
		return -EINVAL;
	}
	gpa = initrd_place(mem, k, len);
	dst = gpa ? gpa_to_hva(mem, gpa, len) : NULL;
	if (!dst) {
		pr_err("%s: initrd of %zu bytes does not fit between the kernel end 0x%llx and 0x%llx",
		       path, len, (unsigned long long)k->kernel_end,
		       (unsigned long long)MIN(mem->low_size, k->initrd_addr_max + 1));
		free(img);
		return -ENOMEM;
	}
	memcpy(dst, img, len);
	free(img);
	l->initrd_gpa = gpa;
	l->initrd_size = len;
	return 0;
}

int boot_load(struct guest_mem *mem, const struct boot_request *req, struct boot_entry *out)
{
	const struct boot_protocol *proto = boot_protocol_for(req->proto);
	struct loaded_kernel *k;
	struct boot_layout layout = { 0 };
	int ret;

	if (!req->kernel_path) {
		pr_err("no kernel given");
		return -EINVAL;
	}
	if (!proto) {
		pr_err("unknown boot protocol %d", req->proto);
		return -EINVAL;
	}
	k = xzalloc(sizeof(*k));	/* holds a page: keep it off small stacks */
	ret = load_kernel(mem, req->kernel_path, k);
	if (ret)
		goto out;
	memset(out, 0, sizeof(*out));
	out->proto = proto->proto;
	out->entry = proto->entry(k, req->kernel_path);
	out->kernel_end = k->kernel_end;
	ret = -ENOEXEC;		/* the protocol said why: no entry for it */
	if (!out->entry)
		goto out;
	layout.kernel = k;
	ret = place_cmdline(mem, req->cmdline, k, &layout);
	if (!ret)
		ret = place_initrd(mem, req->initrd_path, k, &layout);
	if (ret)
		goto out;
	out->boot_info = proto->write_info(mem, &layout);
	ret = out->boot_info ? mptable_write(mem, req->ncpus) : -EFAULT;
	if (ret)
		goto out;
	pr_debug("boot: %s kernel %s via %s, entry 0x%llx, kernel end 0x%llx, initrd %llu bytes at 0x%llx",
		 k->format, req->kernel_path, proto->name, (unsigned long long)out->entry,
		 (unsigned long long)out->kernel_end, (unsigned long long)layout.initrd_size,
		 (unsigned long long)layout.initrd_gpa);
	ret = 0;
out:
	free(k);
	return ret;
}

int boot_setup_bsp(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e)
{
	const struct boot_protocol *proto = e->proto == BOOT_AUTO ? NULL
							       : boot_protocol_for(e->proto);

	if (!proto) {
		pr_err("boot vCPU setup: boot protocol %d was not resolved by boot_load()",
		       e->proto);
		return -EINVAL;
	}
	return proto->setup_cpu(vcpu_fd, mem, e);
}
