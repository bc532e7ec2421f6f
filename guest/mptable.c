// SPDX-License-Identifier: MIT
/*
 * Intel MultiProcessor Specification 1.4 table: find the floating pointer
 * ("_MP_") in the last KiB of base memory or the BIOS area, validate the
 * checksums and collect the enabled processor entries.
 */
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/lib.h"
#include "guest/smp.h"

struct mpf_intel {
	char signature[4];		/* "_MP_" */
	uint32_t config;		/* physical address of the configuration table */
	uint8_t length;			/* in 16-byte units */
	uint8_t revision;
	uint8_t checksum;
	uint8_t feature[5];		/* feature[0] != 0: a default configuration */
} __attribute__((packed));

struct mpc_header {
	char signature[4];		/* "PCMP" */
	uint16_t length;		/* base table, header included */
	uint8_t revision;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;			/* MPC_CPU */
	uint8_t apic_id;
	uint8_t apic_version;
	uint8_t flags;
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} __attribute__((packed));

enum { MPC_CPU, MPC_BUS, MPC_IOAPIC, MPC_IOINT, MPC_LINTSRC };
#define MPC_CPU_ENABLED		0x01
#define MPC_SMALL_ENTRY_SIZE	8	/* every entry type but MPC_CPU */

static const struct { uint64_t start, end; } mpf_search_areas[] = {
	{ PLAT_EBDA_START, 0xa0000 },	/* last KiB of base memory */
	{ 0xf0000, PLAT_BIOS_END },	/* BIOS ROM area */
};

static const struct mpf_intel *mpf_find(void)
{
	uint64_t a;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(mpf_search_areas); i++) {
		for (a = mpf_search_areas[i].start; a + 16 <= mpf_search_areas[i].end; a += 16) {
			const struct mpf_intel *mpf = (const void *)a;

			if (!memcmp(mpf->signature, "_MP_", 4) && mpf->length &&
			    phys_mapped(a, mpf->length * 16) &&
			    !checksum8(mpf, mpf->length * 16))
				return mpf;
		}
	}
	return NULL;
}

static void add_cpu(struct cpu_list *cpus, uint8_t apic_id)
{
	if (cpus->count > AP_MAX) {
		printf("smp: more than %d CPUs, ignoring APIC id %u\n", AP_MAX + 1, apic_id);
		return;
	}
	cpus->apic_id[cpus->count++] = apic_id;
}

static int mpc_parse(const struct mpc_header *mpc, struct cpu_list *cpus)
{
	const uint8_t *p = (const uint8_t *)(mpc + 1), *end = (const uint8_t *)mpc + mpc->length;
	unsigned i;

	cpus->lapic_addr = mpc->lapic_addr;
	/* Walk by length like Linux: some firmware (qboot) leaves entry_count 0. */
	for (i = 0; p < end; i++) {
		if (*p == MPC_CPU) {
			const struct mpc_cpu *c = (const void *)p;

			if (p + sizeof(*c) > end)
				break;
			if (c->flags & MPC_CPU_ENABLED)
				add_cpu(cpus, c->apic_id);
			p += sizeof(*c);
		} else if (*p <= MPC_LINTSRC) {
			p += MPC_SMALL_ENTRY_SIZE;
		} else {
			printf("smp: MP table entry %u has unknown type %u, ignoring the rest\n",
			       i, *p);
			break;
		}
	}
	return 0;
}

int mptable_scan(struct cpu_list *cpus)
{
	const struct mpf_intel *mpf = mpf_find();
	const struct mpc_header *mpc;

	cpus->count = 0;
	cpus->lapic_addr = PLAT_LAPIC_ADDR;
	if (!mpf)
		return -1;
	if (mpf->feature[0]) {
		/* default configurations (MP spec chapter 5) all have two CPUs */
		add_cpu(cpus, 0);
		add_cpu(cpus, 1);
		return 0;
	}
	mpc = (const void *)(uintptr_t)mpf->config;
	if (!phys_mapped(mpf->config, sizeof(*mpc)) || memcmp(mpc->signature, "PCMP", 4)) {
		printf("smp: MP floating pointer at %p: no configuration table at 0x%x\n",
		       mpf, mpf->config);
		return -1;
	}
	if (mpc->length < sizeof(*mpc) || !phys_mapped(mpf->config, mpc->length) ||
	    checksum8(mpc, mpc->length)) {
		printf("smp: MP configuration table at 0x%x: bad length %u or checksum\n",
		       mpf->config, mpc->length);
		return -1;
	}
	return mpc_parse(mpc, cpus);
}
