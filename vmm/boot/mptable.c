// SPDX-License-Identifier: MIT
/*
 * Intel MultiProcessor Specification 1.4 table: how the kernel learns the CPUs,
 * the IOAPIC and how ISA interrupts are wired, without ACPI.
 *
 * Layout at PLAT_MPTABLE_ADDR (last KiB of base memory, where the spec lets
 * the OS search for the floating pointer):
 *   floating pointer (16 bytes) -> configuration table right after it:
 *   header, one processor entry per CPU, the ISA bus, the IOAPIC, ISA IRQs
 *   0-15 (IRQ0 on pin 2, the PIT's wiring on a PC; IRQ2 is the PIC cascade and
 *   gets no entry since pin 2 is taken), ExtINT on LINT0 and NMI on LINT1.
 * A table of more than ~40 CPUs runs past 640 KiB; it stays inside the
 * e820-reserved range that ends at 1 MiB.
 */
#include <errno.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/boot/boot.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define MPF_SIGNATURE		"_MP_"
#define MPC_SIGNATURE		"PCMP"
#define MP_SPEC_REV_1_4		4

enum mp_entry_type { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum mp_irq_type { MP_IRQ_INT, MP_IRQ_NMI, MP_IRQ_SMI, MP_IRQ_EXTINT };

#define MP_CPU_ENABLED		0x01
#define MP_CPU_BSP		0x02
#define MP_IOAPIC_ENABLED	0x01
#define MP_IRQ_FLAGS_BUS	0x0000	/* polarity and trigger as the bus says */
#define MP_ALL_LAPICS		0xff

#define MP_LAPIC_VERSION	0x14	/* integrated xAPIC */
#define MP_IOAPIC_VERSION	0x11
#define MP_CPU_SIGNATURE	0x600	/* family 6, model 0, stepping 0 */
#define MP_CPU_FEATURES		((1u << 0) | (1u << 9))	/* FPU, APIC */

#define MP_ISA_BUS_ID		0
#define MP_ISA_IRQS		16
#define MP_PIC_CASCADE_IRQ	2
#define MP_TIMER_IRQ		0
#define MP_TIMER_PIN		2

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length;		/* in 16-byte paragraphs */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t feature[5];	/* all 0: config table present, virtual wire mode */
} __attribute__((packed));

struct mpc_table {
	char signature[4];
	uint16_t length;	/* base table, header included */
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_ptr;
	uint16_t oem_size;
	uint16_t count;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apic_id, apic_version, flags;
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apic_id, apic_version, flags;
	uint32_t addr;
} __attribute__((packed));

/* I/O interrupt (MP_INTSRC) and local interrupt (MP_LINTSRC) entries share a shape. */
struct mpc_irq {
	uint8_t type, irq_type;
	uint16_t flags;
	uint8_t src_bus, src_irq;
	uint8_t dst_apic, dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer is 16 bytes");
_Static_assert(sizeof(struct mpc_table) == 44, "MP config header is 44 bytes");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry is 20 bytes");
_Static_assert(sizeof(struct mpc_bus) == 8 && sizeof(struct mpc_ioapic) == 8 &&
	       sizeof(struct mpc_irq) == 8, "MP entries are 8 bytes");

#define MP_ISA_IRQ_ENTRIES	(MP_ISA_IRQS - 1)	/* no IRQ2 */
#define MP_LINT_ENTRIES		2

static size_t mptable_size(int ncpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) +
	       (MP_ISA_IRQ_ENTRIES + MP_LINT_ENTRIES) * sizeof(struct mpc_irq);
}

static uint8_t mp_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return -sum;
}

/* Appends entries to the configuration table, counting them. */
struct mp_writer {
	uint8_t *pos;
	uint16_t count;
};

static void mp_put(struct mp_writer *w, const void *entry, size_t len)
{
	memcpy(w->pos, entry, len);
	w->pos += len;
	w->count++;
}

static void mp_put_irq(struct mp_writer *w, uint8_t type, uint8_t irq_type, uint8_t src_irq,
		       uint8_t dst_apic, uint8_t dst_pin)
{
	struct mpc_irq e = {
		.type = type, .irq_type = irq_type, .flags = MP_IRQ_FLAGS_BUS,
		.src_bus = MP_ISA_BUS_ID, .src_irq = src_irq,
		.dst_apic = dst_apic, .dst_pin = dst_pin,
	};

	mp_put(w, &e, sizeof(e));
}

