// SPDX-License-Identifier: MIT
/*
 * CompSC for a passthrough function without migration support
 * (devices/compsc.md, vfio_compsc.h).  The capability lives in hdvm's
 * virtual config space at COMPSC_ECAP_POS; the shared page in guest RAM,
 * which hdvm reaches through its own mapping.  hdvm's writes to the page
 * are marked dirty by hand: KVM's log sees only what vCPUs write.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio_compsc.h"
#include "devices/vfio/vfio_pci_int.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define CAP_END		(COMPSC_ECAP_POS + sizeof(struct compsc_ecap))
#define SAVE_MAGIC	0x31435343u	/* "CSC1": a CompSC device section */

static const struct compsc_pf_ops *pf_ops = &compsc_pf_hdnic;

void compsc_set_pf_ops(const struct compsc_pf_ops *ops)
{
	pf_ops = ops ? ops : &compsc_pf_hdnic;
}

void compsc_offer(struct vfio_pci *vp)
{
	memset(&vp->compsc, 0, sizeof(vp->compsc));
	vp->compsc.offered = true;
	vp->compsc.lock_timeout_ms = COMPSC_LOCK_TIMEOUT_MS;
}

static void cap_image(const struct vfio_compsc *cs, struct compsc_ecap *c)
{
	c->header = COMPSC_ECAP_ID | COMPSC_ECAP_VER << 16;	/* next 0: the last */
	c->vsec = COMPSC_VSEC_ID | COMPSC_VSEC_REV << 16 |
		  (uint32_t)sizeof(struct compsc_ecap) << 20;
	c->version = COMPSC_VERSION;
	c->status = cs->status;
	c->page_lo = cs->page_lo;
	c->page_hi = cs->page_hi;
	c->lock_timeout_ms = cs->lock_timeout_ms;
}

static bool in_cap(const struct vfio_pci *vp, uint32_t off, unsigned len)
{
	return vp->compsc.offered && off >= COMPSC_ECAP_POS && off + len <= CAP_END;
}

bool compsc_cfg_read(struct vfio_pci *vp, uint32_t off, void *data, unsigned len)
{
	struct compsc_ecap c;

	if (!in_cap(vp, off, len))
		return false;
	cap_image(&vp->compsc, &c);
	memcpy(data, (uint8_t *)&c + (off - COMPSC_ECAP_POS), len);
	return true;
}

static struct compsc_page *page_at(struct vfio_pci *vp, uint64_t gpa)
{
	return gpa_to_hva(&vp->vm->mem, gpa, sizeof(struct compsc_page));
}

static struct compsc_page *page(struct vfio_pci *vp)
{
	return page_at(vp, vp->compsc.page_gpa);
}

static void page_dirty(struct vfio_pci *vp)
{
	guest_mem_mark_dirty(&vp->vm->mem, vp->compsc.page_gpa, sizeof(struct compsc_page));
}

/* The driver wrote page_lo: take its page (ENABLE) or let go of it. */
static void opt_in(struct vfio_pci *vp)
{
	struct vfio_compsc *cs = &vp->compsc;
	uint64_t gpa = (uint64_t)cs->page_hi << 32 | (cs->page_lo & ~0xfffu);
	struct compsc_page *p;

	if (cs->locked)
		return;		/* not while hdvm holds the page */
	if (!(cs->page_lo & COMPSC_PAGE_ENABLE)) {
		cs->status = 0;
		return;
	}
	p = page_at(vp, gpa);
	if (!p || p->magic != COMPSC_PAGE_MAGIC || p->version != COMPSC_VERSION ||
	    p->nr_stats > COMPSC_MAX_STATS) {
		cs->status = COMPSC_ST_REFUSED;
		pr_info("%s: CompSC page at %#llx refused (not RAM or not set up)", vp->spec,
			(unsigned long long)gpa);
		return;
	}
	cs->page_gpa = gpa;
	cs->status = COMPSC_ST_ACTIVE;
	pr_debug("%s: CompSC on, shared page at %#llx", vp->spec, (unsigned long long)gpa);
}

