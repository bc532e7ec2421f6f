// SPDX-License-Identifier: MIT
/*
 * The split-ring walker (devices/virtio/virtq.c) against fake guest RAM with
 * guard areas around it: valid chains, index wrap, used ring and
 * notification suppression, and every way a driver can break a ring.  Each
 * hostile ring must come back as an error (the device turns that into
 * NEEDS_RESET; test_virtio_net checks that part) without a byte outside
 * guest RAM being touched.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/virtio/virtq.h"
#include "migration/state.h"
#include "vmm/kvm_ops.h"
#include "virtio_test_mem.h"

#define LOW		(32ull << 20)
#define HIGH		(2ull << 20)
#define DESC		0x10000ull
#define AVAIL		0x11000ull
#define USED		0x12000ull
#define BUF		0x100000ull
#define HIGH_BASE	PLAT_MMIO_HOLE_END

static struct test_mem mem;
static struct vq_mem ram;
static struct vq q;
static struct vq_chain chain;
static uint16_t avail_idx;

static struct vring_desc *desc(unsigned i) { return (struct vring_desc *)test_gpa(&mem, DESC) + i; }
static struct vring_avail *avail(void) { return test_gpa(&mem, AVAIL); }
static struct vring_used *used(void) { return test_gpa(&mem, USED); }

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	*desc(i) = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

static void offer(uint16_t head)
{
	avail()->ring[avail_idx % q.size] = head;
	avail()->idx = ++avail_idx;
}

static void attach(uint16_t size, bool event_idx, bool device_writes)
{
	vq_reset(&q, VQ_MAX_SIZE);
	q.size = size;
	q.desc_addr = DESC;
	q.avail_addr = AVAIL;
	q.used_addr = USED;
	q.enabled = true;
	assert_int_equal(vq_attach(&q, &ram, event_idx,
				   device_writes ? VQ_FROM_DEVICE : VQ_TO_DEVICE), 0);
}

static int setup(void **state)
{
	assert_int_equal(test_mem_init(&mem, LOW, HIGH), 0);
	ram = vq_guest_ram(&mem.gm);
	avail_idx = 0;
	attach(16, false, false);
	return 0;
}

static int teardown(void **state)
{
	test_mem_destroy(&mem);
	return 0;
}

/* ---- valid rings ---- */

static void test_single_descriptor(void **st)
{
	memset(test_gpa(&mem, BUF), 0xab, 100);
	set_desc(3, BUF, 100, 0, 0);
	offer(3);
	assert_int_equal(vq_pending(&q), 1);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.head, 3);
	assert_int_equal(chain.nr, 1);
	assert_int_equal(chain.total, 100);
	assert_ptr_equal(chain.iov[0].base, test_gpa(&mem, BUF));
	assert_int_equal(chain.iov[0].base[99], 0xab);
	assert_int_equal(vq_pop(&q, &chain), 0);
}

static void test_multi_descriptor_chain_and_used(void **st)
{
	set_desc(0, BUF, 12, VRING_DESC_F_NEXT, 5);
	set_desc(5, BUF + 0x1000, 0, VRING_DESC_F_NEXT, 7);	/* empty: left out */
	set_desc(7, BUF + 0x2000, 1500, 0, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.nr, 2);
	assert_int_equal(chain.total, 1512);
	assert_int_equal(chain.iov[1].len, 1500);
	vq_push(&q, chain.head, 0);
	assert_int_equal(used()->idx, 0);		/* not visible before publish */
	vq_publish(&q);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].id, 0);
	assert_int_equal(used()->ring[0].len, 0);
}

static void test_chain_as_long_as_the_queue(void **st)
{
	for (unsigned i = 0; i < q.size; i++)
		set_desc(i, BUF + i * 64, 64, i + 1 < q.size ? VRING_DESC_F_NEXT : 0, i + 1);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.nr, q.size);
	assert_int_equal(chain.total, 64 * q.size);
}

