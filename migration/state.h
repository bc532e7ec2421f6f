/* SPDX-License-Identifier: MIT */
/*
 * A bounded byte buffer for device state.  Writers append little-endian fields;
 * readers consume them and get an error (never an overrun) on truncated input.
 * Every device's save/load goes through this, so a corrupt stream is caught
 * in one place.
 */
#ifndef HDVM_STATE_H
#define HDVM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_buf {
	uint8_t *data;
	size_t len;		/* bytes written (writer) or available (reader) */
	size_t cap;		/* writer: allocated bytes */
	size_t pos;		/* reader: next byte */
	bool error;		/* sticky: overflow on read or allocation failure */
	bool owned;		/* data is ours to free */
};

void state_init_writer(struct state_buf *sb);
void state_init_reader(struct state_buf *sb, const void *data, size_t len);
void state_free(struct state_buf *sb);

void state_put_u8(struct state_buf *sb, uint8_t v);
void state_put_u16(struct state_buf *sb, uint16_t v);
void state_put_u32(struct state_buf *sb, uint32_t v);
void state_put_u64(struct state_buf *sb, uint64_t v);
void state_put_bytes(struct state_buf *sb, const void *p, size_t n);

uint8_t state_get_u8(struct state_buf *sb);
uint16_t state_get_u16(struct state_buf *sb);
uint32_t state_get_u32(struct state_buf *sb);
uint64_t state_get_u64(struct state_buf *sb);
void state_get_bytes(struct state_buf *sb, void *p, size_t n);

/* Sections: a tag and a length so a loader can check it consumed exactly one. */
size_t state_begin_section(struct state_buf *sb, uint32_t tag);
void state_end_section(struct state_buf *sb, size_t mark);

static inline bool state_ok(const struct state_buf *sb) { return !sb->error; }
static inline bool state_at_end(const struct state_buf *sb) { return sb->pos == sb->len; }

#endif
