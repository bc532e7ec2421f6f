// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for what `hdvm run --incoming` reads from a peer, and
 * `hdvm run --restore` from a snapshot file (the same stream since version
 * 2): the migration stream (migration/stream.c) section by section, the
 * manifest (migration/manifest.c, libfdt), the RAM batches, applied to a
 * memfd of the size the manifest claims (bounded here) -- the destination's
 * order: a section is read whole and crc-checked, a batch's runs are
 * checked, only then is it written -- and the device pre-copy sections
 * (DEVP, devices_load_iterate) handed to a device that takes what it is
 * given.
 * Invariants: nothing outside the input is read or written; a RAM batch
 * before the manifest is refused; writes stay inside the memfd.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/device.h"
#include "migration/manifest.h"
#include "migration/stream.h"
#include "vmm/vm.h"

#define RAM_MAX	(16u << 20)

static struct manifest man;

/* A passthrough-like device: takes every pre-copy byte, reads each exactly once. */
static int take(struct device *dev, struct state_buf *sb)
{
	volatile uint8_t sum = 0;

	while (sb->pos < sb->len)
		sum += sb->data[sb->pos++];
	(void)sum;
	return 0;
}

static int noop(struct device *dev) { return 0; }
static const struct device_mig_ops take_mig = { .version = 1, .load_iterate = take };
static const struct device_ops take_ops = {
	.type = "vfio-pci", .pause = noop, .resume = noop, .mig = &take_mig,
};
static struct device vfio0 = { .ops = &take_ops, .id = "vfio0",
			       .lock = PTHREAD_MUTEX_INITIALIZER };
static struct vm fuzz_vm = { .devices = &vfio0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_reader r;
	struct mig_io io;
	char why[256];
	bool have_manifest = false;
	int memfd = -1;

	mig_io_mem(&io, data, size);
	if (mig_reader_init(&r, &io, why, sizeof(why)) == 0) {
		for (;;) {
			const uint8_t *body;
			uint64_t len, dp, zp;
			uint32_t tag;

			if (mig_read_section(&r, &tag, &body, &len, why, sizeof(why)))
				break;
			if (tag == MIG_TAG_END)
				break;
			if (tag == MIG_TAG_MANIFEST) {
				if (have_manifest ||
				    manifest_parse(body, len, &man, why, sizeof(why)))
					break;
				have_manifest = true;
				if (man.mem_size <= RAM_MAX) {
					memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
					if (memfd < 0 || ftruncate(memfd, (off_t)man.mem_size))
						abort();
				}
				continue;
			}
			if (tag == MIG_TAG_DEV_PRECOPY) {
				struct state_buf sb;

				if (!have_manifest)
					break;
				state_init_reader(&sb, body, len);
				if (devices_load_iterate(&fuzz_vm, &sb, why, sizeof(why)))
					break;
				continue;
			}
			if (tag != MIG_TAG_RAM_BATCH)
				continue;
			if (!have_manifest)
				break;
			if (mig_check_ram_batch(body, len, man.mem_size, &dp, &zp, why, sizeof(why)))
				break;
			if (memfd >= 0 && mig_apply_ram_batch(body, len, memfd))
				abort();
		}
		mig_reader_free(&r);
	}
	if (memfd >= 0) {
		off_t end = lseek(memfd, 0, SEEK_END);

		if (end != (off_t)man.mem_size)
			abort();	/* a write went past RAM */
		close(memfd);
	}
	mig_io_close(&io);
	return 0;
}