static void test_buffers_in_high_ram(void **st)
{
	set_desc(1, HIGH_BASE + HIGH - 256, 256, 0, 0);	/* ends exactly at the end of RAM */
	offer(1);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_ptr_equal(chain.iov[0].base, mem.gm.host + LOW + HIGH - 256);
}

static void test_index_wraps_at_65536(void **st)
{
	q.last_avail = avail_idx = 65534;
	q.used_idx = 65534;
	avail()->idx = avail_idx;
	set_desc(2, BUF, 10, 0, 0);
	for (int i = 0; i < 4; i++) {
		offer(2);
		assert_int_equal(vq_pop(&q, &chain), 1);
		vq_push(&q, chain.head, 10);
	}
	vq_publish(&q);
	assert_int_equal(q.last_avail, 2);
	assert_int_equal(used()->idx, 2);
	assert_int_equal(vq_pending(&q), 0);
}

static void test_unpop_gives_the_chain_back(void **st)
{
	set_desc(4, BUF, 10, 0, 0);
	offer(4);
	assert_int_equal(vq_pop(&q, &chain), 1);
	vq_unpop(&q);
	assert_int_equal(vq_pending(&q), 1);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.head, 4);
}

static void test_interrupt_suppression_flag(void **st)
{
	vq_push(&q, 0, 0);
	vq_publish(&q);
	assert_true(vq_should_interrupt(&q));
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	vq_push(&q, 0, 0);
	vq_publish(&q);
	assert_false(vq_should_interrupt(&q));
}

static void test_interrupt_suppression_event_idx(void **st)
{
	attach(16, true, false);
	avail()->ring[16] = 2;				/* used_event */
	vq_push(&q, 0, 0);
	vq_publish(&q);
	assert_true(vq_should_interrupt(&q));		/* first one always */
	vq_push(&q, 0, 0);
	vq_publish(&q);				/* used 1 -> 2: event 2 not crossed */
	assert_false(vq_should_interrupt(&q));
	vq_push(&q, 0, 0);
	vq_publish(&q);				/* 2 -> 3 crosses used_event 2 */
	assert_true(vq_should_interrupt(&q));
}

static void test_notify_suppression(void **st)
{
	uint16_t *avail_event;

	vq_set_notify(&q, false);
	assert_int_equal(used()->flags, VRING_USED_F_NO_NOTIFY);
	vq_set_notify(&q, true);
	assert_int_equal(used()->flags, 0);

	attach(16, true, false);
	avail_event = (uint16_t *)&used()->ring[16];
	q.last_avail = 7;
	vq_set_notify(&q, true);
	assert_int_equal(*avail_event, 7);
	vq_set_notify(&q, false);
	assert_false(vring_need_event(*avail_event, 9, 7));	/* kicks stop */
}

/* ---- hostile rings: an error, nothing touched outside RAM ---- */

static void expect_pop_error(int err)
{
	uint16_t before = q.last_avail;

	assert_int_equal(vq_pop(&q, &chain), -err);
	assert_int_equal(q.last_avail, before);		/* nothing consumed */
}

static void test_avail_index_too_far_ahead(void **st)
{
	avail()->idx = q.size + 1;
	assert_int_equal(vq_pending(&q), -ERANGE);
	expect_pop_error(ERANGE);
	avail()->idx = 0x8000;
	expect_pop_error(ERANGE);
}

static void test_head_out_of_range(void **st)
{
	offer(q.size);
	expect_pop_error(ECHRNG);
	avail()->ring[0] = 0xffff;
	expect_pop_error(ECHRNG);
}

static void test_next_out_of_range(void **st)
{
	set_desc(0, BUF, 10, VRING_DESC_F_NEXT, q.size);
	offer(0);
	expect_pop_error(ECHRNG);
}

static void test_descriptor_loop(void **st)
{
	set_desc(0, BUF, 10, VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF, 10, VRING_DESC_F_NEXT, 0);
	offer(0);
	expect_pop_error(ELOOP);
	set_desc(2, BUF, 10, VRING_DESC_F_NEXT, 2);	/* points at itself */
	avail()->ring[0] = 2;
	expect_pop_error(ELOOP);
}

