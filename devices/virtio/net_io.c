// SPDX-License-Identifier: MIT
/*
 * The paravirtual NIC's I/O thread: one io_uring over the TAP, the two queue
 * kick eventfds and a control eventfd.
 *
 *  TX: kick -> pop chains -> one direct writev(2) per frame (our zeroed
 *      header, then the guest's buffers straight from guest RAM), in ring
 *      order -> used.
 *  RX: reads into bounce slots -> pop an RX chain -> copy -> used.
 *
 * Other threads never touch the queues: they ask the thread to stop
 * (net_io_stop), which it acknowledges between two passes (no TAP write is
 * ever in flight then) once everything is published; they change
 * registers; they let it run again (net_io_start), and it re-reads them.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/virtio_net_int.h"
#include "vmm/seccomp.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#ifdef __SANITIZE_ADDRESS__
#define NET_IO_STACK	(512 * 1024)
#else
#define NET_IO_STACK	(64 * 1024)	/* the loop keeps its buffers on the heap */
#endif

enum net_op { OP_CTL, OP_KICK, OP_RX, OP_CANCEL };

static uint64_t user_data(enum net_op op, unsigned idx)
{
	return (uint64_t)op << 32 | idx;
}

static const struct virtio_net_hdr_v1 tx_hdr;	/* no offloads: all zero */

/* ---- submission ---- */

static struct io_uring_sqe *get_sqe(struct net_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe) {
		/* never with the slot counts above, but a full SQ is not an error */
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	if (sqe)
		io->outstanding++;
	return sqe;
}

static bool arm_read(struct net_io *io, int fd, void *buf, unsigned len, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe(io);

	if (!sqe)
		return false;
	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
	return true;
}

static int idle_rx_slot(const struct net_io *io)
{
	for (unsigned s = 0; s < NET_RX_SLOTS; s++)
		if (io->rx[s].state == RX_IDLE)
			return s;
	return -EBUSY;
}

/*
 * Receive: one poll on the TAP, armed while a bounce slot is free; the
 * frames are then read here, one read(2) after another, so they reach the
 * ring in the order the TAP queued them.  Not io_uring reads: a TAP has no
 * FMODE_NOWAIT on Linux 6.1, so io_uring ran the reads armed at once on
 * worker threads, which completed them out of order.
 */
static void arm_rx(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	struct io_uring_sqe *sqe;

	/* only a running device reads the TAP: a stopped one may be handing it over */
	if (io->rx_dead || io->leaving || !io->running || io->rx_polling ||
	    idle_rx_slot(io) < 0)
		return;
	sqe = get_sqe(io);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, n->tap.fd, POLLIN);
	io_uring_sqe_set_data64(sqe, user_data(OP_RX, 0));
	io->rx_polling = true;
}

/* ---- transmit ---- */

/* Our header, then the chain minus the guest's header; a long chain gets a heap iovec. */
static unsigned build_tx_iov(struct net_io *io, const struct vq_chain *c, struct iovec **out)
{
	struct iovec *iov = c->nr + 1 <= NET_TX_IOV_INLINE ? io->tx_iov
						   : xzalloc((c->nr + 1) * sizeof(struct iovec));
	uint32_t skip = NET_TAP_HDR_LEN;
	unsigned n = 0;

	iov[n++] = (struct iovec){ (void *)&tx_hdr, NET_TAP_HDR_LEN };
	for (unsigned i = 0; i < c->nr; i++) {
		uint32_t off = MIN(skip, c->iov[i].len);

		skip -= off;
		if (off < c->iov[i].len)
			iov[n++] = (struct iovec){ c->iov[i].base + off, c->iov[i].len - off };
	}
	*out = iov;
	return n;
}

/*
 * One frame to the TAP with a direct writev(2), straight from guest memory,
 * so frames leave in the order the guest queued them.  Not through io_uring:
 * a TAP has no FMODE_NOWAIT on Linux 6.1, so io_uring hands its writes to
 * worker threads, which complete them out of order (hdnic's uplink showed it
 * in tools/kvmlab: 9acce3e).  A TAP write does not block (its sndbuf is
 * unlimited), so neither does the I/O thread.
 */
