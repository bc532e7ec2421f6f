// SPDX-License-Identifier: MIT
/*
 * The VM's dirty log (vmm/dirty_log.c): a sync reports exactly the union of
 * what the vCPUs wrote (the fake KVM's log), what hdvm wrote through
 * memory.c and what a device reported from its DMA log; a device that
 * cannot log undoes the start; stop ends logging everywhere.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/device.h"
#include "vmm/dirty_log.h"
#include "vmm/kvm_ops.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define RAM	(8ull << 20)
#define PAGE	GUEST_PAGE_SIZE

static uint32_t slot_flags;
static uint64_t kvm_log;		/* first 64 pages of slot 0 */

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == KVM_SET_USER_MEMORY_REGION) {
		slot_flags = ((struct kvm_userspace_memory_region *)arg)->flags;
		return 0;
	}
	if (req == KVM_GET_DIRTY_LOG) {
		*(uint64_t *)((struct kvm_dirty_log *)arg)->dirty_bitmap = kvm_log;
		kvm_log = 0;
		return 0;
	}
	return -ENOTTY;
}

static const struct kvm_ops fake_kvm = { .ioctl = fake_ioctl };

/* A device with a DMA log: it "wrote" [dma_gpa, dma_gpa + dma_len). */
struct dma_dev {
	struct device dev;
	bool logging, refuse;
	uint64_t dma_gpa, dma_len;
};

static int dd_start(struct device *d)
{
	struct dma_dev *x = container_of(d, struct dma_dev, dev);

	if (x->refuse)
		return -ENOTSUP;
	x->logging = true;
	return 0;
}

static int dd_stop(struct device *d)
{
	container_of(d, struct dma_dev, dev)->logging = false;
	return 0;
}

static int dd_sync(struct device *d, device_dirty_fn *mark, void *opaque)
{
	struct dma_dev *x = container_of(d, struct dma_dev, dev);

	if (x->logging && x->dma_len)
		mark(opaque, x->dma_gpa, x->dma_len);
	x->dma_len = 0;
	return 0;
}

static const struct device_mig_ops dd_mig = {
	.dirty_log_start = dd_start, .dirty_log_stop = dd_stop, .dirty_log_sync = dd_sync,
};
static const struct device_ops dd_ops = {
	.type = "dma-test", .pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume, .mig = &dd_mig,
};

static struct vm vm;
static struct dma_dev *dev;
static uint64_t got[RAM / PAGE / 64];
static int syncs;

static int collect(const struct mem_slot *s, const uint64_t *bitmap, void *opaque)
{
	assert_int_equal(s->id, 0);
	memcpy(got, bitmap, sizeof(got));
	syncs++;
	return 0;
}

static int setup(void **state)
{
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(guest_mem_init(&vm.mem, RAM), 0);
	assert_int_equal(guest_mem_register(&vm.mem, &fake_kvm, 4), 0);
	dev = xzalloc(sizeof(*dev));
	device_init(&dev->dev, &dd_ops, "dma0");
	device_add(&vm, &dev->dev);
	kvm_log = 0;
	syncs = 0;
	return 0;
}

static int teardown(void **state)
{
	free(dev);
	guest_mem_destroy(&vm.mem);
	return 0;
}

static unsigned popcount(void)
{
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(got); i++)
		n += __builtin_popcountll(got[i]);
	return n;
}

static bool dirty(uint64_t page) { return got[page / 64] >> (page % 64) & 1; }

static void test_sync_is_the_union_of_vcpu_hdvm_and_device_writes(void **state)
{
	uint8_t b = 1;

	assert_int_equal(vm_dirty_log_start(&vm), 0);
	assert_true(slot_flags & KVM_MEM_LOG_DIRTY_PAGES);
	assert_true(dev->logging);
	kvm_log = 1ull << 1;				/* a vCPU wrote page 1 */
	assert_int_equal(guest_mem_write(&vm.mem, 7 * PAGE, &b, 1), 0);	/* hdvm: page 7 */
	dev->dma_gpa = 3 * PAGE + 100;			/* the device: pages 3 and 4 */
	dev->dma_len = PAGE;
	assert_int_equal(vm_dirty_log_sync(&vm, collect, NULL), 0);
	assert_int_equal(syncs, 1);
	assert_true(dirty(1) && dirty(3) && dirty(4) && dirty(7));
	assert_int_equal(popcount(), 4);
	/* nothing new: nothing reported */
	assert_int_equal(vm_dirty_log_sync(&vm, collect, NULL), 0);
	assert_int_equal(popcount(), 0);
}

static void test_device_refusal_undoes_the_start(void **state)
{
	dev->refuse = true;
	assert_int_equal(vm_dirty_log_start(&vm), -ENOTSUP);
	assert_false(guest_mem_logging(&vm.mem, 0));
	assert_false(slot_flags & KVM_MEM_LOG_DIRTY_PAGES);
}

static void test_stop_ends_logging_everywhere(void **state)
{
	uint8_t b = 1;

	assert_int_equal(vm_dirty_log_start(&vm), 0);
	assert_int_equal(vm_dirty_log_stop(&vm), 0);
	assert_false(dev->logging);
	assert_false(slot_flags & KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(guest_mem_write(&vm.mem, 9 * PAGE, &b, 1), 0);
	/* a sync without logging is refused, not silently empty */
	assert_int_equal(vm_dirty_log_sync(&vm, collect, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_is_the_union_of_vcpu_hdvm_and_device_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_refusal_undoes_the_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_ends_logging_everywhere, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
