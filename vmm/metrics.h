/* SPDX-License-Identifier: MIT */
#ifndef HDVM_METRICS_H
#define HDVM_METRICS_H

#include <stdint.h>

struct vm;

struct mem_usage {
	uint64_t peak_rss_kib;		/* VmHWM */
	uint64_t guest_resident_kib;	/* guest RAM pages present (mincore) */
};

/* Sample before guest memory is unmapped. */
void metrics_sample_memory(struct vm *vm, struct mem_usage *mu);
/* Write the --metrics JSON; -1 with a message if the file cannot be written. */
int metrics_write(const char *path, struct vm *vm, const struct mem_usage *mu);

#endif
