// SPDX-License-Identifier: MIT
/*
 * vCPU and VM state as a table of pieces: each knows its KVM ioctls, its
 * size and how to check a copy read from a stream.  The table order is the
 * restore order (see machine_state.h); save, the stream and load all walk it,
 * so adding a piece is one table row.
 */
#include "vmm/machine_state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "migration/state.h"
#include "vmm/kvm_ops.h"
#include "vmm/util.h"

#define MAX_CPUID_ENTRIES	1024
#define MAX_MSRS		1024
#define XSAVE_LEGACY_SIZE	4096U
#define XSAVE_MAX_SIZE		(64U * 1024)

/*
 * MSRs QEMU saves although KVM_GET_MSR_INDEX_LIST does not name them (measured
 * on the build hosts: all readable).  Ones a host cannot read are dropped.
 */
static const uint32_t explicit_msrs[] = {
	0x1b,			/* APIC base */
	0x48,			/* SPEC_CTRL */
	0x2ff,			/* MTRR default type */
	0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207,	/* variable MTRRs */
	0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
	0x250, 0x258, 0x259,	/* fixed MTRRs */
	0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
	0x400, 0x401, 0x402, 0x403,	/* MCE bank 0 */
	0xc0000080,		/* EFER */
	0xc0000100, 0xc0000101,	/* FS/GS base */
	0xc0000103,		/* TSC_AUX */
};

struct blob {
	uint32_t len;
	uint8_t *data;
};

/* What the destination KVM can take. */
struct kvm_caps {
	uint32_t xsave_size;
	bool sregs2;
};

struct piece {
	uint32_t tag;
	const char *name;
	bool per_vcpu;
	unsigned long get_req, set_req;
	uint32_t size;		/* fixed size, or 0 when get() sizes the blob */
	uint32_t arg;		/* IRQCHIP: chip id */
	int (*get)(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		   const struct piece *p, struct blob *b);
	int (*set)(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		   const struct piece *p, const struct blob *b);
	/* Is a blob read from a stream well formed for this machine?  NULL: size only. */
	bool (*valid)(const struct kvm_caps *caps, const struct blob *b);
};

static int kvm_ioctl(const struct machine_kvm *mk, int fd, unsigned long req, void *arg)
{
	return mk->kvm->ioctl(fd, req, arg);
}

static int blob_alloc(struct blob *b, uint32_t len)
{
	b->data = calloc(1, len);
	b->len = len;
	return b->data ? 0 : -ENOMEM;
}

