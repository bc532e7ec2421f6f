// SPDX-License-Identifier: MIT
/* Uplink frame I/O on io_uring, shared by the TAP and AF_PACKET backends. */
#include "devices/hdnic/uplink.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/hdnic/nic.h"
#include "vmm/util.h"

#define UPLINK_RX_BUFS	64
#define UPLINK_TX_BUFS	256
#define UPLINK_BUF_SIZE	2048	/* > HDNIC_MAX_FRAME; longer frames are cut and dropped */

static void rx_arm(struct uplink_buf *b)
{
	struct io_uring_sqe *sqe = loop_sqe(&b->up->nic->loop, &b->h);

	io_uring_prep_read(sqe, b->up->fd, b->data, b->up->rx_buf_size, 0);
}

/* One wire frame from the uplink (after the virtio-net header's work). */
static void rx_frame(void *ctx, uint8_t *frame, uint32_t len)
{
	struct uplink *up = ctx;

	if (len < HDNIC_MIN_FRAME || len > HDNIC_MAX_FRAME) {
		up->stats.rx_drops++;
		return;
	}
	up->stats.rx_packets++;
	up->stats.rx_bytes += len;
	nic_forward_from_uplink(up->nic, frame, len);
}

/* What one read brought (res: its length or -errno); false: the interface is gone. */
static bool rx_take(struct uplink *up, uint8_t *data, int res)
{
	if (res < 0) {
		if (res != -EAGAIN && res != -EINTR && res != -ENOBUFS && res != -ENETDOWN) {
			up->stats.rx_errors++;
			if (up->stats.rx_errors < 10)
				pr_err("uplink %s: read: %s", up->ifname, strerror(-res));
			if (res == -EBADF || res == -EBADFD || res == -EIO)
				return false;
		}
	} else if (res < (int)up->vnet_hdr_len + HDNIC_MIN_FRAME) {
		up->stats.rx_drops++;
	} else if (!up->vnet_hdr_len) {
		rx_frame(up, data, (uint32_t)res);
	} else if (uplink_vnet_rx(data, data + up->vnet_hdr_len,
				  (uint32_t)res - up->vnet_hdr_len, rx_frame, up)) {
		up->stats.rx_drops++;
	}
	return true;
}

/* rx_direct: one poll (level-triggered: it fires at once if a frame waits). */
static void rx_poll_arm(struct uplink *up)
{
	struct io_uring_sqe *sqe;

	if (up->closing || up->rx_polling || (up->rx_paused && !up->rx_pause_budget))
		return;
	sqe = loop_sqe(&up->nic->loop, &up->rx_poll);
	io_uring_prep_poll_add(sqe, up->fd, POLLIN);
	up->rx_polling = true;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * rx_direct: frames are read here one after another, so they reach the
 * switch in the order the kernel queued them; at most nr_rx a turn, then
 * the poll again (the rest of the loop gets its turn).  Paused, it reads
 * what nr_rx reads armed at once would still have brought: nr_rx frames
 * after the pause at most (they go to the functions' waiting lists).
 */
static void rx_poll_done(struct loop_handler *h, int res, uint32_t flags)
{
	struct uplink *up = container_of(h, struct uplink, rx_poll);
	uint8_t *buf = up->rx[0].data;

	up->rx_polling = false;
	if (up->closing)
		return;
	for (unsigned i = 0; i < up->nr_rx && readable(up->fd); i++) {
		ssize_t n;

		if (up->rx_paused && !up->rx_pause_budget)
			return;		/* re-armed by uplink_rx_pause(up, false) */
		up->rx_pause_budget -= up->rx_paused;
		n = read(up->fd, buf, up->rx_buf_size);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (!rx_take(up, buf, n < 0 ? -errno : (int)n))
			return;	/* the interface is gone: receive stops */
	}
	rx_poll_arm(up);
}

static void rx_done(struct loop_handler *h, int res, uint32_t flags)
{
	struct uplink_buf *b = container_of(h, struct uplink_buf, h);
	struct uplink *up = b->up;

	if (up->closing)
		return;
	if (!rx_take(up, b->data, res))
		return;	/* the interface is gone: stop this buffer */
	if (up->rx_paused) {
		b->next_free = up->rx_parked;	/* no read while nothing can be delivered */
		up->rx_parked = (int)(b - up->rx);
		return;
	}
	rx_arm(b);
}

void uplink_rx_pause(struct uplink *up, bool pause)
{
	if (up->closing || pause == up->rx_paused)
		return;
	up->rx_paused = pause;
	if (pause) {
		up->rx_pauses++;
		up->rx_pause_budget = up->nr_rx;
		return;
	}
	if (up->ops->rx_direct) {
		rx_poll_arm(up);
		return;
	}
	while (up->rx_parked >= 0) {
		struct uplink_buf *b = &up->rx[up->rx_parked];

		up->rx_parked = b->next_free;
		rx_arm(b);
	}
}

static void tx_done(struct loop_handler *h, int res, uint32_t flags)
{
	struct uplink_buf *b = container_of(h, struct uplink_buf, h);
	struct uplink *up = b->up;

	if (res < 0) {
		up->stats.tx_errors++;
		if (up->stats.tx_errors < 10)
			pr_err("uplink %s: write: %s", up->ifname, strerror(-res));
	}
	b->next_free = up->tx_free;
	up->tx_free = (int)(b - up->tx);
}

void uplink_tx(struct uplink *up, const uint8_t *frame, uint32_t len)
{
	struct io_uring_sqe *sqe;
	struct uplink_buf *b;

	if (up->tx_free < 0 || len + up->vnet_hdr_len > UPLINK_BUF_SIZE) {
		up->stats.tx_drops++;	/* all buffers in flight: the wire is busy */
		return;
	}
	b = &up->tx[up->tx_free];
	up->tx_free = b->next_free;
	if (up->vnet_hdr_len)
		uplink_vnet_tx(b->data);
	memcpy(b->data + up->vnet_hdr_len, frame, len);
	if (up->ops->tx_direct) {
		ssize_t n = write(up->fd, b->data, len + up->vnet_hdr_len);

		tx_done(&b->h, n < 0 ? -errno : (int)n, 0);
	} else {
		sqe = loop_sqe(&up->nic->loop, &b->h);
		io_uring_prep_write(sqe, up->fd, b->data, len + up->vnet_hdr_len, 0);
	}
	up->stats.tx_packets++;
	up->stats.tx_bytes += len;
}

int uplink_if_up(const char *ifname, bool promisc)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
	} else {
		ifr.ifr_flags |= IFF_UP | (promisc ? IFF_PROMISC : 0);
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			err = -errno;
	}
	close(fd);
	return err;
}

