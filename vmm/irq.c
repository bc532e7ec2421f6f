// SPDX-License-Identifier: MIT
/*
 * GSI routing.  KVM_SET_GSI_ROUTING replaces the whole table, so hdvm keeps the
 * table here: the default routes for the in-kernel PIC and IOAPIC pins
 * (GSI 0-23) followed by MSI routes that passthrough and virtio devices add
 * for their MSI-X vectors (wired to irqfds).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/util.h"
#include "vmm/vm.h"

#define IOAPIC_PINS	24
#define MAX_ROUTES	4096

struct irq_routing {
	pthread_mutex_t lock;
	struct kvm_irq_routing *table;	/* capacity MAX_ROUTES */
	uint32_t next_gsi;
};

static int irq_commit(struct vm *vm)
{
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->irq->table) < 0) {
		pr_err("KVM_SET_GSI_ROUTING: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void add_entry(struct kvm_irq_routing *t, uint32_t gsi, uint32_t type,
		      uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry *e = &t->entries[t->nr++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = type;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

int irq_routing_init(struct vm *vm)
{
	struct irq_routing *r = xzalloc(sizeof(*r));

	r->table = xzalloc(sizeof(*r->table) + MAX_ROUTES * sizeof(r->table->entries[0]));
	pthread_mutex_init(&r->lock, NULL);
	for (uint32_t i = 0; i < 16; i++) {
		/* GSI 2 is the PIC cascade: the PIT lands on IOAPIC pin 2 only */
		if (i != 2)
			add_entry(r->table, i, KVM_IRQ_ROUTING_IRQCHIP,
				  i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
	}
	for (uint32_t i = 0; i < IOAPIC_PINS; i++)
		add_entry(r->table, i, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC, i);
	r->next_gsi = IOAPIC_PINS;
	vm->irq = r;
	/*
	 * KVM_CREATE_IRQCHIP installed the same default table; committing it
	 * again would cost a kernel grace period (~1 ms here) for nothing.
	 */
	return 0;
}

void irq_routing_destroy(struct vm *vm)
{
	if (!vm->irq)
		return;
	free(vm->irq->table);
	free(vm->irq);
	vm->irq = NULL;
}

static struct kvm_irq_routing_entry *find_msi(struct irq_routing *r, int gsi)
{
	for (uint32_t i = 0; i < r->table->nr; i++)
		if (r->table->entries[i].gsi == (uint32_t)gsi &&
		    r->table->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &r->table->entries[i];
	return NULL;
}

int vm_msi_route_add(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct irq_routing *r = vm->irq;
	struct kvm_irq_routing_entry *e;
	int gsi;

	pthread_mutex_lock(&r->lock);
	if (r->table->nr >= MAX_ROUTES) {
		pthread_mutex_unlock(&r->lock);
		pr_err("out of interrupt routes (%d)", MAX_ROUTES);
		return -1;
	}
	gsi = r->next_gsi++;
	e = &r->table->entries[r->table->nr++];
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	if (irq_commit(vm) < 0) {
		r->table->nr--;
		gsi = -1;
	}
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

int vm_msi_route_update(struct vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct irq_routing *r = vm->irq;
	struct kvm_irq_routing_entry *e;
	int ret = -1;

	pthread_mutex_lock(&r->lock);
	e = find_msi(r, gsi);
	if (e) {
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = (uint32_t)(addr >> 32);
		e->u.msi.data = data;
		ret = irq_commit(vm);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void vm_msi_route_del(struct vm *vm, int gsi)
{
	struct irq_routing *r = vm->irq;
	struct kvm_irq_routing_entry *e;

	pthread_mutex_lock(&r->lock);
	e = find_msi(r, gsi);
	if (e) {
		*e = r->table->entries[--r->table->nr];
		irq_commit(vm);
	}
	pthread_mutex_unlock(&r->lock);
}
