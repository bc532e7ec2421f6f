// SPDX-License-Identifier: MIT
/*
 * A vfio-user connection's output queue (vfu_out.c) on a socketpair whose
 * reader does not read: replies the socket does not take wait in order,
 * their fds survive the device closing its own, a flush delivers them
 * byte-exact once the reader reads, and a reader that never reads runs the
 * queue into its bound (-ENOBUFS) instead of blocking anyone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/hdnic/vfu_out.h"

#define MSG	4000

static int sv[2];
static struct vfu_out out;

static int setup(void **st)
{
	int small = 4096;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	vfu_out_init(&out);
	return 0;
}

static int teardown(void **st)
{
	vfu_out_clear(&out);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static void fill(uint8_t *buf, unsigned n)
{
	for (unsigned i = 0; i < MSG; i++)
		buf[i] = (uint8_t)(n * 31 + i);
}

/* Read exactly len bytes (and any fd that comes with them). */
static void read_exact(uint8_t *buf, size_t len, int *fd)
{
	while (len) {
		union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
		struct iovec v = { buf, len };
		struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1,
				     .msg_control = u.b, .msg_controllen = sizeof(u.b) };
		ssize_t n = recvmsg(sv[1], &mh, MSG_DONTWAIT);
		struct cmsghdr *cm;

		if (n < 0 && errno == EAGAIN) {
			/* what the loop does on POLLOUT */
			assert_true(vfu_out_flush(&out, sv[0]) >= 0);
			continue;
		}
		assert_true(n > 0);
		cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_type == SCM_RIGHTS && fd)
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
		buf += n;
		len -= n;
	}
}

static void test_replies_wait_in_order_and_their_fds_survive(void **st)
{
	uint8_t want[MSG], got[MSG];
	unsigned queued = 0, n;
	int efd = eventfd(0, EFD_CLOEXEC), rfd = -1;
	uint64_t v = 0;

	assert_true(efd >= 0);
	for (n = 0; n < 64 && !queued; n++) {
		struct iovec iov = { want, MSG };
		int ret;

		fill(want, n);
		ret = vfu_out_send(&out, sv[0], &iov, 1, NULL, 0);	/* never blocks */
		assert_true(ret == 0 || ret == 1);
		queued = ret == 1;
	}
	assert_true(queued);				/* the reader is behind */
	{
		/* a reply with an fd, then the device closes its own copy */
		struct iovec iov = { want, MSG };

		fill(want, n);
		assert_int_equal(vfu_out_send(&out, sv[0], &iov, 1, &efd, 1), 1);
		close(efd);
	}
	assert_true(vfu_out_pending(&out));
	for (unsigned i = 0; i <= n; i++) {		/* the reader reads: all, in order */
		read_exact(got, MSG, i == n ? &rfd : NULL);
		fill(want, i);
		assert_memory_equal(got, want, MSG);
	}
	assert_int_equal(vfu_out_flush(&out, sv[0]), 0);
	assert_false(vfu_out_pending(&out));
	assert_true(rfd >= 0);				/* the duplicate arrived, usable */
	assert_int_equal(eventfd_write(rfd, 5), 0);
	assert_int_equal(eventfd_read(rfd, &v), 0);
	assert_int_equal(v, 5);
	close(rfd);
}

static void test_a_reader_that_never_reads_hits_the_bound(void **st)
{
	static uint8_t big[1 << 16];
	struct iovec iov = { big, sizeof(big) };
	int ret = 0;
	unsigned sent = 0;

	while (sent < 1000 && (ret = vfu_out_send(&out, sv[0], &iov, 1, NULL, 0)) >= 0)
		sent++;
	assert_int_equal(ret, -ENOBUFS);
	assert_true(out.bytes <= VFU_OUT_MAX_BYTES);
	assert_true(out.bytes + sizeof(big) > VFU_OUT_MAX_BYTES);
	/* with the reader gone a reply fails at once: nothing is queued for nobody */
	vfu_out_clear(&out);
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(vfu_out_send(&out, sv[0], &iov, 1, NULL, 0), -EPIPE);
	assert_false(vfu_out_pending(&out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replies_wait_in_order_and_their_fds_survive,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_reader_that_never_reads_hits_the_bound,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
