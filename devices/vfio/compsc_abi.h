/* SPDX-License-Identifier: MIT */
/*
 * CompSC: migrating a passed-through function that cannot save its own
 * state, with the guest driver's help (devices/compsc.md is the protocol;
 * this header is its wire format).  Plain C with only <stdint.h>: hdvm,
 * hdguest (freestanding) and the Python harness's checks share it.
 *
 * 1. The capability.  hdvm adds a PCIe Vendor-Specific Extended Capability
 *    (ID 0x000b) at COMPSC_ECAP_POS of the function's virtual config space
 *    (through ECAM; conventional space is the device's own and full) when
 *    the device has no FEATURE_MIGRATION.  Its presence advertises the
 *    protocol.  The driver opts in by writing the guest-physical address of
 *    a shared page it set up (page_hi first, then page_lo with
 *    COMPSC_PAGE_ENABLE); hdvm validates it and sets COMPSC_ST_ACTIVE in
 *    status (or COMPSC_ST_REFUSED).  Writing 0 to page_lo opts out.
 *
 * 2. The shared page: 4 KiB of guest RAM the driver owns, so it travels
 *    with RAM.  lock is a reader-writer lock: readers (the driver, around
 *    every device section) add 1 while COMPSC_LOCK_WRITER is clear; the
 *    writer (hdvm) sets COMPSC_LOCK_WRITER, waits a bounded time for the
 *    readers to reach 0, and clears it when it is done.  Whoever holds the
 *    writer bit and reset the device increments counter before releasing:
 *    a driver that finds counter changed under its read lock restores its
 *    device (replay, ring shift, statistics) before touching it.
 */
#ifndef HDVM_COMPSC_ABI_H
#define HDVM_COMPSC_ABI_H

#include <stdint.h>

#define COMPSC_ECAP_POS		0x100	/* first extended capability */
#define COMPSC_ECAP_ID		0x000b	/* PCI_EXT_CAP_ID_VNDR */
#define COMPSC_ECAP_VER		1
#define COMPSC_VSEC_ID		0x4353	/* "CS" */
#define COMPSC_VSEC_REV		1
#define COMPSC_VERSION		1

/* page_lo: bit 0 turns the protocol on; the address is 4 KiB aligned. */
#define COMPSC_PAGE_ENABLE	0x1u
/* status (read-only to the driver) */
#define COMPSC_ST_ACTIVE	0x1u	/* hdvm took the page: the device migrates */
#define COMPSC_ST_REFUSED	0x2u	/* the page was not usable (not RAM, bad magic) */

struct compsc_ecap {
	uint32_t header;	/* ID | version << 16 | next << 20 (0: last) */
	uint32_t vsec;		/* COMPSC_VSEC_ID | rev << 16 | length << 20 */
	uint16_t version;	/* COMPSC_VERSION */
	uint16_t status;	/* COMPSC_ST_* */
	uint32_t page_lo;	/* driver: shared page GPA low | COMPSC_PAGE_ENABLE */
	uint32_t page_hi;
	uint32_t lock_timeout_ms;	/* hdvm's bounded wait for the write lock */
} __attribute__((packed));

_Static_assert(sizeof(struct compsc_ecap) == 24, "CompSC capability layout");

#define COMPSC_PAGE_MAGIC	0x47505343u	/* "CSPG" little-endian */
#define COMPSC_PAGE_SIZE	4096
#define COMPSC_LOCK_WRITER	0x80000000u
#define COMPSC_LOCK_READERS	0x7fffffffu
#define COMPSC_MAX_STATS	8

/* flags, set by hdvm */
#define COMPSC_F_PF_REPLAYED	0x1u	/* the PF-held state (MAC, trust, QoS) was replayed */

struct compsc_page {
	uint32_t magic;		/* driver: COMPSC_PAGE_MAGIC before opting in */
	uint16_t version;	/* driver: COMPSC_VERSION */
	uint16_t nr_stats;	/* driver: how many stats_residual it reads (<= 8) */
	uint32_t lock;		/* COMPSC_LOCK_WRITER | readers */
	uint32_t counter;	/* incremented by hdvm after each reset of the device */
	uint32_t flags;		/* COMPSC_F_*, hdvm */
	uint32_t reserved;
	/*
	 * What the device counted after the driver's last read of its
	 * read-clear statistics (hdvm reads them under the write lock before
	 * it resets the device, and adds); the driver adds them to its totals
	 * at restore and zeroes them.  Index = the device's counter order
	 * (hdnic: enum hdnic_stat).
	 */
	uint64_t stats_residual[COMPSC_MAX_STATS];
} __attribute__((packed));

_Static_assert(sizeof(struct compsc_page) == 88, "CompSC shared page layout");

#endif