static void blob_free(struct blob *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* ---- generic fixed-size pieces ---- */

static int get_fixed(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, struct blob *b)
{
	int ret = blob_alloc(b, p->size);

	return ret < 0 ? ret : kvm_ioctl(mk, fd, p->get_req, b->data);
}

static int set_fixed(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, const struct blob *b)
{
	return kvm_ioctl(mk, fd, p->set_req, b->data);
}

static int get_irqchip(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		       const struct piece *p, struct blob *b)
{
	int ret = blob_alloc(b, p->size);

	if (ret < 0)
		return ret;
	((struct kvm_irqchip *)b->data)->chip_id = p->arg;
	return kvm_ioctl(mk, fd, p->get_req, b->data);
}

static bool valid_irqchip_0(const struct kvm_caps *c, const struct blob *b)
{
	return ((struct kvm_irqchip *)b->data)->chip_id == KVM_IRQCHIP_PIC_MASTER;
}

static bool valid_irqchip_1(const struct kvm_caps *c, const struct blob *b)
{
	return ((struct kvm_irqchip *)b->data)->chip_id == KVM_IRQCHIP_PIC_SLAVE;
}

static bool valid_irqchip_2(const struct kvm_caps *c, const struct blob *b)
{
	return ((struct kvm_irqchip *)b->data)->chip_id == KVM_IRQCHIP_IOAPIC;
}

static bool valid_xcrs(const struct kvm_caps *c, const struct blob *b)
{
	return ((struct kvm_xcrs *)b->data)->nr_xcrs <= KVM_MAX_XCRS;
}

/* NMI pending and SIPI vector are always valid on GET but must be flagged on SET. */
static int set_events(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		      const struct piece *p, const struct blob *b)
{
	struct kvm_vcpu_events ev;

	memcpy(&ev, b->data, sizeof(ev));
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	return kvm_ioctl(mk, fd, KVM_SET_VCPU_EVENTS, &ev);
}

/* The clock value only: REALTIME would add the wall time the snapshot sat on disk. */
static int set_clock(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, const struct blob *b)
{
	struct kvm_clock_data c;

	memcpy(&c, b->data, sizeof(c));
	c.flags = 0;
	return kvm_ioctl(mk, fd, KVM_SET_CLOCK, &c);
}

/* ---- variable pieces ---- */

static int get_cpuid(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, struct blob *b)
{
	for (uint32_t n = 64; n <= MAX_CPUID_ENTRIES; n *= 2) {
		struct kvm_cpuid2 *c;
		int ret = blob_alloc(b, sizeof(*c) + n * sizeof(c->entries[0]));

		if (ret < 0)
			return ret;
		c = (struct kvm_cpuid2 *)b->data;
		c->nent = n;
		ret = kvm_ioctl(mk, fd, KVM_GET_CPUID2, c);
		if (ret == 0) {
			b->len = sizeof(*c) + c->nent * sizeof(c->entries[0]);
			return 0;
		}
		blob_free(b);
		if (ret != -E2BIG)
			return ret;
	}
	return -E2BIG;
}

static bool valid_cpuid(const struct kvm_caps *c, const struct blob *b)
{
	const struct kvm_cpuid2 *cp = (const void *)b->data;

	return b->len >= sizeof(*cp) && cp->nent <= MAX_CPUID_ENTRIES &&
	       b->len == sizeof(*cp) + cp->nent * sizeof(cp->entries[0]);
}

static int get_tsc_khz(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		       const struct piece *p, struct blob *b)
{
	int ret = kvm_ioctl(mk, fd, KVM_GET_TSC_KHZ, NULL);

	if (ret <= 0)
		return ret < 0 ? ret : -EINVAL;
	if (blob_alloc(b, sizeof(uint32_t)) < 0)
		return -ENOMEM;
	memcpy(b->data, &(uint32_t){ (uint32_t)ret }, sizeof(uint32_t));
	return 0;
}

/* Same frequency: accepted without TSC scaling (which the build hosts lack). */
static int set_tsc_khz(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		       const struct piece *p, const struct blob *b)
{
	uint32_t khz;

	memcpy(&khz, b->data, sizeof(khz));
	return kvm_ioctl(mk, fd, KVM_SET_TSC_KHZ, (void *)(uintptr_t)khz);
}

static bool valid_tsc_khz(const struct kvm_caps *c, const struct blob *b)
{
	uint32_t khz;

	memcpy(&khz, b->data, sizeof(khz));
	return khz != 0;
}

static int get_xsave(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, struct blob *b)
{
	int ret = blob_alloc(b, caps->xsave_size);

	if (ret < 0)
		return ret;
	return kvm_ioctl(mk, fd, caps->xsave_size > XSAVE_LEGACY_SIZE ? KVM_GET_XSAVE2
								      : KVM_GET_XSAVE, b->data);
}

/* A smaller source area is padded: XSTATE_BV says which components are present. */
static int set_xsave(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, const struct blob *b)
{
	uint8_t *x = calloc(1, caps->xsave_size);
	int ret;

	if (!x)
		return -ENOMEM;
	memcpy(x, b->data, b->len);
	ret = kvm_ioctl(mk, fd, KVM_SET_XSAVE, x);
	free(x);
	return ret;
}

static bool valid_xsave(const struct kvm_caps *c, const struct blob *b)
{
	return b->len >= XSAVE_LEGACY_SIZE && b->len <= c->xsave_size;
}

static int get_sregs(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, struct blob *b)
{
	int ret = blob_alloc(b, caps->sregs2 ? sizeof(struct kvm_sregs2)
					     : sizeof(struct kvm_sregs));

	if (ret < 0)
		return ret;
	return kvm_ioctl(mk, fd, caps->sregs2 ? KVM_GET_SREGS2 : KVM_GET_SREGS, b->data);
}

static int set_sregs(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, const struct blob *b)
{
	bool two = b->len == sizeof(struct kvm_sregs2);

	return kvm_ioctl(mk, fd, two ? KVM_SET_SREGS2 : KVM_SET_SREGS, b->data);
}

/* SREGS2 (with PDPTRs) where the source had it, then the destination must too. */
static bool valid_sregs(const struct kvm_caps *c, const struct blob *b)
{
	return b->len == sizeof(struct kvm_sregs) ||
	       (b->len == sizeof(struct kvm_sregs2) && c->sregs2);
}

/* KVM's index list plus the explicit ones, without duplicates. */
static int msr_indices(const struct machine_kvm *mk, uint32_t *idx, uint32_t max)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + max * sizeof(uint32_t));
	uint32_t n;
	int ret;

	if (!l)
		return -ENOMEM;
	l->nmsrs = max - ARRAY_SIZE(explicit_msrs);
	ret = kvm_ioctl(mk, mk->kvm_fd, KVM_GET_MSR_INDEX_LIST, l);
	if (ret < 0) {
		free(l);
		return ret;
	}
	n = l->nmsrs;
	memcpy(idx, l->indices, n * sizeof(uint32_t));
	free(l);
	for (size_t i = 0; i < ARRAY_SIZE(explicit_msrs); i++) {
		uint32_t j;

		for (j = 0; j < n && idx[j] != explicit_msrs[i]; j++)
			;
		if (j == n)
			idx[n++] = explicit_msrs[i];
	}
	return (int)n;
}

