/* SPDX-License-Identifier: MIT */
/*
 * CPU discovery (Intel MP table, ACPI MADT) and AP start-up with
 * INIT-SIPI-SIPI through the xAPIC.
 */
#ifndef HDGUEST_SMP_H
#define HDGUEST_SMP_H

#include <stdint.h>
#include "guest/asm.h"
#include "guest/bootinfo.h"

struct cpu_list {
	int count;			/* enabled processors */
	uint8_t apic_id[AP_MAX + 1];
	uint64_t lapic_addr;
};

/* 0 and the enabled CPUs if an MP table was found, -1 if none (or a broken one). */
int mptable_scan(struct cpu_list *cpus);
/* The same from the ACPI MADT; rsdp_hint (0: search the BIOS area) from the loader. */
int madt_scan(uint64_t rsdp_hint, struct cpu_list *cpus);
/*
 * Start every CPU of the list except the caller and wait up to timeout_cycles
 * for them to check in.  Returns the CPUs up including the caller, -1 on error.
 */
int smp_start_aps(const struct boot_info *bi, const struct cpu_list *cpus,
		  uint64_t timeout_cycles);

#endif
