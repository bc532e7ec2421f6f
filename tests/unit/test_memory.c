// SPDX-License-Identifier: MIT
/*
 * vmm/memory.c: the slot registry and the one guest-write path, against a
 * fake KVM that records what hdvm registers and hands back a dirty log.
 * What hdvm writes while logging shows up in the sync exactly for the pages
 * written; nothing is marked while logging is off; writes outside RAM are
 * refused without touching anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/platform.h"
#include "vmm/kvm_ops.h"
#include "vmm/memory.h"

#define RAM	(8ull << 20)
#define PAGE	GUEST_PAGE_SIZE

/* ---- fake KVM: remembers each slot's last registration ---- */

static struct kvm_userspace_memory_region fake_slots[GUEST_MEM_MAX_SLOTS];
static uint64_t fake_kvm_dirty[GUEST_MEM_MAX_SLOTS];	/* first 64 pages of KVM's log */
static int fake_fail_errno;

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	if (fake_fail_errno)
		return -fake_fail_errno;
	if (req == KVM_SET_USER_MEMORY_REGION) {
		struct kvm_userspace_memory_region *r = arg;

		assert_true(r->slot < GUEST_MEM_MAX_SLOTS);
		fake_slots[r->slot] = *r;
		return 0;
	}
	if (req == KVM_GET_DIRTY_LOG) {
		struct kvm_dirty_log *l = arg;

		assert_true(fake_slots[l->slot].flags & KVM_MEM_LOG_DIRTY_PAGES);
		((uint64_t *)l->dirty_bitmap)[0] = fake_kvm_dirty[l->slot];
		fake_kvm_dirty[l->slot] = 0;
		return 0;
	}
	fail_msg("unexpected ioctl %#lx", req);
	return -ENOTTY;
}

static const struct kvm_ops fake_kvm = { .ioctl = fake_ioctl };
static struct guest_mem m;
static uint64_t *bm;

static int setup(void **state)
{
	memset(fake_slots, 0, sizeof(fake_slots));
	memset(fake_kvm_dirty, 0, sizeof(fake_kvm_dirty));
	fake_fail_errno = 0;
	assert_int_equal(guest_mem_init(&m, RAM), 0);
	assert_int_equal(guest_mem_register(&m, &fake_kvm, 42), 0);
	bm = calloc(guest_mem_bitmap_words(&m.slots[0]), sizeof(*bm));
	return 0;
}

static int teardown(void **state)
{
	free(bm);
	guest_mem_destroy(&m);
	return 0;
}

static unsigned popcount_bitmap(void)
{
	unsigned n = 0;

	for (size_t w = 0; w < guest_mem_bitmap_words(&m.slots[0]); w++)
		n += __builtin_popcountll(bm[w]);
	return n;
}

static bool page_dirty(uint64_t page) { return bm[page / 64] >> (page % 64) & 1; }

static void test_ram_slot_registered_with_kvm(void **state)
{
	assert_int_equal(fake_slots[0].memory_size, RAM);
	assert_int_equal(fake_slots[0].guest_phys_addr, 0);
	assert_ptr_equal((void *)(uintptr_t)fake_slots[0].userspace_addr, m.host);
	assert_int_equal(fake_slots[0].flags, 0);
}

static void test_write_while_logging_marks_exactly_that_page(void **state)
{
	uint32_t v = 0xdeadbeef, back = 0;

	assert_int_equal(guest_mem_log_start(&m, -1), 0);
	assert_true(fake_slots[0].flags & KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(guest_mem_write(&m, 5 * PAGE + 100, &v, sizeof(v)), 0);
	assert_int_equal(guest_mem_read(&m, 5 * PAGE + 100, &back, sizeof(back)), 0);
	assert_int_equal(back, v);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_true(page_dirty(5));
	assert_int_equal(popcount_bitmap(), 1);
	/* the sync cleared hdvm's bitmap: a second sync reports nothing */
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_int_equal(popcount_bitmap(), 0);
}

static void test_write_without_logging_marks_nothing(void **state)
{
	uint64_t v = 1;

	assert_int_equal(guest_mem_write(&m, 3 * PAGE, &v, sizeof(v)), 0);
	guest_mem_mark_dirty(&m, 7 * PAGE, 1);
	assert_int_equal(guest_mem_log_start(&m, 0), 0);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_int_equal(popcount_bitmap(), 0);
	/* and after stop, writes are not recorded either */
	assert_int_equal(guest_mem_log_stop(&m, 0), 0);
	assert_false(fake_slots[0].flags & KVM_MEM_LOG_DIRTY_PAGES);
	assert_false(guest_mem_logging(&m, 0));
	assert_int_equal(guest_mem_write(&m, 3 * PAGE, &v, sizeof(v)), 0);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), -EINVAL);
	assert_int_equal(guest_mem_log_start(&m, 0), 0);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_int_equal(popcount_bitmap(), 0);
}

