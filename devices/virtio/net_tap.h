/* SPDX-License-Identifier: MIT */
/*
 * The TAP back end of the paravirtual NIC: /dev/net/tun in TAP mode with the
 * 12-byte virtio-net header in front of every frame (IFF_VNET_HDR), so a
 * guest's header maps straight onto the kernel's.  No offloads are enabled.
 */
#ifndef HDVM_NET_TAP_H
#define HDVM_NET_TAP_H

#include <net/if.h>
#include <stdbool.h>

#define NET_TAP_HDR_LEN	12	/* struct virtio_net_hdr_v1 */

struct net_tap {
	int fd;
	char name[IFNAMSIZ];
	bool created;		/* hdvm made it: it goes away with the fd */
};

/*
 * Attach to TAP `name`, creating it if it does not exist.  A TAP that
 * existed before is left as it is at close; one created here is deleted.
 * -errno with a message naming the interface and the problem.
 */
int net_tap_open(struct net_tap *t, const char *name);
/*
 * A migration on one host (unix:): fd is the source's TAP fd, passed over
 * the socket.  Checked to be TAP `name` with virtio-net headers (TUNGETIFF),
 * then dup'ed (the caller keeps fd).  -EINVAL with a message if it is not.
 */
int net_tap_adopt(struct net_tap *t, const char *name, int fd);
void net_tap_close(struct net_tap *t);

#endif
