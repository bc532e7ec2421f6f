// SPDX-License-Identifier: MIT
/*
 * TAP uplink: hdnic creates the device (IFF_TAP | IFF_NO_PI), brings it up,
 * and it vanishes when hdnic closes it.  An existing persistent TAP of the
 * same name is attached to and left in place.  IFF_VNET_HDR with TUN_F_CSUM:
 * the host's stack leaves checksums to us like to any NIC with offload, and
 * uplink_vnet.c completes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/hdnic/uplink.h"
#include "vmm/util.h"

static int tap_open(struct uplink *up)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), err;
	int hdr_len = UPLINK_VNET_HDR_LEN;

	if (fd < 0) {
		pr_err("uplink tap:%s: /dev/net/tun: %s", up->ifname, strerror(errno));
		return -errno;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", up->ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		pr_err("uplink tap:%s: cannot create TAP (%s)%s", up->ifname, strerror(errno),
		       errno == EINVAL || errno == EBUSY ?
		       ": the name is taken by another device" : "");
		close(fd);
		return err;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) < 0) {
		err = -errno;
		pr_err("uplink tap:%s: virtio-net header: %s", up->ifname, strerror(errno));
		close(fd);
		return err;
	}
	err = uplink_if_up(up->ifname, false);
	if (err) {
		pr_err("uplink tap:%s: bringing it up: %s", up->ifname, strerror(-err));
		close(fd);
		return err;
	}
	up->fd = fd;
	up->vnet_hdr_len = UPLINK_VNET_HDR_LEN;
	return 0;
}

static void tap_close(struct uplink *up)
{
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
}

const struct uplink_ops uplink_tap_ops = {
	.kind = "tap",
	.open = tap_open,
	.close = tap_close,
	.tx_direct = true,	/* frames leave in order on every kernel (uplink.h) */
	.rx_direct = true,	/* and arrive in order */
};