static void test_buffer_outside_ram(void **st)
{
	static const struct { uint64_t addr; uint32_t len; } bad[] = {
		{ LOW - 10, 11 },			/* runs past low RAM into the hole */
		{ LOW, 1 },				/* the hole */
		{ PLAT_MMIO_HOLE_START + 0x1000, 4 },
		{ HIGH_BASE - 1, 2 },			/* straddles into high RAM */
		{ HIGH_BASE + HIGH - 1, 2 },		/* past the end */
		{ HIGH_BASE + HIGH, 1 },
		{ 0xfffffffffffff000ull, 0x2000 },	/* wraps around */
		{ 0, 0xffffffff },
	};

	offer(0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_desc(0, bad[i].addr, bad[i].len, 0, 0);
		expect_pop_error(EFAULT);
	}
}

static void test_total_length_overflows(void **st)
{
	/* 256 descriptors of 16 MiB each, all in RAM: 2^32 bytes in total */
	attach(256, false, false);
	for (unsigned i = 0; i < 256; i++)
		set_desc(i, BUF, 16u << 20, i < 255 ? VRING_DESC_F_NEXT : 0, i + 1);
	offer(0);
	expect_pop_error(EOVERFLOW);
}

static void test_indirect_descriptor_refused(void **st)
{
	set_desc(0, BUF, 64, VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_pop_error(EOPNOTSUPP);
}

static void test_wrong_direction(void **st)
{
	set_desc(0, BUF, 64, VRING_DESC_F_WRITE, 0);	/* TX buffer the device would write */
	offer(0);
	expect_pop_error(EACCES);

	attach(16, false, true);			/* RX: must be device-writable */
	q.last_avail = avail_idx - 1;
	set_desc(0, BUF, 64, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(1, BUF, 64, 0, 0);
	expect_pop_error(EACCES);
}

static int try_attach(uint16_t size, uint64_t d, uint64_t a, uint64_t u)
{
	vq_reset(&q, VQ_MAX_SIZE);
	q.size = size;
	q.desc_addr = d;
	q.avail_addr = a;
	q.used_addr = u;
	return vq_attach(&q, &ram, true, VQ_TO_DEVICE);
}

static void test_attach_refuses_bad_rings(void **st)
{
	assert_int_equal(try_attach(0, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(try_attach(24, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(try_attach(2 * VQ_MAX_SIZE, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(try_attach(16, DESC + 8, AVAIL, USED), -EINVAL);
	assert_int_equal(try_attach(16, DESC, AVAIL + 1, USED), -EINVAL);
	assert_int_equal(try_attach(16, DESC, AVAIL, USED + 2), -EINVAL);
	assert_int_equal(try_attach(16, LOW, AVAIL, USED), -EFAULT);
	assert_int_equal(try_attach(16, DESC, LOW - 8, USED), -EFAULT);	/* ring crosses */
	/* the used ring with its avail_event is 134 bytes: 2 bytes past the end of RAM */
	assert_int_equal(try_attach(16, DESC, AVAIL, HIGH_BASE + HIGH - 132), -EFAULT);
	assert_false(q.attached);
	/* 2 bytes short of the end is fine */
	assert_int_equal(try_attach(16, DESC, AVAIL, HIGH_BASE + HIGH - 136), 0);
	assert_true(q.attached);
}

/* ---- dirty tracking: every device write is reported to memory.c ---- */

/* KVM_SET_USER_MEMORY_REGION succeeds, the vCPUs dirtied nothing. */
static int fake_kvm_ioctl(int fd, unsigned long req, void *arg) { return 0; }
static const struct kvm_ops fake_kvm = { .ioctl = fake_kvm_ioctl };

static unsigned dirty_pages(uint64_t *bm, size_t words)
{
	unsigned n = 0;

	assert_int_equal(guest_mem_log_sync(&mem.gm, 0, bm), 0);
	for (size_t w = 0; w < words; w++)
		n += __builtin_popcountll(bm[w]);
	return n;
}

static bool page_dirty(const uint64_t *bm, uint64_t gpa)
{
	return bm[(gpa >> 12) / 64] >> ((gpa >> 12) % 64) & 1;
}

static void test_ring_writes_are_dirty_logged(void **st)
{
	size_t words = guest_mem_bitmap_words(&mem.gm.slots[0]);
	uint64_t *bm = calloc(words, sizeof(*bm));

	attach(16, true, true);				/* RX, EVENT_IDX */
	assert_int_equal(guest_mem_register(&mem.gm, &fake_kvm, -1), 0);
	assert_int_equal(guest_mem_log_start(&mem.gm, 0), 0);
	set_desc(0, BUF + 0x3000, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(1, BUF + 0x5000, 100, VRING_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(vq_pop(&q, &chain), 1);
	assert_int_equal(chain.iov[1].addr, BUF + 0x5000);
	memset(chain.iov[0].base, 1, 8);
	memset(chain.iov[1].base, 1, 4);
	vq_chain_written(&q, &chain, 12);
	vq_push(&q, chain.head, 12);
	/* reading the rings dirties nothing; the pages appear once written */
	assert_int_equal(dirty_pages(bm, words), 2);
	assert_true(page_dirty(bm, BUF + 0x3000) && page_dirty(bm, BUF + 0x5000));
	vq_publish(&q);
	assert_int_equal(dirty_pages(bm, words), 1);
	assert_true(page_dirty(bm, USED));
	vq_set_notify(&q, true);			/* avail_event: in the used ring's page */
	assert_int_equal(dirty_pages(bm, words), 1);
	assert_true(page_dirty(bm, USED));
	assert_int_equal(dirty_pages(bm, words), 0);
	free(bm);
}

/* ---- state ---- */

static void test_save_load_round_trip(void **st)
{
	struct state_buf sb, rd;
	struct vq loaded;

	q.msix_vector = 2;
	q.last_avail = 1234;
	q.used_idx = 1230;
	q.signalled_used = 1229;
	q.signalled_valid = true;
	state_init_writer(&sb);
	vq_save(&q, &sb);
	assert_true(state_ok(&sb));
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(vq_load(&loaded, &rd, VQ_MAX_SIZE), 0);
	assert_true(state_at_end(&rd));
	assert_int_equal(loaded.size, 16);
	assert_int_equal(loaded.msix_vector, 2);
	assert_true(loaded.enabled);
	assert_int_equal(loaded.desc_addr, DESC);
	assert_int_equal(loaded.avail_addr, AVAIL);
	assert_int_equal(loaded.used_addr, USED);
	assert_int_equal(loaded.last_avail, 1234);
	assert_int_equal(loaded.used_idx, 1230);
	assert_int_equal(loaded.signalled_used, 1229);
	assert_true(loaded.signalled_valid);
	assert_false(loaded.attached);			/* rings are translated again */

	/* truncated, or a size the driver could never have set */
	state_init_reader(&rd, sb.data, sb.len - 1);
	assert_int_equal(vq_load(&loaded, &rd, VQ_MAX_SIZE), -EINVAL);
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(vq_load(&loaded, &rd, 8), -EINVAL);
	sb.data[0] = 3;					/* size 3 */
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(vq_load(&loaded, &rd, VQ_MAX_SIZE), -EINVAL);
	state_free(&sb);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_single_descriptor),
		T(test_multi_descriptor_chain_and_used),
		T(test_chain_as_long_as_the_queue),
		T(test_buffers_in_high_ram),
		T(test_index_wraps_at_65536),
		T(test_unpop_gives_the_chain_back),
		T(test_interrupt_suppression_flag),
		T(test_interrupt_suppression_event_idx),
		T(test_notify_suppression),
		T(test_avail_index_too_far_ahead),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_descriptor_loop),
		T(test_buffer_outside_ram),
		T(test_total_length_overflows),
		T(test_indirect_descriptor_refused),
		T(test_wrong_direction),
		T(test_attach_refuses_bad_rings),
		T(test_ring_writes_are_dirty_logged),
		T(test_save_load_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
