// SPDX-License-Identifier: MIT
/*
 * hdnic's vfio-user transport (vfu_server.c) with a fake device behind its
 * vfu_dev_ops: no function, no NIC.  A client is attached, its messages
 * reach dispatch and the replies come back framed, an error is answered
 * with the errno and counted, a second client is told EBUSY without the
 * device hearing of it, a client that goes away is detached, and one that
 * never completes VERSION is dropped at its deadline.  hdnic's own
 * requests (DMA_READ/DMA_WRITE) get their replies routed back, checked,
 * never dispatched or answered.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/hdnic/loop.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

#define CMD_FAILS	99

static struct loop loop;
static struct vfu_endpoint *ep;
static char dir[64], path[108];
static int dev_token;
static int attaches, detaches, dispatches, deadlines;
static uint64_t connects, proto_errors;

static int fake_attach(void *dev)
{
	assert_ptr_equal(dev, &dev_token);
	attaches++;
	return 0;
}

static void fake_detach(void *dev)
{
	detaches++;
}

/* Echoes the payload; CMD_FAILS fails; the first message "negotiates". */
static int fake_dispatch(struct vfu_conn *c, struct vfu_msg *m, struct vfu_reply *r)
{
	assert_ptr_equal(c->dev, &dev_token);
	dispatches++;
	if (m->hdr.command == CMD_FAILS)
		return -ENOTSUP;
	memcpy(r->buf, m->payload, m->len);
	r->len = m->len;
	c->negotiated = true;
	return 0;
}

static void fake_deadline_set(void *dev)
{
	deadlines++;
}

static const struct vfu_dev_ops fake_ops = {
	.attach = fake_attach, .detach = fake_detach, .dispatch = fake_dispatch,
	.deadline_set = fake_deadline_set,
};

static int setup(void **state)
{
	prog_name = "test";
	snprintf(dir, sizeof(dir), "/tmp/hdnic-vfu-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dev.sock", dir);
	assert_int_equal(loop_init(&loop, 64), 0);
	ep = vfu_endpoint_create(&fake_ops, &dev_token, "fake", &loop, 200000000ULL, &connects,
				 &proto_errors);
	assert_int_equal(vfu_listen(ep, path), 0);
	return 0;
}

static int teardown(void **state)
{
	vfu_unlisten(ep);
	loop_submit(&loop);
	loop_exit(&loop);
	vfu_endpoint_free(ep);
	rmdir(dir);
	return 0;
}

static int client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Run the loop until cond holds (or give up after a second). */
#define PUMP_UNTIL(cond)						\
	do {								\
		for (int i_ = 0; i_ < 100 && !(cond); i_++)		\
			loop_run_once_timeout(&loop, 10000000ULL);	\
		assert_true(cond);					\
	} while (0)

static void send_cmd(int fd, uint16_t id, uint16_t cmd, const char *payload)
{
	uint32_t len = (uint32_t)strlen(payload);
	struct vfio_user_header h = { .msg_id = id, .command = cmd,
				      .msg_size = (uint32_t)sizeof(h) + len };
	uint8_t buf[128];

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	assert_int_equal(send(fd, buf, sizeof(h) + len, 0), (ssize_t)(sizeof(h) + len));
}

/* The reply to the last message: its header, and its payload into out. */
static struct vfio_user_header recv_reply(int fd, char *out, size_t cap)
{
	struct vfio_user_header h = { 0 };
	struct pollfd p = { .fd = fd, .events = POLLIN };

	PUMP_UNTIL(poll(&p, 1, 0) == 1);
	assert_int_equal(recv(fd, &h, sizeof(h), MSG_WAITALL), sizeof(h));
	memset(out, 0, cap);
	if (h.msg_size > sizeof(h))
		assert_int_equal(recv(fd, out, h.msg_size - sizeof(h), MSG_WAITALL),
				 h.msg_size - sizeof(h));
	return h;
}

