// SPDX-License-Identifier: MIT
/* The control socket's request parser and the VM's commands. */
#include "vmm/control.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/util.h"
#include "vmm/vm.h"

void control_reply_error(json_object *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
}

static void handle_request(const struct control_cmd *cmds, size_t nr_cmds, void *opaque,
			   const char *line, json_object *r)
{
	enum json_tokener_error jerr;
	json_object *req = json_tokener_parse_verbose(line, &jerr);
	json_object *cmd;
	const char *name;

	if (!req)
		return control_reply_error(r, "malformed request: %s",
					   json_tokener_error_desc(jerr));
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		control_reply_error(r, "malformed request: expected {\"cmd\": \"...\"}");
		goto out;
	}
	name = json_object_get_string(cmd);
	for (size_t i = 0; i < nr_cmds; i++) {
		if (!strcmp(name, cmds[i].name)) {
			cmds[i].fn(opaque, req, r);
			goto out;
		}
	}
	control_reply_error(r, "unknown command '%.64s'", name);
out:
	json_object_put(req);
}

char *control_handle_line(const struct control_cmd *cmds, size_t nr_cmds, void *opaque,
			  const char *line)
{
	json_object *r = json_object_new_object();
	char *out;

	handle_request(cmds, nr_cmds, opaque, line, r);
	out = xstrdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(r);
	return out;
}

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
}

static void vm_pause_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	char why[256];

	if (vm_pause(vm, why, sizeof(why)) < 0)
		return control_reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
}

static void vm_resume_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	char why[256];

	if (vm_resume(vm, why, sizeof(why)) < 0)
		return control_reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
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
	json_object *path, *stop;
	const char *p;
	char why[256];

	if (!json_object_object_get_ex(req, "path", &path) ||
	    !json_object_is_type(path, json_type_string))
		return control_reply_error(r, "snapshot: expected {\"cmd\":\"snapshot\",\"path\":\"FILE\"}");
	p = json_object_get_string(path);
	if (p[0] != '/')
		return control_reply_error(r, "snapshot: the path must be absolute ('%.200s')", p);
	if (json_object_object_get_ex(req, "stop", &stop) &&
	    !json_object_is_type(stop, json_type_boolean))
		return control_reply_error(r, "snapshot: 'stop' must be true or false");
	if (vm_snapshot(vm, p, stop && json_object_get_boolean(stop), why, sizeof(why)) < 0)
		return control_reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "path", json_object_new_string(p));
	json_object_object_add(r, "state", json_object_new_string(
		atomic_load(&vm->shutdown) ? "shutdown" : vm_state_name(vm->state)));
}

const struct control_cmd vm_control_cmds[] = {
	{ "status", vm_status },
	{ "pause", vm_pause_cmd },
	{ "resume", vm_resume_cmd },
	{ "stop", vm_stop_cmd },
	{ "snapshot", vm_snapshot_cmd },
};
const size_t vm_nr_control_cmds = ARRAY_SIZE(vm_control_cmds);