static int get_msrs(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		    const struct piece *p, struct blob *b)
{
	uint32_t idx[MAX_MSRS];
	struct kvm_msrs *m;
	int n = msr_indices(mk, idx, MAX_MSRS), ret;

	if (n < 0)
		return n;
	ret = blob_alloc(b, sizeof(*m) + n * sizeof(m->entries[0]));
	if (ret < 0)
		return ret;
	m = (struct kvm_msrs *)b->data;
	for (int i = 0; i < n; i++)
		m->entries[i].index = idx[i];
	m->nmsrs = n;
	/* KVM stops at the first MSR it cannot read: drop that one and go on. */
	for (;;) {
		ret = kvm_ioctl(mk, fd, KVM_GET_MSRS, m);
		if (ret < 0)
			return ret;
		if ((uint32_t)ret >= m->nmsrs)
			break;
		pr_debug("MSR %#x is not readable here; not saved", m->entries[ret].index);
		memmove(&m->entries[ret], &m->entries[ret + 1],
			(m->nmsrs - ret - 1) * sizeof(m->entries[0]));
		m->nmsrs--;
	}
	b->len = sizeof(*m) + m->nmsrs * sizeof(m->entries[0]);
	return 0;
}

static int set_msrs(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		    const struct piece *p, const struct blob *b)
{
	const struct kvm_msrs *m = (const void *)b->data;
	int ret = kvm_ioctl(mk, fd, KVM_SET_MSRS, b->data);

	if (ret < 0)
		return ret;
	if ((uint32_t)ret < m->nmsrs) {
		pr_err("KVM refused MSR %#x", m->entries[ret].index);
		return -EINVAL;
	}
	return 0;
}

static bool valid_msrs(const struct kvm_caps *c, const struct blob *b)
{
	const struct kvm_msrs *m = (const void *)b->data;

	return b->len >= sizeof(*m) && m->nmsrs <= MAX_MSRS &&
	       b->len == sizeof(*m) + m->nmsrs * sizeof(m->entries[0]);
}

static int set_cpuid(const struct machine_kvm *mk, const struct kvm_caps *caps, int fd,
		     const struct piece *p, const struct blob *b)
{
	return kvm_ioctl(mk, fd, KVM_SET_CPUID2, b->data);
}

/* ---- the table: restore order ---- */

#define TAG(a, b, c, d)	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define REQ(req, type)	.get_req = KVM_GET_##req, .set_req = KVM_SET_##req, .size = sizeof(type)

