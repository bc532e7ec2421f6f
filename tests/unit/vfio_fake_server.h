/* SPDX-License-Identifier: MIT */
/*
 * A fake vfio-user server for the client unit tests: a thread on one end of a
 * socketpair (or a listening socket) that receives the client's messages,
 * dispatches them to the device model (vfio_fake_device.h: BAR0 with a
 * trapped page and an mmap-able sparse page, BAR1 trapped memory, config
 * space, MSI-X, two doorbell ioeventfds, a migration stream, DMA through the
 * client) and can be told to misbehave on one command.  This file is the
 * server: its state, the wire, sabotage, the thread and its lifecycle.
 * Header-only because each unit test is a single source file; include it
 * after <cmocka.h>.
 */
#ifndef HDVM_TEST_VFIO_FAKE_SERVER_H
#define HDVM_TEST_VFIO_FAKE_SERVER_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_user_proto.h"
#include "vmm/util.h"

#define BAR0_SIZE	8192
#define BAR1_SIZE	65536
#define CFG_SIZE	256
#define MIG_BLOB	3000
#define MAX_REC		32
#define FAKE_DMA_MAX	4	/* DMA requests a test scripts */
#define FAKE_DMA_DOORBELL 0xf00	/* a write to BAR1 here runs the script first */

enum version_mode {
	V_GOOD, V_BAD_MAJOR, V_HIGH_MINOR, V_EXTRA_KEYS, V_REFERENCE, V_PGSIZES_NOT_SUBSET,
	V_MALFORMED, V_UNTERMINATED, V_NO_JSON,
};

enum sabotage {
	S_NONE, S_WRONG_ID, S_WRONG_CMD, S_NOT_REPLY, S_OVERSIZE, S_DISCONNECT_MID,
	S_CLOSE, S_STALL, S_ERROR, S_EXTRA_FDS, S_BAD_IOFD_INDEX,
	S_DELAY,	/* once: sleep delay_ms (SIGSTOPped), then answer as usual */
};

static atomic_uint fake_clock;

struct irq_msg {
	uint32_t flags, start, count;
	unsigned nfds;
	bool all_eventfds;
};

/*
 * One DMA the device does through the client (DMA_READ / DMA_WRITE), as
 * scripted by a test, and the client's answer.  count is what the request
 * says; len bytes of data follow it (a DMA_WRITE's; 0 for a read unless a
 * test sends junk).  cmd may be any command, to see how the client treats it.
 */
struct fake_dma {
	uint16_t cmd;
	uint64_t addr;
	uint64_t count;
	uint32_t len;
	uint8_t data[64];
	/* the answer */
	bool answered;
	uint16_t id, ans_cmd;
	uint32_t flags, error_no;
	uint32_t ans_len;
	uint8_t ans[16 + 64];
};

