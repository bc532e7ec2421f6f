// SPDX-License-Identifier: MIT
/*
 * vfio-user VERSION negotiation, client side.  We offer our limits as JSON
 * capabilities; the reply must keep our major, not raise our minor, and hold
 * sane values (the parser shared with hdnic, vfio_user_caps.c).  Keys we do
 * not know are ignored; absent ones take the protocol defaults.
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
	.migration_pgsize = 4096,	/* hdvm drives the v2 migration FSM */
};

char *vfio_user_caps_json(const struct vfio_user_caps *caps)
{
	char buf[512];	/* ours are under 200 bytes */

	if (vfio_user_caps_format(caps, buf, sizeof(buf)) < 0)
		abort();
	return xstrdup(buf);
}

int vfio_user_caps_parse_reply(const char *who, const char *json, size_t len,
			       const struct vfio_user_caps *offer, struct vfio_user_caps *out)
{
	char why[160];
	int ret = vfio_user_caps_parse(json, len, out, why, sizeof(why));

	if (ret) {
		pr_err("vfio-user %s: %s", who, why);
		return -EPROTO;
	}
	/*
	 * The numbers are each side's own receive limits, so only the page
	 * sizes are a true subset; keys we never offered (twin_socket, a
	 * server's unconditional "migration") are the server's to send and
	 * ours to ignore.
	 */
	if (out->pgsizes & ~offer->pgsizes) {
		pr_err("vfio-user %s: pgsizes %#llx is not a subset of %#llx", who,
		       (unsigned long long)out->pgsizes, (unsigned long long)offer->pgsizes);
		return -EPROTO;
	}
	return 0;
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
		pr_err("vfio-user %s: VERSION failed: %s", who, ret == -EBUSY ?
		       "the device is in use by another client" : strerror(-ret));
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
	ret = vfio_user_caps_parse_reply(who, reply, rep.len - sizeof(theirs),
					 &vfio_user_client_caps, caps);
	if (ret)
		goto out;
	*minor = theirs.minor;
out:
	free(reply);
	return ret;
}
