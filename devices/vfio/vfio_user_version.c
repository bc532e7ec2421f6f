// SPDX-License-Identifier: MIT
/*
 * vfio-user VERSION negotiation, client side.  We offer our limits as JSON
 * capabilities; the reply must keep our major, not raise our minor, and name
 * only capabilities we offered, with sane values.  Absent ones take the
 * protocol defaults.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_user_conn.h"
#include "devices/vfio/vfio_user_version.h"
#include "vmm/util.h"

#define VERSION_REPLY_MAX	4096	/* JSON text we accept from a server */

/* What hdvm offers. */
const struct vfio_user_caps vfio_user_client_caps = {
	.max_msg_fds = VFIO_USER_MAX_MSG_FDS,
	.max_data_xfer_size = VFIO_USER_MAX_DATA_XFER,
	.pgsizes = 4096,
	.max_dma_maps = VFIO_USER_MAX_DMA_MAPS,
};

/* Protocol defaults for capabilities the server leaves out. */
static const struct vfio_user_caps default_caps = {
	.max_msg_fds = 1,
	.max_data_xfer_size = 1u << 20,
	.pgsizes = 4096,
	.max_dma_maps = 65535,
};

char *vfio_user_caps_json(const struct vfio_user_caps *caps)
{
	json_object *root = json_object_new_object(), *c = json_object_new_object();
	char *s;

	json_object_object_add(c, "max_msg_fds", json_object_new_int64(caps->max_msg_fds));
	json_object_object_add(c, "max_data_xfer_size",
			       json_object_new_int64(caps->max_data_xfer_size));
	json_object_object_add(c, "pgsizes", json_object_new_int64((int64_t)caps->pgsizes));
	json_object_object_add(c, "max_dma_maps", json_object_new_int64(caps->max_dma_maps));
	json_object_object_add(root, "capabilities", c);
	s = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return s;
}

static int get_number(const char *who, json_object *v, const char *key, uint64_t min,
		      uint64_t max, uint64_t *out)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int)) {
		pr_err("vfio-user %s: capability %s is not a number", who, key);
		return -EPROTO;
	}
	errno = 0;
	n = json_object_get_int64(v);
	if (errno || n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
		pr_err("vfio-user %s: capability %s = %lld out of range [%llu, %llu]", who, key,
		       (long long)n, (unsigned long long)min, (unsigned long long)max);
		return -EPROTO;
	}
	*out = (uint64_t)n;
	return 0;
}

int vfio_user_caps_parse(const char *who, const char *json, size_t len,
			 const struct vfio_user_caps *offer, struct vfio_user_caps *out)
{
	json_tokener *tok;
	json_object *root, *caps;
	enum json_tokener_error jerr;
	uint64_t v;
	int ret = 0;

	*out = default_caps;
	if (len == 0 || (len == 1 && json[0] == '\0'))
		return 0;		/* no capabilities at all */
	if (json[len - 1] != '\0' || strlen(json) != len - 1) {
		pr_err("vfio-user %s: version data is not one NUL-terminated string", who);
		return -EPROTO;
	}
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, json, (int)len - 1);
	jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len - 1) {
		pr_err("vfio-user %s: malformed version JSON: %s", who,
		       root ? "trailing data" : jerr == json_tokener_continue ?
		       "truncated" : json_tokener_error_desc(jerr));
		json_object_put(root);
		json_tokener_free(tok);
		return -EPROTO;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object)) {
		pr_err("vfio-user %s: version JSON is not an object", who);
		json_object_put(root);
		return -EPROTO;
	}
	if (!json_object_object_get_ex(root, "capabilities", &caps)) {
		json_object_put(root);
		return 0;
	}
	if (!json_object_is_type(caps, json_type_object)) {
		pr_err("vfio-user %s: \"capabilities\" is not an object", who);
		json_object_put(root);
		return -EPROTO;
	}
	json_object_object_foreach(caps, key, val) {
		if (!strcmp(key, "max_msg_fds")) {
			ret = get_number(who, val, key, 0, offer->max_msg_fds, &v);
			out->max_msg_fds = v;
		} else if (!strcmp(key, "max_data_xfer_size")) {
			ret = get_number(who, val, key, 8, UINT32_MAX, &v);
			out->max_data_xfer_size = v;
		} else if (!strcmp(key, "pgsizes")) {
			ret = get_number(who, val, key, 1, UINT64_MAX >> 1, &v);
			if (!ret && (v & ~offer->pgsizes)) {
				pr_err("vfio-user %s: pgsizes %#llx is not a subset of %#llx", who,
				       (unsigned long long)v, (unsigned long long)offer->pgsizes);
				ret = -EPROTO;
			}
			out->pgsizes = v;
		} else if (!strcmp(key, "max_dma_maps")) {
			ret = get_number(who, val, key, 1, UINT32_MAX, &v);
			out->max_dma_maps = v;
		} else {
			pr_err("vfio-user %s: server replied with capability \"%s\" we did not offer",
			       who, key);
			ret = -EPROTO;
		}
		if (ret)
			break;
	}
	json_object_put(root);
	return ret;
}

int vfio_user_negotiate(struct vfio_user_conn *c, const char *who,
			struct vfio_user_caps *caps, uint16_t *minor)
{
	struct vfio_user_version ours = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	struct vfio_user_version theirs;
	char *json = vfio_user_caps_json(&vfio_user_client_caps);
	char *reply = xzalloc(VERSION_REPLY_MAX);
	int fds[VFIO_USER_MAX_MSG_FDS];
	struct vfio_user_req req = {
		.cmd = VFIO_USER_VERSION,
		.iov = { { &ours, sizeof(ours) }, { json, strlen(json) + 1 } },
		.iovcnt = 2,
	};
	struct vfio_user_rep rep = {
		.iov = { { &theirs, sizeof(theirs) }, { reply, VERSION_REPLY_MAX } },
		.iovcnt = 2,
		.fds = fds,
		.max_fds = VFIO_USER_MAX_MSG_FDS,
	};
	int ret;

	ret = vfio_user_call(c, &req, &rep);
	free(json);
	/* we offered no twin socket: fds here have no meaning */
	for (unsigned i = 0; i < rep.nfds; i++)
		close(fds[i]);
	if (ret) {
		pr_err("vfio-user %s: VERSION failed: %s", who, strerror(-ret));
		goto out;
	}
	ret = -EPROTO;
	if (rep.len < sizeof(theirs)) {
		pr_err("vfio-user %s: VERSION reply is %zu bytes", who, rep.len);
		goto out;
	}
	if (theirs.major != VFIO_USER_MAJOR) {
		pr_err("vfio-user %s: server speaks protocol %u.%u, we need major %u", who,
		       theirs.major, theirs.minor, VFIO_USER_MAJOR);
		goto out;
	}
	if (theirs.minor > VFIO_USER_MINOR) {
		pr_err("vfio-user %s: server picked minor %u above our %u", who, theirs.minor,
		       VFIO_USER_MINOR);
		goto out;
	}
	ret = vfio_user_caps_parse(who, reply, rep.len - sizeof(theirs),
				   &vfio_user_client_caps, caps);
	if (ret)
		goto out;
	if (!(caps->pgsizes & 4096)) {
		pr_err("vfio-user %s: server does not take 4 KiB DMA pages", who);
		ret = -EPROTO;
		goto out;
	}
	*minor = theirs.minor;
out:
	free(reply);
	return ret;
}
