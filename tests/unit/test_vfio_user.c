// SPDX-License-Identifier: MIT
/*
 * vfio-user client backend against a fake server thread on a socketpair
 * (vfio_fake_server.h): negotiation, fd passing both ways, region access,
 * and servers that lie, stall or die.
 */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/kvm.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_user_proto.h"
#include "tests/unit/vfio_fake_server.h"
#include "vmm/util.h"

/* ---- version negotiation ---- */

static void test_version_good(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_user_caps caps;
	json_object *root, *c, *v;
	uint16_t minor;

	s->max_msg_fds = 3;
	s->max_xfer = 4096;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_get_caps(dev, &caps, &minor);
	assert_int_equal(caps.max_msg_fds, 3);
	assert_int_equal(caps.max_data_xfer_size, 4096);
	assert_int_equal(caps.pgsizes, 4096);
	assert_int_equal(caps.max_dma_maps, 65535);	/* default: not in the reply */
	assert_int_equal(minor, VFIO_USER_MINOR);
	assert_int_equal(dev->info.num_regions, VFIO_PCI_NUM_REGIONS);
	assert_true(dev->info.flags & VFIO_DEVICE_FLAGS_PCI);

	/* what we offered */
	assert_int_equal(s->client_major, VFIO_USER_MAJOR);
	root = json_tokener_parse(s->client_json);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &c));
	assert_true(json_object_object_get_ex(c, "max_msg_fds", &v));
	assert_int_equal(json_object_get_int(v), VFIO_USER_MAX_MSG_FDS);
	assert_true(json_object_object_get_ex(c, "max_data_xfer_size", &v));
	assert_int_equal(json_object_get_int(v), VFIO_USER_MAX_DATA_XFER);
	assert_true(json_object_object_get_ex(c, "pgsizes", &v));
	assert_true(json_object_object_get_ex(c, "max_dma_maps", &v));
	json_object_put(root);
	srv_finish(s, dev);
}

static void version_fails(enum version_mode mode)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	int before = open_fd_count();

	s->version = mode;
	assert_int_equal(srv_connect(s, &dev), -EPROTO);
	assert_null(dev);
	srv_finish(s, NULL);
	assert_int_equal(open_fd_count(), before - 3);	/* bar0 memfd, doorbell, shadow memfd */
}

static void test_version_bad_major(void **state) { version_fails(V_BAD_MAJOR); }
static void test_version_high_minor(void **state) { version_fails(V_HIGH_MINOR); }
static void test_version_pgsizes_not_subset(void **state) { version_fails(V_PGSIZES_NOT_SUBSET); }
static void test_version_malformed_json(void **state) { version_fails(V_MALFORMED); }
static void test_version_unterminated(void **state) { version_fails(V_UNTERMINATED); }

static void test_version_no_json_defaults(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_user_caps caps;

	s->version = V_NO_JSON;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_get_caps(dev, &caps, NULL);
	assert_int_equal(caps.max_msg_fds, 1);
	assert_int_equal(caps.max_data_xfer_size, 1u << 20);
	srv_finish(s, dev);
}

/* ---- DMA ---- */

static void test_dma_map_passes_memfd(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	int mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	uint64_t magic = 0x1122334455667788ull;
	uint8_t *ram;
	struct vfio_dma_map m = {
		.iova = 0x100000, .size = 0x100000, .fd = mfd, .fd_offset = 0x1000,
		.prot = VFIO_DMA_PROT_READ | VFIO_DMA_PROT_WRITE,
	};

	assert_int_equal(ftruncate(mfd, 2 << 20), 0);
	ram = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	memcpy(ram + 0x1000, &magic, sizeof(magic));
	m.vaddr = ram + 0x1000;
	assert_int_equal(srv_connect(s, &dev), 0);

	assert_int_equal(dev->ops->dma_map(dev, &m), 0);
	assert_true(s->dma_fd_is_memfd);
	assert_int_equal(s->dma_magic, magic);	/* the server mmap'd our memory */
	assert_int_equal(s->dma_flags, VFIO_USER_DMA_MAP_F_READ | VFIO_USER_DMA_MAP_F_WRITE);
	assert_int_equal(s->dma_addr, 0x100000);
	assert_int_equal(s->dma_size, 0x100000);
	assert_int_equal(s->dma_offset, 0x1000);
	assert_int_equal(dev->ops->dma_unmap(dev, 0x100000, 0x100000), 0);
	assert_int_equal(s->dma_unmaps, 1);

	/* misaligned windows never reach the wire */
	m.iova = 0x100800;
	assert_int_equal(dev->ops->dma_map(dev, &m), -EINVAL);
	srv_finish(s, dev);
	munmap(ram, 2 << 20);
	close(mfd);
}

