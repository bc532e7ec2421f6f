// SPDX-License-Identifier: MIT
/*
 * Receive filtering of a function (VIRTIO_NET_F_CTRL_RX).  With hundreds of
 * microVMs on one NIC every multicast frame from the uplink would wake every
 * sleeping guest; a real VF drops what its driver did not subscribe to, and
 * so do we, at delivery, before any DMA (counted as rx_filtered).
 *
 * A driver that did not negotiate CTRL_RX gets every frame the switch sends
 * it, as before.  One that did starts from the reset state: the MAC table
 * empty (the virtio spec requires it), promiscuous on and all-multicast off
 * (the spec leaves these open; promiscuous-by-default keeps a driver that
 * negotiates the feature but never sends a command working).  Broadcast
 * always passes, unicast to the function's own MAC always passes, unicast
 * for stations learned behind a trusted function passes (the switch only
 * sends it there because it is theirs).
 */
#include <linux/virtio_net.h>
#include <string.h>

#include "devices/hdnic/switch.h"
#include "devices/hdnic/vdev.h"

void vdev_rx_filter_reset(struct vdev *vd)
{
	memset(&vd->vn.rxf, 0, sizeof(vd->vn.rxf));
	vd->vn.rxf.promisc = true;
}

static bool rx_ctrl_enabled(const struct vdev *vd)
{
	return vd->vn.driver_features & VF_F_CTRL_RX;
}

/* ---- VIRTIO_NET_CTRL_RX: one byte, zero = off ---- */

uint8_t vdev_ctrl_rx(struct vdev *vd, uint8_t cmd, const uint8_t *data, uint32_t len)
{
	bool *mode;

	if (!rx_ctrl_enabled(vd) || len != 1)
		return VIRTIO_NET_ERR;
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		mode = &vd->vn.rxf.promisc;
		break;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		mode = &vd->vn.rxf.allmulti;
		break;
	default:
		return VIRTIO_NET_ERR;	/* NOUNI & co. need CTRL_RX_EXTRA */
	}
	*mode = data[0] != 0;
	return VIRTIO_NET_OK;
}

/* ---- VIRTIO_NET_CTRL_MAC_TABLE_SET: le32 n, n MACs (unicast), le32 m, m MACs (multicast) ---- */

struct mac_list {
	uint32_t n;
	const uint8_t *macs;
};

/* One list at *off: its count and addresses, all of the wanted kind. */
static bool parse_list(const uint8_t *data, uint32_t len, uint32_t *off, bool multicast,
		       struct mac_list *l)
{
	uint64_t bytes;

	if (len - *off < 4)
		return false;
	memcpy(&l->n, data + *off, 4);
	*off += 4;
	bytes = (uint64_t)l->n * 6;
	if (bytes > len - *off)
		return false;
	l->macs = data + *off;
	*off += (uint32_t)bytes;
	for (uint32_t i = 0; i < l->n; i++)
		if (mac_is_multicast(l->macs + 6 * i) != multicast)
			return false;
	return true;
}

/* Keep as many entries as fit; a list that does not fit lets its class through. */
static void table_take(struct vdev_rx_filter *f, const struct mac_list *l, uint8_t *nr,
		       bool *overflow)
{
	unsigned room = VDEV_MAC_TABLE_ENTRIES - f->nr_uc - f->nr_mc;

	*nr = 0;
	*overflow = l->n > room;
	if (*overflow)
		return;
	memcpy(f->mac[f->nr_uc + f->nr_mc], l->macs, (size_t)l->n * 6);
	*nr = (uint8_t)l->n;
}

uint8_t vdev_ctrl_mac(struct vdev *vd, uint8_t cmd, const uint8_t *data, uint32_t len)
{
	struct vdev_rx_filter f = vd->vn.rxf;
	struct mac_list uc, mc;
	uint32_t off = 0;

	if (!rx_ctrl_enabled(vd) || cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
		return VIRTIO_NET_ERR;	/* ADDR_SET needs CTRL_MAC_ADDR */
	if (!parse_list(data, len, &off, false, &uc) || !parse_list(data, len, &off, true, &mc) ||
	    off != len)
		return VIRTIO_NET_ERR;
	f.nr_uc = f.nr_mc = 0;
	table_take(&f, &uc, &f.nr_uc, &f.uc_overflow);
	table_take(&f, &mc, &f.nr_mc, &f.mc_overflow);
	memset(f.mac[f.nr_uc + f.nr_mc], 0,
	       (size_t)(VDEV_MAC_TABLE_ENTRIES - f.nr_uc - f.nr_mc) * 6);
	vd->vn.rxf = f;
	return VIRTIO_NET_OK;
}

/* ---- delivery ---- */

static bool table_has(const struct vdev_rx_filter *f, unsigned from, unsigned n,
		      const uint8_t *mac)
{
	for (unsigned i = from; i < from + n; i++)
		if (!memcmp(f->mac[i], mac, 6))
			return true;
	return false;
}

bool vdev_rx_wanted(const struct vdev *vd, const uint8_t *dst)
{
	const struct vdev_rx_filter *f = &vd->vn.rxf;

	if (!rx_ctrl_enabled(vd) || f->promisc || mac_is_broadcast(dst))
		return true;
	if (mac_is_multicast(dst))
		return f->allmulti || f->mc_overflow || table_has(f, f->nr_uc, f->nr_mc, dst);
	if (!memcmp(dst, vd->mac, 6) || vd->trusted)
		return true;
	return f->uc_overflow || table_has(f, 0, f->nr_uc, dst);
}

bool vdev_rx_wants_unknown(const struct vdev *vd, const uint8_t *dst)
{
	const struct vdev_rx_filter *f = &vd->vn.rxf;

	if (!rx_ctrl_enabled(vd))
		return false;
	return f->promisc || f->uc_overflow || table_has(f, 0, f->nr_uc, dst);
}

bool vdev_rx_filter_valid(const struct vdev_rx_filter *f)
{
	if (f->nr_uc + f->nr_mc > VDEV_MAC_TABLE_ENTRIES)
		return false;
	for (unsigned i = 0; i < f->nr_uc + f->nr_mc; i++)
		if (mac_is_multicast(f->mac[i]) != (i >= f->nr_uc))
			return false;
	return true;
}
