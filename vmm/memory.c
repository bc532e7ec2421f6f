// SPDX-License-Identifier: MIT
#include "vmm/memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "devices/platform.h"
#include "vmm/kvm_ops.h"
#include "vmm/util.h"

/* Slots 0 and 1 are RAM below and above the hole; device memory starts here. */
#define FIRST_DEVICE_SLOT	2

static void ram_slot_describe(struct guest_mem *m, int id, uint64_t gpa, uint64_t size,
			      uint64_t offset)
{
	struct mem_slot *s = &m->slots[id];

	s->kind = MEM_SLOT_RAM;
	s->id = id;
	s->gpa = gpa;
	s->size = size;
	s->offset = offset;
	s->hva = m->host + offset;
}

void guest_mem_layout(struct guest_mem *m, uint8_t *host, uint64_t low, uint64_t high)
{
	m->host = host;
	m->size = low + high;
	m->low_size = low;
	m->high_size = high;
	ram_slot_describe(m, 0, 0, low, 0);
	if (high)
		ram_slot_describe(m, 1, PLAT_MMIO_HOLE_END, high, low);
}

int guest_mem_init(struct guest_mem *m, uint64_t size)
{
	return guest_mem_init_fd(m, size, -1);
}

int guest_mem_init_fd(struct guest_mem *m, uint64_t size, int fd)
{
	struct sysinfo si;
	uint8_t *host;
	int ret;

	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	m->vm_fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	if (size < GUEST_MEM_MIN || size & (GUEST_PAGE_SIZE - 1)) {
		pr_err("guest memory size %llu is invalid (minimum %llu MiB, multiple of 4 KiB)",
		       (unsigned long long)size, GUEST_MEM_MIN >> 20);
		return -EINVAL;
	}
	/* Overcommit is fine (pages are charged on first touch), but not beyond the host. */
	if (sysinfo(&si) == 0 && size > (uint64_t)si.totalram * si.mem_unit) {
		pr_err("guest memory of %llu MiB exceeds the host's RAM (%llu MiB)",
		       (unsigned long long)(size >> 20),
		       (unsigned long long)(((uint64_t)si.totalram * si.mem_unit) >> 20));
		return -ENOMEM;
	}
	if (fd >= 0) {
		struct stat st;

		m->memfd = fd;
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
			ret = -EINVAL;
			pr_err("the RAM memfd handed over is not %llu bytes",
			       (unsigned long long)size);
			goto err;
		}
		goto map;
	}
	m->memfd = memfd_create("hdvm-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->memfd < 0) {
		ret = -errno;
		pr_err("memfd_create: %s", strerror(-ret));
		return ret;
	}
	if (ftruncate(m->memfd, size) < 0) {
		ret = -errno;
		pr_err("guest memory of %llu MiB: %s", (unsigned long long)(size >> 20),
		       strerror(-ret));
		goto err;
	}
map:
	/* NORESERVE: pages are only charged when the guest touches them. */
	host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       m->memfd, 0);
	if (host == MAP_FAILED) {
		ret = -errno;
		pr_err("mapping %llu MiB of guest memory: %s", (unsigned long long)(size >> 20),
		       strerror(-ret));
		goto err;
	}
	madvise(host, size, MADV_DONTDUMP);
	guest_mem_layout(m, host, MIN(size, PLAT_MMIO_HOLE_START),
			 size - MIN(size, PLAT_MMIO_HOLE_START));
	return 0;
err:
	close(m->memfd);
	m->memfd = -1;
	return ret;
}

int guest_mem_adopt_fd(struct guest_mem *m, int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != m->size || !m->host)
		return -EINVAL;
	p = mmap(m->host, m->size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	close(m->memfd);
	m->memfd = fd;
	return 0;
}

void guest_mem_destroy(struct guest_mem *m)
{
	for (int i = 0; i < GUEST_MEM_MAX_SLOTS; i++)
		free(m->slots[i].dirty);
	if (m->host)
		munmap(m->host, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	memset(m->slots, 0, sizeof(m->slots));
	m->host = NULL;
	m->memfd = -1;
}

/* (Re-)register one slot with KVM with its current flags. */
static int slot_commit(struct guest_mem *m, struct mem_slot *s, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = s->id,
		.flags = flags,
		.guest_phys_addr = s->gpa,
		.memory_size = s->size,
		.userspace_addr = (uintptr_t)s->hva,
	};
	int ret;

	if (!m->kvm)
		return -ENODEV;
	ret = m->kvm->ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
	if (ret < 0)
		return ret;
	s->flags = flags;
	s->registered = true;
	return 0;
}

