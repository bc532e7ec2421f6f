// SPDX-License-Identifier: MIT
/*
 * VERSION capabilities, server side: the parser and formatter are the ones
 * hdvm's client uses (devices/vfio/vfio_user_caps.c); this file only decides
 * what hdnic takes from the client's offer and what it answers.
 */
#include <errno.h>
#include <string.h>

#include "devices/hdnic/vdev.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

int vfu_caps_parse(struct vfu_conn *c, const char *json, uint32_t len)
{
	struct vfio_user_caps caps;
	char why[160];
	int err = vfio_user_caps_parse(json, len, &caps, why, sizeof(why));

	if (err) {
		pr_debug("%s: VERSION: %s", c->ep ? c->ep->name : "?", why);
		return err;
	}
	c->peer_max_fds = MIN(caps.max_msg_fds, (uint32_t)VFIO_USER_MAX_MSG_FDS);
	/* A client that states its own fd limit gets no more than that from us either. */
	c->offer_max_fds = caps.present & VFIO_USER_CAP_MAX_MSG_FDS ? c->peer_max_fds :
			   VFIO_USER_MAX_MSG_FDS;
	c->peer_max_xfer = MIN(caps.max_data_xfer_size, (uint32_t)VFIO_USER_MAX_DATA_XFER);
	c->write_multiple = caps.write_multiple;
	c->mig_pgsize = caps.migration_pgsize;
	return 0;
}

int vfu_caps_reply(struct vfu_conn *c, char *out, uint32_t cap)
{
	struct vfio_user_caps caps = {
		/* Never more than the client offered: replies must be a subset. */
		.max_msg_fds = MIN(HDNIC_VFU_MAX_FDS, c->offer_max_fds),
		.max_data_xfer_size = MIN(HDNIC_VFU_MAX_XFER, c->peer_max_xfer),
		.max_dma_maps = HDNIC_VFU_MAX_DMA_MAPS,
		.pgsizes = HDNIC_VFU_PGSIZES,
		.write_multiple = c->write_multiple,
		/* a function that cannot migrate does not advertise it */
		.migration_pgsize = c->dev && conn_vdev(c)->no_mig ? 0 : HDNIC_VFU_MIG_PGSIZE,
	};

	return vfio_user_caps_format(&caps, out, cap);
}