static void test_messages_reach_the_device_and_replies_come_back(void **state)
{
	int fd = client();
	struct vfio_user_header h;
	char out[64];

	PUMP_UNTIL(attaches == 1);
	assert_true(vfu_has_client(ep));
	assert_int_equal(connects, 1);
	assert_true(deadlines >= 1);		/* VERSION must come in time */
	send_cmd(fd, 7, VFIO_USER_VERSION, "ping");
	h = recv_reply(fd, out, sizeof(out));
	assert_int_equal(h.msg_id, 7);
	assert_int_equal(h.command, VFIO_USER_VERSION);
	assert_int_equal(h.flags, VFIO_USER_F_TYPE_REPLY);
	assert_string_equal(out, "ping");
	/* an error reply carries the errno, and the device's counter moves */
	send_cmd(fd, 8, CMD_FAILS, "x");
	h = recv_reply(fd, out, sizeof(out));
	assert_int_equal(h.msg_id, 8);
	assert_true(h.flags & VFIO_USER_F_ERROR);
	assert_int_equal(h.error_no, ENOTSUP);
	assert_int_equal(h.msg_size, sizeof(h));
	assert_int_equal(proto_errors, 1);
	assert_int_equal(dispatches, 2);
	/* the client goes: the device is told */
	close(fd);
	PUMP_UNTIL(detaches == 1);
	assert_false(vfu_has_client(ep));
}

static void test_second_client_is_told_busy(void **state)
{
	int a = client(), b;
	struct vfio_user_header h;
	char out[8];

	PUMP_UNTIL(vfu_has_client(ep));
	b = client();
	send_cmd(b, 1, VFIO_USER_VERSION, "hi");
	h = recv_reply(b, out, sizeof(out));
	assert_true(h.flags & VFIO_USER_F_ERROR);
	assert_int_equal(h.error_no, EBUSY);
	/* the device never heard of it */
	assert_int_equal(attaches, 2);
	assert_int_equal(dispatches, 2);
	close(b);
	close(a);
	PUMP_UNTIL(detaches == 2);
}

static void test_no_version_in_time_is_dropped(void **state)
{
	int fd = client();

	PUMP_UNTIL(vfu_has_client(ep));
	assert_true(vfu_check_deadlines(ep, now_ns()));	/* pending */
	assert_false(vfu_check_deadlines(ep, now_ns() + 1000000000ULL));
	assert_false(vfu_has_client(ep));
	assert_int_equal(detaches, 3);
	close(fd);
}

/* ---- hdnic's own requests (DMA_READ/DMA_WRITE) and the client's replies ---- */

static int req_err, req_done;
static uint16_t last_id;

static void req_cb(void *ctx, int err, const struct vfu_req *r)
{
	assert_ptr_equal(ctx, &dev_token);
	req_err = err;
	req_done++;
}

/* The request the client sees: header and {address, count}. */
static struct vfio_user_header take_request(int fd, struct vfio_user_dma_rw *rw, uint8_t *data)
{
	struct vfio_user_header h = recv_reply(fd, (char *)data, 64 + sizeof(*rw));

	memcpy(rw, data, sizeof(*rw));
	last_id = h.msg_id;
	return h;
}

static void send_raw_reply(int fd, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t err,
			   const void *payload, uint32_t len)
{
	struct vfio_user_header h = { .msg_id = id, .command = cmd, .flags = flags,
				      .error_no = err, .msg_size = (uint32_t)sizeof(h) + len };
	uint8_t buf[256];

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	assert_int_equal(send(fd, buf, sizeof(h) + len, 0), (ssize_t)(sizeof(h) + len));
}

