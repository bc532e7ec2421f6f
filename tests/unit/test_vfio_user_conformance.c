// SPDX-License-Identifier: MIT
/*
 * vfio-user conformance of hdvm's client: a table of spec-valid server
 * behaviours (QEMU docs/interop/vfio-user.rst; libvfio-user is the reference
 * server) played by the fake server, each with what the spec says a client
 * then does.  hdnic's side has the same table in
 * tests/integration/test_vfio_user_conformance.py.
 */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <poll.h>
#include <cmocka.h>

#include "devices/vfio/vfio.h"
#include "tests/unit/vfio_fake_server.h"

struct row {
	const char *name;
	void (*setup)(struct fake_srv *s);
	int attach;		/* what vfio_user_open_fd must return */
	void (*check)(struct fake_srv *s, struct vfio_device *dev);
};

/* ---- VERSION: unknown keys ignored, migration.pgsize kept ---- */

static void extra_keys(struct fake_srv *s) { s->version = V_EXTRA_KEYS; }

static void extra_keys_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_user_caps caps;

	vfio_user_get_caps(dev, &caps, NULL);
	assert_int_equal(caps.max_msg_fds, 4);
}

static void reference_caps(struct fake_srv *s) { s->version = V_REFERENCE; }

static void reference_caps_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_user_caps caps;
	json_object *root, *c, *m, *v;

	vfio_user_get_caps(dev, &caps, NULL);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(caps.migration_pgsize, 4096);
	/* hdvm offered migration itself */
	root = json_tokener_parse(s->client_json);
	assert_true(json_object_object_get_ex(root, "capabilities", &c));
	assert_true(json_object_object_get_ex(c, "migration", &m));
	assert_true(json_object_object_get_ex(m, "pgsize", &v));
	assert_int_equal(json_object_get_int(v), 4096);
	json_object_put(root);
}

/* ---- REGION_IO_FDS: the entry size comes from the reply ---- */

static void iofd40(struct fake_srv *s) { s->iofd_stride = 40; }
static void iofd48(struct fake_srv *s) { s->iofd_stride = 48; }
static void iofd44(struct fake_srv *s) { s->iofd_stride = 44; }

static void iofd_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_ioeventfd *evs;
	unsigned nr;
	int before = open_fd_count();

	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), 0);
	/* shadow-ioeventfd and ioregionfd entries are refused: those writes stay trapped */
	assert_int_equal(nr, 2);
	assert_int_equal(evs[0].offset, 0x100);
	assert_int_equal(evs[0].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
	assert_int_equal(evs[0].datamatch, 1);	/* 48 bytes: not shadow_offset's 0x40 */
	assert_int_equal(evs[1].offset, 0x104);
	assert_int_equal(evs[1].datamatch, 0);
	assert_int_equal(open_fd_count(), before + 2);	/* the shadow memfd was not kept */
	vfio_ioeventfds_free(evs, nr);
}

static void iofd_bad_stride_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_ioeventfd *evs;
	unsigned nr;
	int before = open_fd_count();

	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), -EPROTO);
	assert_int_equal(open_fd_count(), before);
}

/* ---- argsz two-step: the reply says how much room the capabilities need ---- */

static void region_info_grows_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_region r;

	assert_int_equal(dev->ops->get_region_info(dev, 0, &r), 0);
	assert_int_equal(s->region_info_calls, 2);
	assert_int_equal(s->region_info_argsz[0], sizeof(struct vfio_region_info));
	assert_int_equal(s->region_info_argsz[1], 64);
	assert_true(r.mmap_fd >= 0);
	assert_int_equal(r.nr_sparse, 1);
	vfio_region_release(&r);
}

/* ---- limits: exactly the negotiated size goes in one message ---- */

static void xfer_4k(struct fake_srv *s) { s->max_xfer = 4096; }

static void xfer_exact_check(struct fake_srv *s, struct vfio_device *dev)
{
	static uint8_t buf[4097];

	s->rw_msgs = 0;
	assert_int_equal(dev->ops->region_write(dev, 1, 0, buf, 4096), 0);
	assert_int_equal(dev->ops->region_read(dev, 1, 0, buf, 4096), 0);
	assert_int_equal(s->rw_msgs, 2);		/* one each way */
	assert_int_equal(dev->ops->region_read(dev, 1, 0, buf, 4097), 0);
	assert_int_equal(s->rw_msgs, 4);		/* one byte more: split */
	assert_int_equal(s->rw_max_count, 4096);
}

