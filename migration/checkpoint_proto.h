/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint stream (Remus, issue 11): the migration stream's framing
 * (migration/stream.h: header, crc32-checked sections) kept open for the
 * life of the protection, carrying one checkpoint per epoch.
 *
 * Primary -> standby, after the stream header:
 *   MANF  the manifest (migration/manifest.h), once
 *   CKHI  u32 proto version, u32 epoch_ms, u32 heartbeat_ms, u32 failover_ms
 *   then checkpoints, each
 *     CKBG  u64 epoch, u64 since: the pages are those written since
 *           checkpoint `since` (epoch - 1, or older after a refusal)
 *     RAMB  batches (stream.h; pass = low 32 bits of the epoch)
 *     DEVS  devices_save(): vCPU/VM state and every device (not in epoch 0)
 *     CKEN  u64 epoch, u32 sections between CKBG and CKEN, u32 RAM data
 *           pages in them (a lost section or batch is caught; each section
 *           carries its own crc32)
 *   and between them
 *     CKHB  u64 last epoch shipped, u64 sender's monotonic ns
 *     CKST  u64 last epoch: protection ends, the standby must not activate
 * Epoch 0 is the base: every page with data, no DEVS, never acknowledged;
 * the first checkpoint a standby can activate from is epoch 1.
 *
 * Standby -> primary: fixed 16-byte replies, u32 "CKRP", u32 kind, u64 epoch:
 *   ACK N     checkpoint N arrived whole, verified and applied
 *   REFUSE N  checkpoint N was refused (corrupt, truncated, out of order):
 *             the previous one is kept; the primary resends from its last ack
 *   ALIVE N   heartbeat answer (N: the last checkpoint applied)
 *   STOPPED N the standby saw CKST and will not activate
 *
 * The receiving side stages a checkpoint whole (ckpt_stage_*) before any
 * of it reaches guest RAM or the devices: a checkpoint is applied complete
 * or not at all (double-buffered).
 */
#ifndef HDVM_CHECKPOINT_PROTO_H
#define HDVM_CHECKPOINT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"

#define CKPT_PROTO_VERSION	1
#define CKPT_TAG_HELLO		SNAP_TAG('C', 'K', 'H', 'I')
#define CKPT_TAG_BEGIN		SNAP_TAG('C', 'K', 'B', 'G')
#define CKPT_TAG_END		SNAP_TAG('C', 'K', 'E', 'N')
#define CKPT_TAG_HEARTBEAT	SNAP_TAG('C', 'K', 'H', 'B')
#define CKPT_TAG_STOP		SNAP_TAG('C', 'K', 'S', 'T')

#define CKPT_REPLY_MAGIC	SNAP_TAG('C', 'K', 'R', 'P')
#define CKPT_REPLY_LEN		16

enum ckpt_reply_kind {
	CKPT_ACK = 1,
	CKPT_REFUSE = 2,
	CKPT_ALIVE = 3,
	CKPT_STOPPED = 4,
};

struct ckpt_hello {
	uint32_t version, epoch_ms, heartbeat_ms, failover_ms;
};

struct ckpt_end {
	uint64_t epoch;
	uint32_t sections, pages;
};

/* ---- primary side ---- */

int ckpt_put_hello(struct mig_writer *w, const struct ckpt_hello *h);
int ckpt_put_heartbeat(struct mig_writer *w, uint64_t epoch, uint64_t ns);
int ckpt_put_stop(struct mig_writer *w, uint64_t epoch);
/*
 * Between ckpt_put_begin and ckpt_put_end the epoch's RAM goes through
 * mig_put_page (pass = epoch) and its state through mig_put_section(DEVS);
 * the end counts the sections and pages written since the begin.
 */
struct ckpt_mark {
	uint32_t w_sections;	/* the writer's count after CKBG */
	uint64_t w_pages;	/* its data pages then */
};
int ckpt_put_begin(struct mig_writer *w, struct ckpt_mark *m, uint64_t epoch, uint64_t since);
int ckpt_put_end(struct mig_writer *w, const struct ckpt_mark *m, uint64_t epoch);

/* A 16-byte reply (standby -> primary) and its parse; -EPROTO for a bad magic/kind. */
void ckpt_reply_encode(uint8_t out[CKPT_REPLY_LEN], uint32_t kind, uint64_t epoch);
int ckpt_reply_decode(const uint8_t in[CKPT_REPLY_LEN], uint32_t *kind, uint64_t *epoch);

/* ---- standby side ---- */

int ckpt_parse_hello(const uint8_t *d, uint64_t len, struct ckpt_hello *h, char *why, size_t wlen);
int ckpt_parse_u64s(const uint8_t *d, uint64_t len, uint64_t *a, uint64_t *b);
int ckpt_parse_end(const uint8_t *d, uint64_t len, struct ckpt_end *e);

/*
 * One checkpoint being received: each section copied as it arrives (its
 * crc already checked by the reader), checked, and applied only at its end.
 */
struct ckpt_stage {
	bool open;
	uint64_t epoch, since;
	uint8_t **ram;		/* RAMB bodies */
	uint64_t *ram_len;
	size_t nr_ram, cap_ram;
	uint8_t *devs;		/* DEVS body (NULL: none yet) */
	uint64_t devs_len;
	uint32_t sections;	/* what arrived */
	uint64_t bytes, pages, zero_pages;
};

void ckpt_stage_init(struct ckpt_stage *s);
/* Drop what was staged (a refused or abandoned checkpoint). */
void ckpt_stage_reset(struct ckpt_stage *s);
void ckpt_stage_free(struct ckpt_stage *s);
/* CKBG: -EPROTO if one is open already. */
int ckpt_stage_begin(struct ckpt_stage *s, uint64_t epoch, uint64_t since, char *why, size_t wlen);
/*
 * A section inside the checkpoint (RAMB or DEVS), crc already checked by
 * the reader: RAM batches are bounds-checked against ram_size here.
 */
int ckpt_stage_section(struct ckpt_stage *s, uint32_t tag, const uint8_t *body,
		       uint64_t len, uint64_t ram_size, char *why, size_t wlen);
/* CKEN: the epoch, section and page counts match; epoch > 0 needs DEVS. */
int ckpt_stage_verify(const struct ckpt_stage *s, const struct ckpt_end *e, char *why, size_t wlen);
/* Write the staged RAM batches into the memfd (after verify). */
int ckpt_stage_apply_ram(const struct ckpt_stage *s, int memfd);

/*
 * outer: inner with every read and write bounded by timeout_ms (-ETIMEDOUT):
 * a peer that stops reading or writing is noticed within the failover time.
 * Closing outer frees the wrapper only; inner stays the caller's.  (Over TLS
 * the wait is on the socket, so bytes the TLS library already buffered are
 * seen only with the next record: good enough for a heartbeat-paced stream.)
 */
void ckpt_io_bounded(struct mig_io *outer, struct mig_io *inner, int timeout_ms);

#endif
