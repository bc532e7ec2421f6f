// SPDX-License-Identifier: MIT
/*
 * The control socket's request parser: one line of JSON in, one reply line
 * out, the command looked up in the table control_start() was given.  Apart
 * from the socket so tests/fuzz/fuzz_control_request.c can feed it directly.
 */
#include "vmm/control.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/util.h"

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
