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
#include <stdint.h>

struct json_object;
struct owner_helper;
struct ownerh_cfg;
struct vm;

#define CKPT_NO_ARBITER "none: connection loss and heartbeats only; split brain is possible " \
	"(a cut link can make both sides serve)"

void vm_checkpoint_cmd(void *opaque, struct json_object *req, struct json_object *r);
/* role, epoch, committed epoch, pause p50/p99, bytes, lag ... into a status reply */
void checkpoint_status(struct json_object *r);
/* Protection is on: pause, resume, snapshot and migrate wait for it to stop. */
bool checkpoint_job_running(void);
/* End protection (the standby told) and join the thread: the VM process ends. */
void checkpoint_job_stop(void);
/*
 * A standby that took over with the owner key (its helper h, which the job
 * reaps from now on) at checkpoint epoch: the key is watched while the VM
 * runs unprotected (a fence pauses it) and `hdvm checkpoint` protects it with
 * the key it holds; its epochs continue above epoch.
 */
void checkpoint_job_adopt_owner(struct vm *vm, struct owner_helper *h,
				const struct ownerh_cfg *c, uint64_t epoch);
/* etcd fenced this VM: it must not run (why says); resume and --stop refuse. */
bool checkpoint_job_fenced(char *why, size_t len);
/*
 * May `hdvm resume` run this VM?  0, or -EPERM (why says): fenced, or it gave
 * its owner key up when its standby was lost and cannot take it back (the
 * standby took over).  Taking it back marks the standby's checkpoint stale
 * first: the VM then runs on unprotected, and the standby never activates.
 */
int checkpoint_job_may_resume(char *why, size_t len);
/* Unit tests: stand-ins for vm_pause/vm_resume (the fake KVM runs no vCPU). */
void checkpoint_job_test_pause(int (*pause)(struct vm *, char *, size_t),
			       int (*resume)(struct vm *, char *, size_t));

#endif
