// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for hdvm's control-socket request parser
 * (vmm/control_parse.c): any line in, exactly one line out, and that line
 * is a JSON object with "ok" (and "error" when it is false).
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/control.h"

static void stub_ok(void *opaque, json_object *req, json_object *r)
{
	json_object_object_add(r, "ok", json_object_new_boolean(1));
}

static void stub_refuse(void *opaque, json_object *req, json_object *r)
{
	control_reply_error(r, "refused %d", 7);
}

static const struct control_cmd cmds[] = {
	{ "status", stub_ok }, { "pause", stub_refuse }, { "stop", stub_ok },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	json_object *r, *ok, *err;
	char *out;

	memcpy(line, data, size);
	line[size] = '\0';	/* the transport cuts lines at '\n' and NUL-terminates */
	out = control_handle_line(cmds, 3, NULL, line);
	if (strchr(out, '\n'))
		abort();	/* one request, one reply line */
	r = json_tokener_parse(out);
	if (!r || !json_object_is_type(r, json_type_object) ||
	    !json_object_object_get_ex(r, "ok", &ok))
		abort();
	if (!json_object_get_boolean(ok) && !json_object_object_get_ex(r, "error", &err))
		abort();
	json_object_put(r);
	free(out);
	free(line);
	return 0;
}