static void fds_3(struct fake_srv *s) { s->max_msg_fds = 3; }

static void fds_exact_check(struct fake_srv *s, struct vfio_device *dev)
{
	int32_t efd[3];

	for (int i = 0; i < 3; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(dev->ops->set_irqs(dev, VFIO_PCI_MSIX_IRQ_INDEX,
					    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					    0, 3, efd), 0);
	assert_int_equal(s->nr_irq, 1);		/* exactly max_msg_fds: one message */
	assert_int_equal(s->irq[0].nfds, 3);
	for (int i = 0; i < 3; i++)
		close(efd[i]);
}

/* ---- DMA_LOGGING_REPORT: the bitmap is whole u64 words (kernel, libvfio-user) ---- */

static void dirty_words_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_dirty_range r = { .iova = 0x100000, .length = 8 * 4096 };
	uint8_t bitmap[8];

	assert_int_equal(vfio_dirty_bitmap_bytes(8 * 4096, 4096), 8);	/* 8 pages: one word */
	assert_int_equal(vfio_dirty_start(dev, 4096, &r, 1), 0);
	s->dirty[s->nr_dirty++] = 0x100000 + 3 * 4096;
	assert_int_equal(vfio_dirty_report(dev, 0x100000, 8 * 4096, 4096, bitmap), 0);
	assert_int_equal(bitmap[0], 1u << 3);
}

/* ---- MIG_DATA_READ: a short read padded to the size asked (libvfio-user) ---- */

static void mig_pad(struct fake_srv *s) { s->mig_pad = true; }

static void mig_pad_check(struct fake_srv *s, struct vfio_device *dev)
{
	static uint8_t all[MIG_BLOB];
	uint8_t buf[1024];
	size_t total = 0;
	ssize_t n;

	while ((n = dev->ops->mig_data_read(dev, buf, sizeof(buf))) > 0) {
		memcpy(all + total, buf, n);
		total += n;
		if ((size_t)n < sizeof(buf))
			break;		/* short read: end of stream */
	}
	assert_int_equal(total, MIG_BLOB);	/* 1024 + 1024 + 952, padding ignored */
	assert_memory_equal(all, s->mig_out, MIG_BLOB);
	assert_false(vfio_device_dead(dev));
}

static void none(struct fake_srv *s) { }

/* ---- the server's DMA_READ / DMA_WRITE, answered from "guest" memory ---- */

#define GIOVA	0x100000ull	/* where the test maps its memory, read-write */
#define GSIZE	0x10000ull
#define RO_IOVA	0x200000ull	/* a read-only map */

static uint8_t guest[2][GSIZE];
static struct { uint64_t iova, len; } written[8];
static unsigned nr_written;

static uint8_t *guest_at(uint64_t iova, uint64_t len)
{
	if (iova >= GIOVA && iova + len <= GIOVA + GSIZE)
		return &guest[0][iova - GIOVA];
	if (iova >= RO_IOVA && iova + len <= RO_IOVA + GSIZE)
		return &guest[1][iova - RO_IOVA];
	return NULL;
}