/* ---- regions ---- */

static void test_region_info_sparse_two_step(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_region r, cfg;
	uint8_t *map;
	void *p;
	uint32_t v = 0xfeedf00d, got = 0;

	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->get_region_info(dev, 0, &r), 0);
	assert_int_equal(s->region_info_calls, 2);
	assert_int_equal(s->region_info_argsz[0], sizeof(struct vfio_region_info));
	assert_int_equal(s->region_info_argsz[1], 32 + 16 + 16);
	assert_int_equal(r.size, BAR0_SIZE);
	assert_true(r.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(r.mmap_fd >= 0);
	assert_true(r.owns_fd);
	assert_int_equal(r.nr_sparse, 1);
	assert_int_equal(r.sparse[0].offset, 4096);
	assert_int_equal(r.sparse[0].size, 4096);

	/* page 0 is trapped, page 1 maps onto the server's memory */
	assert_int_equal(dev->ops->region_mmap(dev, &r, 0, 4096, PROT_READ, &p), -EACCES);
	assert_int_equal(dev->ops->region_mmap(dev, &r, 4096, 4096,
					       PROT_READ | PROT_WRITE, &p), 0);
	map = p;
	memcpy(map + 8, &v, sizeof(v));
	assert_int_equal(pread(s->bar0_fd, &got, sizeof(got), 4096 + 8), sizeof(got));
	assert_int_equal(got, v);
	munmap(p, 4096);
	vfio_region_release(&r);
	assert_int_equal(r.mmap_fd, -1);

	/* config space: message access only */
	assert_int_equal(dev->ops->get_region_info(dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg), 0);
	assert_int_equal(cfg.size, CFG_SIZE);
	assert_false(cfg.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(cfg.mmap_fd, -1);
	assert_int_equal(dev->ops->get_region_info(dev, 99, &cfg), -EINVAL);
	srv_finish(s, dev);
}

static void test_io_fds(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_ioeventfd *evs;
	unsigned nr;
	uint64_t one = 1, cnt = 0;

	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), 0);
	assert_int_equal(nr, 2);		/* the ioregionfd entry is skipped */
	assert_int_equal(evs[0].offset, 0x100);
	assert_int_equal(evs[0].size, 4);
	assert_int_equal(evs[0].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
	assert_int_equal(evs[0].datamatch, 1);
	assert_int_equal(evs[1].offset, 0x104);
	assert_int_not_equal(evs[0].fd, evs[1].fd);	/* each entry owns an fd */
	/* a guest doorbell write lands on the server's eventfd */
	assert_int_equal(write(evs[1].fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(read(s->doorbell_efd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_int_equal(cnt, 1);
	vfio_ioeventfds_free(evs, nr);
	srv_finish(s, dev);
}

static void test_io_fds_bad_index(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_ioeventfd *evs;
	unsigned nr;
	int before;

	s->sabotage = S_BAD_IOFD_INDEX;
	assert_int_equal(srv_connect(s, &dev), 0);
	before = open_fd_count();
	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), -EPROTO);
	assert_int_equal(open_fd_count(), before);	/* received fd closed */
	srv_finish(s, dev);
}

static void test_set_irqs_fd_passing(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_irq irq;
	int32_t efd[8];
	uint64_t cnt;
	uint32_t fl = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

	s->max_msg_fds = 3;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->get_irq_info(dev, VFIO_PCI_MSIX_IRQ_INDEX, &irq), 0);
	assert_int_equal(irq.count, 8);
	for (int i = 0; i < 8; i++)
		efd[i] = i == 5 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_int_equal(dev->ops->set_irqs(dev, VFIO_PCI_MSIX_IRQ_INDEX, fl, 0, 8, efd), 0);
	/* split by the server's max_msg_fds; the -1 becomes an fd-less de-assign */
	assert_int_equal(s->nr_irq, 4);
	assert_int_equal(s->irq[0].start, 0);
	assert_int_equal(s->irq[0].count, 3);
	assert_int_equal(s->irq[0].nfds, 3);
	assert_int_equal(s->irq[1].start, 3);
	assert_int_equal(s->irq[1].count, 2);
	assert_int_equal(s->irq[2].start, 5);
	assert_int_equal(s->irq[2].count, 1);
	assert_int_equal(s->irq[2].nfds, 0);
	assert_int_equal(s->irq[3].start, 6);
	assert_int_equal(s->irq[3].nfds, 2);
	for (int i = 0; i < 4; i++) {
		assert_true(s->irq[i].all_eventfds);
		assert_int_equal(s->irq[i].flags, fl);
	}
	/* the server fired each eventfd it received: they are ours */
	for (int i = 0; i < 8; i++) {
		if (efd[i] < 0)
			continue;
		assert_int_equal(read(efd[i], &cnt, sizeof(cnt)), sizeof(cnt));
		assert_int_equal(cnt, 1);
		close(efd[i]);
	}
	/* disable all: DATA_NONE, count 0 */
	assert_int_equal(dev->ops->set_irqs(dev, VFIO_PCI_MSIX_IRQ_INDEX,
					    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
					    0, 0, NULL), 0);
	assert_int_equal(s->nr_irq, 5);
	/* two data types at once is refused locally */
	assert_int_equal(dev->ops->set_irqs(dev, 2, VFIO_IRQ_SET_DATA_NONE |
					    VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
					    0, 1, NULL), -EINVAL);
	srv_finish(s, dev);
}

static void test_region_rw_round_trip(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint8_t *out = malloc(20000), *in = malloc(20000);
	uint32_t v = 0xabcd1234, w = 0;

	s->max_xfer = 4096;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->region_write(dev, 0, 0x10, &v, 4), 0);
	assert_int_equal(dev->ops->region_read(dev, 0, 0x10, &w, 4), 0);
	assert_int_equal(w, v);

	for (int i = 0; i < 20000; i++)
		out[i] = (uint8_t)(i * 13);
	s->rw_msgs = 0;
	assert_int_equal(dev->ops->region_write(dev, 1, 100, out, 20000), 0);
	assert_int_equal(dev->ops->region_read(dev, 1, 100, in, 20000), 0);
	assert_memory_equal(in, out, 20000);
	assert_int_equal(s->rw_msgs, 10);	/* 5 x 4096-byte chunks each way */
	assert_int_equal(s->rw_max_count, 4096);
	assert_memory_equal(s->bar1 + 100, out, 20000);

	/* out of range: the server's EINVAL comes back, the device lives */
	assert_int_equal(dev->ops->region_read(dev, 1, BAR1_SIZE - 2, &w, 4), -EINVAL);
	assert_false(vfio_device_dead(dev));
	free(out);
	free(in);
	srv_finish(s, dev);
}

