/* SPDX-License-Identifier: MIT */
/*
 * Fake guest RAM for the virtio tests: low and high RAM laid out like hdvm's
 * (below the MMIO hole, and from 4 GiB), mapped back to back between two
 * PROT_NONE guard areas.  A device that reads or writes one byte outside
 * guest RAM faults, so "nothing outside guest memory is touched" is checked
 * by the test simply surviving.
 */
#ifndef HDVM_VIRTIO_TEST_MEM_H
#define HDVM_VIRTIO_TEST_MEM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/platform.h"
#include "vmm/memory.h"

#define TEST_GUARD	(1ull << 20)

struct test_mem {
	struct guest_mem gm;
	uint8_t *map;
	size_t map_len;
};

static inline int test_mem_init(struct test_mem *t, uint64_t low, uint64_t high)
{
	memset(t, 0, sizeof(*t));
	t->map_len = TEST_GUARD + low + high + TEST_GUARD;
	t->map = mmap(NULL, t->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	if (t->map == MAP_FAILED)
		return -1;
	if (mprotect(t->map + TEST_GUARD, low + high, PROT_READ | PROT_WRITE) < 0)
		return -1;
	t->gm.memfd = -1;
	guest_mem_layout(&t->gm, t->map + TEST_GUARD, low, high);
	return 0;
}

static inline void test_mem_destroy(struct test_mem *t)
{
	for (int i = 0; i < GUEST_MEM_MAX_SLOTS; i++)
		free(t->gm.slots[i].dirty);	/* a test that turned logging on */
	if (t->map && t->map != MAP_FAILED)
		munmap(t->map, t->map_len);
	t->map = NULL;
}

/* Host pointer of a GPA the test knows is RAM. */
static inline void *test_gpa(struct test_mem *t, uint64_t gpa)
{
	return gpa_to_hva(&t->gm, gpa, 1);
}

#endif
