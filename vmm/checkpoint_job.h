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
#include <stddef.h>

struct json_object;
struct vm;

void vm_checkpoint_cmd(void *opaque, struct json_object *req, struct json_object *r);
/* role, epoch, committed epoch, pause p50/p99, bytes, lag ... into a status reply */
void checkpoint_status(struct json_object *r);
/* Protection is on: pause, resume, snapshot and migrate wait for it to stop. */
bool checkpoint_job_running(void);
/* End protection (the standby told) and join the thread: the VM process ends. */
void checkpoint_job_stop(void);
/* Unit tests: stand-ins for vm_pause/vm_resume (the fake KVM runs no vCPU). */
void checkpoint_job_test_pause(int (*pause)(struct vm *, char *, size_t),
			       int (*resume)(struct vm *, char *, size_t));

#endif