struct fake_srv {
	int sock;
	pthread_t thr;
	/* behaviour */
	enum version_mode version;
	uint32_t max_msg_fds, max_xfer;
	uint16_t sabotage_cmd;
	enum sabotage sabotage;
	uint32_t error_no;
	unsigned delay_ms;
	unsigned serve;			/* srv_listen: clients served one after another (0: 1) */
	unsigned iofd_stride;		/* 40 (spec), 48 (libvfio-user) or junk */
	bool mig_pad;			/* MIG_DATA_READ replies as long as asked (libvfio-user) */
	/* device model */
	uint8_t bar0_page0[4096];
	int bar0_fd;			/* memfd: the whole BAR0, page 1 is mappable */
	uint8_t bar1[BAR1_SIZE];
	uint8_t cfg[CFG_SIZE];
	int doorbell_efd;
	/*
	 * The shadow memfd h_io_fds48 sends.  Made with the server, not per
	 * request: a test counting the process's open fds around a request must
	 * not see the server thread's own copy come and go (it raced the count).
	 */
	int shadow_fd;
	uint8_t mig_out[MIG_BLOB];
	size_t mig_out_pos;
	uint8_t mig_in[MIG_BLOB * 2];
	size_t mig_in_len;
	uint32_t mig_state;
	uint64_t mig_flags;		/* FEATURE_MIGRATION reply */
	bool no_migration;		/* FEATURE_MIGRATION unknown (ENOTSUP) */
	uint32_t mig_refuse;		/* a SET to this state fails ... */
	uint32_t mig_refuse_from;	/* ... (only from this one, if set) ... */
	uint32_t mig_refuse_errno;	/* ... with this errno */
	bool mig_refuse_to_error;	/* ... and leaves the device in ERROR */
	/*
	 * PRE_COPY (with VFIO_MIGRATION_PRE_COPY in mig_flags): the session
	 * gives the first pre_bytes of mig_out while running (0-byte reads
	 * after, as hdnic), PRE_COPY_P2P -> STOP_COPY continues with the rest.
	 */
	uint32_t pre_bytes;
	unsigned precopy_infos;		/* PRECOPY_INFO GETs answered */
	/* DMA dirty log: pages the "device" wrote, reported (and cleared) by REPORT */
	bool logging;
	uint64_t log_page_size;
	uint64_t log_ranges[8][2];
	unsigned nr_log_ranges;
	uint64_t dirty[64];
	unsigned nr_dirty;
	unsigned log_reports;
	/* hdnic's output commit (vendor feature): every SET, and a device's epoch rules */
	bool no_output_commit;
	struct hdnic_output_commit oc[MAX_REC];
	unsigned nr_oc;
	bool oc_holding;
	uint64_t oc_epoch, oc_committed;
	/* what the client did */
	uint32_t mig_seq[MAX_REC];	/* every MIG_DEVICE_STATE SET, refused ones too */
	unsigned mig_when[MAX_REC];	/* ... and when, on a clock all fake servers share */
	unsigned nr_mig_seq;
	unsigned mig_gets;
	char client_json[512];
	uint16_t client_major, client_minor;
	unsigned region_info_calls;
	uint32_t region_info_argsz[4];
	bool dma_fd_is_memfd;
	uint64_t dma_magic;
	uint32_t dma_flags;
	uint64_t dma_addr, dma_size, dma_offset;
	struct { uint64_t addr, size, offset; } dmas[MAX_REC];	/* every DMA_MAP */
	unsigned nr_dmas;
	unsigned dma_unmaps;
	struct irq_msg irq[MAX_REC];
	unsigned nr_irq;
	unsigned rw_msgs;
	uint32_t rw_max_count;
	unsigned resets;
	/* DMA through the client: run on a BAR1 doorbell write, or sent by the test */
	struct fake_dma dma[FAKE_DMA_MAX];
	unsigned nr_dma;
	atomic_uint dma_answers;
	struct fake_dma not_reply;	/* S_NOT_REPLY: the command sent, and its answer */
};

/* ---- wire helpers (server side, blocking) ---- */

