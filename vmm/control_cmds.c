// SPDX-License-Identifier: MIT
/* The VM's commands on the control socket (the parser is control_parse.c). */
#include "vmm/control.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/checkpoint_job.h"
#include "vmm/standby_run.h"
#include "vmm/migrate_job.h"
#include "vmm/postcopy_vm.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"
#include "vmm/vm.h"

/* ---- the VM's commands ---- */

static json_object *us_or_null(uint64_t t, uint64_t start)
{
	return t ? json_object_new_int64((int64_t)(t - start) / 1000) : NULL;
}

static void vm_status(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	const struct vm_metrics *m = &vm->metrics;

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "name", json_object_new_string(vm->cfg.name));
	json_object_object_add(r, "pid", json_object_new_int(getpid()));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
	json_object_object_add(r, "vcpus", json_object_new_int(vm->ncpus));
	json_object_object_add(r, "memory_mib", json_object_new_int64(vm->mem.size >> 20));
	json_object_object_add(r, "kernel", json_object_new_string(vm->cfg.kernel));
	json_object_object_add(r, "cmdline", json_object_new_string(vm->cfg.cmdline ? vm->cfg.cmdline : ""));
	json_object_object_add(r, "uptime_ms", json_object_new_int64((now_ns() - m->t_start) / 1000000));
	json_object_object_add(r, "start_to_first_run_us", us_or_null(m->t_first_run, m->t_start));
	json_object_object_add(r, "start_to_marker_us", us_or_null(m->t_marker, m->t_start));
	checkpoint_status(r);	/* role: primary, standby or unprotected, and the rest */
}

/* pause/resume: the new state, or why the VM could not change */
static void change_state(struct vm *vm, int (*change)(struct vm *, char *, size_t),
			 json_object *r)
{
	char why[256];

	if (migrate_job_running())
		return control_reply_error(r, "a migration is running (hdvm migrate NAME --cancel)");
	if (checkpoint_job_running())
		return control_reply_error(r, "the VM is protected (hdvm checkpoint NAME --stop)");
	if (postcopy_vm_busy(vm))
		return control_reply_error(r, POSTCOPY_BUSY_MSG);
	if (change(vm, why, sizeof(why)) < 0)
		return control_reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
}

static void vm_pause_cmd(void *opaque, json_object *req, json_object *r)
{
	change_state(opaque, vm_pause, r);
}

static void vm_resume_cmd(void *opaque, json_object *req, json_object *r)
{
	char why[256];

	if (checkpoint_job_may_resume(why, sizeof(why)))
		return control_reply_error(r, "%s", why);
	change_state(opaque, vm_resume, r);
}

static void vm_stop_cmd(void *opaque, json_object *req, json_object *r)
{
	vm_request_shutdown(opaque, 0, "stopped by request on the control socket");
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string("shutdown"));
}

/* {"cmd":"snapshot","path":"/abs/FILE","stop":false}: vmm/snapshot.c */
static void vm_snapshot_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	struct snapshot_result res;
	json_object *path, *stop;
	const char *p;
	char why[256];

	if (migrate_job_running() || checkpoint_job_running())
		return control_reply_error(r, "snapshot: a migration or checkpointing is running");
	if (postcopy_vm_busy(vm))
		return control_reply_error(r, "snapshot: " POSTCOPY_BUSY_MSG);
	if (!json_object_object_get_ex(req, "path", &path) ||
	    !json_object_is_type(path, json_type_string))
		return control_reply_error(r, "snapshot: expected {\"cmd\":\"snapshot\",\"path\":\"FILE\"}");
	p = json_object_get_string(path);
	if (p[0] != '/')
		return control_reply_error(r, "snapshot: the path must be absolute ('%.200s')", p);
	if (json_object_object_get_ex(req, "stop", &stop) &&
	    !json_object_is_type(stop, json_type_boolean))
		return control_reply_error(r, "snapshot: 'stop' must be true or false");
	if (vm_snapshot(vm, p, stop && json_object_get_boolean(stop), &res, why, sizeof(why)) < 0)
		return control_reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "path", json_object_new_string(p));
	json_object_object_add(r, "bytes", json_object_new_int64((int64_t)res.bytes));
	json_object_object_add(r, "ram_pages", json_object_new_int64((int64_t)res.ram_pages));
	json_object_object_add(r, "paused_ms", json_object_new_int64((int64_t)res.paused_ms));
	json_object_object_add(r, "state", json_object_new_string(
		atomic_load(&vm->shutdown) ? "shutdown" : vm_state_name(vm->state)));
}

const struct control_cmd vm_control_cmds[] = {
	{ "status", vm_status },
	{ "pause", vm_pause_cmd },
	{ "resume", vm_resume_cmd },
	{ "stop", vm_stop_cmd },
	{ "snapshot", vm_snapshot_cmd },
	{ "migrate", vm_migrate_cmd },
	{ "migrate-status", vm_migrate_status_cmd },
	{ "checkpoint", vm_checkpoint_cmd },
	{ "takeover", standby_takeover_cmd },
};
const size_t vm_nr_control_cmds = ARRAY_SIZE(vm_control_cmds);
