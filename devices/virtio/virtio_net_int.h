/* SPDX-License-Identifier: MIT */
/* The paravirtual NIC's insides, shared by the device (virtio_net.c) and its I/O thread (net_io.c). */
#ifndef HDVM_VIRTIO_NET_INT_H
#define HDVM_VIRTIO_NET_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "devices/device.h"
#include "devices/holdq.h"
#include "devices/virtio/net_cli.h"
#include "devices/virtio/net_tap.h"
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio_pci.h"

/*
 * Receive goes through bounce buffers: a read on the TAP never has guest
 * memory as its target, so a pause never has to cancel one, and a frame is
 * only copied once a buffer of the right size is known.  Frames larger than
 * a slot (a host MTU above 2000) are dropped and counted.
 */
#define NET_RX_SLOTS		8
#define NET_RX_SLOT_SIZE	2048
#define NET_TX_BATCH		64	/* frames per pass before RX and requests get a turn */
#define NET_TX_IOV_INLINE	20	/* longer chains get a heap iovec */
#define NET_IO_RING_ENTRIES	64

enum net_rx_state { RX_IDLE, RX_FULL };

struct net_rx_slot {
	enum net_rx_state state;
	uint32_t len;
	uint8_t *buf;
};

struct net_io {
	struct io_uring ring;
	bool ring_ready;
	pthread_t thread;
	bool thread_started;
	int ctl_fd;			/* eventfd: "look at the requests" */

	/* requests from other threads, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned stop_req;		/* nested stop() calls outstanding */
	bool exit_req;
	bool stopped;			/* acknowledged: nothing in flight, hands off */
	bool exited;
	int start_err;			/* thread set-up result for realize */
	bool start_done;

	/* the I/O thread's own */
	bool running;
	bool leaving;			/* exit requested: re-arm nothing */
	bool full_pass;			/* look at both queues whatever the kicks said */
	bool kicked[VIRTIO_NET_QUEUES];
	bool rx_notify_on;		/* RX asked the driver for kicks (it starved) */
	bool rx_dead;			/* the TAP failed to read: receive stopped */
	bool rx_polling;		/* a poll for POLLIN is armed on the TAP */
	bool rx_cancelling;		/* stopping: the TAP poll is being cancelled */
	unsigned outstanding;		/* SQEs whose completion has not arrived */
	uint64_t ctl_buf, kick_buf[VIRTIO_NET_QUEUES];
	struct net_rx_slot rx[NET_RX_SLOTS];
	uint8_t fifo[NET_RX_SLOTS];	/* full slots in arrival order */
	unsigned fifo_head, fifo_len;
	uint8_t *rx_mem;
	struct iovec tx_iov[NET_TX_IOV_INLINE];	/* one frame's writev */
	bool tx_more;			/* the batch ran out with TX left: do not sleep */
	struct vq_chain chain;
	atomic_bool tx_retry;		/* a commit made room: look at TX again */
};

/* Output commit (net_output.c): TX frames held per epoch until committed. */
struct net_output {
	pthread_mutex_t lock;		/* the I/O thread takes, the checkpoint driver commits */
	struct holdq q;
	bool blocked;			/* TX waits in the ring for room */
	uint8_t *buf;			/* a frame gathered out of guest memory */
};

struct virtio_net {
	struct device dev;		/* first: vm_destroy frees the container */
	struct virtio_pci vp;
	struct vm *vm;
	char name[32];
	struct net_opts opts;
	uint8_t mac[6];
	uint16_t link_status;
	struct net_tap tap;
	unsigned index;			/* in --net order: the manifest's, a handed-over fd's */
	bool held;			/* --incoming: stopped until the VM runs here */
	struct net_io io;
	struct net_output out;
	bool seccomp;
	struct {
		atomic_uint_fast64_t rx_packets, rx_bytes, rx_dropped;
		atomic_uint_fast64_t tx_packets, tx_bytes, tx_errors;
	} stats;
};

/* net_io.c */
int net_io_init(struct virtio_net *n);
/* Start the I/O thread; it installs its own seccomp filter when n->seccomp. */
int net_io_start_thread(struct virtio_net *n);
/* Quiesce: returns when nothing is in flight and the queues are left alone.  Nests. */
void net_io_stop(struct virtio_net *n);
void net_io_start(struct virtio_net *n);
/* Stop the thread for good, cancel the TAP reads, free everything. */
void net_io_destroy(struct virtio_net *n);
/* Another thread made room in the hold queue: the I/O thread looks at TX again. */
void net_io_tx_retry(struct virtio_net *n);

/* net_output.c */
void net_output_init(struct virtio_net *n);
void net_output_destroy(struct virtio_net *n);
/*
 * The I/O thread offers a popped TX chain: 0 not holding (send it),
 * 1 held or dropped as too long (complete it), -1 no room (put it back).
 */
int net_output_take(struct virtio_net *n, const struct vq_chain *c);
/* The device behind dev, or NULL if it is not a virtio-net one. */
struct virtio_net *virtio_net_of(struct device *dev);

#endif