static int srv_recv(struct fake_srv *s, struct vfio_user_header *h, uint8_t **payload,
		    int *fds, unsigned *nfds)
{
	union { char b[CMSG_SPACE(32 * sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov = { h, sizeof(*h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	ssize_t n = recvmsg(s->sock, &mh, MSG_WAITALL);
	size_t len;

	*nfds = 0;
	if (n != sizeof(*h))
		return -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
		*nfds += k;
	}
	len = h->msg_size - sizeof(*h);
	*payload = calloc(1, len + 1);
	if (len && recv(s->sock, *payload, len, MSG_WAITALL) != (ssize_t)len)
		return -1;
	return 0;
}

static void srv_send_raw(struct fake_srv *s, const struct vfio_user_header *h,
			 const void *payload, size_t len, const int *fds, unsigned nfds)
{
	union { char b[CMSG_SPACE(32 * sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov[2] = { { (void *)h, sizeof(*h) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	sendmsg(s->sock, &mh, MSG_NOSIGNAL);
}

static void srv_reply(struct fake_srv *s, const struct vfio_user_header *req,
		      const void *payload, size_t len, const int *fds, unsigned nfds)
{
	struct vfio_user_header h = {
		.msg_id = req->msg_id, .command = req->command,
		.msg_size = sizeof(h) + len, .flags = VFIO_USER_F_TYPE_REPLY,
	};

	srv_send_raw(s, &h, payload, len, fds, nfds);
}

static void srv_error(struct fake_srv *s, const struct vfio_user_header *req, uint32_t err)
{
	struct vfio_user_header h = {
		.msg_id = req->msg_id, .command = req->command, .msg_size = sizeof(h),
		.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, .error_no = err,
	};

	srv_send_raw(s, &h, NULL, 0, NULL, 0);
}

static bool fd_link_starts(int fd, const char *prefix)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strncmp(link, prefix, strlen(prefix));
}

/* How many fds this process has open: leak checks around a call. */
static inline int open_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#include "vfio_fake_device.h"

/* Misbehave on the chosen command; true if the request was consumed. */
static bool sabotage(struct fake_srv *s, const struct vfio_user_header *req, bool *stop)
{
	struct vfio_user_header h = {
		.msg_id = req->msg_id, .command = req->command,
		.msg_size = sizeof(h), .flags = VFIO_USER_F_TYPE_REPLY,
	};
	uint8_t junk[64] = { 0 };
	int efd;

	if (req->command != s->sabotage_cmd)
		return false;
	switch (s->sabotage) {
	case S_WRONG_ID:
		h.msg_id++;
		srv_send_raw(s, &h, NULL, 0, NULL, 0);
		return true;
	case S_WRONG_CMD:
		h.command++;
		srv_send_raw(s, &h, NULL, 0, NULL, 0);
		return true;
	case S_NOT_REPLY:
		/* a command of ours where the reply is due: the client answers it, then ours */
		s->not_reply.cmd = req->command;
		fake_dma_request(s, &s->not_reply, 0x7000);
		fake_dma_take_answer(s, &s->not_reply);
		return false;
	case S_OVERSIZE:
		h.msg_size = sizeof(h) + (64u << 20);
		srv_send_raw(s, &h, NULL, 0, NULL, 0);
		return true;
	case S_DISCONNECT_MID:
		/* a REGION_READ reply of 4 bytes is 20 bytes of payload: send 10 */
		h.msg_size = sizeof(h) + sizeof(struct vfio_user_region_access) + 4;
		srv_send_raw(s, &h, junk, 10, NULL, 0);
		*stop = true;
		return true;
	case S_CLOSE:
		*stop = true;
		return true;
	case S_STALL: {
		char c;

		while (recv(s->sock, &c, 1, 0) > 0)
			;	/* until the client gives up and shuts the socket */
		*stop = true;
		return true;
	}
	case S_ERROR:
		h.flags |= VFIO_USER_F_ERROR;
		h.error_no = s->error_no;
		srv_send_raw(s, &h, NULL, 0, NULL, 0);
		return true;
	case S_DELAY:
		usleep(s->delay_ms * 1000);
		s->sabotage = S_NONE;
		return false;
	case S_EXTRA_FDS:
		efd = eventfd(0, EFD_CLOEXEC);
		h.msg_size = sizeof(h) + sizeof(struct vfio_irq_info);
		{
			struct vfio_irq_info r = { .argsz = sizeof(r), .index = 2, .count = 8 };

			srv_send_raw(s, &h, &r, sizeof(r), &efd, 1);
		}
		close(efd);
		return true;
	default:
		return false;
	}
}

static void *srv_main(void *arg)
{
	struct fake_srv *s = arg;
	bool stop = false;

	while (!stop) {
		struct vfio_user_header h;
		uint8_t *p = NULL;
		int fds[32];
		unsigned nfds;

		if (srv_recv(s, &h, &p, fds, &nfds)) {
			free(p);
			break;
		}
		if ((h.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
			fake_dma_answer(s, &h, p);	/* to a request the test sent */
		} else if (sabotage(s, &h, &stop)) {
			/* nothing else */
		} else if (h.command == VFIO_USER_VERSION) {
			h_version(s, &h, p);
		} else if (h.command == VFIO_USER_DEVICE_GET_INFO) {
			struct { uint32_t argsz, flags, nr, ni; } r = {
				16, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
				VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_IRQS };

			srv_reply(s, &h, &r, sizeof(r), NULL, 0);
		} else if (h.command == VFIO_USER_DEVICE_GET_REGION_INFO) {
			h_region_info(s, &h, p);
		} else if (h.command == VFIO_USER_DEVICE_GET_REGION_IO_FDS) {
			h_io_fds(s, &h, p);
		} else if (h.command == VFIO_USER_DEVICE_GET_IRQ_INFO) {
			struct vfio_irq_info r;

			memcpy(&r, p, sizeof(r));
			r.count = r.index == VFIO_PCI_MSIX_IRQ_INDEX ? 8 : 1;
			r.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
			srv_reply(s, &h, &r, sizeof(r), NULL, 0);
		} else if (h.command == VFIO_USER_DEVICE_SET_IRQS) {
			h_set_irqs(s, &h, p, fds, nfds);
		} else if (h.command == VFIO_USER_REGION_READ ||
			   h.command == VFIO_USER_REGION_WRITE) {
			h_region_rw(s, &h, p);
		} else if (h.command == VFIO_USER_DMA_MAP) {
			h_dma_map(s, &h, p, fds, nfds);
		} else if (h.command == VFIO_USER_DMA_UNMAP) {
			s->dma_unmaps++;
			srv_reply(s, &h, p, h.msg_size - sizeof(h), NULL, 0);
		} else if (h.command == VFIO_USER_DEVICE_RESET) {
			s->resets++;
			s->mig_state = VFIO_DEVICE_STATE_RUNNING;
			srv_reply(s, &h, NULL, 0, NULL, 0);
		} else if (h.command == VFIO_USER_DEVICE_FEATURE) {
			h_feature(s, &h, p, h.msg_size - sizeof(h));
		} else if (h.command == VFIO_USER_MIG_DATA_READ) {
			h_mig_read(s, &h, p);
		} else if (h.command == VFIO_USER_MIG_DATA_WRITE) {
			h_mig_write(s, &h, p);
		} else {
			srv_error(s, &h, ENOSYS);
		}
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		free(p);
	}
	close(s->sock);
	return NULL;
}

static struct fake_srv *srv_new(void)
{
	struct fake_srv *s = calloc(1, sizeof(*s));

	s->version = V_GOOD;
	s->max_msg_fds = 8;
	s->max_xfer = 1u << 20;
	s->mig_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
	s->mig_state = VFIO_DEVICE_STATE_RUNNING;
	s->bar0_fd = memfd_create("fake-bar0", MFD_CLOEXEC);
	assert_true(s->bar0_fd >= 0);
	assert_int_equal(ftruncate(s->bar0_fd, BAR0_SIZE), 0);
	s->doorbell_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->shadow_fd = memfd_create("fake-shadow", MFD_CLOEXEC);
	assert_true(s->shadow_fd >= 0);
	for (unsigned i = 0; i < MIG_BLOB; i++)
		s->mig_out[i] = (uint8_t)(i * 7 + 3);
	return s;
}

/* Start the server thread and connect a client; returns vfio_user_open_fd's result. */
static __attribute__((unused)) int srv_connect(struct fake_srv *s, struct vfio_device **dev)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->sock = sv[1];
	assert_int_equal(pthread_create(&s->thr, NULL, srv_main, s), 0);
	*dev = NULL;
	return vfio_user_open_fd(sv[0], "fake", dev);
}

static void *srv_accept_main(void *arg)
{
	struct fake_srv *s = arg;
	int lfd = s->sock;

	/* the same listening socket serves again: a stopped server that resumed */
	for (unsigned n = s->serve ? s->serve : 1; n; n--) {
		s->sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (s->sock < 0)
			break;
		srv_main(s);
	}
	close(lfd);
	return NULL;
}

/* Serve one client that connects to path (for code that opens by socket path). */
static __attribute__((unused)) void srv_listen(struct fake_srv *s, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	s->sock = lfd;
	assert_int_equal(pthread_create(&s->thr, NULL, srv_accept_main, s), 0);
}

/* Free a server whose thread has ended. */
static void srv_free(struct fake_srv *s)
{
	close(s->bar0_fd);
	close(s->doorbell_efd);
	close(s->shadow_fd);
	free(s);
}

static void srv_finish(struct fake_srv *s, struct vfio_device *dev)
{
	vfio_device_close(dev);
	pthread_join(s->thr, NULL);
	srv_free(s);
}

#endif