struct rw_thread {
	struct vfio_device *dev;
	int id;
	int failures;
};

static void *rw_worker(void *arg)
{
	struct rw_thread *t = arg;

	for (uint32_t i = 0; i < 300; i++) {
		uint32_t v = (uint32_t)t->id << 24 | i, r = 0;
		uint64_t off = 0x1000 + t->id * 64;

		if (t->dev->ops->region_write(t->dev, 1, off, &v, 4) ||
		    t->dev->ops->region_read(t->dev, 1, off, &r, 4) || r != v)
			t->failures++;
	}
	return NULL;
}

static void test_concurrent_access(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct rw_thread t[4];
	pthread_t thr[4];

	assert_int_equal(srv_connect(s, &dev), 0);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct rw_thread){ .dev = dev, .id = i };
		pthread_create(&thr[i], NULL, rw_worker, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(thr[i], NULL);
		assert_int_equal(t[i].failures, 0);
	}
	assert_false(vfio_device_dead(dev));
	srv_finish(s, dev);
}

/* ---- errors from a healthy server ---- */

static void test_error_reply_errno(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v;

	s->sabotage_cmd = VFIO_USER_DEVICE_RESET;
	s->sabotage = S_ERROR;
	s->error_no = EBUSY;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->reset(dev), -EBUSY);
	assert_false(vfio_device_dead(dev));
	s->error_no = 0;		/* ERROR without an errno */
	assert_int_equal(dev->ops->reset(dev), -EIO);
	s->error_no = 100000;		/* nonsense errno */
	assert_int_equal(dev->ops->reset(dev), -EIO);
	/* the stream is still in sync */
	assert_int_equal(dev->ops->region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, &v, 4), 0);
	srv_finish(s, dev);
}

