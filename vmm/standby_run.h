/* SPDX-License-Identifier: MIT */
/* `hdvm run --standby` (vmm/standby_run.c) over the receiver in vmm/standby.h. */
#ifndef HDVM_STANDBY_RUN_H
#define HDVM_STANDBY_RUN_H

#include <stdbool.h>

struct json_object;
struct vm;
struct vm_config;

/* cmd_run: accept the primary, build the VM from its manifest, run it as a standby. */
int standby_run_cmd(struct vm_config *cfg);
/* run.c: the receiver on a thread (activation starts the vCPUs) and its end. */
int standby_start(struct vm *vm);
void standby_join(void);
/* `hdvm status`: a standby's fields (role, epoch, ...); false if this VM is none */
bool standby_status(struct json_object *r);
/* control "takeover": a standby etcd refused tries again, or restarts from stale */
void standby_takeover_cmd(void *opaque, struct json_object *req, struct json_object *r);
/* after a takeover: from which checkpoint, and why */
void standby_took_over(struct json_object *r);

#endif
