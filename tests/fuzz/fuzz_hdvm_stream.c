// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for what `hdvm run --incoming` reads from a peer: the
 * migration stream (migration/stream.c) section by section, the manifest
 * (migration/manifest.c, libfdt) and the RAM batches, applied to a memfd of
 * the size the manifest claims (bounded here) -- the destination's order:
 * a section is read whole and crc-checked, a batch's runs are checked, only
 * then is it written.
 * Invariants: nothing outside the input is read or written; a RAM batch
 * before the manifest is refused; writes stay inside the memfd.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/manifest.h"
#include "migration/stream.h"

#define RAM_MAX	(16u << 20)

static struct manifest man;

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
