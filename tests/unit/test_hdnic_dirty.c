// SPDX-License-Identifier: MIT
/*
 * hdnic's DMA dirty log on its own (dma_dirty.c over a dma_space): what
 * START accepts, that marks land on the right pages (across words, across
 * ranges, partly outside them), that REPORT folds pages into larger ones,
 * reads and clears, and refuses ranges it does not log.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/hdnic/dma_space.h"

#define PG	4096ULL
#define BASE	0x100000ULL

static struct dma_space ds;

static int setup(void **state)
{
	dma_space_init(&ds, 8);
	return 0;
}

static int teardown(void **state)
{
	if (ds.dirty)
		dma_dirty_stop(&ds);
	dma_space_destroy(&ds);
	return 0;
}

static void start1(uint64_t iova, uint64_t len)
{
	const uint64_t r[1][2] = { { iova, len } };

	assert_int_equal(dma_dirty_start(&ds, r, 1), 0);
}

/* The set pages of a report, as a count and in bits[]. */
static unsigned report(uint64_t iova, uint64_t len, uint64_t page, uint8_t *bits)
{
	unsigned n = 0;

	memset(bits, 0xee, dma_dirty_report_bytes(len, page));
	assert_int_equal(dma_dirty_report(&ds, iova, len, page, bits), 0);
	for (uint64_t i = 0; i < len / page; i++)
		n += bits[i / 8] >> (i % 8) & 1;
	return n;
}

