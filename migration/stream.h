/* SPDX-License-Identifier: MIT */
/*
 * The migration stream: the snapshot file's framing (migration/snapshot_file.h)
 * read and written incrementally over any byte transport (a file, a socket,
 * TLS), so the same bytes can sit in a file or cross a network.
 *
 *   header   "HDVMSNAP" u32 version (2) u32 flags (MIG_F_RAM_BY_FD, MIG_F_POSTCOPY)
 *   section  u32 tag, u32 crc32 of tag+length+body, u64 body length, body
 *   ...
 *   end      section "END " whose body is the u64 count of sections before it
 *
 * Sections of a stream, in order:
 *   MANF  the manifest: machine and devices as a flattened device tree
 *         (migration/manifest.h); first, exactly once
 *   RAMB  a batch of guest pages (any number, pass after pass; see below)
 *   DEVP  devices_save_iterate(): what passthrough devices give ahead in
 *         VFIO PRE_COPY, between RAM passes (any number, before DEVS)
 *   DEVS  devices_save(): vCPU/VM state ("machine") and every device's state
 *   CANC  instead of the rest: the source stopped (cancel, --timeout, a
 *         failure of its own); the body is its reason, the destination
 *         exits with it
 *   END
 *
 * A RAMB body: u32 pass, u32 number of runs, then the runs.  A run is u64
 * first page (bit 63 set: a run of zero pages, no data follows), u64 count,
 * then count * 4096 bytes unless it is a zero run.  Zero pages are never
 * sent as data; a page that becomes zero between passes is sent as a zero
 * run so the destination clears it.  A batch carries at most
 * MIG_BATCH_PAGES pages of data, so every batch is checked (crc, bounds)
 * before any of it is written into the destination's RAM.
 *
 * With MIG_F_RAM_BY_FD (unix: transport) the RAM travels as the memfd itself
 * (SCM_RIGHTS) right after the header, and the stream has no RAMB sections.
 * With MIG_F_NET_BY_FD (unix:) the manifest is followed by one TAP fd per
 * --net device, in the manifest's order: the destination on the same host
 * takes the source's TAPs over instead of opening them (they are in use).
 *
 * Every section is read whole and checked (length bound, crc) before it is
 * handed on; a short read is "truncated in section X"; a stream that ends
 * without the end marker, or a wrong count in it, is refused.
 */
#ifndef HDVM_MIG_STREAM_H
#define HDVM_MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "migration/snapshot_file.h"

#define MIG_STREAM_VERSION	2
#define MIG_F_RAM_BY_FD		1u
#define MIG_F_POSTCOPY		2u	/* the source may switch to post-copy (vmm/postcopy_vm.h) */
#define MIG_F_NET_BY_FD		4u	/* unix: one TAP fd per --net after the manifest */
#define MIG_TAG_MANIFEST	SNAP_TAG('M', 'A', 'N', 'F')
#define MIG_TAG_RAM_BATCH	SNAP_TAG('R', 'A', 'M', 'B')
#define MIG_TAG_DEVS		SNAP_TAG('D', 'E', 'V', 'S')
#define MIG_TAG_DEV_PRECOPY	SNAP_TAG('D', 'E', 'V', 'P')
#define MIG_TAG_CANCEL		SNAP_TAG('C', 'A', 'N', 'C')
#define MIG_TAG_END		SNAP_TAG_END
#define MIG_PAGE		4096ull
#define MIG_BATCH_PAGES		256		/* 1 MiB of page data per batch */
#define MIG_ZERO_RUN		(1ull << 63)
#define MIG_MAX_SECTION		(64ull << 20)	/* device state included */

struct mig_io;

/* A byte transport: file, socket or TLS session (migration/transport.h). */
struct mig_io_ops {
	/* >0 bytes moved, 0 end of stream (read), -errno */
	ssize_t (*read)(struct mig_io *io, void *buf, size_t len);
	ssize_t (*write)(struct mig_io *io, const void *buf, size_t len);
	void (*close)(struct mig_io *io);
	/* unix sockets only (NULL elsewhere): one fd with one byte, SCM_RIGHTS */
	int (*send_fd)(struct mig_io *io, int fd);
	int (*recv_fd)(struct mig_io *io, int *fd);
};

struct mig_io {
	const struct mig_io_ops *ops;
	int fd;
	void *priv;		/* TLS session, memory buffer, ... */
	uint64_t bytes_in, bytes_out;
	bool one_way;		/* a file: nobody answers */
};

int mig_write_all(struct mig_io *io, const void *buf, size_t len);
/* 0, -EPIPE when the stream ends first (got says how much arrived), or -errno. */
int mig_read_all(struct mig_io *io, void *buf, size_t len, size_t *got);

/* An io over a buffer in memory (tests, fuzzing): reads `data`, writes are refused. */
void mig_io_mem(struct mig_io *io, const uint8_t *data, size_t len);
/* An io over a plain fd (file or socket); close() closes the fd. */
void mig_io_fd(struct mig_io *io, int fd);
/* The same over a unix socket, which can also pass fds. */
void mig_io_unix(struct mig_io *io, int fd);
void mig_io_close(struct mig_io *io);

/* ---- writer ---- */

struct mig_writer {
	struct mig_io *io;
	uint32_t nr_sections;
	int err;			/* sticky */
	/* the RAM batch being filled */
	uint8_t *batch;
	size_t batch_len, batch_cap;
	uint32_t batch_runs, batch_data_pages, pass;
	int64_t run_at;			/* offset of the open run's header, or -1 */
	uint64_t run_next;		/* the page that would extend the open run */
	bool run_zero;
	/* what went out */
	uint64_t pages_sent, zero_pages, ram_bytes;
};

int mig_writer_init(struct mig_writer *w, struct mig_io *io, uint32_t flags);
int mig_put_section(struct mig_writer *w, uint32_t tag, const void *data, uint64_t len);
/* Queue one page (NULL or all zero: a zero page) of pass `pass`; batches go out as they fill. */
int mig_put_page(struct mig_writer *w, uint32_t pass, uint64_t page, const void *data);
int mig_flush_ram(struct mig_writer *w);
int mig_put_end(struct mig_writer *w);
void mig_writer_free(struct mig_writer *w);
bool mig_page_is_zero(const void *p);

/* ---- reader ---- */

struct mig_reader {
	struct mig_io *io;
	uint32_t flags;
	uint32_t nr_sections;
	bool ended;
	uint8_t *buf;			/* the last section's body */
	size_t cap;
	uint64_t pages, zero_pages;	/* RAM received */
};

/* Header: magic, version, flags.  0 or -errno with `why`. */
int mig_reader_init(struct mig_reader *r, struct mig_io *io, char *why, size_t len);
/*
 * The next section, read whole and crc-checked: its tag, body (valid until
 * the next call) and length.  The end marker is checked here and returned
 * as MIG_TAG_END (r->ended set).
 */
int mig_read_section(struct mig_reader *r, uint32_t *tag, const uint8_t **data,
		     uint64_t *len, char *why, size_t wlen);
void mig_reader_free(struct mig_reader *r);

/* A RAMB body's runs are inside `ram_size` bytes and fill it exactly. */
int mig_check_ram_batch(const uint8_t *data, uint64_t len, uint64_t ram_size,
			uint64_t *data_pages, uint64_t *zero_pages, char *why, size_t wlen);
/* Write a checked batch into RAM: data runs with pwrite into memfd, zero runs cleared. */
int mig_apply_ram_batch(const uint8_t *data, uint64_t len, int memfd);

void mig_tag_name(uint32_t tag, char out[5]);

#endif
