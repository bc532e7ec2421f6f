/* SPDX-License-Identifier: MIT */
/*
 * Post-copy records: what crosses the migration connection after the
 * switchover, in both directions, once the destination said "OK" (its VM
 * runs and will fault on the pages it still lacks).
 *
 * Every record: u32 magic, u32 flags, u64 arg, u32 payload length, u32 crc32
 * (over the first 20 bytes and the payload), then the payload.  The crc is
 * per record, so every page is checked on its own before it reaches guest
 * RAM; a page that fails it is refused, never installed.
 *
 *   source -> destination
 *     PCPG  a page: arg = page number (memfd offset / 4096), payload = 4096
 *           bytes, or none with PC_F_ZERO; PC_F_REQUESTED when it answers a
 *           fault, else it is the background push
 *     PCEN  every needed page went out: arg = how many
 *   destination -> source
 *     PCRQ  a fault: arg = the page the destination's VM is waiting for
 *     PCDN  every needed page is present: arg = how many arrived
 *     PCER  the destination stops the VM: payload = why (text)
 *
 * The switchover section (MIG_TAG_POSTCOPY, "PCSW", before DEVS in the
 * stream) says which pages the destination must not trust: u64 number of
 * RAM pages, u64 how many are needed, then the bitmap (bit p of word p/64).
 */
#ifndef HDVM_POSTCOPY_PROTO_H
#define HDVM_POSTCOPY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"

#define MIG_TAG_POSTCOPY	SNAP_TAG('P', 'C', 'S', 'W')

#define PC_REC_PAGE	0x47504350u	/* "PCPG" */
#define PC_REC_END	0x4e454350u	/* "PCEN" */
#define PC_REC_REQ	0x51524350u	/* "PCRQ" */
#define PC_REC_DONE	0x4e444350u	/* "PCDN" */
#define PC_REC_ERR	0x52454350u	/* "PCER" */

#define PC_F_REQUESTED	1u
#define PC_F_ZERO	2u

/*
 * Socket buffers of the post-copy connection (each end sets its own): a
 * requested page waits behind whatever pushed pages sit in them, so they
 * bound the fault latency (256 KiB at ~100 MiB/s: about 2.5 ms each).
 */
#define PC_SOCKET_BUFFER	(256 * 1024)

#define PC_REC_HDR	24
#define PC_MAX_PAYLOAD	4096u

struct pc_rec {
	uint32_t magic, flags;
	uint64_t arg;
	uint32_t len;
	uint8_t payload[PC_MAX_PAYLOAD + 1];	/* +1: an error text is terminated */
};

/* One record into buf (PC_REC_HDR + len bytes): its length. */
size_t pc_encode(uint8_t *buf, uint32_t magic, uint32_t flags, uint64_t arg,
		 const void *payload, uint32_t len);
/*
 * One record from buf[0, avail): 0 with *used bytes taken; -EAGAIN when the
 * record is not all there yet; -EBADMSG (crc) or -EPROTO (why says).
 */
int pc_parse(const uint8_t *buf, size_t avail, struct pc_rec *rec, size_t *used,
	     char *why, size_t len);
/* One record out, header and payload in one write: 0 or -errno. */
int pc_put(struct mig_io *io, uint32_t magic, uint32_t flags, uint64_t arg,
	   const void *payload, uint32_t len);
/*
 * One record in, checked: 0; -EPIPE when the peer closed (at a record
 * boundary or inside one); -EBADMSG for a crc mismatch; -EPROTO for an
 * unknown record or a bad length.  why says which.
 */
int pc_get(struct mig_io *io, struct pc_rec *rec, char *why, size_t len);

/* Bitmap helpers (one bit per page). */
static inline bool pc_test(const uint64_t *bm, uint64_t p)
{
	return bm[p / 64] >> (p % 64) & 1;
}

static inline void pc_set(uint64_t *bm, uint64_t p)
{
	bm[p / 64] |= 1ull << (p % 64);
}

static inline void pc_clear(uint64_t *bm, uint64_t p)
{
	bm[p / 64] &= ~(1ull << (p % 64));
}

static inline size_t pc_words(uint64_t npages)
{
	return (npages + 63) / 64;
}

uint64_t pc_count(const uint64_t *bm, uint64_t npages);

/* The PCSW body: encode (caller frees *out) and parse-and-check against the RAM size. */
int pc_switch_encode(const uint64_t *needed, uint64_t npages, uint8_t **out, uint64_t *len);
int pc_switch_parse(const uint8_t *body, uint64_t len, uint64_t npages, uint64_t **needed,
		    uint64_t *nr_needed, char *why, size_t wlen);

#endif