static void write_tx(struct virtio_net *n, const struct vq_chain *c)
{
	struct net_io *io = &n->io;
	struct iovec *iov;
	unsigned nr_iov;
	ssize_t w;

	if (c->total < NET_TAP_HDR_LEN) {
		/* no room for even the header: drop it, the buffers go back */
		atomic_fetch_add(&n->stats.tx_errors, 1);
		return;
	}
	nr_iov = build_tx_iov(io, c, &iov);
	do
		w = writev(n->tap.fd, iov, (int)nr_iov);
	while (w < 0 && errno == EINTR);
	if (iov != io->tx_iov)
		free(iov);
	if (w < 0) {
		atomic_fetch_add(&n->stats.tx_errors, 1);
		return;
	}
	atomic_fetch_add(&n->stats.tx_packets, 1);
	atomic_fetch_add(&n->stats.tx_bytes, c->total - NET_TAP_HDR_LEN);
}

static void publish(struct virtio_net *n, unsigned qi)
{
	struct vq *q = &n->vp.vqs[qi];

	vq_publish(q);
	if (vq_should_interrupt(q))
		virtio_pci_queue_irq(&n->vp, qi);
}

/*
 * At most NET_TX_BATCH frames a pass: a guest that keeps its TX ring full
 * must not keep the thread from RX and from a stop request (tx_more makes
 * the loop come straight back instead of sleeping).
 */
static void process_tx(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	struct vq *q = &n->vp.vqs[VIRTIO_NET_TXQ];
	unsigned budget = NET_TX_BATCH;
	bool pushed = false;
	int r;

	io->tx_more = false;
	if (!q->attached || q->broken)
		return;
	vq_set_notify(q, false);
	for (;;) {
		while (budget) {
			r = vq_pop(q, &io->chain);
			if (r < 0)
				goto broken;
			if (!r)
				break;
			r = net_output_take(n, &io->chain);
			if (r < 0) {
				/* hold queue full: the frame waits, kicks stay off until a commit */
				vq_unpop(q);
				goto out;
			}
			if (!r)
				write_tx(n, &io->chain);
			vq_push(q, io->chain.head, 0);	/* sent, held or dropped: the guest has it back */
			pushed = true;
			budget--;
		}
		if (!budget) {
			io->tx_more = true;	/* kicks stay off: we come back anyway */
			break;
		}
		vq_set_notify(q, true);
		r = vq_pending(q);
		if (r < 0)
			goto broken;
		if (!r)
			break;
		vq_set_notify(q, false);
	}
out:
	if (pushed)
		publish(n, VIRTIO_NET_TXQ);
	return;
broken:
	if (pushed)
		publish(n, VIRTIO_NET_TXQ);
	virtio_pci_queue_broken(&n->vp, VIRTIO_NET_TXQ, r);
}

/* ---- receive ---- */

static void rx_requeue_front(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	unsigned s = io->fifo[io->fifo_head];

	io->fifo_head = (io->fifo_head + 1) % NET_RX_SLOTS;
	io->fifo_len--;
	io->rx[s].state = RX_IDLE;
	arm_rx(n);
}

static void rx_drop_all(struct virtio_net *n)
{
	while (n->io.fifo_len) {
		atomic_fetch_add(&n->stats.rx_dropped, 1);
		rx_requeue_front(n);
	}
}

static void copy_to_chain(const struct vq_chain *c, const uint8_t *data, uint32_t len)
{
	for (unsigned i = 0; i < c->nr && len; i++) {
		uint32_t k = MIN(len, c->iov[i].len);

		memcpy(c->iov[i].base, data, k);
		data += k;
		len -= k;
	}
}