static void test_cross_page_write_marks_both_pages(void **state)
{
	uint8_t buf[16];

	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(guest_mem_log_start(&m, -1), 0);
	assert_int_equal(guest_mem_write(&m, 10 * PAGE - 8, buf, sizeof(buf)), 0);
	/* a 3-page write through a pointer, recorded afterwards */
	memset(gpa_to_hva(&m, 20 * PAGE + 1, 2 * PAGE), 1, 2 * PAGE);
	guest_mem_mark_dirty(&m, 20 * PAGE + 1, 2 * PAGE);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_true(page_dirty(9));
	assert_true(page_dirty(10));
	assert_true(page_dirty(20));
	assert_true(page_dirty(21));
	assert_true(page_dirty(22));
	assert_int_equal(popcount_bitmap(), 5);
	assert_memory_equal(m.host + 10 * PAGE - 8, buf, sizeof(buf));
}

static void test_sync_merges_kvm_log(void **state)
{
	uint8_t b = 1;

	assert_int_equal(guest_mem_log_start(&m, -1), 0);
	fake_kvm_dirty[0] = 1ull << 2;	/* a vCPU wrote page 2 */
	assert_int_equal(guest_mem_write(&m, 40 * PAGE, &b, 1), 0);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_true(page_dirty(2));
	assert_true(page_dirty(40));
	assert_int_equal(popcount_bitmap(), 2);
}

