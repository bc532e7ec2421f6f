// SPDX-License-Identifier: MIT
/*
 * MSI-X capability, table and PBA emulation (PCI 3.0 §6.8.2).  The table is
 * accessed with aligned 4- or 8-byte operations; anything else is ignored
 * (reads as zero), which the spec leaves undefined.
 */
#include "devices/pci/pci_msix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "migration/state.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PBA_BYTES(nr)	(ALIGN_UP((nr), 64u) / 8)

static bool overlaps_range(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool vector_masked(const struct pci_msix *m, unsigned v)
{
	return !m->enabled || m->fmask || (m->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static uint64_t vector_addr(const struct pci_msix *m, unsigned v)
{
	return (uint64_t)m->table[v].addr_hi << 32 | m->table[v].addr_lo;
}

/* Tell the device (and KVM's routing) the current state of vector v. */
static void notify(struct pci_msix *m, unsigned v)
{
	bool masked = vector_masked(m, v);
	uint64_t addr = vector_addr(m, v);
	uint32_t data = m->table[v].data;
	bool was_pending = !masked && (m->pba[v / 64] & (1ull << (v % 64)));

	if (m->vm && !masked) {
		if (m->gsi[v] < 0)
			m->gsi[v] = vm_msi_route_add(m->vm, addr, data);
		else
			vm_msi_route_update(m->vm, m->gsi[v], addr, data);
	}
	if (was_pending)
		m->pba[v / 64] &= ~(1ull << (v % 64));
	if (m->ops && m->ops->update)
		m->ops->update(m->opaque, v, addr, data, masked);
	if (was_pending && m->ops && m->ops->fire)
		m->ops->fire(m->opaque, v);
}

int pci_msix_init(struct pci_msix *m, struct pci_dev *pd, struct vm *vm, unsigned nr,
		  int bar, uint32_t table_off, uint32_t pba_off,
		  const struct pci_msix_ops *ops, void *opaque)
{
	pthread_mutexattr_t attr;
	int cap;

	if (!nr || nr > PCI_MSIX_MAX_VECTORS || bar < 0 || bar >= PCI_NUM_BARS ||
	    (table_off | pba_off) & 7 ||
	    overlaps_range(table_off, nr * PCI_MSIX_ENTRY_SIZE, pba_off, PBA_BYTES(nr)))
		return -EINVAL;
	cap = pci_dev_add_cap(pd, PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF);
	if (cap < 0)
		return cap;
	memset(m, 0, sizeof(*m));
	m->pd = pd;
	m->vm = vm;
	m->nr = nr;
	m->cap = (uint8_t)cap;
	m->bar = bar;
	m->table_off = table_off;
	m->pba_off = pba_off;
	m->ops = ops;
	m->opaque = opaque;
	m->table = xzalloc(nr * sizeof(*m->table));
	m->pba = xzalloc(PBA_BYTES(nr));
	m->gsi = xzalloc(nr * sizeof(*m->gsi));
	for (unsigned v = 0; v < nr; v++) {
		m->table[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
		m->gsi[v] = -1;
	}
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&m->lock, &attr);
	pthread_mutexattr_destroy(&attr);

	pci_cfg_set(pd, cap + PCI_MSIX_FLAGS, nr - 1, 2);
	pci_cfg_set(pd, cap + PCI_MSIX_TABLE, table_off | bar, 4);
	pci_cfg_set(pd, cap + PCI_MSIX_PBA, pba_off | bar, 4);
	pci_dev_set_wmask(pd, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	pd->msix = m;
	return 0;
}

void pci_msix_destroy(struct pci_msix *m)
{
	if (!m->table)
		return;
	for (unsigned v = 0; m->vm && v < m->nr; v++)
		if (m->gsi[v] >= 0)
			vm_msi_route_del(m->vm, m->gsi[v]);
	if (m->pd && m->pd->msix == m)
		m->pd->msix = NULL;
	free(m->table);
	free(m->pba);
	free(m->gsi);
	m->table = NULL;
	pthread_mutex_destroy(&m->lock);
}

bool pci_msix_mmio_read(struct pci_msix *m, uint64_t off, void *data, unsigned len)
{
	uint64_t v = 0;

	if (off >= m->table_off && off - m->table_off < m->nr * PCI_MSIX_ENTRY_SIZE) {
		uint64_t o = off - m->table_off;

		if ((len == 4 || len == 8) && !(o % len)) {
			pthread_mutex_lock(&m->lock);
			memcpy(&v, (uint8_t *)m->table + o, len);
			pthread_mutex_unlock(&m->lock);
		}
	} else if (off >= m->pba_off && off - m->pba_off < PBA_BYTES(m->nr)) {
		uint64_t o = off - m->pba_off;

		if ((len == 4 || len == 8) && !(o % len) && o + len <= PBA_BYTES(m->nr)) {
			pthread_mutex_lock(&m->lock);
			memcpy(&v, (uint8_t *)m->pba + o, len);
			pthread_mutex_unlock(&m->lock);
		}
	} else {
		return false;
	}
	memcpy(data, &v, len > 8 ? 8 : len);
	return true;
}

bool pci_msix_mmio_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len)
{
	uint64_t o;
	unsigned v;

	if (off >= m->pba_off && off - m->pba_off < PBA_BYTES(m->nr))
		return true;			/* the PBA is read-only */
	if (off < m->table_off || off - m->table_off >= m->nr * PCI_MSIX_ENTRY_SIZE)
		return false;
	o = off - m->table_off;
	if ((len != 4 && len != 8) || o % len)
		return true;
	v = o / PCI_MSIX_ENTRY_SIZE;
	pthread_mutex_lock(&m->lock);
	{
		struct pci_msix_entry before = m->table[v];
		uint32_t *words = (uint32_t *)&m->table[v];
		unsigned w = (o % PCI_MSIX_ENTRY_SIZE) / 4;

		memcpy(&words[w], data, len);
		m->table[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT;	/* the rest is reserved */
		if (memcmp(&before, &m->table[v], sizeof(before)))
			notify(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	return true;
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	if (!pci_msix_mmio_read(opaque, off, data, len))
		memset(data, 0, len);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	pci_msix_mmio_write(opaque, off, data, len);
}

const struct io_ops pci_msix_bar_ops = { .read = bar_read, .write = bar_write };

bool pci_msix_enabled(struct pci_msix *m)
{
	bool en;

	pthread_mutex_lock(&m->lock);
	en = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return en;
}

bool pci_msix_masked(struct pci_msix *m, unsigned vector)
{
	bool masked = true;

	pthread_mutex_lock(&m->lock);
	if (vector < m->nr)
		masked = vector_masked(m, vector);
	pthread_mutex_unlock(&m->lock);
	return masked;
}

bool pci_msix_raise(struct pci_msix *m, unsigned vector)
{
	bool now = false;

	if (vector >= m->nr)
		return false;
	pthread_mutex_lock(&m->lock);
	if (vector_masked(m, vector))
		m->pba[vector / 64] |= 1ull << (vector % 64);
	else
		now = true;
	pthread_mutex_unlock(&m->lock);
	return now;
}

bool pci_msix_message(struct pci_msix *m, unsigned vector, uint64_t *addr, uint32_t *data)
{
	if (vector >= m->nr)
		return false;
	pthread_mutex_lock(&m->lock);
	*addr = vector_addr(m, vector);
	*data = m->table[vector].data;
	pthread_mutex_unlock(&m->lock);
	return true;
}

int pci_msix_gsi(struct pci_msix *m, unsigned vector)
{
	int gsi;

	if (vector >= m->nr)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	gsi = m->gsi[vector];
	pthread_mutex_unlock(&m->lock);
	return gsi >= 0 ? gsi : -ENOENT;
}

/* Re-read Message Control; every vector hears about an enable/mask change. */
static void sync_control(struct pci_msix *m, bool force)
{
	uint16_t ctl = pci_cfg_get(m->pd, m->cap + PCI_MSIX_FLAGS, 2);
	bool en = ctl & PCI_MSIX_FLAGS_ENABLE, fm = ctl & PCI_MSIX_FLAGS_MASKALL;

	if (!force && en == m->enabled && fm == m->fmask)
		return;
	m->enabled = en;
	m->fmask = fm;
	for (unsigned v = 0; v < m->nr; v++)
		notify(m, v);
}

void pci_msix_cfg_written(struct pci_msix *m)
{
	pthread_mutex_lock(&m->lock);
	sync_control(m, false);
	pthread_mutex_unlock(&m->lock);
}

void pci_msix_reset(struct pci_msix *m)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned v = 0; v < m->nr; v++)
		m->table[v] = (struct pci_msix_entry){ .ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT };
	memset(m->pba, 0, PBA_BYTES(m->nr));
	sync_control(m, true);
	pthread_mutex_unlock(&m->lock);
}

void pci_msix_save(struct pci_msix *m, struct state_buf *sb)
{
	pthread_mutex_lock(&m->lock);
	state_put_u32(sb, m->nr);
	for (unsigned v = 0; v < m->nr; v++) {
		state_put_u32(sb, m->table[v].addr_lo);
		state_put_u32(sb, m->table[v].addr_hi);
		state_put_u32(sb, m->table[v].data);
		state_put_u32(sb, m->table[v].ctrl);
	}
	for (unsigned i = 0; i < PBA_BYTES(m->nr) / 8; i++)
		state_put_u64(sb, m->pba[i]);
	pthread_mutex_unlock(&m->lock);
}

int pci_msix_load(struct pci_msix *m, struct state_buf *sb)
{
	uint32_t nr = state_get_u32(sb);

	if (!state_ok(sb) || nr != m->nr) {
		pr_err("pci %s: MSI-X state for %u vectors, device has %u", m->pd->name, nr, m->nr);
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned v = 0; v < m->nr; v++) {
		m->table[v].addr_lo = state_get_u32(sb);
		m->table[v].addr_hi = state_get_u32(sb);
		m->table[v].data = state_get_u32(sb);
		m->table[v].ctrl = state_get_u32(sb) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	for (unsigned i = 0; i < PBA_BYTES(m->nr) / 8; i++)
		m->pba[i] = state_get_u64(sb);
	if (state_ok(sb))
		sync_control(m, true);	/* routes and device see the loaded vectors */
	pthread_mutex_unlock(&m->lock);
	return state_ok(sb) ? 0 : -EINVAL;
}
