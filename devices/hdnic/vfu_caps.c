// SPDX-License-Identifier: MIT
/* VERSION capabilities: the JSON object both sides exchange (json-c). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

static int get_uint(struct json_object *caps, const char *key, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(caps, key, &v))
		return 0;	/* absent: keep the default */
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}

int vfu_caps_parse(struct vfu_conn *c, const char *json, uint32_t len)
{
	struct json_tokener *tok;
	struct json_object *root, *caps, *v;
	uint64_t max_fds = 1, max_xfer = VFIO_USER_MAX_DATA_XFER, pgsizes = 4096;
	int err = 0;

	if (!len)
		return 0;	/* no capabilities: all defaults */
	/* The caps string must be NUL-terminated inside the message. */
	if (json[len - 1] != '\0')
		return -EINVAL;
	if (strlen(json) == 0)
		return 0;
	tok = json_tokener_new_ex(16);
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, json, (int)strlen(json));
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != strlen(json)) {
		err = -EINVAL;
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		err = -EINVAL;
		goto out;
	}
	if (!json_object_object_get_ex(root, "capabilities", &caps))
		goto out;	/* no capabilities: all defaults */
	if (!json_object_is_type(caps, json_type_object)) {
		err = -EINVAL;
		goto out;
	}
	err = get_uint(caps, "max_msg_fds", 0, 1024, &max_fds);
	if (!err)
		err = get_uint(caps, "max_data_xfer_size", 4, UINT32_MAX, &max_xfer);
	if (!err)
		err = get_uint(caps, "pgsizes", 0, UINT64_MAX >> 1, &pgsizes);
	if (err)
		goto out;
	/* We map with 4 KiB granularity; a client that cannot is incompatible. */
	if (!(pgsizes & 4096)) {
		err = -ENOTSUP;
		goto out;
	}
	if (json_object_object_get_ex(caps, "write_multiple", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			err = -EINVAL;
			goto out;
		}
		c->write_multiple = json_object_get_boolean(v);
	}
	c->peer_max_fds = (uint32_t)MIN(max_fds, (uint64_t)VFIO_USER_MAX_MSG_FDS);
	c->offer_max_fds = json_object_object_get_ex(caps, "max_msg_fds", &v) ?
			   c->peer_max_fds : VFIO_USER_MAX_MSG_FDS;
	c->peer_max_xfer = (uint32_t)MIN(max_xfer, (uint64_t)VFIO_USER_MAX_DATA_XFER);
out:
	if (root)
		json_object_put(root);
	json_tokener_free(tok);
	return err;
}

int vfu_caps_reply(struct vfu_conn *c, char *out, uint32_t cap)
{
	struct json_object *root = json_object_new_object();
	struct json_object *caps = json_object_new_object();
	const char *s;
	int n;

	/* Never more than the client offered: replies must be a subset. */
	json_object_object_add(caps, "max_msg_fds",
			       json_object_new_int(MIN(HDNIC_VFU_MAX_FDS, c->offer_max_fds)));
	json_object_object_add(caps, "max_data_xfer_size",
			       json_object_new_int64(MIN(HDNIC_VFU_MAX_XFER, c->peer_max_xfer)));
	json_object_object_add(caps, "max_dma_maps", json_object_new_int(HDNIC_VFU_MAX_DMA_MAPS));
	json_object_object_add(caps, "pgsizes", json_object_new_int64(HDNIC_VFU_PGSIZES));
	if (c->write_multiple)
		json_object_object_add(caps, "write_multiple", json_object_new_boolean(1));
	json_object_object_add(root, "capabilities", caps);
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	n = snprintf(out, cap, "%s", s);
	json_object_put(root);
	return n < 0 || (uint32_t)n >= cap ? -ENOSPC : n + 1;	/* with the NUL */
}
