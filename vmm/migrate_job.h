/* SPDX-License-Identifier: MIT */
/*
 * The source's migration as a job of the VM process: the control socket's
 * "migrate" starts it on a thread of its own (the main loop keeps serving
 * status), "migrate-status" reports its progress and result, "migrate" with
 * "cancel" stops it.  On success the VM process exits 0; on failure the VM
 * runs on and the job says why.
 */
#ifndef HDVM_MIGRATE_JOB_H
#define HDVM_MIGRATE_JOB_H

#include <stdbool.h>

struct json_object;
struct vm;

void vm_migrate_cmd(void *opaque, struct json_object *req, struct json_object *r);
void vm_migrate_status_cmd(void *opaque, struct json_object *req, struct json_object *r);
/* A migration thread is at work: pause, resume and snapshot wait for it. */
bool migrate_job_running(void);
/* Cancel and join the thread (the VM process ends). */
void migrate_job_stop(void);

#endif
