// SPDX-License-Identifier: MIT
/*
 * AP start-up from ring 3: copy the real-mode trampoline below 1 MiB, enable
 * the xAPIC, send INIT, then two STARTUP IPIs to every listed CPU but
 * ourselves, and wait for the APs to count themselves in smp_ap_count (see
 * trampoline.S).
 */
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/io.h"
#include "guest/lapic.h"
#include "guest/lib.h"
#include "guest/smp.h"

/* MP spec B.4: 10 ms after INIT, 200 us between the STARTUP IPIs. */
#define INIT_DELAY_CYCLES	(TSC_ROUGH_HZ / 100)
#define SIPI_DELAY_CYCLES	(TSC_ROUGH_HZ / 5000)
#define ICR_IDLE_POLLS		100000

/* Incremented by each AP once it runs in long mode on its own stack. */
volatile uint32_t smp_ap_count;

extern const char trampoline_start[], trampoline_end[];

static int send_ipi(uint64_t lapic, uint8_t apic_id, uint32_t icr)
{
	int i;

	for (i = 0; i < ICR_IDLE_POLLS; i++)
		if (!(lapic_read(lapic, LAPIC_ICR_LO) & LAPIC_ICR_BUSY))
			break;
	if (i == ICR_IDLE_POLLS) {
		printf("smp: local APIC stays busy, cannot send an IPI to APIC id %u\n", apic_id);
		return -1;
	}
	lapic_write(lapic, LAPIC_ICR_HI, (uint32_t)apic_id << 24);
	lapic_write(lapic, LAPIC_ICR_LO, icr);
	return 0;
}

/* Send icr to every CPU but the BSP; returns how many were addressed. */
static int send_to_aps(const struct cpu_list *cpus, uint8_t bsp, uint32_t icr)
{
	int i, sent = 0;

	for (i = 0; i < cpus->count; i++) {
		if (cpus->apic_id[i] == bsp)
			continue;
		if (send_ipi(cpus->lapic_addr, cpus->apic_id[i], icr))
			return -1;
		sent++;
	}
	return sent;
}

int smp_start_aps(const struct boot_info *bi, const struct cpu_list *cpus,
		  uint64_t timeout_cycles)
{
	size_t size = trampoline_end - trampoline_start;
	uint32_t sipi = LAPIC_ICR_STARTUP | LAPIC_ICR_ASSERT | (TRAMPOLINE_ADDR >> 12);
	uint64_t lapic = cpus->lapic_addr, start;
	uint8_t bsp;
	int aps;

	if (!bootinfo_ram_covers(bi, TRAMPOLINE_ADDR, size)) {
		printf("smp: no RAM at 0x%x for the AP trampoline\n", TRAMPOLINE_ADDR);
		return -1;
	}
	if (!phys_mapped(lapic, LAPIC_ICR_HI + 4)) {
		printf("smp: local APIC address 0x%lx is not mapped\n", lapic);
		return -1;
	}
	memcpy((void *)TRAMPOLINE_ADDR, trampoline_start, size);

	lapic_write(lapic, LAPIC_SVR,
		    (lapic_read(lapic, LAPIC_SVR) & ~0xffu) | LAPIC_SVR_ENABLE | VEC_SPURIOUS);
	bsp = lapic_read(lapic, LAPIC_ID) >> 24;

	aps = send_to_aps(cpus, bsp, LAPIC_ICR_INIT | LAPIC_ICR_ASSERT);
	if (aps < 0)
		return -1;
	if (aps == cpus->count)
		printf("smp: the BSP (APIC id %u) is not in the CPU list\n", bsp);
	tsc_delay(INIT_DELAY_CYCLES);
	if (send_to_aps(cpus, bsp, sipi) < 0)
		return -1;
	tsc_delay(SIPI_DELAY_CYCLES);
	if (send_to_aps(cpus, bsp, sipi) < 0)
		return -1;

	start = rdtsc();
	while (smp_ap_count < (uint32_t)aps && rdtsc() - start < timeout_cycles)
		cpu_relax();
	return 1 + (int)smp_ap_count;
}