static const struct piece pieces[] = {
	{ TAG('C','P','I','D'), "CPUID", true, .get = get_cpuid, .set = set_cpuid,
	  .valid = valid_cpuid },
	{ TAG('T','S','C','K'), "TSC kHz", true, .size = 4, .get = get_tsc_khz,
	  .set = set_tsc_khz, .valid = valid_tsc_khz },
	{ TAG('P','I','T','2'), "PIT2", false, REQ(PIT2, struct kvm_pit_state2),
	  .get = get_fixed, .set = set_fixed },
	{ TAG('P','I','C','0'), "PIC master", false, REQ(IRQCHIP, struct kvm_irqchip),
	  .arg = KVM_IRQCHIP_PIC_MASTER, .get = get_irqchip, .set = set_fixed,
	  .valid = valid_irqchip_0 },
	{ TAG('P','I','C','1'), "PIC slave", false, REQ(IRQCHIP, struct kvm_irqchip),
	  .arg = KVM_IRQCHIP_PIC_SLAVE, .get = get_irqchip, .set = set_fixed,
	  .valid = valid_irqchip_1 },
	{ TAG('I','O','A','P'), "IOAPIC", false, REQ(IRQCHIP, struct kvm_irqchip),
	  .arg = KVM_IRQCHIP_IOAPIC, .get = get_irqchip, .set = set_fixed,
	  .valid = valid_irqchip_2 },
	{ TAG('L','A','P','C'), "LAPIC", true, REQ(LAPIC, struct kvm_lapic_state),
	  .get = get_fixed, .set = set_fixed },
	{ TAG('R','E','G','S'), "REGS", true, REQ(REGS, struct kvm_regs),
	  .get = get_fixed, .set = set_fixed },
	{ TAG('X','S','A','V'), "XSAVE", true, .get = get_xsave, .set = set_xsave,
	  .valid = valid_xsave },
	{ TAG('X','C','R','S'), "XCRS", true, REQ(XCRS, struct kvm_xcrs),
	  .get = get_fixed, .set = set_fixed, .valid = valid_xcrs },
	{ TAG('S','R','E','G'), "SREGS", true, .get = get_sregs, .set = set_sregs,
	  .valid = valid_sregs },
	{ TAG('M','S','R','S'), "MSRS", true, .get = get_msrs, .set = set_msrs,
	  .valid = valid_msrs },
	{ TAG('E','V','N','T'), "VCPU_EVENTS", true, REQ(VCPU_EVENTS, struct kvm_vcpu_events),
	  .get = get_fixed, .set = set_events },
	{ TAG('M','P','S','T'), "MP_STATE", true, REQ(MP_STATE, struct kvm_mp_state),
	  .get = get_fixed, .set = set_fixed },
	{ TAG('D','R','E','G'), "DEBUGREGS", true, REQ(DEBUGREGS, struct kvm_debugregs),
	  .get = get_fixed, .set = set_fixed },
	{ TAG('C','L','C','K'), "CLOCK", false, REQ(CLOCK, struct kvm_clock_data),
	  .get = get_fixed, .set = set_clock },
};

#define NR_PIECES	ARRAY_SIZE(pieces)

/* ---- one machine's state: blobs[vcpu][piece], VM pieces under vcpu 0 ---- */

struct machine_state {
	int nr_vcpus;
	struct blob *blobs;
};

static struct blob *blob_of(struct machine_state *ms, int vcpu, size_t piece)
{
	return &ms->blobs[(size_t)vcpu * NR_PIECES + piece];
}

static void ms_free(struct machine_state *ms)
{
	for (size_t i = 0; ms->blobs && i < (size_t)ms->nr_vcpus * NR_PIECES; i++)
		blob_free(&ms->blobs[i]);
	free(ms->blobs);
	ms->blobs = NULL;
}

static int ms_alloc(struct machine_state *ms, int nr_vcpus)
{
	ms->nr_vcpus = nr_vcpus;
	ms->blobs = calloc((size_t)nr_vcpus * NR_PIECES, sizeof(struct blob));
	return ms->blobs ? 0 : -ENOMEM;
}

static void caps_probe(const struct machine_kvm *mk, struct kvm_caps *caps)
{
	int x = kvm_ioctl(mk, mk->vm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_XSAVE2);

	caps->xsave_size = x > (int)XSAVE_LEGACY_SIZE ? (uint32_t)x : XSAVE_LEGACY_SIZE;
	caps->sregs2 = kvm_ioctl(mk, mk->vm_fd, KVM_CHECK_EXTENSION,
				 (void *)(uintptr_t)KVM_CAP_SREGS2) > 0;
}

static int piece_fd(const struct machine_kvm *mk, const struct piece *p, int vcpu)
{
	return p->per_vcpu ? mk->vcpu_fds[vcpu] : mk->vm_fd;
}

/*
 * Every piece from KVM (save) or into KVM (restore), in table order; each
 * per-vCPU piece for every vCPU before the next piece.
 */
