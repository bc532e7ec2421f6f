// SPDX-License-Identifier: MIT
#include "migration/postcopy_proto.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t rec_crc(const uint8_t *hdr, const void *payload, uint32_t len)
{
	uLong c = crc32(0, hdr, 20);

	/* crc32(c, NULL, 0) is zlib's "initial value" (0), not c */
	return (uint32_t)(len ? crc32(c, payload, len) : c);
}

size_t pc_encode(uint8_t *buf, uint32_t magic, uint32_t flags, uint64_t arg,
		 const void *payload, uint32_t len)
{
	put32(buf, magic);
	put32(buf + 4, flags);
	put64(buf + 8, arg);
	put32(buf + 16, len);
	put32(buf + 20, rec_crc(buf, payload, len));
	if (len)
		memcpy(buf + PC_REC_HDR, payload, len);
	return PC_REC_HDR + len;
}

int pc_put(struct mig_io *io, uint32_t magic, uint32_t flags, uint64_t arg,
	   const void *payload, uint32_t len)
{
	uint8_t buf[PC_REC_HDR + PC_MAX_PAYLOAD];

	if (len > PC_MAX_PAYLOAD)
		return -EINVAL;
	return mig_write_all(io, buf, pc_encode(buf, magic, flags, arg, payload, len));
}

static bool known(uint32_t magic, uint32_t len, uint32_t flags)
{
	switch (magic) {
	case PC_REC_PAGE:
		return len == (flags & PC_F_ZERO ? 0 : PC_MAX_PAYLOAD);
	case PC_REC_ERR:
		return true;
	case PC_REC_END:
	case PC_REC_REQ:
	case PC_REC_DONE:
		return len == 0;
	}
	return false;
}

int pc_get(struct mig_io *io, struct pc_rec *rec, char *why, size_t len)
{
	uint8_t hdr[PC_REC_HDR];
	size_t got = 0;
	int ret = mig_read_all(io, hdr, sizeof(hdr), &got);

	if (ret)
		return mig_refuse(ret == -EPIPE ? -EPIPE : ret, why, len, "%s",
				  ret != -EPIPE ? "post-copy connection: read failed" :
				  got ? "post-copy connection: closed inside a record" :
				  "post-copy connection: the peer closed it");
	rec->magic = mig_le32(hdr);
	rec->flags = mig_le32(hdr + 4);
	rec->arg = mig_le64(hdr + 8);
	rec->len = mig_le32(hdr + 16);
	if (rec->len > PC_MAX_PAYLOAD || !known(rec->magic, rec->len, rec->flags))
		return mig_refuse(-EPROTO, why, len, "post-copy connection: unknown record "
				  "%#x of %u bytes", rec->magic, rec->len);
	ret = mig_read_all(io, rec->payload, rec->len, &got);
	if (ret)
		return mig_refuse(ret == -EPIPE ? -EPIPE : ret, why, len,
				  "post-copy connection: closed inside a record");
	rec->payload[rec->len] = 0;
	if (rec_crc(hdr, rec->payload, rec->len) != mig_le32(hdr + 20))
		return mig_refuse(-EBADMSG, why, len, "post-copy record %#x (arg %llu) "
				  "failed its checksum", rec->magic, (unsigned long long)rec->arg);
	return 0;
}

int pc_parse(const uint8_t *buf, size_t avail, struct pc_rec *rec, size_t *used,
	     char *why, size_t len)
{
	if (avail < PC_REC_HDR)
		return -EAGAIN;
	rec->magic = mig_le32(buf);
	rec->flags = mig_le32(buf + 4);
	rec->arg = mig_le64(buf + 8);
	rec->len = mig_le32(buf + 16);
	if (rec->len > PC_MAX_PAYLOAD || !known(rec->magic, rec->len, rec->flags))
		return mig_refuse(-EPROTO, why, len, "post-copy connection: unknown record "
				  "%#x of %u bytes", rec->magic, rec->len);
	if (avail < PC_REC_HDR + rec->len)
		return -EAGAIN;
	memcpy(rec->payload, buf + PC_REC_HDR, rec->len);
	rec->payload[rec->len] = 0;
	if (rec_crc(buf, rec->payload, rec->len) != mig_le32(buf + 20))
		return mig_refuse(-EBADMSG, why, len, "post-copy record %#x (arg %llu) "
				  "failed its checksum", rec->magic, (unsigned long long)rec->arg);
	*used = PC_REC_HDR + rec->len;
	return 0;
}

uint64_t pc_count(const uint64_t *bm, uint64_t npages)
{
	uint64_t n = 0;

	for (size_t w = 0; w < pc_words(npages); w++)
		n += (uint64_t)__builtin_popcountll(bm[w]);
	return n;
}

int pc_switch_encode(const uint64_t *needed, uint64_t npages, uint8_t **out, uint64_t *len)
{
	size_t words = pc_words(npages);
	uint8_t *b = malloc(16 + words * 8);

	if (!b)
		return -ENOMEM;
	put64(b, npages);
	put64(b + 8, pc_count(needed, npages));
	for (size_t w = 0; w < words; w++)
		put64(b + 16 + w * 8, needed[w]);
	*out = b;
	*len = 16 + words * 8;
	return 0;
}

int pc_switch_parse(const uint8_t *body, uint64_t len, uint64_t npages, uint64_t **needed,
		    uint64_t *nr_needed, char *why, size_t wlen)
{
	size_t words = pc_words(npages);
	uint64_t *bm;

	if (len < 16 || mig_le64(body) != npages || len != 16 + words * 8)
		return mig_refuse(-EPROTO, why, wlen, "post-copy switchover: the page list is "
				  "not for %llu pages of RAM", (unsigned long long)npages);
	bm = calloc(words ?: 1, 8);
	if (!bm)
		return -ENOMEM;
	for (size_t w = 0; w < words; w++)
		bm[w] = mig_le64(body + 16 + w * 8);
	if (npages % 64)
		bm[words - 1] &= (1ull << (npages % 64)) - 1;
	if (pc_count(bm, npages) != mig_le64(body + 8)) {
		free(bm);
		return mig_refuse(-EPROTO, why, wlen, "post-copy switchover: the page list "
				  "does not hold the %llu pages it announces",
				  (unsigned long long)mig_le64(body + 8));
	}
	*needed = bm;
	*nr_needed = mig_le64(body + 8);
	return 0;
}
