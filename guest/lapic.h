/* SPDX-License-Identifier: MIT */
/* xAPIC registers (MMIO; mapped uncached with the user bit, so ring 3 can use them). */
#ifndef HDGUEST_LAPIC_H
#define HDGUEST_LAPIC_H

#include <stdint.h>
#include "guest/io.h"

#define LAPIC_ID		0x020	/* bits 31:24 */
#define LAPIC_EOI		0x0b0
#define LAPIC_SVR		0x0f0
#define LAPIC_ICR_LO		0x300
#define LAPIC_ICR_HI		0x310	/* destination in bits 31:24 */
#define LAPIC_LVT_TIMER		0x320
#define LAPIC_TIMER_INIT	0x380	/* initial count */
#define LAPIC_TIMER_CUR		0x390	/* current count */
#define LAPIC_TIMER_DIV		0x3e0

#define LAPIC_SVR_ENABLE	0x100
#define LAPIC_ICR_INIT		0x00500
#define LAPIC_ICR_STARTUP	0x00600
#define LAPIC_ICR_BUSY		0x01000	/* delivery status: send pending */
#define LAPIC_ICR_ASSERT	0x04000
#define LAPIC_LVT_MASKED	0x10000
#define LAPIC_TIMER_PERIODIC	0x20000
#define LAPIC_TIMER_DIV_16	0x3

static inline uint32_t lapic_read(uint64_t base, unsigned reg)
{
	return mmio_read32(base + reg);
}

static inline void lapic_write(uint64_t base, unsigned reg, uint32_t v)
{
	mmio_write32(base + reg, v);
}

#endif
