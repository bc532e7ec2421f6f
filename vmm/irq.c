// SPDX-License-Identifier: MIT
/*
 * GSI routing.  KVM_SET_GSI_ROUTING replaces the whole table, so hdvm keeps the
 * table here: the default routes for the in-kernel PIC and IOAPIC pins
 * (GSI 0-23) followed by MSI routes that passthrough and virtio devices add
 * for their MSI-X vectors (wired to irqfds).  Also the one place that issues
 * KVM_IRQFD, KVM_IOEVENTFD and KVM_IRQ_LINE.
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

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

static irq_ioctl_fn *irq_ioctl = sys_ioctl;

void irq_set_ioctl(irq_ioctl_fn *fn)
{
	irq_ioctl = fn ? fn : sys_ioctl;
}

static int irq_commit(struct vm *vm)
{
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->irq->table) < 0) {
		int err = -errno;

		pr_err("KVM_SET_GSI_ROUTING: %s", strerror(-err));
		return err;
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
	int gsi, ret;

	pthread_mutex_lock(&r->lock);
	if (r->table->nr >= MAX_ROUTES) {
		pthread_mutex_unlock(&r->lock);
		pr_err("out of interrupt routes (%d)", MAX_ROUTES);
		return -ENOSPC;
	}
	gsi = r->next_gsi++;
	e = &r->table->entries[r->table->nr++];
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	ret = irq_commit(vm);
	if (ret < 0) {
		r->table->nr--;
		gsi = ret;
	}
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

int vm_msi_route_update(struct vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct irq_routing *r = vm->irq;
	struct kvm_irq_routing_entry *e;
	int ret = -ENOENT;

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

/* ---- irqfd, ioeventfd, IRQ lines ---- */

int vm_irqfd(struct vm *vm, int fd, int gsi, bool assign)
{
	struct kvm_irqfd req = {
		.fd = (uint32_t)fd,
		.gsi = (uint32_t)gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (fd < 0 || gsi < 0)
		return -EINVAL;
	if (irq_ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0)
		return -errno;
	return 0;
}

int vm_ioeventfd(struct vm *vm, const struct vm_ioeventfd *io, bool assign)
{
	struct kvm_ioeventfd req = {
		.addr = io->addr,
		.len = io->len,
		.fd = io->fd,
		.datamatch = io->datamatch ? io->value : 0,
		.flags = (io->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (io->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (irq_ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) < 0)
		return -errno;
	return 0;
}

int vm_irq_line(struct vm *vm, uint32_t irq, int level)
{
	struct kvm_irq_level req = { .irq = irq, .level = level };

	if (irq_ioctl(vm->vm_fd, KVM_IRQ_LINE, &req) < 0)
		return -errno;
	return 0;
}