bool compsc_cfg_write(struct vfio_pci *vp, uint32_t off, const void *data, unsigned len)
{
	struct vfio_compsc *cs = &vp->compsc;
	struct compsc_ecap c;
	unsigned lo = offsetof(struct compsc_ecap, page_lo);
	unsigned hi = offsetof(struct compsc_ecap, page_hi);
	uint32_t rel = off - COMPSC_ECAP_POS;

	if (!in_cap(vp, off, len))
		return false;
	cap_image(cs, &c);
	/* only the two page registers are the driver's; the rest is read-only */
	for (unsigned i = 0; i < len; i++) {
		unsigned b = rel + i;

		if ((b >= lo && b < lo + 4) || (b >= hi && b < hi + 4))
			((uint8_t *)&c)[b] = ((const uint8_t *)data)[i];
	}
	cs->page_hi = c.page_hi;
	if (rel < lo + 4 && rel + len > lo) {
		cs->page_lo = c.page_lo;
		opt_in(vp);
	}
	return true;
}

int compsc_ready(struct vfio_pci *vp)
{
	if (compsc_active(&vp->compsc))
		return 0;
	device_set_error(&vp->dev, "%s has no VFIO migration support and its guest driver did "
			 "not opt into CompSC (devices/compsc.md)", vp->spec);
	return -EOPNOTSUPP;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int compsc_lock(struct vfio_pci *vp)
{
	struct vfio_compsc *cs = &vp->compsc;
	struct compsc_page *p;
	uint64_t t0 = mono_us(), deadline = t0 + (uint64_t)cs->lock_timeout_ms * 1000;
	struct timespec nap = { 0, 100 * 1000 };

	if (cs->locked)
		return 0;
	p = page(vp);
	if (!p)
		return -EFAULT;
	if (__atomic_fetch_or(&p->lock, COMPSC_LOCK_WRITER, __ATOMIC_SEQ_CST) &
	    COMPSC_LOCK_WRITER) {
		device_set_error(&vp->dev, "%s: the CompSC write lock is already taken", vp->spec);
		return -EBUSY;
	}
	page_dirty(vp);
	while (__atomic_load_n(&p->lock, __ATOMIC_SEQ_CST) & COMPSC_LOCK_READERS) {
		if (mono_us() >= deadline) {
			__atomic_fetch_and(&p->lock, ~COMPSC_LOCK_WRITER, __ATOMIC_SEQ_CST);
			device_set_error(&vp->dev, "%s: the guest driver held the CompSC lock for "
					 "more than %u ms", vp->spec, cs->lock_timeout_ms);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	cs->locked = true;
	cs->lock_waits_us = mono_us() - t0;
	return 0;
}

/* hdnic's statistics capability ("ST"): where the read-clear counters are, or 0. */
static unsigned stats_cap_pos(const struct vfio_pci *vp)
{
	unsigned pos = vp->phys_cfg[PCI_CAPABILITY_LIST];

	for (unsigned n = 0; pos && pos + 8 <= PCI_CFG_SIZE && n < 48; n++) {
		const uint8_t *c = vp->phys_cfg + pos;
		uint16_t vendor, magic;

		memcpy(&vendor, c + 4, 2);
		memcpy(&magic, c + 6, 2);
		if (c[0] == PCI_CAP_ID_VNDR && c[3] == HDNIC_CAP_VENDOR_CFG_TYPE &&
		    vendor == HDNIC_DB_CAP_VENDOR_ID && magic == HDNIC_STATS_CAP_MAGIC)
			return pos;
		pos = c[1];
	}
	return 0;
}

int compsc_stop(struct vfio_pci *vp)
{
	struct compsc_page *p = page(vp);
	unsigned pos = stats_cap_pos(vp);

	if (!vp->compsc.locked || !p)
		return -EINVAL;
	if (pos && vp_alive(vp)) {
		uint64_t v[HDNIC_NR_STATS];
		unsigned nr = MIN((unsigned)p->nr_stats, (unsigned)HDNIC_NR_STATS);

		/* one read samples (and clears) every counter */
		if (vp->vdev->ops->region_read(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX,
					       pos + offsetof(struct hdnic_stats_cap, counter),
					       v, sizeof(v)) == 0)
			for (unsigned i = 0; i < nr; i++)
				p->stats_residual[i] += v[i];
	}
	page_dirty(vp);
	/* the only way to stop DMA on a device without migration support */
	if (vp_alive(vp))
		vp->vdev->ops->reset(vp->vdev);
	vp->compsc.was_reset = true;
	vp->compsc.pauses++;
	return 0;
}

int compsc_release(struct vfio_pci *vp)
{
	struct vfio_compsc *cs = &vp->compsc;
	struct compsc_page *p = page(vp);

	if (!cs->locked || !p)
		return 0;
	if (cs->was_reset)	/* the driver finds a fresh device: it restores */
		__atomic_fetch_add(&p->counter, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_and(&p->lock, ~COMPSC_LOCK_WRITER, __ATOMIC_SEQ_CST);
	page_dirty(vp);
	/*
	 * A driver asleep waiting for an interrupt would wait for ever: the
	 * fresh device has no vectors yet.  Raise the ones it has unmasked so
	 * it looks now (as for a removed device).
	 */
	if (cs->was_reset)
		vp_announce_removal(vp);
	cs->locked = cs->was_reset = false;
	return 0;
}

int compsc_save(struct vfio_pci *vp, struct state_buf *sb)
{
	struct compsc_pf_state pf = { 0 };
	char why[DEVICE_ERROR_MAX - 40] = "";
	int ret = compsc_ready(vp);

	if (ret)
		return ret;
	ret = pf_ops->get(vp->spec, &pf, why, sizeof(why));
	if (ret) {
		device_set_error(&vp->dev, "%s: reading its PF-held state: %s", vp->spec, why);
		return ret;
	}
	state_put_u32(sb, SAVE_MAGIC);
	state_put_u64(sb, vp->compsc.page_gpa);
	state_put_u32(sb, vp->compsc.page_lo);
	state_put_u32(sb, vp->compsc.page_hi);
	state_put_bytes(sb, pf.mac, 6);
	state_put_u32(sb, pf.trusted);
	state_put_u64(sb, pf.tx_rate);
	state_put_u64(sb, pf.rx_rate);
	state_put_u32(sb, pf.weight);
	return 0;
}

int compsc_load(struct vfio_pci *vp, struct state_buf *sb)
{
	struct vfio_compsc *cs = &vp->compsc;
	struct compsc_pf_state pf = { .valid = true };
	char why[DEVICE_ERROR_MAX - 40] = "";
	uint64_t gpa;
	int ret;

	if (state_get_u32(sb) != SAVE_MAGIC || !state_ok(sb)) {
		device_set_error(&vp->dev, "%s: the source's device state is not CompSC's (it "
				 "migrated with VFIO migration, this device has none)", vp->spec);
		return -EPROTO;
	}
	gpa = state_get_u64(sb);
	cs->page_lo = state_get_u32(sb);
	cs->page_hi = state_get_u32(sb);
	state_get_bytes(sb, pf.mac, 6);
	pf.trusted = state_get_u32(sb);
	pf.tx_rate = state_get_u64(sb);
	pf.rx_rate = state_get_u64(sb);
	pf.weight = state_get_u32(sb);
	if (!state_ok(sb) || !page_at(vp, gpa) || (gpa & 0xfff)) {
		device_set_error(&vp->dev, "%s: the CompSC state is truncated or its page is "
				 "not RAM", vp->spec);
		return -EINVAL;
	}
	cs->page_gpa = gpa;
	cs->status = COMPSC_ST_ACTIVE;
	/* the source held the write lock and reset its device: so do we now */
	cs->locked = cs->was_reset = true;
	ret = pf_ops->set(vp->spec, &pf, why, sizeof(why));
	if (ret) {
		device_set_error(&vp->dev, "%s: replaying its PF-held state: %s", vp->spec, why);
		return ret;
	}
	page(vp)->flags |= COMPSC_F_PF_REPLAYED;
	return 0;
}

int compsc_post_load(struct vfio_pci *vp)
{
	/* RAM is in (the lock word says WRITER, as the source left it): hand over */
	return compsc_release(vp);
}
