/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one memfd, mapped once in hdvm, registered with KVM as up to two
 * slots around the MMIO hole below 4 GiB.  The memfd can be passed to other
 * processes (hdnic DMA, migration) so it is the only copy of guest memory.
 */
#ifndef HDVM_MEMORY_H
#define HDVM_MEMORY_H

#include <stdint.h>

struct guest_mem {
	int memfd;
	uint8_t *host;		/* mapping of the whole memfd */
	uint64_t size;		/* total RAM bytes */
	uint64_t low_size;	/* RAM at GPA [0, low_size) */
	uint64_t high_size;	/* RAM at GPA [4 GiB, 4 GiB + high_size), memfd offset low_size */
};

#define GUEST_MEM_MIN	(2ULL << 20)	/* below this nothing fits */

/* Create the memfd and mapping for `size` bytes (multiple of 4 KiB). */
int guest_mem_init(struct guest_mem *m, uint64_t size);
void guest_mem_destroy(struct guest_mem *m);
/* Register the slots with KVM (slot ids 0 and 1). */
int guest_mem_register(struct guest_mem *m, int vm_fd);

/* Host pointer for [gpa, gpa+len) if it lies entirely inside one RAM range, else NULL. */
void *gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* memfd offset of a GPA inside RAM, or -1. */
int64_t gpa_to_offset(const struct guest_mem *m, uint64_t gpa);

#endif