static void deliver_rx(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	struct vq *q = &n->vp.vqs[VIRTIO_NET_RXQ];
	bool pushed = false;
	int r = 0;

	while (io->fifo_len) {
		struct net_rx_slot *slot = &io->rx[io->fifo[io->fifo_head]];
		struct virtio_net_hdr_v1 *hdr = (struct virtio_net_hdr_v1 *)slot->buf;

		if (!q->attached || q->broken) {
			rx_drop_all(n);
			break;
		}
		r = vq_pop(q, &io->chain);
		if (r < 0)
			break;
		if (!r) {
			/* starved: ask for a kick, then make sure none slipped by */
			vq_set_notify(q, true);
			io->rx_notify_on = true;
			r = vq_pending(q);
			if (r <= 0)
				break;
			continue;
		}
		if (io->rx_notify_on) {
			vq_set_notify(q, false);
			io->rx_notify_on = false;
		}
		if (io->chain.total < slot->len) {
			/* the driver's buffer is too small for this frame: keep the buffer */
			vq_unpop(q);
			atomic_fetch_add(&n->stats.rx_dropped, 1);
			rx_requeue_front(n);
			continue;
		}
		/* no offloads were negotiated: nothing but num_buffers in the header */
		memset(hdr, 0, sizeof(*hdr));
		hdr->num_buffers = 1;
		copy_to_chain(&io->chain, slot->buf, slot->len);
		vq_chain_written(q, &io->chain, slot->len);
		vq_push(q, io->chain.head, slot->len);
		pushed = true;
		atomic_fetch_add(&n->stats.rx_packets, 1);
		atomic_fetch_add(&n->stats.rx_bytes, slot->len - NET_TAP_HDR_LEN);
		rx_requeue_front(n);
	}
	if (pushed)
		publish(n, VIRTIO_NET_RXQ);
	if (r < 0) {
		virtio_pci_queue_broken(&n->vp, VIRTIO_NET_RXQ, r);
		rx_drop_all(n);
	}
}

/* Is a frame waiting?  The TAP fd may be a blocking one (and shared, after a handover). */
static bool tap_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void rx_stop_dead(struct virtio_net *n, int err)
{
	/* the TAP is gone or broken: retrying would spin */
	if (!n->io.rx_dead)
		pr_err("%s: reading TAP %s failed (%s): receive stopped", n->name, n->tap.name,
		       err ? strerror(-err) : "end of file");
	n->io.rx_dead = true;
}

/* The poll fired: read what is there, in order, while a bounce slot is free. */
static void rx_done(struct virtio_net *n, int res)
{
	struct net_io *io = &n->io;
	int s;

	io->rx_polling = false;
	if (res == -ECANCELED || io->leaving || !io->running)
		return;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		rx_stop_dead(n, res);
		return;
	}
	while ((s = idle_rx_slot(io)) >= 0 && tap_readable(n->tap.fd)) {
		ssize_t r = read(n->tap.fd, io->rx[s].buf, NET_RX_SLOT_SIZE);

		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			break;
		if (r <= 0) {
			rx_stop_dead(n, r < 0 ? -errno : 0);
			return;
		}
		if (r > NET_RX_SLOT_SIZE || r < NET_TAP_HDR_LEN + 14) {
			/* larger than a slot (the kernel reports the full length) or no Ethernet header */
			atomic_fetch_add(&n->stats.rx_dropped, 1);
			continue;
		}
		io->rx[s].state = RX_FULL;
		io->rx[s].len = (uint32_t)r;
		io->fifo[(io->fifo_head + io->fifo_len) % NET_RX_SLOTS] = (uint8_t)s;
		io->fifo_len++;
	}
	arm_rx(n);
}

/* ---- the loop ---- */

static void handle_cqe(struct virtio_net *n, uint64_t ud, int res)
{
	struct net_io *io = &n->io;
	unsigned idx = (uint32_t)ud;

	io->outstanding--;
	switch ((enum net_op)(ud >> 32)) {
	case OP_CTL:
		if (res != -ECANCELED && !io->leaving)
			arm_read(io, io->ctl_fd, &io->ctl_buf, 8, user_data(OP_CTL, 0));
		break;
	case OP_KICK:
		if (idx >= VIRTIO_NET_QUEUES || res == -ECANCELED || io->leaving)
			break;
		io->kicked[idx] = true;
		arm_read(io, n->vp.kick_fd[idx], &io->kick_buf[idx], 8, user_data(OP_KICK, idx));
		break;
	case OP_RX:
		rx_done(n, res);
		break;
	case OP_CANCEL:
		break;
	}
}

