// SPDX-License-Identifier: MIT
/* ADI composition and teardown (vdcm.h). */
#include "devices/hdnic/vdcm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > VDCM_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return false;
	return true;
}

struct vdev *vdcm_adi_compose(struct nic *nic, const char *name, unsigned queues,
			      const uint8_t *mac_in, char *err, size_t errlen)
{
	struct qp *qps[HDNIC_MAX_QPS_PER_DEV];
	unsigned slot, port;
	struct vdev *vd;
	uint8_t mac[6];
	char id[32];

	if (!name_ok(name)) {
		snprintf(err, errlen, "ADI name \"%.40s\": 1 to %u letters, digits, '-' or '_', "
			 "starting with a letter or digit", name, VDCM_NAME_MAX);
		return NULL;
	}
	if (nic_find_adi(nic, name)) {
		snprintf(err, errlen, "ADI \"%s\" already exists", name);
		return NULL;
	}
	if (queues < 1 || queues > HDNIC_MAX_QPS_PER_DEV) {
		snprintf(err, errlen, "--queues %u: an ADI has 1 to %u queue pairs", queues,
			 HDNIC_MAX_QPS_PER_DEV);
		return NULL;
	}
	if (nic->qps.nr_free < queues || !nic->nr_adi_free) {
		snprintf(err, errlen, "no room: %u of %u queue pairs free, %u asked for",
			 nic->qps.nr_free, nic->qps.nr, queues);
		return NULL;
	}
	slot = nic->adi_free[nic->nr_adi_free - 1];
	port = nic->nr_vfs + slot;
	if (mac_in)
		memcpy(mac, mac_in, 6);
	else
		nic_default_mac(nic, port, mac);
	if (mac_is_multicast(mac) || mac_is_zero(mac)) {
		snprintf(err, errlen, "a device MAC must be unicast and non-zero");
		return NULL;
	}
	if (sw_static_port(&nic->sw, mac) >= 0) {
		vd = nic_port(nic, sw_static_port(&nic->sw, mac));
		snprintf(err, errlen, "MAC already belongs to %s%s", vd ? vd->dev.id : "another port",
			 mac_in ? "" : " (give the ADI one with --mac)");
		return NULL;
	}
	if (sw_set_static(&nic->sw, mac, port)) {
		snprintf(err, errlen, "switch table full");
		return NULL;
	}
	nic->nr_adi_free--;
	qp_pool_alloc(&nic->qps, queues, NULL, qps);	/* checked above: cannot fail */
	snprintf(id, sizeof(id), "adi-%s", name);
	vd = vdev_create(nic, VDEV_ADI, slot, port, id, mac, qps, queues);
	vd->mac_admin = mac_in != NULL;
	for (unsigned k = 0; k < queues; k++)
		qps[k]->owner = vd;
	nic_plug(nic, vd);
	nic->nr_adis++;
	return vd;
}

struct vdev *vdcm_adi_add(struct nic *nic, const char *name, unsigned queues,
			  const uint8_t *mac, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	struct vdev *vd = vdcm_adi_compose(nic, name, queues, mac, err, errlen);
	int ret;

	if (!vd)
		return NULL;
	ret = vd->dev.ops->realize(&vd->dev, nic);
	if (ret) {
		snprintf(err, errlen, "cannot serve %s/%s.sock: %s", nic->dir, vd->dev.id,
			 strerror(-ret));
		vdcm_adi_del(nic, vd);
		return NULL;
	}
	vd->attach_ns = now_ns() - t0;
	pr_info("%s: %s ready at %s in %llu us (%u queue pair%s)", nic->name, vd->dev.id,
		vd->vfu->sock_path, (unsigned long long)(vd->attach_ns / 1000), queues,
		queues == 1 ? "" : "s");
	return vd;
}

void vdcm_adi_del(struct nic *nic, struct vdev *vd)
{
	if (vd->dev.realized)
		vd->dev.ops->unrealize(&vd->dev);	/* drops the client, unlinks the socket */
	vdev_stop_polling(vd);
	nic_mac_release(nic, vd);
	sw_flush_port(&nic->sw, vd->port);
	for (unsigned k = 0; k < vd->nr_qps; k++)
		qp_pool_release(&nic->qps, vd->qps[k]);
	vd->nr_qps = 0;		/* the queue pairs may serve someone else now */
	nic_unplug(nic, vd);
	nic->adi_free[nic->nr_adi_free++] = vd->index;
	nic->nr_adis--;
	nic_bury(nic, vd);
	nic_qos_changed(nic);
}
