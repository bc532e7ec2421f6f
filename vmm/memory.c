// SPDX-License-Identifier: MIT
#include "vmm/memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "devices/platform.h"
#include "vmm/util.h"

int guest_mem_init(struct guest_mem *m, uint64_t size)
{
	struct sysinfo si;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	if (size < GUEST_MEM_MIN || size & 0xfff) {
		pr_err("guest memory size %llu is invalid (minimum %llu MiB, multiple of 4 KiB)",
		       (unsigned long long)size, GUEST_MEM_MIN >> 20);
		return -1;
	}
	/* Overcommit is fine (pages are charged on first touch), but not beyond the host. */
	if (sysinfo(&si) == 0 && size > (uint64_t)si.totalram * si.mem_unit) {
		pr_err("guest memory of %llu MiB exceeds the host's RAM (%llu MiB)",
		       (unsigned long long)(size >> 20),
		       (unsigned long long)(((uint64_t)si.totalram * si.mem_unit) >> 20));
		return -1;
	}
	m->memfd = memfd_create("hdvm-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->memfd < 0) {
		pr_err("memfd_create: %s", strerror(errno));
		return -1;
	}
	if (ftruncate(m->memfd, size) < 0) {
		pr_err("guest memory of %llu MiB: %s", (unsigned long long)(size >> 20),
		       strerror(errno));
		goto err;
	}
	/* NORESERVE: pages are only charged when the guest touches them. */
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       m->memfd, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		pr_err("mapping %llu MiB of guest memory: %s", (unsigned long long)(size >> 20),
		       strerror(errno));
		goto err;
	}
	madvise(m->host, size, MADV_DONTDUMP);
	m->size = size;
	m->low_size = MIN(size, PLAT_MMIO_HOLE_START);
	m->high_size = size - m->low_size;
	return 0;
err:
	close(m->memfd);
	m->memfd = -1;
	return -1;
}

void guest_mem_destroy(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	m->host = NULL;
	m->memfd = -1;
}

int guest_mem_register(struct guest_mem *m, int vm_fd)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = m->low_size,
		.userspace_addr = (uintptr_t)m->host,
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		pr_err("KVM_SET_USER_MEMORY_REGION (low RAM): %s", strerror(errno));
		return -1;
	}
	if (!m->high_size)
		return 0;
	r.slot = 1;
	r.guest_phys_addr = PLAT_MMIO_HOLE_END;
	r.memory_size = m->high_size;
	r.userspace_addr = (uintptr_t)(m->host + m->low_size);
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		pr_err("KVM_SET_USER_MEMORY_REGION (high RAM): %s", strerror(errno));
		return -1;
	}
	return 0;
}

int64_t gpa_to_offset(const struct guest_mem *m, uint64_t gpa)
{
	if (gpa < m->low_size)
		return gpa;
	if (gpa >= PLAT_MMIO_HOLE_END && gpa - PLAT_MMIO_HOLE_END < m->high_size)
		return m->low_size + (gpa - PLAT_MMIO_HOLE_END);
	return -1;
}

void *gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t base, size;

	if (gpa < m->low_size) {
		base = 0;
		size = m->low_size;
	} else if (gpa >= PLAT_MMIO_HOLE_END && gpa - PLAT_MMIO_HOLE_END < m->high_size) {
		base = PLAT_MMIO_HOLE_END;
		size = m->high_size;
	} else {
		return NULL;
	}
	/* overflow-safe: len must fit in what remains of this range */
	if (len > size - (gpa - base))
		return NULL;
	return m->host + gpa_to_offset(m, gpa);
}
