/* SPDX-License-Identifier: MIT */
/*
 * `hdvm checkpoint` inside the VM process: the control socket's
 * "checkpoint" command runs the primary's driver (vmm/checkpoint.h) on a
 * thread of its own while the main loop keeps serving; `hdvm status` gets
 * the protection fields from checkpoint_status().
 */
#ifndef HDVM_CHECKPOINT_JOB_H
#define HDVM_CHECKPOINT_JOB_H

#include <stdbool.h>

struct json_object;

void vm_checkpoint_cmd(void *opaque, struct json_object *req, struct json_object *r);
/* role, epoch, committed epoch, pause p50/p99, bytes, lag ... into a status reply */
void checkpoint_status(struct json_object *r);
/* Protection is on: pause, resume, snapshot and migrate wait for it to stop. */
bool checkpoint_job_running(void);
/* End protection (the standby told) and join the thread: the VM process ends. */
void checkpoint_job_stop(void);

#endif