static int ms_walk(const struct machine_kvm *mk, const struct kvm_caps *caps,
		   struct machine_state *ms, bool restore)
{
	for (size_t i = 0; i < NR_PIECES; i++) {
		const struct piece *p = &pieces[i];

		for (int v = 0; v < (p->per_vcpu ? mk->nr_vcpus : 1); v++) {
			struct blob *b = blob_of(ms, v, i);
			int fd = piece_fd(mk, p, v);
			int ret = restore ? p->set(mk, caps, fd, p, b) : p->get(mk, caps, fd, p, b);

			if (ret < 0) {
				pr_err("%s %s%s: %s", restore ? "restoring" : "saving", p->name,
				       p->per_vcpu ? " of a vCPU" : "", strerror(-ret));
				return ret;
			}
		}
	}
	return 0;
}

int machine_state_save(const struct machine_kvm *mk, struct state_buf *sb)
{
	struct machine_state ms;
	struct kvm_caps caps;
	size_t mark;
	int ret;

	caps_probe(mk, &caps);
	ret = ms_alloc(&ms, mk->nr_vcpus);
	if (ret < 0)
		return ret;
	ret = ms_walk(mk, &caps, &ms, false);
	if (ret < 0)
		goto out;
	mark = state_begin_section(sb, MACHINE_STATE_TAG);
	state_put_u32(sb, MACHINE_STATE_VERSION);
	state_put_u32(sb, mk->nr_vcpus);
	for (size_t i = 0; i < NR_PIECES; i++) {
		for (int v = 0; v < (pieces[i].per_vcpu ? mk->nr_vcpus : 1); v++) {
			struct blob *b = blob_of(&ms, v, i);
			size_t m = state_begin_section(sb, pieces[i].tag);

			state_put_bytes(sb, b->data, b->len);
			state_end_section(sb, m);
		}
	}
	state_end_section(sb, mark);
	ret = state_ok(sb) ? 0 : -ENOMEM;
out:
	ms_free(&ms);
	return ret;
}

/* Parse and validate everything; nothing touches KVM here. */
static int ms_parse(struct machine_state *ms, const struct kvm_caps *caps,
		    const struct machine_kvm *mk, struct state_buf *sb)
{
	uint32_t tag = state_get_u32(sb), len = state_get_u32(sb), version, nr;
	size_t end;

	if (!state_ok(sb) || tag != MACHINE_STATE_TAG || len > sb->len - sb->pos) {
		pr_err("machine state: missing or truncated");
		return -EINVAL;
	}
	end = sb->pos + len;
	version = state_get_u32(sb);
	nr = state_get_u32(sb);
	if (!state_ok(sb) || version != MACHINE_STATE_VERSION) {
		pr_err("machine state: version %u, this hdvm reads %u", version,
		       MACHINE_STATE_VERSION);
		return -EINVAL;
	}
	if (nr != (uint32_t)mk->nr_vcpus) {
		pr_err("machine state: %u vCPUs saved, this VM has %d", nr, mk->nr_vcpus);
		return -EINVAL;
	}
	if (ms_alloc(ms, mk->nr_vcpus) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < NR_PIECES; i++) {
		const struct piece *p = &pieces[i];

		for (int v = 0; v < (p->per_vcpu ? mk->nr_vcpus : 1); v++) {
			struct blob *b = blob_of(ms, v, i);

			tag = state_get_u32(sb);
			len = state_get_u32(sb);
			if (!state_ok(sb) || tag != p->tag || len > end - sb->pos ||
			    (p->size && len != p->size) || len == 0) {
				pr_err("machine state: %s%s missing, truncated or of the wrong size",
				       p->name, p->per_vcpu ? " of a vCPU" : "");
				return -EINVAL;
			}
			if (blob_alloc(b, len) < 0)
				return -ENOMEM;
			state_get_bytes(sb, b->data, len);
			if (p->valid && !p->valid(caps, b)) {
				pr_err("machine state: %s%s is malformed or does not fit this host",
				       p->name, p->per_vcpu ? " of a vCPU" : "");
				return -EINVAL;
			}
		}
	}
	if (!state_ok(sb) || sb->pos != end) {
		pr_err("machine state: %zu unexpected bytes after the last piece",
		       end > sb->pos ? end - sb->pos : 0);
		return -EINVAL;
	}
	return 0;
}

int machine_state_load(const struct machine_kvm *mk, struct state_buf *sb)
{
	struct machine_state ms = { 0 };
	struct kvm_caps caps;
	int ret;

	caps_probe(mk, &caps);
	ret = ms_parse(&ms, &caps, mk, sb);
	if (ret < 0)
		goto out;
	ret = ms_walk(mk, &caps, &ms, true);	/* commit */
out:
	ms_free(&ms);
	return ret;
}