static void test_feature_and_mig_data(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint64_t mflags = 0;
	size_t got;
	struct vfio_device_feature_mig_state st = { .device_state = VFIO_DEVICE_STATE_STOP_COPY };
	uint8_t buf[1024], all[MIG_BLOB];
	size_t total = 0;
	ssize_t n;

	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET |
					   VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
					   &mflags, sizeof(mflags), &got), 0);
	assert_int_equal(got, sizeof(mflags));
	assert_int_equal(mflags, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st),
					   &st, sizeof(st), &got), 0);
	assert_int_equal(s->mig_state, VFIO_DEVICE_STATE_STOP_COPY);
	assert_int_equal(st.data_fd, -1);	/* the server's junk never shows */
	assert_int_equal(dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET | 9, NULL, 0,
					   NULL, 0, NULL), -ENOTSUP);

	while ((n = dev->ops->mig_data_read(dev, buf, sizeof(buf))) > 0) {
		memcpy(all + total, buf, n);
		total += n;
		if ((size_t)n < sizeof(buf))
			break;		/* short read: end of stream */
	}
	assert_int_equal(total, MIG_BLOB);
	assert_memory_equal(all, s->mig_out, MIG_BLOB);
	assert_int_equal(dev->ops->mig_data_write(dev, all, MIG_BLOB), 0);
	assert_int_equal(s->mig_in_len, MIG_BLOB);
	assert_memory_equal(s->mig_in, all, MIG_BLOB);
	srv_finish(s, dev);
}

/* ---- a broken server: clean error, device dead, never a crash ---- */

static void broken_server(enum sabotage what, int expect)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v = 0;
	int before;

	s->sabotage_cmd = VFIO_USER_REGION_READ;
	s->sabotage = what;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_set_timeout(dev, 300);
	before = open_fd_count();
	assert_int_equal(dev->ops->region_read(dev, 0, 0, &v, 4), expect);
	assert_true(vfio_device_dead(dev));
	/* every later call fails fast */
	assert_int_equal(dev->ops->region_write(dev, 0, 0, &v, 4), -ENOTCONN);
	assert_int_equal(dev->ops->reset(dev), -ENOTCONN);
	/* <=: the server thread may close its end meanwhile */
	assert_true(open_fd_count() <= before);
	srv_finish(s, dev);
}

static void test_disconnect_mid_reply(void **state) { broken_server(S_DISCONNECT_MID, -ENOTCONN); }
static void test_wrong_msg_id(void **state) { broken_server(S_WRONG_ID, -EPROTO); }
static void test_wrong_command(void **state) { broken_server(S_WRONG_CMD, -EPROTO); }

/*
 * A command from the server where our reply is due is a request of its own
 * (the spec lets them interleave): answered ENOSYS (not one we serve), and
 * the wait for our reply goes on.
 */
static void test_not_a_reply(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v = 0;

	s->sabotage_cmd = VFIO_USER_REGION_READ;
	s->sabotage = S_NOT_REPLY;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->region_read(dev, 0, 0, &v, 4), 0);
	assert_false(vfio_device_dead(dev));
	assert_true(s->not_reply.answered);
	assert_int_equal(s->not_reply.id, 0x7000);
	assert_int_equal(s->not_reply.ans_cmd, VFIO_USER_REGION_READ);
	assert_int_equal(s->not_reply.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
	assert_int_equal(s->not_reply.error_no, ENOSYS);
	assert_int_equal(s->not_reply.ans_len, 0);
	srv_finish(s, dev);
}
static void test_oversized_reply(void **state) { broken_server(S_OVERSIZE, -EPROTO); }

/* A request that is no guest access waits out the whole timeout, then the server is lost. */
static void test_timeout(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint64_t t0, ms;
	uint32_t v;

	s->sabotage_cmd = VFIO_USER_DEVICE_RESET;
	s->sabotage = S_STALL;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_set_timeout(dev, 300);
	t0 = now_ns();
	assert_int_equal(dev->ops->reset(dev), -ETIMEDOUT);
	ms = (now_ns() - t0) / 1000000;
	assert_true(ms >= 300 && ms < 3000);
	assert_true(vfio_device_dead(dev));
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), -ENOTCONN);
	srv_finish(s, dev);
}

