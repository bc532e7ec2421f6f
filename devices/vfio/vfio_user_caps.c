// SPDX-License-Identifier: MIT
/* vfio-user VERSION capabilities, shared by client and server (json-c). */
#include "devices/vfio/vfio_user_caps.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CAPS_JSON_DEPTH	16	/* ours nest three deep; a bomb gets nowhere */

void vfio_user_caps_default(struct vfio_user_caps *caps)
{
	*caps = (struct vfio_user_caps){
		.max_msg_fds = 1,
		.max_data_xfer_size = 1u << 20,
		.pgsizes = 4096,
		.max_dma_maps = 65535,
	};
}

static int fail(char *why, size_t why_len, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

static int get_number(json_object *v, const char *key, uint64_t min, uint64_t max,
		      uint64_t *out, char *why, size_t why_len)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int))
		return fail(why, why_len, -EINVAL, "capability %s is not a number", key);
	errno = 0;
	n = json_object_get_int64(v);
	if (errno || n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return fail(why, why_len, -EINVAL, "capability %s = %lld out of range [%llu, %llu]",
			    key, (long long)n, (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)n;
	return 0;
}

static int parse_migration(json_object *mig, struct vfio_user_caps *out, char *why,
			   size_t why_len)
{
	json_object *v;
	uint64_t n;
	int err;

	if (!json_object_is_type(mig, json_type_object))
		return fail(why, why_len, -EINVAL, "capability migration is not an object");
	/* QEMU also defines max_bitmap_size; like any unknown key, ignored. */
	if (!json_object_object_get_ex(mig, "pgsize", &v))
		return fail(why, why_len, -EINVAL, "capability migration has no pgsize");
	err = get_number(v, "migration.pgsize", VFIO_USER_CAP_MIG_PGSIZE_MIN,
			 VFIO_USER_CAP_MIG_PGSIZE_MAX, &n, why, why_len);
	if (err)
		return err;
	if (n & (n - 1))
		return fail(why, why_len, -EINVAL, "migration.pgsize %llu is not a power of two",
			    (unsigned long long)n);
	out->migration_pgsize = (uint32_t)n;
	return 0;
}

static int parse_caps(json_object *caps, struct vfio_user_caps *out, char *why, size_t why_len)
{
	uint64_t v;
	int err = 0;

	json_object_object_foreach(caps, key, val) {
		if (!strcmp(key, "max_msg_fds")) {
			err = get_number(val, key, 0, VFIO_USER_CAP_FDS_MAX, &v, why, why_len);
			out->max_msg_fds = (uint32_t)v;
			out->present |= VFIO_USER_CAP_MAX_MSG_FDS;
		} else if (!strcmp(key, "max_data_xfer_size")) {
			err = get_number(val, key, VFIO_USER_CAP_XFER_MIN, VFIO_USER_CAP_XFER_MAX,
					 &v, why, why_len);
			out->max_data_xfer_size = (uint32_t)v;
			out->present |= VFIO_USER_CAP_MAX_DATA_XFER;
		} else if (!strcmp(key, "pgsizes")) {
			err = get_number(val, key, 1, UINT64_MAX >> 1, &v, why, why_len);
			out->pgsizes = v;
			out->present |= VFIO_USER_CAP_PGSIZES;
		} else if (!strcmp(key, "max_dma_maps")) {
			err = get_number(val, key, 1, UINT32_MAX, &v, why, why_len);
			out->max_dma_maps = (uint32_t)v;
			out->present |= VFIO_USER_CAP_MAX_DMA_MAPS;
		} else if (!strcmp(key, "write_multiple")) {
			if (!json_object_is_type(val, json_type_boolean))
				err = fail(why, why_len, -EINVAL, "write_multiple is not a boolean");
			out->write_multiple = json_object_get_boolean(val);
			out->present |= VFIO_USER_CAP_WRITE_MULTIPLE;
		} else if (!strcmp(key, "migration")) {
			err = parse_migration(val, out, why, why_len);
			out->present |= VFIO_USER_CAP_MIGRATION;
		}
		/* anything else (twin_socket, future keys): not ours to judge */
		if (err)
			return err;
	}
	/* Both sides map guest memory in 4 KiB pages. */
	if (!(out->pgsizes & 4096))
		return fail(why, why_len, -ENOTSUP, "pgsizes %#llx lacks 4 KiB pages",
			    (unsigned long long)out->pgsizes);
	return 0;
}

int vfio_user_caps_parse(const char *data, size_t len, struct vfio_user_caps *out,
			 char *why, size_t why_len)
{
	json_tokener *tok;
	json_object *root = NULL, *caps;
	size_t text;
	int err = 0;

	vfio_user_caps_default(out);
	if (!len)
		return 0;		/* no capabilities at all */
	if (data[len - 1] != '\0')
		return fail(why, why_len, -EINVAL, "version data is not NUL-terminated");
	text = strlen(data);
	if (text != len - 1)
		return fail(why, why_len, -EINVAL, "version data has bytes after its NUL");
	if (!text)
		return 0;
	tok = json_tokener_new_ex(CAPS_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, data, (int)text);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != text) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);

		err = fail(why, why_len, -EINVAL, "malformed version JSON: %s",
			   root ? "trailing data" : jerr == json_tokener_continue ?
			   "truncated" : json_tokener_error_desc(jerr));
	} else if (!json_object_is_type(root, json_type_object)) {
		err = fail(why, why_len, -EINVAL, "version JSON is not an object");
	} else if (json_object_object_get_ex(root, "capabilities", &caps)) {
		if (!json_object_is_type(caps, json_type_object))
			err = fail(why, why_len, -EINVAL, "\"capabilities\" is not an object");
		else
			err = parse_caps(caps, out, why, why_len);
	}
	json_object_put(root);
	json_tokener_free(tok);
	return err;
}

int vfio_user_caps_format(const struct vfio_user_caps *caps, char *out, size_t cap)
{
	json_object *root = json_object_new_object(), *c = json_object_new_object();
	int n;

	json_object_object_add(c, "max_msg_fds", json_object_new_int64(caps->max_msg_fds));
	json_object_object_add(c, "max_data_xfer_size",
			       json_object_new_int64(caps->max_data_xfer_size));
	json_object_object_add(c, "pgsizes", json_object_new_int64((int64_t)caps->pgsizes));
	json_object_object_add(c, "max_dma_maps", json_object_new_int64(caps->max_dma_maps));
	if (caps->write_multiple)
		json_object_object_add(c, "write_multiple", json_object_new_boolean(1));
	if (caps->migration_pgsize) {
		json_object *m = json_object_new_object();

		json_object_object_add(m, "pgsize", json_object_new_int64(caps->migration_pgsize));
		json_object_object_add(c, "migration", m);
	}
	json_object_object_add(root, "capabilities", c);
	n = snprintf(out, cap, "%s", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n + 1;
}
