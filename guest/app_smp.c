// SPDX-License-Identifier: MIT
/*
 * smp: count the CPUs in the MP table (ACPI MADT if there is none), start
 * every AP and report "smp: N cpus up (mptable M)" (or "(madt M)").  Exit 0
 * if all M came up, 1 otherwise.
 */
#include "guest/app.h"
#include "guest/console.h"
#include "guest/io.h"
#include "guest/smp.h"

/* About two seconds at the rough TSC rate. */
#define SMP_TIMEOUT_CYCLES	(2 * TSC_ROUGH_HZ)

static struct cpu_list cpus;

static int smp_main(const struct boot_info *bi)
{
	const char *source = "mptable";
	int up = 1;

	if (mptable_scan(&cpus) < 0) {
		if (madt_scan(bi->rsdp, &cpus) == 0) {
			source = "madt";
		} else {
			printf("smp: no MP table or ACPI MADT found\n");
			cpus.count = 0;
		}
	}
	if (cpus.count > 0)
		up = smp_start_aps(bi, &cpus, SMP_TIMEOUT_CYCLES);
	if (up < 0)
		return 1;
	printf("smp: %d cpus up (%s %d)\n", up, source, cpus.count);
	return cpus.count > 0 && up == cpus.count ? 0 : 1;
}

static const struct app smp_app = { .name = "smp", .main = smp_main };
APP_REGISTER(smp_app);