static int g_read(void *opaque, uint64_t iova, void *dst, uint64_t len)
{
	uint8_t *p = guest_at(iova, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

/* The owner's write path: records the range as vmm/memory.c marks it dirty. */
static int g_write(void *opaque, uint64_t iova, const void *src, uint64_t len)
{
	uint8_t *p = guest_at(iova, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	if (nr_written < ARRAY_SIZE(written))
		written[nr_written++] = (typeof(written[0])){ iova, len };
	return 0;
}

static const struct vfio_dma_mem_ops g_mem = { .read = g_read, .write = g_write };

/* Map the test's memory to the server (rw and read-only) and let it be reached. */
static void guest_attach(struct vfio_device *dev)
{
	int fd = memfd_create("conf-guest", MFD_CLOEXEC);
	struct vfio_dma_map rw = { .iova = GIOVA, .size = GSIZE, .fd = fd,
				   .prot = VFIO_DMA_PROT_READ | VFIO_DMA_PROT_WRITE };
	struct vfio_dma_map ro = { .iova = RO_IOVA, .size = GSIZE, .fd = fd,
				   .prot = VFIO_DMA_PROT_READ };

	assert_int_equal(ftruncate(fd, GSIZE), 0);
	for (unsigned i = 0; i < GSIZE; i++)
		guest[0][i] = (uint8_t)(i * 13 + 1), guest[1][i] = (uint8_t)(i * 7 + 2);
	nr_written = 0;
	assert_int_equal(dev->ops->dma_map(dev, &rw), 0);
	assert_int_equal(dev->ops->dma_map(dev, &ro), 0);
	close(fd);
	vfio_user_set_dma_mem(dev, &g_mem, NULL);
}

/* The device does its scripted DMA before answering this write (the client waits meanwhile). */
static void ring_dma_doorbell(struct vfio_device *dev)
{
	uint32_t v = 1;

	assert_int_equal(dev->ops->region_write(dev, 1, FAKE_DMA_DOORBELL, &v, 4), 0);
	assert_false(vfio_device_dead(dev));
}

static void script(struct fake_srv *s, uint16_t cmd, uint64_t addr, uint64_t count,
		   const void *data, uint32_t len)
{
	struct fake_dma *d = &s->dma[s->nr_dma++];

	*d = (struct fake_dma){ .cmd = cmd, .addr = addr, .count = count, .len = len };
	if (len)
		memcpy(d->data, data, len);
}

static void assert_refused(const struct fake_dma *d, uint32_t err)
{
	assert_true(d->answered);
	assert_int_equal(d->flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
	assert_int_equal(d->error_no, err);
	assert_int_equal(d->ans_len, 0);
}

static void dma_rw(struct fake_srv *s)
{
	static const char msg[] = "written by the device";

	script(s, VFIO_USER_DMA_READ, GIOVA + 0x10, 32, NULL, 0);
	script(s, VFIO_USER_DMA_WRITE, GIOVA + 0x800, sizeof(msg), msg, sizeof(msg));
	script(s, VFIO_USER_DMA_READ, RO_IOVA + 0x20, 8, NULL, 0);
}

static void dma_rw_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_user_dma_rw rw;
	uint64_t answered, refused;

	guest_attach(dev);
	ring_dma_doorbell(dev);
	/* DMA_READ: address and count echoed, then the bytes of guest memory */
	assert_true(s->dma[0].answered);
	assert_int_equal(s->dma[0].flags, VFIO_USER_F_TYPE_REPLY);
	assert_int_equal(s->dma[0].id, 0x9000);
	assert_int_equal(s->dma[0].ans_len, sizeof(rw) + 32);
	memcpy(&rw, s->dma[0].ans, sizeof(rw));
	assert_true(rw.address == GIOVA + 0x10 && rw.count == 32);
	assert_memory_equal(s->dma[0].ans + sizeof(rw), &guest[0][0x10], 32);
	/* DMA_WRITE: landed through the owner's write path (dirty-tracked there) */
	assert_int_equal(s->dma[1].flags, VFIO_USER_F_TYPE_REPLY);
	assert_int_equal(s->dma[1].ans_len, sizeof(rw));
	assert_string_equal((char *)&guest[0][0x800], "written by the device");
	assert_int_equal(nr_written, 1);
	assert_true(written[0].iova == GIOVA + 0x800 && written[0].len == 22);
	/* a read-only map is readable */
	assert_int_equal(s->dma[2].flags, VFIO_USER_F_TYPE_REPLY);
	assert_memory_equal(s->dma[2].ans + sizeof(rw), &guest[1][0x20], 8);
	vfio_user_dma_counts(dev, &answered, &refused);
	assert_true(answered == 3 && refused == 0);
}

static void dma_refused(struct fake_srv *s)
{
	static const uint8_t junk[8] = { 0xee };

	script(s, VFIO_USER_DMA_READ, 0x900000, 16, NULL, 0);		/* mapped by nobody */
	script(s, VFIO_USER_DMA_WRITE, RO_IOVA, 8, junk, 8);		/* a read-only map */
	script(s, VFIO_USER_DMA_READ, GIOVA + GSIZE - 8, 16, NULL, 0);	/* past a map's end */
	script(s, VFIO_USER_DMA_WRITE, GIOVA, 16, junk, 8);		/* count says 16, 8 sent */
}

static void dma_refused_check(struct fake_srv *s, struct vfio_device *dev)
{
	uint64_t answered, refused;
	uint32_t v;

	guest_attach(dev);
	ring_dma_doorbell(dev);
	assert_refused(&s->dma[0], EFAULT);
	assert_refused(&s->dma[1], EFAULT);
	assert_refused(&s->dma[2], EFAULT);
	assert_refused(&s->dma[3], EINVAL);
	assert_int_equal(guest[1][0], 2);		/* nothing written anywhere */
	assert_int_equal(nr_written, 0);
	vfio_user_dma_counts(dev, &answered, &refused);
	assert_true(answered == 0 && refused == 4);
	/* the stream is in sync: the next call is answered */
	assert_int_equal(dev->ops->region_read(dev, 1, 0, &v, 4), 0);
}

static void dma_too_big(struct fake_srv *s)
{
	script(s, VFIO_USER_DMA_READ, GIOVA, VFIO_USER_MAX_DATA_XFER + 1ull, NULL, 0);
	script(s, VFIO_USER_DMA_READ, GIOVA, 0, NULL, 0);
}

static void dma_too_big_check(struct fake_srv *s, struct vfio_device *dev)
{
	guest_attach(dev);
	ring_dma_doorbell(dev);
	assert_refused(&s->dma[0], E2BIG);		/* over the max_data_xfer_size we announced */
	assert_refused(&s->dma[1], EINVAL);
}

/* With no request of ours in flight the server asks anyway: answered on POLLIN. */
static void dma_idle_check(struct fake_srv *s, struct vfio_device *dev)
{
	static const char msg[] = "idle write";
	struct pollfd p = { .fd = vfio_user_socket(dev), .events = POLLIN };

	guest_attach(dev);
	script(s, VFIO_USER_DMA_WRITE, GIOVA + 0x100, sizeof(msg), msg, sizeof(msg));
	fake_dma_request(s, &s->dma[0], 0x8000);	/* from the test: the server thread reads */
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(vfio_user_serve(dev), 0);
	for (int i = 0; i < 200 && !atomic_load(&s->dma_answers); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&s->dma_answers), 1);
	assert_int_equal(s->dma[0].flags, VFIO_USER_F_TYPE_REPLY);
	assert_string_equal((char *)&guest[0][0x100], "idle write");
	assert_int_equal(vfio_user_serve(dev), 0);	/* nothing more: returns at once */
	assert_false(vfio_device_dead(dev));
}

static const struct row rows[] = {
	{ "caps_unknown_keys_ignored", extra_keys, 0, extra_keys_check },
	{ "caps_reference_reply_with_migration", reference_caps, 0, reference_caps_check },
	{ "ioeventfd_40_byte_entries", iofd40, 0, iofd_check },
	{ "ioeventfd_48_byte_entries_shadow_refused", iofd48, 0, iofd_check },
	{ "ioeventfd_unknown_entry_size", iofd44, 0, iofd_bad_stride_check },
	{ "region_info_argsz_two_step", none, 0, region_info_grows_check },
	{ "xfer_exactly_at_negotiated_limit", xfer_4k, 0, xfer_exact_check },
	{ "fds_exactly_at_negotiated_limit", fds_3, 0, fds_exact_check },
	{ "dirty_bitmap_in_u64_words", none, 0, dirty_words_check },
	{ "mig_data_read_short_and_padded", mig_pad, 0, mig_pad_check },
	{ "dma_read_write_answered_from_memory", dma_rw, 0, dma_rw_check },
	{ "dma_outside_maps_or_malformed_refused", dma_refused, 0, dma_refused_check },
	{ "dma_count_over_the_limit_refused", dma_too_big, 0, dma_too_big_check },
	{ "dma_request_while_idle_answered", none, 0, dma_idle_check },
};

static void run_row(void **state)
{
	const struct row *row = *state;
	struct fake_srv *s = srv_new();
	struct vfio_device *dev;

	row->setup(s);
	assert_int_equal(srv_connect(s, &dev), row->attach);
	if (!row->attach)
		row->check(s, dev);
	srv_finish(s, dev);
}

int main(void)
{
	struct CMUnitTest tests[ARRAY_SIZE(rows)];

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		tests[i] = (struct CMUnitTest){
			.name = rows[i].name,
			.test_func = run_row,
			.initial_state = (void *)&rows[i],
		};
	return _cmocka_run_group_tests("vfio-user conformance (client)", tests,
				       ARRAY_SIZE(tests), NULL, NULL);
}