/*
 * The socket watch on a dead connection: what the server still sends is
 * dropped (the watch would fire for ever otherwise), its hang-up reported.
 */
static void test_serve_on_a_dead_connection(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct pollfd p;

	s->sabotage_cmd = VFIO_USER_DEVICE_RESET;
	s->sabotage = S_STALL;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_set_timeout(dev, 200);
	assert_int_equal(dev->ops->reset(dev), -ETIMEDOUT);
	assert_true(vfio_device_dead(dev));
	/* the stalled server sees our end of stream, and goes */
	p = (struct pollfd){ .fd = vfio_user_socket(dev), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(vfio_user_serve(dev), -ENOTCONN);
	srv_finish(s, dev);
}

static uint64_t ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000;
}

/*
 * A server that stops for a while (SIGSTOP) is slow, not dead: a guest read
 * returns at once (the caller reads all-ones), a write is posted, and when
 * the server answers again the late replies are discarded in order and
 * everything is as the guest left it.
 */
static void test_slow_server_is_not_dead(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v = 0, w = 0xabcd1234;
	uint64_t t0;

	memcpy(s->bar1, "\x11\x22\x33\x44", 4);
	s->sabotage_cmd = VFIO_USER_REGION_READ;
	s->sabotage = S_DELAY;
	s->delay_ms = 400;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_set_stall(dev, 20);
	vfio_user_set_timeout(dev, 3000);

	t0 = now_ns();
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), -EAGAIN);
	assert_true(ms_since(t0) < 200);		/* the vCPU is not frozen */
	assert_false(vfio_device_dead(dev));
	t0 = now_ns();
	assert_int_equal(dev->ops->region_write(dev, 1, 8, &w, 4), -EAGAIN);	/* posted */
	assert_int_equal(dev->ops->region_read(dev, 1, 4, &v, 4), -EAGAIN);
	assert_true(ms_since(t0) < 100);		/* owed replies: no waiting at all */

	usleep(600 * 1000);				/* the server resumed meanwhile */
	assert_int_equal(dev->ops->region_read(dev, 1, 8, &v, 4), 0);
	assert_int_equal(v, 0xabcd1234);		/* the posted write arrived */
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), 0);
	assert_int_equal(v, 0x44332211);		/* and the stream is in step */
	assert_int_equal(dev->ops->reset(dev), 0);
	assert_false(vfio_device_dead(dev));
	srv_finish(s, dev);
}

/* A server that never answers again is declared lost after the timeout, not before. */
/*
 * Before the owner arms the stall (vfio_pci does once the guest can reach the
 * device) a region access is the VMM's own setup: a slow server is waited for.
 */
static void test_unarmed_access_waits_for_a_slow_server(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v = 0;

	s->sabotage_cmd = VFIO_USER_REGION_READ;
	s->sabotage = S_DELAY;
	s->delay_ms = 200;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), 0);
	assert_false(vfio_device_dead(dev));
	srv_finish(s, dev);
}

static void test_stalled_server_lost_after_timeout(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint64_t t0, lost_ms = 0, worst = 0;
	uint32_t v;

	s->sabotage_cmd = VFIO_USER_REGION_READ;
	s->sabotage = S_STALL;
	assert_int_equal(srv_connect(s, &dev), 0);
	vfio_user_set_stall(dev, 20);
	vfio_user_set_timeout(dev, 400);
	t0 = now_ns();
	while (ms_since(t0) < 3000) {
		uint64_t t1 = now_ns();
		int ret = dev->ops->region_read(dev, 1, 0, &v, 4);

		worst = MAX(worst, ms_since(t1));
		if (ret != -EAGAIN) {
			assert_int_equal(ret, -ETIMEDOUT);
			lost_ms = ms_since(t0);
			break;
		}
		assert_false(vfio_device_dead(dev));
		usleep(30 * 1000);
	}
	assert_true(vfio_device_dead(dev));
	assert_true(lost_ms >= 400 && lost_ms < 1500);
	assert_true(worst < 150);			/* no access waited long */
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), -ENOTCONN);
	srv_finish(s, dev);
}

