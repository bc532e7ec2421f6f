/* SPDX-License-Identifier: MIT */
/* vfio-user VERSION negotiation (client side). */
#ifndef HDVM_VFIO_USER_VERSION_H
#define HDVM_VFIO_USER_VERSION_H

#include <stddef.h>
#include <stdint.h>

struct vfio_user_caps;
struct vfio_user_conn;

extern const struct vfio_user_caps vfio_user_client_caps;

/* {"capabilities":{...}} for caps; free() the result. */
char *vfio_user_caps_json(const struct vfio_user_caps *caps);
/* Parse the reply's version data (len bytes incl. NUL), validated against offer. */
int vfio_user_caps_parse_reply(const char *who, const char *json, size_t len,
			       const struct vfio_user_caps *offer, struct vfio_user_caps *out);
/* Send VERSION, validate the reply, return what the server agreed to. */
int vfio_user_negotiate(struct vfio_user_conn *c, const char *who,
			struct vfio_user_caps *caps, uint16_t *minor);

#endif
