/* SPDX-License-Identifier: MIT */
/*
 * The NIC's uplink port: a TAP device hdnic creates (uplink_tap.c) or an
 * existing interface reached through AF_PACKET (uplink_packet.c).  Both are
 * plain read/write fds, so frame I/O is common: a pool of receive buffers
 * with a read always outstanding on io_uring, and a pool of transmit
 * buffers whose writes complete asynchronously.
 */
#ifndef HDNIC_UPLINK_H
#define HDNIC_UPLINK_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/hdnic/loop.h"

struct nic;
struct uplink;

struct uplink_ops {
	const char *kind;
	int (*open)(struct uplink *up);		/* sets up->fd */
	void (*close)(struct uplink *up);
	/*
	 * Transmit with a direct write(2) instead of an io_uring write: io_uring
	 * hands writes to an fd without FMODE_NOWAIT (a TAP on Linux 6.1) to its
	 * worker threads, which complete them out of order.  Only for an fd whose
	 * write never blocks (a TAP: its sndbuf is unlimited).
	 */
	bool tx_direct;
	/*
	 * Receive with read(2)s in the loop after one io_uring poll, instead of
	 * many io_uring reads armed at once: on an fd without FMODE_NOWAIT those
	 * run on worker threads too, and frames reached the switch reordered.
	 */
	bool rx_direct;
};

struct uplink_buf {
	struct loop_handler h;
	struct uplink *up;
	uint8_t *data;
	int next_free;
};

struct uplink_stats {
	uint64_t rx_packets, rx_bytes, rx_errors, rx_drops;
	uint64_t tx_packets, tx_bytes, tx_errors, tx_drops;
};

struct uplink {
	const struct uplink_ops *ops;
	char ifname[IFNAMSIZ];
	int fd;
	struct nic *nic;
	uint8_t *mem;
	struct uplink_buf *rx, *tx;
	unsigned nr_rx, nr_tx;
	int tx_free;
	unsigned vnet_hdr_len;	/* bytes of virtio_net_hdr before each frame, or 0 */
	unsigned rx_buf_size;	/* the backend's read size (0: UPLINK_BUF_SIZE) */
	bool closing;
	/*
	 * Receive flow control: nothing can be delivered, so a read that
	 * completes is not re-armed; its buffer waits on rx_parked (a stack
	 * through next_free) until uplink_rx_pause(up, false).
	 */
	bool rx_paused;
	int rx_parked;
	struct loop_handler rx_poll;	/* rx_direct: the poll armed on fd */
	bool rx_polling;
	unsigned rx_pause_budget;	/* rx_direct: reads left while paused */
	uint64_t rx_pauses;
	struct uplink_stats stats;
};

extern const struct uplink_ops uplink_tap_ops;
extern const struct uplink_ops uplink_packet_ops;

/* spec is "tap:IFNAME" or "iface:IFNAME"; errors are reported. */
int uplink_open(struct nic *nic, const char *spec, struct uplink **out);
/* The same with a backend chosen by the caller (tests and fuzzers use their own). */
int uplink_create(struct nic *nic, const struct uplink_ops *ops, const char *ifname,
		  struct uplink **out);
void uplink_start(struct uplink *up);
void uplink_tx(struct uplink *up, const uint8_t *frame, uint32_t len);
/* Stop re-arming reads (pause), or re-arm every parked one. */
void uplink_rx_pause(struct uplink *up, bool pause);
/* A transmit buffer is free: uplink_tx() would not drop. */
static inline bool uplink_tx_room(const struct uplink *up)
{
	return up->tx_free >= 0;
}
/* Stop I/O and close the fd; buffers live until uplink_free() (after the ring). */
void uplink_close(struct uplink *up);
void uplink_free(struct uplink *up);

/* The virtio-net header the backends ask the kernel for (uplink_vnet.c). */
#define UPLINK_VNET_HDR_LEN	10	/* struct virtio_net_hdr */
/* The biggest read with a virtio-net header: a GSO super-frame (64 KiB IP). */
#define UPLINK_GSO_BUF_SIZE	(UPLINK_VNET_HDR_LEN + 14 + 4 + 65535)
typedef void (*uplink_emit_fn)(void *ctx, uint8_t *frame, uint32_t len);
/*
 * A received frame and its header: a partial checksum is completed in
 * place, a GSO super-frame cut into wire frames; each goes to emit.  0, or
 * -EINVAL (a header that does not fit the frame), -EOPNOTSUPP (a GSO type
 * hdnic does not cut).
 */
int uplink_vnet_rx(const void *hdr, uint8_t *frame, uint32_t len, uplink_emit_fn emit,
		   void *ctx);
/* The header for a frame hdnic transmits (no offload asked). */
void uplink_vnet_tx(void *hdr);

/* Shared by the backends: set IFF_UP (and IFF_PROMISC) on ifname. */
int uplink_if_up(const char *ifname, bool promisc);

#endif