static bool bit(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

static void test_start_checks_its_ranges(void **state)
{
	const uint64_t unaligned[1][2] = { { BASE + 1, PG } };
	const uint64_t empty[1][2] = { { BASE, 0 } };
	const uint64_t overlap[2][2] = { { BASE, 2 * PG }, { BASE + PG, PG } };
	const uint64_t wraps[1][2] = { { ~0ULL - PG + 1, 2 * PG } };
	uint64_t many[DMA_DIRTY_MAX_RANGES + 1][2];

	assert_int_equal(dma_dirty_start(&ds, unaligned, 1), -EINVAL);
	assert_int_equal(dma_dirty_start(&ds, empty, 1), -EINVAL);
	assert_int_equal(dma_dirty_start(&ds, overlap, 2), -EINVAL);
	assert_int_equal(dma_dirty_start(&ds, wraps, 1), -EOVERFLOW);
	for (unsigned i = 0; i <= DMA_DIRTY_MAX_RANGES; i++) {
		many[i][0] = BASE + 2 * i * PG;
		many[i][1] = PG;
	}
	assert_int_equal(dma_dirty_start(&ds, many, DMA_DIRTY_MAX_RANGES + 1), -E2BIG);
	/* nothing mapped: "everything" is nothing */
	assert_int_equal(dma_dirty_start(&ds, NULL, 0), -EINVAL);
	assert_null(ds.dirty);
	assert_int_equal(dma_dirty_stop(&ds), -EINVAL);
	/* one at a time */
	start1(BASE, 16 * PG);
	assert_int_equal(dma_dirty_start(&ds, many, 1), -EBUSY);
	assert_int_equal(dma_dirty_stop(&ds), 0);
	assert_null(ds.dirty);
}

static void test_marks_land_on_the_pages_written(void **state)
{
	uint8_t bits[64];

	start1(BASE, 256 * PG);
	dma_dirty_mark(ds.dirty, BASE + 5, 1);			/* page 0 */
	dma_dirty_mark(ds.dirty, BASE + 63 * PG + 4000, 200);	/* pages 63 and 64 */
	dma_dirty_mark(ds.dirty, BASE + 130 * PG, PG);		/* page 130 only */
	dma_dirty_mark(ds.dirty, BASE + 255 * PG, 2 * PG);	/* 255, the rest outside */
	dma_dirty_mark(ds.dirty, BASE - PG, 10);		/* outside: ignored */
	dma_dirty_mark(ds.dirty, BASE + 7 * PG, 0);		/* nothing written */
	assert_int_equal(report(BASE, 256 * PG, PG, bits), 5);
	assert_true(bit(bits, 0) && bit(bits, 63) && bit(bits, 64) && bit(bits, 130) &&
		    bit(bits, 255));
	/* read and cleared */
	assert_int_equal(report(BASE, 256 * PG, PG, bits), 0);
	/* logging off: marking is a no-op */
	dma_dirty_stop(&ds);
	dma_dirty_mark(ds.dirty, BASE, 1);
}

static void test_report_folds_pages_and_takes_parts(void **state)
{
	uint8_t bits[64];

	start1(BASE, 256 * PG);
	dma_dirty_mark(ds.dirty, BASE + 3 * PG, 1);
	dma_dirty_mark(ds.dirty, BASE + 200 * PG, 1);
	/* 64 KiB pages: page 3 is in 0, page 200 in 12 */
	assert_int_equal(report(BASE, 256 * PG, 16 * PG, bits), 2);
	assert_true(bit(bits, 0) && bit(bits, 12));
	/* a part of the range reads and clears only that part */
	dma_dirty_mark(ds.dirty, BASE + 3 * PG, 1);
	dma_dirty_mark(ds.dirty, BASE + 200 * PG, 1);
	assert_int_equal(report(BASE + 192 * PG, 64 * PG, PG, bits), 1);
	assert_true(bit(bits, 8));
	assert_int_equal(report(BASE, 256 * PG, PG, bits), 1);
	assert_true(bit(bits, 3));
	/* bad page sizes, unaligned or uncovered ranges */
	assert_int_equal(dma_dirty_report(&ds, BASE, 256 * PG, 2048, bits), -EINVAL);
	assert_int_equal(dma_dirty_report(&ds, BASE, 256 * PG, 3 * PG, bits), -EINVAL);
	assert_int_equal(dma_dirty_report(&ds, BASE + PG, 16 * PG, 16 * PG, bits), -EINVAL);
	assert_int_equal(dma_dirty_report(&ds, BASE, 257 * PG, PG, bits), -EINVAL);
	assert_int_equal(dma_dirty_report(&ds, BASE, 0, PG, bits), -EINVAL);
	/* sized in whole u64 words */
	assert_int_equal(dma_dirty_report_bytes(PG, PG), 8);
	assert_int_equal(dma_dirty_report_bytes(65 * PG, PG), 16);
}

static void test_ranges_side_by_side_report_as_one(void **state)
{
	const uint64_t r[2][2] = { { BASE + 64 * PG, 64 * PG }, { BASE, 64 * PG } };
	uint8_t bits[32];

	assert_int_equal(dma_dirty_start(&ds, r, 2), 0);
	dma_dirty_mark(ds.dirty, BASE + 63 * PG, 2 * PG);	/* across the two ranges */
	assert_int_equal(report(BASE, 128 * PG, PG, bits), 2);
	assert_true(bit(bits, 63) && bit(bits, 64));
	/* the gap after them is not logged */
	assert_int_equal(dma_dirty_report(&ds, BASE, 129 * PG, PG, bits), -EINVAL);
}

static void test_everything_mapped(void **state)
{
	static uint8_t mem[2][8 * PG] __attribute__((aligned(4096)));
	uint8_t bits[8];

	assert_int_equal(dma_space_map_host(&ds, BASE, sizeof(mem[0]), mem[0], DMA_PROT_WRITE), 0);
	assert_int_equal(dma_space_map_host(&ds, 2 * BASE, sizeof(mem[1]), mem[1],
					    DMA_PROT_WRITE), 0);
	assert_int_equal(dma_dirty_start(&ds, NULL, 0), 0);
	assert_int_equal(ds.dirty->nr, 2);
	dma_dirty_mark(ds.dirty, 2 * BASE + 7 * PG, 1);
	assert_int_equal(report(BASE, 8 * PG, PG, bits), 0);
	assert_int_equal(report(2 * BASE, 8 * PG, PG, bits), 1);
	assert_true(bit(bits, 7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_checks_its_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marks_land_on_the_pages_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_folds_pages_and_takes_parts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ranges_side_by_side_report_as_one, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_everything_mapped, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