/*
 * Stopping: the poll armed on the TAP is cancelled, so what arrives from
 * now on waits in the TAP's kernel queue for whoever runs next -- this
 * device when it resumes, or the destination of a migration on this host,
 * which holds the same TAP (the fd was handed over).  Frames read already
 * keep their bounce slots.
 */
static void rx_cancel(struct net_io *io)
{
	struct io_uring_sqe *sqe = get_sqe(io);

	if (sqe) {
		io_uring_prep_cancel64(sqe, user_data(OP_RX, 0), 0);
		io_uring_sqe_set_data64(sqe, user_data(OP_CANCEL, 0));
	}
	io->rx_cancelling = true;
}

/* Pick up requests; false when the thread should leave. */
static bool sync_requests(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	bool leave = false;

	pthread_mutex_lock(&io->lock);
	if (io->exit_req || io->stop_req) {
		io->running = false;
		io->leaving = io->exit_req;
		if (!io->leaving && !io->rx_cancelling && io->rx_polling)
			rx_cancel(io);
		if (!io->stopped && (io->leaving || !io->rx_polling)) {
			io->stopped = true;
			pthread_cond_broadcast(&io->cond);
		}
		leave = io->exit_req;
	} else if (!io->running) {
		io->running = true;
		io->stopped = false;
		io->rx_cancelling = false;
		io->full_pass = true;		/* registers may have changed under us */
		io->rx_notify_on = true;
		arm_rx(n);
	}
	pthread_mutex_unlock(&io->lock);
	return !leave;
}

static void do_work(struct virtio_net *n)
{
	struct net_io *io = &n->io;

	if (!virtio_pci_live(&n->vp)) {
		io->tx_more = false;
		rx_drop_all(n);		/* a NIC that is not up drops what arrives */
	} else {
		if (atomic_exchange(&io->tx_retry, false))
			io->kicked[VIRTIO_NET_TXQ] = true;
		if (io->full_pass || io->kicked[VIRTIO_NET_TXQ] || io->tx_more)
			process_tx(n);
		if (io->fifo_len)
			deliver_rx(n);
	}
	io->full_pass = false;
	io->kicked[VIRTIO_NET_TXQ] = io->kicked[VIRTIO_NET_RXQ] = false;
}

static void reap(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&io->ring, cqe);
		handle_cqe(n, ud, res);
	}
}

static void cancel_all(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	struct io_uring_sqe *sqe = get_sqe(io);
	uint64_t deadline = now_ns() + 2000000000ull;

	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, user_data(OP_CANCEL, 0));
	}
	/* bounded: a read the kernel cannot cancel is dropped with the ring */
	while (io->outstanding && now_ns() < deadline) {
		struct __kernel_timespec ts = { .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;

		io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
		reap(n);
	}
}

static void report_start(struct net_io *io, int err)
{
	pthread_mutex_lock(&io->lock);
	io->start_err = err;
	io->start_done = true;
	pthread_cond_broadcast(&io->cond);
	pthread_mutex_unlock(&io->lock);
}

static void *net_io_thread(void *arg)
{
	struct virtio_net *n = arg;
	struct net_io *io = &n->io;
	char name[16];

	snprintf(name, sizeof(name), "%.12s-io", n->dev.id);	/* ps -L, tests */
	pthread_setname_np(pthread_self(), name);
	if (n->seccomp && seccomp_install(SECCOMP_ROLE_IO) < 0) {
		report_start(io, -EPERM);
		return NULL;
	}
	report_start(io, 0);
	arm_read(io, io->ctl_fd, &io->ctl_buf, 8, user_data(OP_CTL, 0));
	for (unsigned q = 0; q < VIRTIO_NET_QUEUES; q++)
		arm_read(io, n->vp.kick_fd[q], &io->kick_buf[q], 8, user_data(OP_KICK, q));
	/* the TAP is read from the first time the device runs (sync_requests) */
	while (sync_requests(n)) {
		int ret;

		if (io->running)
			do_work(n);
		/* a TX batch left frames behind: look again without sleeping */
		ret = io_uring_submit_and_wait(&io->ring, io->running && io->tx_more ? 0 : 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			pr_err("%s: io_uring: %s; the device stops", n->name, strerror(-ret));
			break;
		}
		reap(n);
	}
	cancel_all(n);
	pthread_mutex_lock(&io->lock);
	io->exited = true;
	io->stopped = true;
	pthread_cond_broadcast(&io->cond);
	pthread_mutex_unlock(&io->lock);
	return NULL;
}

