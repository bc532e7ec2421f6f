// SPDX-License-Identifier: MIT
/*
 * dirty,mib=N[,high=1]: QEMU's migration-test pattern.  The area is N MiB
 * at GPA DIRTY_AREA_GPA (16 MiB), or with high=1 at 4 GiB, above the MMIO
 * hole (N <= 1024); N defaults to 16.  The app prints the RAM map the loader
 * gave, checks every page of the area keeps what is written (RAM, not a
 * hole), sets the first byte of every 4 KiB page to 0, then loops forever
 * incrementing that byte in each page in ascending address order, one pass
 * after another.
 *
 * Invariant a checker can verify on a paused or migrated guest: reading the
 * first byte of every page in address order gives a run of value v+1
 * followed by a run of value v (mod 256), where either run may be empty: all
 * pages are equal except one contiguous prefix that is exactly one higher.
 * Once "dirty: area=..." is printed the invariant holds at every instant.
 */
#include "devices/platform.h"
#include "guest/app.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/io.h"

#define DIRTY_AREA_GPA		0x1000000ULL
#define DIRTY_PAGE_SIZE		4096
#define DIRTY_DEFAULT_MIB	16
#define DIRTY_MAX_MIB		((PLAT_MMIO_HOLE_START - DIRTY_AREA_GPA) >> 20)
/* About half a second at the rough TSC rate; checked once per pass. */
#define DIRTY_REPORT_CYCLES	(1ULL << 30)

static void print_ram(const struct boot_info *bi)
{
	int i;

	if (!bi->nr_ram)
		printf("dirty: the loader gave no memory map\n");
	for (i = 0; i < bi->nr_ram; i++)
		printf("dirty: RAM 0x%lx-0x%lx\n", bi->ram[i].start, bi->ram[i].end);
}

/* Each page keeps a value of its own: the area is RAM (a hole would not keep it). */
static bool area_is_ram(volatile uint8_t *area, volatile uint8_t *end)
{
	volatile uint8_t *p;
	uint8_t v = 1;

	for (p = area; p < end; p += DIRTY_PAGE_SIZE)
		*p = v++ | 1;
	v = 1;
	for (p = area; p < end; p += DIRTY_PAGE_SIZE) {
		if (*p != (uint8_t)(v++ | 1)) {
			printf("dirty: page at 0x%lx does not keep what is written\n",
			       (uint64_t)(uintptr_t)p);
			return false;
		}
	}
	return true;
}

static int dirty_main(const struct boot_info *bi)
{
	volatile uint8_t *area, *p, *end;
	uint64_t mib, high, pass, last_report, gpa;

	if (cmdline_get_u64("dirty", "mib", DIRTY_DEFAULT_MIB, 1, DIRTY_MAX_MIB, &mib) ||
	    cmdline_get_u64("dirty", "high", 0, 0, 1, &high))
		return 2;
	gpa = high ? PLAT_MMIO_HOLE_END : DIRTY_AREA_GPA;
	print_ram(bi);
	if ((high && (mib << 20) > HIGHMEM_WINDOW_SIZE) || !bootinfo_ram_covers(bi, gpa, mib << 20)) {
		printf("dirty: %lu MiB at 0x%lx do not fit in RAM\n", mib, gpa);
		return 2;
	}
	area = high ? highmem_map() : (volatile uint8_t *)(uintptr_t)gpa;
	end = area + (mib << 20);
	if (!area_is_ram(area, end))
		return 3;
	for (p = area; p < end; p += DIRTY_PAGE_SIZE)
		*p = 0;
	printf("dirty: area=0x%lx mib=%lu\n", gpa, mib);

	last_report = rdtsc();
	for (pass = 1;; pass++) {
		for (p = area; p < end; p += DIRTY_PAGE_SIZE)
			(*p)++;
		if (rdtsc() - last_report >= DIRTY_REPORT_CYCLES) {
			last_report = rdtsc();
			printf("dirty: pass %lu\n", pass);
		}
	}
}

static const struct app dirty_app = { .name = "dirty", .main = dirty_main };
APP_REGISTER(dirty_app);