static void test_out_of_ram_writes_refused(void **state)
{
	uint8_t buf[32] = { 0 };

	assert_int_equal(guest_mem_log_start(&m, -1), 0);
	assert_int_equal(guest_mem_write(&m, RAM, buf, 1), -EFAULT);
	assert_int_equal(guest_mem_write(&m, RAM - 16, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_write(&m, PLAT_MMIO_HOLE_START, buf, 1), -EFAULT);
	assert_int_equal(guest_mem_write(&m, UINT64_MAX - 4, buf, 8), -EFAULT);
	assert_int_equal(guest_mem_write(&m, 0, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(guest_mem_read(&m, RAM - 1, buf, 2), -EFAULT);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_int_equal(popcount_bitmap(), 0);
	/* the last byte of RAM is fine */
	assert_int_equal(guest_mem_write(&m, RAM - 1, buf, 1), 0);
	assert_int_equal(guest_mem_log_sync(&m, 0, bm), 0);
	assert_true(page_dirty(RAM / PAGE - 1));
}

static void test_high_ram_is_its_own_slot(void **state)
{
	static uint8_t backing[4 * 4096] __attribute__((aligned(4096)));
	struct guest_mem g = { .memfd = -1 };
	uint64_t hb[1] = { 0 };
	uint8_t b = 7;

	guest_mem_layout(&g, backing, 2 * PAGE, 2 * PAGE);
	assert_int_equal(guest_mem_register(&g, &fake_kvm, 42), 0);
	assert_int_equal(fake_slots[1].guest_phys_addr, PLAT_MMIO_HOLE_END);
	assert_int_equal(gpa_to_offset(&g, PLAT_MMIO_HOLE_END + 5), 2 * PAGE + 5);
	assert_int_equal(guest_mem_log_start(&g, 1), 0);
	assert_false(guest_mem_logging(&g, 0));
	/* a write crossing from low RAM into the hole is refused */
	assert_int_equal(guest_mem_write(&g, 2 * PAGE - 1, &b, 2), -EFAULT);
	assert_int_equal(guest_mem_write(&g, PLAT_MMIO_HOLE_END + PAGE, &b, 1), 0);
	assert_int_equal(backing[3 * PAGE], 7);
	assert_int_equal(guest_mem_log_sync(&g, 1, hb), 0);
	assert_int_equal(hb[0], 2);
	for (int i = 0; i < GUEST_MEM_MAX_SLOTS; i++)
		free(g.slots[i].dirty);
}

static void test_device_slots_allocated_and_freed(void **state)
{
	static uint8_t page[4096] __attribute__((aligned(4096)));
	int a, b;

	a = guest_mem_slot_add(&m, 0xe0000000, sizeof(page), page);
	b = guest_mem_slot_add(&m, 0xe0001000, sizeof(page), page);
	assert_true(a >= 2 && b >= 2 && a != b);
	assert_int_equal(fake_slots[a].guest_phys_addr, 0xe0000000);
	assert_int_equal(m.slots[a].kind, MEM_SLOT_DEVICE);
	guest_mem_slot_del(&m, a);
	assert_int_equal(fake_slots[a].memory_size, 0);	/* KVM told to delete it */
	assert_int_equal(m.slots[a].kind, MEM_SLOT_FREE);
	/* a freed id is handed out again */
	assert_int_equal(guest_mem_slot_add(&m, 0xe0002000, sizeof(page), page), a);
	/* RAM slots are not the device-slot API's to delete */
	guest_mem_slot_del(&m, 0);
	assert_int_equal(m.slots[0].kind, MEM_SLOT_RAM);
	/* KVM's refusal comes back as its errno */
	fake_fail_errno = EEXIST;
	assert_int_equal(guest_mem_slot_add(&m, 0xe0003000, sizeof(page), page), -EEXIST);
}

/*
 * vm_create() registers RAM on a thread while the devices realize; a BAR a
 * device maps before that ends is registered by it, not lost (a standby in
 * tools/kvmlab logged "mapping device memory at 0xc0002000: No such device"
 * and its guest died after the takeover).
 */
static void test_device_slot_added_before_registration_is_registered(void **state)
{
	static uint8_t page[4096] __attribute__((aligned(4096)));
	struct guest_mem g;
	int a, b;

	memset(fake_slots, 0, sizeof(fake_slots));
	fake_fail_errno = 0;
	assert_int_equal(guest_mem_init(&g, RAM), 0);
	a = guest_mem_slot_add(&g, 0xc0002000, sizeof(page), page);
	b = guest_mem_slot_add(&g, 0xc0003000, sizeof(page), page);
	assert_true(a >= 2 && b >= 2 && a != b);
	assert_int_equal(fake_slots[a].memory_size, 0);	/* KVM not there yet */
	guest_mem_slot_del(&g, b);			/* gone before it was registered */
	assert_int_equal(guest_mem_register(&g, &fake_kvm, 42), 0);
	assert_int_equal(fake_slots[0].memory_size, RAM);
	assert_int_equal(fake_slots[a].guest_phys_addr, 0xc0002000);
	assert_int_equal(fake_slots[a].memory_size, sizeof(page));
	assert_int_equal(fake_slots[a].userspace_addr, (uintptr_t)page);
	assert_int_equal(fake_slots[b].memory_size, 0);
	/* and deleting it now tells KVM */
	fake_slots[a].memory_size = 1;
	guest_mem_slot_del(&g, a);
	assert_int_equal(fake_slots[a].memory_size, 0);
	guest_mem_destroy(&g);
}

static int count_ram(const struct mem_slot *s, void *opaque)
{
	(*(int *)opaque)++;
	return s->gpa == 0 ? 0 : -EIO;
}

static void test_for_each_ram_visits_ram_only(void **state)
{
	static uint8_t page[4096] __attribute__((aligned(4096)));
	int n = 0;

	assert_true(guest_mem_slot_add(&m, 0xe0000000, sizeof(page), page) >= 0);
	assert_int_equal(guest_mem_for_each_ram(&m, count_ram, &n), 0);
	assert_int_equal(n, 1);
}

/*
 * A migration destination builds its RAM on the source's memfd (unix:): the
 * mapping shows the source's bytes, writes reach the source's file, and a
 * memfd of the wrong size is refused (and closed: it was handed to us).
 */
static void test_init_on_a_handed_over_memfd(void **state)
{
	const uint64_t size = 32ull << 20;
	struct guest_mem m;
	int fd = memfd_create("src-ram", MFD_CLOEXEC), bad;
	uint8_t b = 0;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(pwrite(fd, "src", 3, 5 << 20), 3);
	assert_int_equal(guest_mem_init_fd(&m, size, fd), 0);
	assert_int_equal(m.memfd, fd);
	assert_memory_equal(m.host + (5 << 20), "src", 3);
	m.host[7 << 20] = 0x5a;
	assert_int_equal(pread(fd, &b, 1, 7 << 20), 1);
	assert_int_equal(b, 0x5a);
	guest_mem_destroy(&m);

	bad = memfd_create("short", MFD_CLOEXEC);
	assert_true(bad >= 0);
	assert_int_equal(ftruncate(bad, size / 2), 0);
	assert_int_equal(guest_mem_init_fd(&m, size, bad), -EINVAL);
	assert_int_equal(m.memfd, -1);
	assert_int_equal(fcntl(bad, F_GETFD), -1);	/* closed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ram_slot_registered_with_kvm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_while_logging_marks_exactly_that_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_without_logging_marks_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_page_write_marks_both_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_merges_kvm_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_ram_writes_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_high_ram_is_its_own_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_slots_allocated_and_freed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_each_ram_visits_ram_only, setup, teardown),
		cmocka_unit_test(test_device_slot_added_before_registration_is_registered),
		cmocka_unit_test(test_init_on_a_handed_over_memfd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