static void test_unexpected_fds(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	struct vfio_irq irq;
	int before;

	s->sabotage_cmd = VFIO_USER_DEVICE_GET_IRQ_INFO;
	s->sabotage = S_EXTRA_FDS;
	assert_int_equal(srv_connect(s, &dev), 0);
	before = open_fd_count();
	assert_int_equal(dev->ops->get_irq_info(dev, 2, &irq), -EPROTO);
	assert_true(vfio_device_dead(dev));
	/*
	 * Count only once the server thread is gone: it closes its own copy of
	 * the stray eventfd after sending it, which races with our count (the
	 * client's shutdown on the protocol error ends the thread).
	 */
	pthread_join(s->thr, NULL);
	assert_true(open_fd_count() <= before);	/* the stray eventfd was closed */
	vfio_device_close(dev);
	srv_free(s);
}

static void test_server_gone_before_request(void **state)
{
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;
	uint32_t v;

	s->sabotage_cmd = VFIO_USER_DEVICE_RESET;
	s->sabotage = S_CLOSE;
	assert_int_equal(srv_connect(s, &dev), 0);
	assert_int_equal(dev->ops->reset(dev), -ENOTCONN);
	pthread_join(s->thr, NULL);	/* server is gone for good */
	assert_int_equal(dev->ops->region_read(dev, 0, 0, &v, 4), -ENOTCONN);
	vfio_device_close(dev);
	srv_free(s);
}

/* Run fn with stderr going to a buffer (what the user would read). */
static void capture_stderr(char *out, size_t len, void (*fn)(void *), void *arg)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, len - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
}

struct busy_case {
	struct fake_srv *s;
	struct vfio_device *dev;
	int ret;
};

static void connect_busy(void *arg)
{
	struct busy_case *b = arg;

	b->ret = srv_connect(b->s, &b->dev);
}

/* hdnic answers a second client's VERSION with EBUSY: say so, once, plainly. */
static void test_version_busy_says_in_use(void **state)
{
	struct busy_case b = { .s = srv_new() };
	char err[1024];

	b.s->sabotage_cmd = VFIO_USER_VERSION;
	b.s->sabotage = S_ERROR;
	b.s->error_no = EBUSY;
	capture_stderr(err, sizeof(err), connect_busy, &b);
	assert_int_equal(b.ret, -EBUSY);
	assert_null(b.dev);
	assert_non_null(strstr(err, "in use by another client"));
	assert_null(strstr(err, "not connected"));
	pthread_join(b.s->thr, NULL);	/* our side closed: the server saw EOF */
	srv_free(b.s);
}

static void test_connect_missing_socket(void **state)
{
	struct vfio_device *dev = NULL;

	assert_int_equal(vfio_user_open("/nonexistent/hdnic.sock", &dev), -ENOENT);
	assert_null(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_good),
		cmocka_unit_test(test_version_bad_major),
		cmocka_unit_test(test_version_high_minor),
		cmocka_unit_test(test_version_pgsizes_not_subset),
		cmocka_unit_test(test_version_malformed_json),
		cmocka_unit_test(test_version_unterminated),
		cmocka_unit_test(test_version_no_json_defaults),
		cmocka_unit_test(test_dma_map_passes_memfd),
		cmocka_unit_test(test_region_info_sparse_two_step),
		cmocka_unit_test(test_io_fds),
		cmocka_unit_test(test_io_fds_bad_index),
		cmocka_unit_test(test_set_irqs_fd_passing),
		cmocka_unit_test(test_region_rw_round_trip),
		cmocka_unit_test(test_concurrent_access),
		cmocka_unit_test(test_error_reply_errno),
		cmocka_unit_test(test_feature_and_mig_data),
		cmocka_unit_test(test_disconnect_mid_reply),
		cmocka_unit_test(test_wrong_msg_id),
		cmocka_unit_test(test_wrong_command),
		cmocka_unit_test(test_not_a_reply),
		cmocka_unit_test(test_oversized_reply),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_serve_on_a_dead_connection),
		cmocka_unit_test(test_unexpected_fds),
		cmocka_unit_test(test_server_gone_before_request),
		cmocka_unit_test(test_connect_missing_socket),
		cmocka_unit_test(test_version_busy_says_in_use),
		cmocka_unit_test(test_slow_server_is_not_dead),
		cmocka_unit_test(test_stalled_server_lost_after_timeout),
		cmocka_unit_test(test_unarmed_access_waits_for_a_slow_server),
	};

	/* TEST_FILTER=test_unexpected_fds runs one test (e.g. 200 times over) */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