/* ---- the other threads' side ---- */

static void poke(struct net_io *io)
{
	uint64_t one = 1;

	if (io->ctl_fd >= 0 && write(io->ctl_fd, &one, sizeof(one)) < 0)
		pr_debug("net: control eventfd: %s", strerror(errno));
}

void net_io_tx_retry(struct virtio_net *n)
{
	struct net_io *io = &n->io;

	atomic_store(&io->tx_retry, true);
	pthread_mutex_lock(&io->lock);
	if (io->thread_started)
		poke(io);
	pthread_mutex_unlock(&io->lock);
}

void net_io_stop(struct virtio_net *n)
{
	struct net_io *io = &n->io;

	pthread_mutex_lock(&io->lock);
	io->stop_req++;
	if (io->thread_started) {
		poke(io);
		while (!io->stopped && !io->exited)
			pthread_cond_wait(&io->cond, &io->lock);
	}
	pthread_mutex_unlock(&io->lock);
}

void net_io_start(struct virtio_net *n)
{
	struct net_io *io = &n->io;

	pthread_mutex_lock(&io->lock);
	if (io->stop_req && !--io->stop_req && io->thread_started)
		poke(io);
	pthread_mutex_unlock(&io->lock);
}

int net_io_init(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	int ret;

	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->cond, NULL);
	io->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io->ctl_fd < 0) {
		ret = -errno;
		pr_err("%s: eventfd: %s", n->name, strerror(-ret));
		return ret;
	}
	ret = io_uring_queue_init(NET_IO_RING_ENTRIES, &io->ring, 0);
	if (ret < 0) {
		pr_err("%s: io_uring_queue_init: %s", n->name, strerror(-ret));
		return ret;
	}
	io->ring_ready = true;
	io->rx_mem = xzalloc(NET_RX_SLOTS * NET_RX_SLOT_SIZE);
	for (unsigned s = 0; s < NET_RX_SLOTS; s++)
		io->rx[s].buf = io->rx_mem + s * NET_RX_SLOT_SIZE;
	return 0;
}

int net_io_start_thread(struct virtio_net *n)
{
	struct net_io *io = &n->io;
	pthread_attr_t attr;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, NET_IO_STACK);
	ret = pthread_create(&io->thread, &attr, net_io_thread, n);
	pthread_attr_destroy(&attr);
	if (ret) {
		pr_err("%s: starting the I/O thread: %s", n->name, strerror(ret));
		return -ret;
	}
	pthread_mutex_lock(&io->lock);
	while (!io->start_done)
		pthread_cond_wait(&io->cond, &io->lock);
	ret = io->start_err;
	io->thread_started = !ret;
	pthread_mutex_unlock(&io->lock);
	if (ret) {
		pthread_join(io->thread, NULL);
		pr_err("%s: the I/O thread could not install its seccomp filter: %s", n->name,
		       strerror(-ret));
		return ret;
	}
	return 0;
}

void net_io_destroy(struct virtio_net *n)
{
	struct net_io *io = &n->io;

	if (io->thread_started) {
		pthread_mutex_lock(&io->lock);
		io->exit_req = true;
		poke(io);
		pthread_mutex_unlock(&io->lock);
		pthread_join(io->thread, NULL);
		io->thread_started = false;
	}
	if (io->ring_ready)
		io_uring_queue_exit(&io->ring);
	io->ring_ready = false;
	if (io->ctl_fd >= 0)
		close(io->ctl_fd);
	io->ctl_fd = -1;
	free(io->rx_mem);
	io->rx_mem = NULL;
}
