/* SPDX-License-Identifier: MIT */
/*
 * The snapshot file (`hdvm snapshot`, `hdvm run --restore`):
 *
 *   header   "HDVMSNAP" u32 version u32 0
 *   section  u32 tag, u32 crc32 of the body, u64 body length, body   (repeated)
 *   end      a section tagged "END " whose body is the u64 count of sections before it
 *
 * All integers little-endian.  The RAM section's body is u64 RAM bytes, then
 * runs of non-zero pages: u64 first page, u64 page count, the pages.  Zero
 * pages are left out (a fresh VM's memory is zero), runs ascend and do not
 * overlap.
 *
 * The writer makes PATH.tmp-PID, fsyncs it and renames it over PATH, so a
 * crash leaves the old file or the new one, never half of one.  The reader
 * maps the file and checks everything -- header, every section's bounds and
 * crc32, the RAM runs, the end marker, nothing after it -- before a caller
 * applies anything; a refusal names the problem.
 *
 * crc32 (zlib): catches truncation and bit flips, not tampering; the file is
 * as trusted as the directory it is in.
 */
#ifndef HDVM_SNAPSHOT_FILE_H
#define HDVM_SNAPSHOT_FILE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SNAP_VERSION		1
#define SNAP_TAG(a, b, c, d)	((uint32_t)(a) | (uint32_t)(b) << 8 | \
				 (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define SNAP_TAG_RAM		SNAP_TAG('R', 'A', 'M', ' ')
#define SNAP_TAG_END		SNAP_TAG('E', 'N', 'D', ' ')
#define SNAP_MAX_SECTIONS	32

/* A section's crc: over tag and length too, so a flipped tag or length is caught. */
uint32_t snap_section_crc(uint32_t tag, uint64_t len, uint32_t body_crc);

struct snap_writer {
	int fd;
	char path[4096];
	char tmp[4096 + 32];
	uint32_t nr_sections;
	uint64_t bytes;		/* written so far */
	uint64_t ram_pages;	/* non-zero pages in the RAM section */
	int err;		/* sticky: first failure, -errno */
};

int snap_create(struct snap_writer *w, const char *path);
int snap_put_section(struct snap_writer *w, uint32_t tag, const void *data, uint64_t len);
/* Guest RAM from its memfd (read with pread, so holes stay unallocated). */
int snap_put_ram(struct snap_writer *w, int memfd, uint64_t size);
/* End marker, fsync, rename over the path: the file exists only from here. */
int snap_commit(struct snap_writer *w);
void snap_abort(struct snap_writer *w);

struct snap_section {
	uint32_t tag;
	const uint8_t *data;
	uint64_t len;
};

struct snap_reader {
	const uint8_t *map;
	size_t map_len;
	bool mapped;		/* snap_open() mapped it; snap_close() unmaps */
	struct snap_section sections[SNAP_MAX_SECTIONS];
	unsigned nr_sections;
	uint64_t ram_size;	/* from the RAM section (0 if none) */
};

/*
 * Map and validate the whole file.  0, or -errno with `why` saying what is
 * wrong ("truncated in section RAM", "crc mismatch in section MACH", ...).
 */
int snap_open(struct snap_reader *r, const char *path, char *why, size_t len);
/* Validate a file already in memory (what snap_open does after mapping it). */
int snap_parse(struct snap_reader *r, const uint8_t *data, size_t size, char *why, size_t len);
const struct snap_section *snap_find(const struct snap_reader *r, uint32_t tag);
/*
 * Write the RAM runs into a new VM's memfd (`size` bytes), before it ever
 * runs; the pages left out stay zero.  pwrite, not a copy through the
 * mapping: no page-table faults in hdvm (a third faster here for 64 MiB).
 */
int snap_load_ram(const struct snap_reader *r, int memfd, uint64_t size);
void snap_close(struct snap_reader *r);

/* Little-endian fields of the snapshot file and the migration stream. */
/* All of src into fd at offset at (guest RAM into its memfd): 0 or -errno. */
int mig_pwrite_all(int fd, const uint8_t *src, uint64_t len, uint64_t at);

/* Write the reason into why[len] (when given) and return err: every reader's refusal. */
int mig_refuse(int err, char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline uint64_t mig_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline uint32_t mig_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

#endif
