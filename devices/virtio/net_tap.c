// SPDX-License-Identifier: MIT
#include "devices/virtio/net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/util.h"

static const char *attach_error(int err, bool existed)
{
	switch (err) {
	case EBUSY:
		return "it is already in use by another process";
	case EINVAL:
		return existed ? "an interface of that name exists and is not a TAP"
			       : "the kernel refused the TAP settings";
	case EPERM:
		return existed ? "not allowed to use it (owner/group of the TAP)"
			       : "creating a TAP needs CAP_NET_ADMIN "
				 "(or create it first: ip tuntap add NAME mode tap user USER)";
	default:
		return strerror(err);
	}
}

int net_tap_open(struct net_tap *t, const char *name)
{
	struct ifreq ifr = { 0 };
	unsigned int features = 0;
	int hdr_len = NET_TAP_HDR_LEN;
	bool existed;
	int err;

	t->fd = -1;
	t->created = false;
	snprintf(t->name, sizeof(t->name), "%s", name);
	/* blocking on purpose: io_uring waits for frames instead of failing with EAGAIN */
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (t->fd < 0) {
		err = -errno;
		pr_err("--net tap=%s: /dev/net/tun: %s", name, strerror(-err));
		return err;
	}
	if (ioctl(t->fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		err = -EOPNOTSUPP;
		pr_err("--net tap=%s: the kernel's TAP lacks virtio-net headers (IFF_VNET_HDR)",
		       name);
		goto err;
	}
	existed = if_nametoindex(name) != 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		pr_err("--net tap=%s: %s", name, attach_error(-err, existed));
		goto err;
	}
	t->created = !existed;
	/* the 12-byte header of VERSION_1 (with num_buffers), and no offloads */
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr_len) < 0 || ioctl(t->fd, TUNSETOFFLOAD, 0) < 0) {
		err = -errno;
		pr_err("--net tap=%s: configuring the virtio-net header: %s", name,
		       strerror(-err));
		goto err;
	}
	pr_debug("net: %s TAP %s", t->created ? "created" : "attached to", name);
	return 0;
err:
	net_tap_close(t);
	return err;
}

int net_tap_adopt(struct net_tap *t, const char *name, int fd)
{
	struct ifreq ifr = { 0 };
	int err;

	t->fd = -1;
	t->created = false;	/* its owner was the source: it goes when both let go */
	snprintf(t->name, sizeof(t->name), "%s", name);
	if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
		err = -errno;
		pr_err("--net tap=%s: the fd the source handed over is not a TAP (%s)", name,
		       strerror(-err));
		return err == -EBADFD || err == -ENOTTY ? -EINVAL : err;
	}
	ifr.ifr_name[IFNAMSIZ - 1] = 0;
	if (strcmp(ifr.ifr_name, name) ||
	    (ifr.ifr_flags & (IFF_TAP | IFF_TUN | IFF_VNET_HDR)) != (IFF_TAP | IFF_VNET_HDR)) {
		pr_err("--net tap=%s: the fd the source handed over is %s %s, not TAP %s with "
		       "virtio-net headers", name, ifr.ifr_flags & IFF_TAP ? "TAP" : "TUN",
		       ifr.ifr_name, name);
		return -EINVAL;
	}
	t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (t->fd < 0) {
		err = -errno;
		pr_err("--net tap=%s: %s", name, strerror(-err));
		return err;
	}
	pr_debug("net: took over TAP %s from the source", name);
	return 0;
}

void net_tap_close(struct net_tap *t)
{
	/* not persistent: a TAP we created disappears with its last fd */
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