static void mp_put_cpus(struct mp_writer *w, int ncpus)
{
	for (int i = 0; i < ncpus; i++) {
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR, .apic_id = i, .apic_version = MP_LAPIC_VERSION,
			.flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
			.signature = MP_CPU_SIGNATURE, .features = MP_CPU_FEATURES,
		};

		mp_put(w, &cpu, sizeof(cpu));
	}
}

static void mp_put_isa_bus(struct mp_writer *w)
{
	struct mpc_bus bus = { .type = MP_BUS, .bus_id = MP_ISA_BUS_ID };

	memcpy(bus.bus_type, "ISA   ", sizeof(bus.bus_type));
	mp_put(w, &bus, sizeof(bus));
}

static void mp_put_ioapic(struct mp_writer *w, uint8_t ioapic_id)
{
	struct mpc_ioapic ioapic = {
		.type = MP_IOAPIC, .apic_id = ioapic_id, .apic_version = MP_IOAPIC_VERSION,
		.flags = MP_IOAPIC_ENABLED, .addr = PLAT_IOAPIC_ADDR,
	};

	mp_put(w, &ioapic, sizeof(ioapic));
}

static void mp_put_irqs(struct mp_writer *w, uint8_t ioapic_id)
{
	for (int irq = 0; irq < MP_ISA_IRQS; irq++) {
		if (irq == MP_PIC_CASCADE_IRQ)
			continue;
		mp_put_irq(w, MP_INTSRC, MP_IRQ_INT, irq, ioapic_id,
			   irq == MP_TIMER_IRQ ? MP_TIMER_PIN : irq);
	}
	mp_put_irq(w, MP_LINTSRC, MP_IRQ_EXTINT, 0, MP_ALL_LAPICS, 0);
	mp_put_irq(w, MP_LINTSRC, MP_IRQ_NMI, 0, MP_ALL_LAPICS, 1);
}

int mptable_write(struct guest_mem *mem, int ncpus)
{
	const uint64_t room = PLAT_BIOS_END - PLAT_MPTABLE_ADDR;
	struct mpf_intel *mpf;
	struct mpc_table *mpc;
	struct mp_writer w;
	size_t size;
	uint8_t *base;

	if (ncpus < 1 || ncpus > MPTABLE_MAX_CPUS) {
		pr_err("MP table: %d CPUs requested, supported 1..%d (8-bit APIC ids, one for the IOAPIC)",
		       ncpus, MPTABLE_MAX_CPUS);
		return -EINVAL;
	}
	size = mptable_size(ncpus);
	base = gpa_to_hva(mem, PLAT_MPTABLE_ADDR, size);
	if (size > room || !base) {
		pr_err("MP table for %d CPUs (%zu bytes) does not fit at 0x%llx (room %llu bytes)",
		       ncpus, size, PLAT_MPTABLE_ADDR, (unsigned long long)room);
		return -ENOSPC;
	}
	memset(base, 0, size);

	mpf = (struct mpf_intel *)base;
	mpc = (struct mpc_table *)(mpf + 1);
	w.pos = (uint8_t *)(mpc + 1);
	w.count = 0;
	mp_put_cpus(&w, ncpus);
	mp_put_isa_bus(&w);
	mp_put_ioapic(&w, ncpus);	/* first APIC id after the CPUs' */
	mp_put_irqs(&w, ncpus);

	memcpy(mpc->signature, MPC_SIGNATURE, 4);
	mpc->length = w.pos - (uint8_t *)mpc;
	mpc->spec_rev = MP_SPEC_REV_1_4;
	memcpy(mpc->oem, "HDVM    ", sizeof(mpc->oem));
	memcpy(mpc->product, "hdvm microVM", sizeof(mpc->product));
	mpc->count = w.count;
	mpc->lapic = PLAT_LAPIC_ADDR;
	mpc->checksum = mp_checksum(mpc, mpc->length);

	memcpy(mpf->signature, MPF_SIGNATURE, 4);
	mpf->physptr = PLAT_MPTABLE_ADDR + sizeof(*mpf);
	mpf->length = sizeof(*mpf) / 16;
	mpf->spec_rev = MP_SPEC_REV_1_4;
	mpf->checksum = mp_checksum(mpf, sizeof(*mpf));
	return 0;
}
