/* SPDX-License-Identifier: MIT */
/*
 * Interrupts and doorbells in one place (vmm/irq.c): the GSI routing table,
 * KVM_IRQFD, KVM_IOEVENTFD and KVM_IRQ_LINE.  Devices never issue these
 * ioctls themselves; every helper returns 0 or -errno.
 */
#ifndef HDVM_IRQ_H
#define HDVM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

/* GSI routing: the in-kernel PIC/IOAPIC pins plus MSI routes. */
int irq_routing_init(struct vm *vm);
void irq_routing_destroy(struct vm *vm);
/* Allocate a GSI and route it to an MSI; returns the GSI or -errno. */
int vm_msi_route_add(struct vm *vm, uint64_t addr, uint32_t data);
int vm_msi_route_update(struct vm *vm, int gsi, uint64_t addr, uint32_t data);
void vm_msi_route_del(struct vm *vm, int gsi);

/* Signalling eventfd fd raises GSI gsi (assign), or no longer does. */
int vm_irqfd(struct vm *vm, int fd, int gsi, bool assign);

/* A guest write to addr (port I/O if pio) signals fd instead of exiting. */
struct vm_ioeventfd {
	uint64_t addr;
	uint32_t len;		/* 0 = any width */
	int fd;
	bool pio;
	bool datamatch;		/* only writes of value signal */
	uint64_t value;
};
int vm_ioeventfd(struct vm *vm, const struct vm_ioeventfd *io, bool assign);

/* Drive a PIC/IOAPIC input (legacy devices). */
int vm_irq_line(struct vm *vm, uint32_t irq, int level);

/*
 * The ioctl the helpers issue (KVM_IRQFD, KVM_IOEVENTFD, KVM_IRQ_LINE on the
 * VM fd), so unit tests can watch and fail them without /dev/kvm.
 */
typedef int irq_ioctl_fn(int vm_fd, unsigned long req, void *arg);
void irq_set_ioctl(irq_ioctl_fn *fn);	/* NULL restores ioctl(2) */

#endif
