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
#include <cmocka.h>

#include "devices/vfio/vfio.h"
#include "tests/unit/vfio_fake_server.h"

struct row {
	const char *name;
	void (*setup)(struct fake_srv *s);
	int attach;		/* what vfio_user_open_fd must return */
	void (*check)(struct fake_srv *s, struct vfio_device *dev);
};

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

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
	int before = open_fds();

	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), 0);
	/* shadow-ioeventfd and ioregionfd entries are refused: those writes stay trapped */
	assert_int_equal(nr, 2);
	assert_int_equal(evs[0].offset, 0x100);
	assert_int_equal(evs[0].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
	assert_int_equal(evs[0].datamatch, 1);	/* 48 bytes: not shadow_offset's 0x40 */
	assert_int_equal(evs[1].offset, 0x104);
	assert_int_equal(evs[1].datamatch, 0);
	assert_int_equal(open_fds(), before + 2);	/* the shadow memfd was not kept */
	vfio_ioeventfds_free(evs, nr);
}

static void iofd_bad_stride_check(struct fake_srv *s, struct vfio_device *dev)
{
	struct vfio_ioeventfd *evs;
	unsigned nr;
	int before = open_fds();

	assert_int_equal(dev->ops->get_io_fds(dev, 0, &evs, &nr), -EPROTO);
	assert_int_equal(open_fds(), before);
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
