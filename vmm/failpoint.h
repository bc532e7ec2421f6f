/* SPDX-License-Identifier: MIT */
/*
 * Built-in fail points for fault-injection tests of checkpointing and
 * output commit.  A program names its points in a table and reads one
 * environment variable at start (hdvm: HDVM_FAILPOINT, hdnic:
 * HDNIC_FAILPOINT) holding NAME:EPOCH[,NAME:EPOCH...]; reaching an armed
 * point in that epoch makes the process SIGKILL itself there, as a crash
 * would.  Off unless set; an unset variable costs one test per point.
 */
#ifndef HDVM_FAILPOINT_H
#define HDVM_FAILPOINT_H

#include <stdint.h>

#define FAILPOINT_MAX	8	/* armed at once */

/*
 * Arm what the variable var asks for; known is the program's NULL-ended
 * table of point names.  0, or -EINVAL (reported) for a malformed value or
 * an unknown name.
 */
int failpoint_init(const char *var, const char *const *known);
/* Arm name for epoch directly (tests); -ENOSPC when the table is full. */
int failpoint_arm(const char *name, uint64_t epoch);
void failpoint_clear(void);
/* The process is at point name of epoch: die here if armed. */
void failpoint(const char *name, uint64_t epoch);

#endif
