// SPDX-License-Identifier: MIT
/*
 * CompSC, the driver's side (devices/compsc.md; wire format
 * devices/vfio/compsc_abi.h).  hdvm shows a vendor extended capability at
 * 0x100 of a passed-through function that cannot migrate; the driver opts
 * in with a page of its RAM, then runs every device section under the
 * page's read lock.  A counter that moved means the function was reset
 * (moved to another host, or a failed migration): the driver brings the
 * fresh function to its state (vnet_bring_up: features, queues with the
 * rings restarting at 0, vectors, receive filter), takes the statistics
 * residual, and has the net layer announce it.
 *
 * Command line: compsc=0 does not opt in (the VM cannot migrate); compsc_stuck=1
 * takes a read lock it never releases (the test of hdvm's bounded wait).
 */
#include "devices/vfio/compsc_abi.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/drivers/dma.h"
#include "guest/drivers/virtio_net.h"
#include "guest/io.h"
#include "guest/lib.h"

#define WHO	"virtio-net: CompSC"

static struct compsc_page *shared;	/* one page for the one device this guest drives */

static bool find_cap(const struct pci_device *pci)
{
	uint32_t hdr, vsec;

	return pci_ext_read32(pci, COMPSC_ECAP_POS, &hdr) &&
	       (hdr & 0xffff) == COMPSC_ECAP_ID &&
	       pci_ext_read32(pci, COMPSC_ECAP_POS + 4, &vsec) &&
	       (vsec & 0xffff) == COMPSC_VSEC_ID;
}

/* hdnic's statistics capability ("ST", hdnic_vf_abi.h), found by walking the list. */
static uint8_t stats_cap(const struct pci_device *pci)
{
	uint8_t pos = 0;

	while ((pos = pci_find_cap(pci, PCI_CAP_ID_VNDR, pos)))
		if (pci_read8(pci, pos + 3) == 9 && pci_read16(pci, pos + 4) == 0x1af4 &&
		    pci_read16(pci, pos + 6) == 0x5453)
			return pos;
	return 0;
}

void vnet_compsc_setup(struct virtio_net *vn)
{
	const struct pci_device *pci = vn->vp.pci;
	uint64_t want = 1, stuck = 0;
	uint32_t st;

	vn->stats_pos = stats_cap(pci);
	if (vn->cs || !find_cap(pci))
		return;		/* already on (a re-open), or not offered: VFIO migration */
	if (cmdline_get_u64("net", "compsc", 1, 0, 1, &want))
		want = 1;
	if (!want) {
		printf(WHO " offered, not used (compsc=0): this VM cannot migrate\n");
		return;
	}
	if (!shared && !(shared = dma_alloc(COMPSC_PAGE_SIZE, COMPSC_PAGE_SIZE, "the CompSC page")))
		return;
	memset(shared, 0, sizeof(*shared));
	shared->magic = COMPSC_PAGE_MAGIC;
	shared->version = COMPSC_VERSION;
	shared->nr_stats = 6;
	pci_ext_write32(pci, COMPSC_ECAP_POS + 16, (uint32_t)((uint64_t)shared >> 32));
	pci_ext_write32(pci, COMPSC_ECAP_POS + 12, (uint32_t)(uint64_t)shared | COMPSC_PAGE_ENABLE);
	if (!pci_ext_read32(pci, COMPSC_ECAP_POS + 8, &st) || !((st >> 16) & COMPSC_ST_ACTIVE)) {
		printf(WHO ": hdvm refused the shared page (status 0x%x)\n", st >> 16);
		return;
	}
	vn->cs = shared;
	vn->cs_seen = __atomic_load_n(&shared->counter, __ATOMIC_ACQUIRE);
	printf(WHO " on: shared page at 0x%lx\n", (unsigned long)(uint64_t)shared);
	if (!cmdline_get_u64("net", "compsc_stuck", 0, 0, 1, &stuck) && stuck) {
		__atomic_fetch_add(&shared->lock, 1, __ATOMIC_ACQ_REL);	/* never released */
		printf(WHO ": holding the read lock for ever (compsc_stuck=1)\n");
	}
}

/* The old device counted this after our last read of its read-clear counters. */
static void take_residual(struct virtio_net *vn)
{
	for (unsigned i = 0; i < 6; i++) {
		vn->hw_stats[i] += vn->cs->stats_residual[i];
		vn->cs->stats_residual[i] = 0;
	}
}

static void restore(struct virtio_net *vn, uint32_t counter)
{
	vn->cs_seen = counter;
	vn->cs_restores++;
	if (vnet_bring_up(vn)) {
		printf(WHO ": restoring the device failed\n");
		vn->health = VNET_NEEDS_RESET;	/* the net layer's health check tries again */
		return;
	}
	take_residual(vn);
	vn->cs_moved = true;
	printf(WHO ": device reset by a migration (counter %u), restored; device rx_packets %lu "
	       "tx_packets %lu\n", counter, (unsigned long)vn->hw_stats[0],
	       (unsigned long)vn->hw_stats[3]);
}

void vnet_enter(struct virtio_net *vn)
{
	struct compsc_page *p = vn->cs;
	uint32_t v, c;

	if (!p || vn->cs_depth++)
		return;
	for (;;) {
		v = __atomic_load_n(&p->lock, __ATOMIC_ACQUIRE);
		if (v & COMPSC_LOCK_WRITER) {
			cpu_relax();	/* hdvm is stopping us: the vCPU parks soon */
			continue;
		}
		if (__atomic_compare_exchange_n(&p->lock, &v, v + 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
	}
	c = __atomic_load_n(&p->counter, __ATOMIC_ACQUIRE);
	if (c != vn->cs_seen)
		restore(vn, c);
}

void vnet_leave(struct virtio_net *vn)
{
	if (!vn->cs || --vn->cs_depth)
		return;
	__atomic_fetch_sub(&vn->cs->lock, 1, __ATOMIC_RELEASE);
}

void virtio_net_hw_stats(struct virtio_net *vn, uint64_t out[6])
{
	const struct pci_device *pci = vn->vp.pci;

	vnet_enter(vn);
	for (unsigned i = 0; vn->stats_pos && i < 6; i++) {
		uint8_t off = (uint8_t)(vn->stats_pos + 8 + 8 * i);
		uint64_t lo = pci_read32(pci, off);	/* samples (and clears, CompSC) */
		uint64_t v = lo | (uint64_t)pci_read32(pci, off + 4) << 32;

		/* a function that cannot migrate has read-clear counters: accumulate */
		if (vn->cs)
			vn->hw_stats[i] += v;
		else
			vn->hw_stats[i] = v;
	}
	vnet_leave(vn);
	for (unsigned i = 0; i < 6; i++)
		out[i] = vn->hw_stats[i];
}
