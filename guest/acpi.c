// SPDX-License-Identifier: MIT
/*
 * ACPI MADT fallback for CPU discovery (QEMU's microvm has ACPI but no MP
 * table): RSDP -> XSDT/RSDT -> "APIC", collecting enabled local APICs.
 */
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/lib.h"
#include "guest/smp.h"

struct acpi_rsdp {
	char signature[8];		/* "RSD PTR " */
	uint8_t checksum;		/* first 20 bytes */
	char oem[6];
	uint8_t revision;		/* 0: ACPI 1.0, 2: has the fields below */
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;		/* whole structure */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_sdt {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem[6];
	char oem_table[8];
	uint32_t oem_revision;
	uint32_t creator;
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_madt {
	struct acpi_sdt hdr;		/* "APIC" */
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

#define MADT_LAPIC		0
#define MADT_LAPIC_OVERRIDE	5
#define MADT_LAPIC_ENABLED	0x1
#define ACPI_RSDP_V1_SIZE	20

#define BIOS_AREA_START		0xe0000
#define BIOS_AREA_END		0x100000

static bool rsdp_valid(uint64_t a)
{
	const struct acpi_rsdp *r = (const void *)a;

	if (!phys_mapped(a, sizeof(*r)) || memcmp(r->signature, "RSD PTR ", 8) ||
	    checksum8(r, ACPI_RSDP_V1_SIZE))
		return false;
	return r->revision < 2 ||
	       (r->length >= sizeof(*r) && phys_mapped(a, r->length) && !checksum8(r, r->length));
}

static const struct acpi_rsdp *rsdp_find(uint64_t hint)
{
	uint64_t a;

	if (hint && rsdp_valid(hint))
		return (const void *)hint;
	for (a = BIOS_AREA_START; a < BIOS_AREA_END; a += 16)
		if (rsdp_valid(a))
			return (const void *)a;
	return NULL;
}

static const struct acpi_sdt *sdt_map(uint64_t a)
{
	const struct acpi_sdt *t = (const void *)a;

	if (!phys_mapped(a, sizeof(*t)) || t->length < sizeof(*t) || !phys_mapped(a, t->length) ||
	    checksum8(t, t->length))
		return NULL;
	return t;
}

/* Find a table by signature through the XSDT (8-byte entries) or RSDT (4-byte). */
static const struct acpi_sdt *acpi_find(const struct acpi_rsdp *rsdp, const char *sig)
{
	bool x = rsdp->revision >= 2 && rsdp->xsdt;
	const struct acpi_sdt *root = sdt_map(x ? rsdp->xsdt : rsdp->rsdt), *t;
	unsigned width = x ? 8 : 4, i, n;

	if (!root) {
		printf("smp: ACPI %s at 0x%lx is invalid\n", x ? "XSDT" : "RSDT",
		       x ? rsdp->xsdt : (uint64_t)rsdp->rsdt);
		return NULL;
	}
	n = (root->length - sizeof(*root)) / width;
	for (i = 0; i < n; i++) {
		const uint8_t *e = (const uint8_t *)(root + 1) + i * width;
		uint64_t a = x ? *(const uint64_t *)e : *(const uint32_t *)e;

		t = sdt_map(a);
		if (t && !memcmp(t->signature, sig, 4))
			return t;
	}
	return NULL;
}

int madt_scan(uint64_t rsdp_hint, struct cpu_list *cpus)
{
	const struct acpi_rsdp *rsdp = rsdp_find(rsdp_hint);
	const struct acpi_madt *madt;
	const uint8_t *p, *end;

	cpus->count = 0;
	if (!rsdp)
		return -1;
	madt = (const void *)acpi_find(rsdp, "APIC");
	if (!madt || madt->hdr.length < sizeof(*madt))
		return -1;
	cpus->lapic_addr = madt->lapic_addr;
	end = (const uint8_t *)madt + madt->hdr.length;
	for (p = (const uint8_t *)(madt + 1); p + 2 <= end && p[1] >= 2 && p + p[1] <= end;
	     p += p[1]) {
		if (p[0] == MADT_LAPIC && p[1] >= 8) {
			if (!(*(const uint32_t *)(p + 4) & MADT_LAPIC_ENABLED))
				continue;
			if (cpus->count > AP_MAX) {
				printf("smp: more than %d CPUs in the MADT\n", AP_MAX + 1);
				break;
			}
			cpus->apic_id[cpus->count++] = p[3];
		} else if (p[0] == MADT_LAPIC_OVERRIDE && p[1] >= 12) {
			cpus->lapic_addr = *(const uint64_t *)(p + 4);
		}
	}
	return 0;
}
