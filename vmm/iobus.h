/* SPDX-License-Identifier: MIT */
/*
 * Port I/O and MMIO dispatch.  Ranges are kept sorted and looked up by binary
 * search from the vCPU threads; registration may happen while vCPUs run (PCI
 * BAR moves) so the table is behind a read-write lock.
 */
#ifndef HDVM_IOBUS_H
#define HDVM_IOBUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct io_ops {
	/* offset is relative to the registered base; len is 1, 2, 4 or 8 */
	void (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

struct io_range {
	uint64_t base, len;
	const struct io_ops *ops;
	void *opaque;
};

struct iobus {
	const char *name;
	pthread_rwlock_t lock;
	struct io_range *ranges;
	unsigned nr, cap;
};

void iobus_init(struct iobus *bus, const char *name);
void iobus_destroy(struct iobus *bus);
/* -1 (EEXIST) if [base, base+len) overlaps a registered range. */
int iobus_register(struct iobus *bus, uint64_t base, uint64_t len,
		   const struct io_ops *ops, void *opaque);
int iobus_unregister(struct iobus *bus, uint64_t base);
/* false if nothing is mapped there (reads then return all ones). */
bool iobus_access(struct iobus *bus, uint64_t addr, void *data, unsigned len, bool is_write);

#endif
