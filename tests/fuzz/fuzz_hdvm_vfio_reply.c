// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for hdvm's vfio-user client reply parsing: a "server"
 * that answers with fuzzed replies (devices/vfio/vfio_user*.c, the real
 * transport on a socketpair).  The input is a sequence of replies
 *   u8 ctl, u16 len (LE), len bytes
 * ctl bit 7: the bytes are a raw message (header included); else the
 * harness writes the header: reply number i gets msg_id i + 1 (what the
 * client expects), command ctl & 0x1f, the ERROR flag and error_no (first
 * byte) if bit 6; bit 5 attaches an eventfd, bit 4 a memfd.  All replies
 * are queued before the client runs, then the server end is shut, so a
 * client waiting for more sees EOF at once.  The client negotiates and
 * then makes every kind of request a VMM makes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_user_proto.h"
#include "vmm/util.h"

static void send_reply(int sock, const struct vfio_user_header *h, const uint8_t *p,
		       size_t len, int fd)
{
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov[2] = { { (void *)h, h ? sizeof(*h) : 0 }, { (void *)p, len } };
	struct msghdr mh = { .msg_iov = h ? iov : iov + 1, .msg_iovlen = h ? 2 : 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return;		/* buffer full: the rest of the input is ignored */
}

static void exercise(struct vfio_device *dev)
{
	uint8_t buf[256];
	struct vfio_region r;
	struct vfio_irq irq;
	struct vfio_ioeventfd *evs = NULL;
	unsigned nr = 0;
	size_t got;
	int efd = eventfd(0, EFD_CLOEXEC);
	int32_t fds[2] = { efd, -1 };

	for (uint32_t i = 0; i < dev->info.num_regions && i < 10; i++)
		if (dev->ops->get_region_info(dev, i, &r) == 0)
			vfio_region_release(&r);
	if (dev->ops->get_io_fds(dev, 0, &evs, &nr) == 0)
		vfio_ioeventfds_free(evs, nr);
	for (uint32_t i = 0; i < dev->info.num_irqs && i < 5; i++)
		dev->ops->get_irq_info(dev, i, &irq);
	dev->ops->set_irqs(dev, 2, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 2,
			   fds);
	dev->ops->region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, buf, 64);
	dev->ops->region_write(dev, 1, 8, buf, 4);
	dev->ops->region_read(dev, 0, 0, buf, 4);
	dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  NULL, 0, buf, 8, &got);
	dev->ops->mig_data_read(dev, buf, sizeof(buf));
	dev->ops->mig_data_write(dev, buf, 16);
	dev->ops->dma_unmap(dev, 0x100000, 0x1000);
	dev->ops->reset(dev);
	close(efd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], sndbuf = 1 << 20, memfd;
	struct vfio_device *dev = NULL;
	uint16_t id = 1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	memfd = memfd_create("fuzz-region", MFD_CLOEXEC);
	if (memfd >= 0 && ftruncate(memfd, 1 << 16))
		pr_debug("ftruncate: %s", strerror(errno));
	while (size >= 3) {
		uint8_t ctl = data[0];
		size_t len = MIN((size_t)(data[1] | data[2] << 8), size - 3);
		const uint8_t *p = data + 3;
		int fd = (ctl & 0x20) ? eventfd(0, EFD_CLOEXEC) : (ctl & 0x10) ? dup(memfd) : -1;

		if (ctl & 0x80) {
			send_reply(sv[1], NULL, p, len, fd);
		} else {
			struct vfio_user_header h = {
				.msg_id = id, .command = ctl & 0x1f,
				.msg_size = (uint32_t)(sizeof(h) + len),
				.flags = VFIO_USER_F_TYPE_REPLY | ((ctl & 0x40) ? VFIO_USER_F_ERROR : 0),
				.error_no = (ctl & 0x40) && len ? p[0] : 0,
			};

			send_reply(sv[1], &h, p, len, fd);
		}
		if (fd >= 0)
			close(fd);
		id++;
		data += 3 + len;
		size -= 3 + len;
	}
	shutdown(sv[1], SHUT_WR);	/* no more replies: a waiting client sees EOF */
	if (vfio_user_open_fd(sv[0], "fuzz", &dev) == 0) {
		vfio_user_set_timeout(dev, 100);
		exercise(dev);
		vfio_device_close(dev);
	}
	close(sv[1]);
	if (memfd >= 0)
		close(memfd);
	return 0;
}