static void test_server_requests_and_replies(void **state)
{
	struct vfu_conn *c = &ep->conn;
	struct pollfd p;
	struct vfio_user_dma_rw rw;
	struct vfio_user_header h;
	uint8_t data[128], dst[8] = { 0 }, reply[64];
	uint64_t errors;
	int fd = client(), seen;
	char out[8];

	PUMP_UNTIL(vfu_has_client(ep));
	send_cmd(fd, 1, VFIO_USER_VERSION, "v");
	recv_reply(fd, out, sizeof(out));
	errors = proto_errors;
	seen = dispatches;
	req_done = 0;

	/* DMA_READ: a command of ours, id of ours; the exact reply fills dst */
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_READ, 0x1000, 8, NULL, dst, req_cb,
				      &dev_token), 0);
	h = take_request(fd, &rw, data);
	assert_int_equal(h.flags, VFIO_USER_F_TYPE_COMMAND);
	assert_int_equal(h.command, VFIO_USER_DMA_READ);
	assert_true(rw.address == 0x1000 && rw.count == 8 && h.msg_size == sizeof(h) + 16);
	/* first a reply to an id never used: refused, counted, never dispatched or answered */
	memcpy(reply, &rw, 16);
	memcpy(reply + 16, "ABCDEFGH", 8);
	send_raw_reply(fd, last_id ^ 0x8000, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY, 0,
		       reply, 24);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY, 0, reply, 24);
	PUMP_UNTIL(req_done == 1);
	assert_int_equal(req_err, 0);
	assert_memory_equal(dst, "ABCDEFGH", 8);
	assert_int_equal(proto_errors, errors + 1);
	assert_int_equal(c->reqs.unknown_replies, 1);
	assert_int_equal(dispatches, seen);	/* replies never reach the device */

	/* a reply one byte long: refused with -EPROTO, nothing copied */
	memset(dst, 0, sizeof(dst));
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_READ, 0x2000, 8, NULL, dst, req_cb,
				      &dev_token), 0);
	take_request(fd, &rw, data);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY, 0, reply, 25);
	PUMP_UNTIL(req_done == 2);
	assert_int_equal(req_err, -EPROTO);
	assert_int_equal(dst[0], 0);

	/* DMA_WRITE: the data follows; the spec's 12-byte reply (4-byte count) is taken */
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_WRITE, 0x3000, 4, "wxyz", NULL, req_cb,
				      &dev_token), 0);
	h = take_request(fd, &rw, data);
	assert_true(h.command == VFIO_USER_DMA_WRITE && rw.count == 4 && h.msg_size == 16 + 20);
	assert_memory_equal(data + 16, "wxyz", 4);
	memcpy(reply, &rw.address, 8);
	memcpy(reply + 8, "\4\0\0\0", 4);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_WRITE, VFIO_USER_F_TYPE_REPLY, 0, reply, 12);
	PUMP_UNTIL(req_done == 3);
	assert_int_equal(req_err, 0);

	/* an error reply: its errno */
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_READ, 0x4000, 8, NULL, dst, req_cb,
				      &dev_token), 0);
	take_request(fd, &rw, data);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_READ,
		       VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, EFAULT, NULL, 0);
	PUMP_UNTIL(req_done == 4);
	assert_int_equal(req_err, -EFAULT);

	/* no reply: -ETIMEDOUT at the deadline; the late reply is then unknown */
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_READ, 0x5000, 8, NULL, dst, req_cb,
				      &dev_token), 0);
	take_request(fd, &rw, data);
	assert_true(vfu_check_deadlines(ep, now_ns()));
	vfu_check_deadlines(ep, now_ns() + 1000000000ULL);
	assert_int_equal(req_done, 5);
	assert_int_equal(req_err, -ETIMEDOUT);
	memcpy(reply, &rw, 16);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY, 0, reply, 24);
	PUMP_UNTIL(c->reqs.unknown_replies == 2);
	assert_int_equal(req_done, 5);
	/* cancelled: the reply is checked, nobody is called */
	assert_int_equal(vfu_req_send(c, VFIO_USER_DMA_READ, 0x6000, 8, NULL, dst, req_cb,
				      &dev_token), 0);
	take_request(fd, &rw, data);
	vfu_req_cancel(c, &dev_token);
	memcpy(reply, &rw, 16);
	send_raw_reply(fd, last_id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY, 0, reply, 24);
	PUMP_UNTIL(c->reqs.nr == 0);
	assert_int_equal(req_done, 5);
	/* nothing was ever sent back for the client's replies */
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	loop_run_once_timeout(&loop, 10000000ULL);
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(dispatches, seen);
	assert_true(vfu_has_client(ep));
	close(fd);
	PUMP_UNTIL(!vfu_has_client(ep));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages_reach_the_device_and_replies_come_back),
		cmocka_unit_test(test_second_client_is_told_busy),
		cmocka_unit_test(test_no_version_in_time_is_dropped),
		cmocka_unit_test(test_server_requests_and_replies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