int uplink_open(struct nic *nic, const char *spec, struct uplink **out)
{
	static const struct { const char *prefix; const struct uplink_ops *ops; } kinds[] = {
		{ "tap:", &uplink_tap_ops },
		{ "iface:", &uplink_packet_ops },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(kinds); i++) {
		size_t n = strlen(kinds[i].prefix);
		const char *name = spec + n;

		if (strncmp(spec, kinds[i].prefix, n))
			continue;
		if (!*name || strlen(name) >= IFNAMSIZ || strchr(name, '/') || strchr(name, ' ')) {
			pr_err("--uplink %s: bad interface name", spec);
			return -EINVAL;
		}
		return uplink_create(nic, kinds[i].ops, name, out);
	}
	pr_err("--uplink %s: expected tap:IFNAME or iface:IFNAME", spec);
	return -EINVAL;
}

int uplink_create(struct nic *nic, const struct uplink_ops *ops, const char *ifname,
		  struct uplink **out)
{
	struct uplink *up = xzalloc(sizeof(*up));
	int err;

	up->ops = ops;
	up->nic = nic;
	up->fd = -1;
	snprintf(up->ifname, sizeof(up->ifname), "%s", ifname);
	err = ops->open(up);
	if (err) {
		free(up);
		return err;
	}
	up->nr_rx = UPLINK_RX_BUFS;
	up->nr_tx = UPLINK_TX_BUFS;
	if (!up->rx_buf_size)
		up->rx_buf_size = UPLINK_BUF_SIZE;
	/* Receive buffers first; big ones (GSO) are touched only as far as frames reach. */
	up->mem = xzalloc((size_t)up->nr_rx * up->rx_buf_size + (size_t)up->nr_tx * UPLINK_BUF_SIZE);
	up->rx = xzalloc(up->nr_rx * sizeof(*up->rx));
	up->tx = xzalloc(up->nr_tx * sizeof(*up->tx));
	for (unsigned i = 0; i < up->nr_rx; i++) {
		up->rx[i].up = up;
		up->rx[i].data = up->mem + (size_t)i * up->rx_buf_size;
		loop_handler_init(&up->rx[i].h, rx_done);
	}
	loop_handler_init(&up->rx_poll, rx_poll_done);
	up->tx_free = -1;
	up->rx_parked = -1;
	for (unsigned i = up->nr_tx; i-- > 0;) {
		up->tx[i].up = up;
		up->tx[i].data = up->mem + (size_t)up->nr_rx * up->rx_buf_size +
				 (size_t)i * UPLINK_BUF_SIZE;
		up->tx[i].next_free = up->tx_free;
		up->tx_free = (int)i;
		loop_handler_init(&up->tx[i].h, tx_done);
	}
	*out = up;
	return 0;
}

void uplink_start(struct uplink *up)
{
	if (up->ops->rx_direct) {
		rx_poll_arm(up);
		return;
	}
	for (unsigned i = 0; i < up->nr_rx; i++)
		rx_arm(&up->rx[i]);
}

void uplink_close(struct uplink *up)
{
	if (!up)
		return;
	up->closing = true;
	for (unsigned i = 0; i < up->nr_rx; i++)
		loop_unwatch(&up->nic->loop, &up->rx[i].h);
	loop_unwatch(&up->nic->loop, &up->rx_poll);
	up->ops->close(up);
	/* Buffers stay until the ring is gone: in-flight I/O may still use them. */
}

void uplink_free(struct uplink *up)
{
	if (!up)
		return;
	free(up->mem);
	free(up->rx);
	free(up->tx);
	free(up);
}
