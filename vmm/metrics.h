/* SPDX-License-Identifier: MIT */
#ifndef HDVM_METRICS_H
#define HDVM_METRICS_H

#include <limits.h>
#include <stdint.h>

struct vm;

/*
 * --metrics FILE is opened at start (a temporary file beside it, so a path
 * that cannot be written is refused before the VM runs) and renamed over
 * FILE only once the whole JSON is written: a full disk never leaves a
 * truncated or empty file, and an earlier good file survives.
 */
struct metrics_file {
	int fd;
	char tmp[PATH_MAX];
	char path[PATH_MAX];
};

struct mem_usage {
	uint64_t peak_rss_kib;		/* VmHWM */
	uint64_t guest_resident_kib;	/* guest RAM pages present (mincore) */
};

/* Sample before guest memory is unmapped. */
void metrics_sample_memory(struct vm *vm, struct mem_usage *mu);
/* 0 or -errno with a message naming --metrics. */
int metrics_open(struct metrics_file *mf, const char *path);
/* Write text to the temporary file and rename it into place; -errno (reported). */
int metrics_commit(struct metrics_file *mf, const char *text);
void metrics_abandon(struct metrics_file *mf);	/* remove the temporary file */
/* Write the --metrics JSON through mf; -errno with a message on failure. */
int metrics_write(struct metrics_file *mf, struct vm *vm, const struct mem_usage *mu);

#endif