/*
 * Runs on a thread while the devices realize (vm.c): a device slot added
 * before it (a BAR a device maps at realize) waits unregistered and is
 * registered here, after RAM.
 */
int guest_mem_register(struct guest_mem *m, const struct kvm_ops *kvm, int vm_fd)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	m->kvm = kvm;
	m->vm_fd = vm_fd;
	for (int i = 0; i < GUEST_MEM_MAX_SLOTS && !ret; i++) {
		struct mem_slot *s = &m->slots[i];

		if (s->kind == MEM_SLOT_FREE || s->registered)
			continue;
		ret = slot_commit(m, s, s->flags);
		if (ret < 0 && s->kind == MEM_SLOT_RAM)
			pr_err("KVM_SET_USER_MEMORY_REGION (%s RAM): %s", i ? "high" : "low",
			       strerror(-ret));
		else if (ret < 0)
			pr_err("mapping device memory at %#llx: %s", (unsigned long long)s->gpa,
			       strerror(-ret));
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* The RAM slot holding gpa, or NULL. */
static const struct mem_slot *ram_slot_of(const struct guest_mem *m, uint64_t gpa)
{
	for (int i = 0; i < FIRST_DEVICE_SLOT; i++) {
		const struct mem_slot *s = &m->slots[i];

		if (s->kind == MEM_SLOT_RAM && gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

int64_t gpa_to_offset(const struct guest_mem *m, uint64_t gpa)
{
	const struct mem_slot *s = ram_slot_of(m, gpa);

	return s ? (int64_t)(s->offset + (gpa - s->gpa)) : -1;
}

void *gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const struct mem_slot *s = ram_slot_of(m, gpa);

	/* overflow-safe: len must fit in what remains of this range */
	if (!s || len > s->size - (gpa - s->gpa))
		return NULL;
	return s->hva + (gpa - s->gpa);
}

void *guest_mem_translate(void *opaque, uint64_t gpa, uint64_t len)
{
	return gpa_to_hva(opaque, gpa, len);
}

void guest_mem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const struct mem_slot *s = ram_slot_of(m, gpa);
	uint64_t first, last;

	/* acquire: the bitmap is allocated before logging is published */
	if (!len || !s || !__atomic_load_n(&s->logging, __ATOMIC_ACQUIRE))
		return;
	if (len > s->size - (gpa - s->gpa))
		len = s->size - (gpa - s->gpa);
	first = (gpa - s->gpa) >> GUEST_PAGE_SHIFT;
	last = (gpa - s->gpa + len - 1) >> GUEST_PAGE_SHIFT;
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&s->dirty[p / 64], 1ULL << (p % 64), __ATOMIC_RELEASE);
}

int guest_mem_write(struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = gpa_to_hva(m, gpa, len);

	if (!dst)
		return -EFAULT;
	if (m->fault_in) {
		int ret = m->fault_in(m->fault_in_opaque, (uint64_t)gpa_to_offset(m, gpa), len);

		if (ret)
			return ret;
	}
	memcpy(dst, src, len);
	guest_mem_mark_dirty(m, gpa, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *src = gpa_to_hva(m, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

/* ---- the slot registry ---- */

int guest_mem_slot_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *hva)
{
	struct mem_slot *s = NULL;
	int ret;

	pthread_mutex_lock(&m->lock);
	for (int i = FIRST_DEVICE_SLOT; i < GUEST_MEM_MAX_SLOTS; i++) {
		if (m->slots[i].kind == MEM_SLOT_FREE) {
			s = &m->slots[i];
			s->id = i;
			break;
		}
	}
	if (!s) {
		ret = -ENOSPC;
		goto out;
	}
	s->kind = MEM_SLOT_DEVICE;
	s->gpa = gpa;
	s->size = size;
	s->hva = hva;
	/* before guest_mem_register (still on its thread): it registers the slot */
	ret = m->kvm ? slot_commit(m, s, 0) : 0;
	if (ret < 0) {
		memset(s, 0, sizeof(*s));
		goto out;
	}
	ret = s->id;
out:
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		pr_err("mapping device memory at %#llx: %s", (unsigned long long)gpa,
		       strerror(-ret));
	return ret;
}

void guest_mem_slot_del(struct guest_mem *m, int id)
{
	struct mem_slot *s;

	if (id < FIRST_DEVICE_SLOT || id >= GUEST_MEM_MAX_SLOTS)
		return;
	pthread_mutex_lock(&m->lock);
	s = &m->slots[id];
	if (s->kind == MEM_SLOT_DEVICE) {
		s->size = 0;	/* size 0 deletes the slot */
		if (s->registered && slot_commit(m, s, 0) < 0)
			pr_err("unmapping device memory slot %d", id);
		memset(s, 0, sizeof(*s));
	}
	pthread_mutex_unlock(&m->lock);
}

int guest_mem_for_each_ram(const struct guest_mem *m,
			   int (*fn)(const struct mem_slot *s, void *opaque), void *opaque)
{
	for (int i = 0; i < FIRST_DEVICE_SLOT; i++) {
		int ret;

		if (m->slots[i].kind != MEM_SLOT_RAM)
			continue;
		ret = fn(&m->slots[i], opaque);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- dirty logging ---- */

size_t guest_mem_bitmap_words(const struct mem_slot *s)
{
	return (s->size / GUEST_PAGE_SIZE + 63) / 64;
}

static int slot_set_logging(struct guest_mem *m, struct mem_slot *s, bool on)
{
	uint32_t flags = on ? s->flags | KVM_MEM_LOG_DIRTY_PAGES
			    : s->flags & ~KVM_MEM_LOG_DIRTY_PAGES;
	int ret;

	if (on && !s->dirty) {
		s->dirty = calloc(guest_mem_bitmap_words(s), sizeof(uint64_t));
		if (!s->dirty)
			return -ENOMEM;
	}
	/* hdvm starts marking before KVM logs, so no write falls between the two */
	if (on)
		__atomic_store_n(&s->logging, true, __ATOMIC_RELEASE);
	ret = flags == s->flags ? 0 : slot_commit(m, s, flags);
	if (ret < 0 && on)
		__atomic_store_n(&s->logging, false, __ATOMIC_RELEASE);
	if (ret == 0 && !on)
		__atomic_store_n(&s->logging, false, __ATOMIC_RELEASE);
	return ret;
}

static int for_ram_slots(struct guest_mem *m, int id, bool on)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < FIRST_DEVICE_SLOT; i++) {
		if (m->slots[i].kind != MEM_SLOT_RAM || (id >= 0 && id != i))
			continue;
		ret = slot_set_logging(m, &m->slots[i], on);
		if (ret < 0)
			break;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int guest_mem_log_start(struct guest_mem *m, int id)
{
	return for_ram_slots(m, id, true);
}

int guest_mem_log_stop(struct guest_mem *m, int id)
{
	return for_ram_slots(m, id, false);
}

bool guest_mem_logging(const struct guest_mem *m, int id)
{
	return id >= 0 && id < GUEST_MEM_MAX_SLOTS &&
	       __atomic_load_n(&m->slots[id].logging, __ATOMIC_ACQUIRE);
}

int guest_mem_log_sync(struct guest_mem *m, int id, uint64_t *out)
{
	struct mem_slot *s;
	size_t words;
	int ret;

	if (id < 0 || id >= FIRST_DEVICE_SLOT || m->slots[id].kind != MEM_SLOT_RAM)
		return -ENOENT;
	s = &m->slots[id];
	if (!s->logging)
		return -EINVAL;
	words = guest_mem_bitmap_words(s);
	memset(out, 0, words * sizeof(*out));
	if (s->flags & KVM_MEM_LOG_DIRTY_PAGES) {
		struct kvm_dirty_log log = { .slot = s->id, .dirty_bitmap = out };

		ret = m->kvm->ioctl(m->vm_fd, KVM_GET_DIRTY_LOG, &log);
		if (ret < 0)
			return ret;
	}
	for (size_t w = 0; w < words; w++)
		out[w] |= __atomic_exchange_n(&s->dirty[w], 0, __ATOMIC_ACQ_REL);
	return 0;
}
