// SPDX-License-Identifier: MIT
#include "migration/state.h"

#include <stdlib.h>
#include <string.h>

void state_init_writer(struct state_buf *sb)
{
	memset(sb, 0, sizeof(*sb));
	sb->owned = true;
}

void state_init_reader(struct state_buf *sb, const void *data, size_t len)
{
	memset(sb, 0, sizeof(*sb));
	sb->data = (uint8_t *)data;
	sb->len = len;
}

void state_free(struct state_buf *sb)
{
	if (sb->owned)
		free(sb->data);
	memset(sb, 0, sizeof(*sb));
}

void state_put_bytes(struct state_buf *sb, const void *p, size_t n)
{
	if (sb->error)
		return;
	if (n > sb->cap - sb->len) {
		size_t cap = sb->cap ? sb->cap : 256;
		uint8_t *d;

		while (cap - sb->len < n) {
			if (cap > SIZE_MAX / 2) {
				sb->error = true;
				return;
			}
			cap *= 2;
		}
		d = realloc(sb->data, cap);
		if (!d) {
			sb->error = true;
			return;
		}
		sb->data = d;
		sb->cap = cap;
	}
	memcpy(sb->data + sb->len, p, n);
	sb->len += n;
}

void state_get_bytes(struct state_buf *sb, void *p, size_t n)
{
	if (sb->error || n > sb->len - sb->pos) {
		sb->error = true;
		memset(p, 0, n);
		return;
	}
	memcpy(p, sb->data + sb->pos, n);
	sb->pos += n;
}

/* Fixed little-endian encoding: hosts are x86-64, but the stream format is explicit. */
#define STATE_INT(bits)							\
void state_put_u##bits(struct state_buf *sb, uint##bits##_t v)		\
{									\
	uint8_t b[bits / 8];						\
	for (unsigned i = 0; i < sizeof(b); i++)			\
		b[i] = (uint8_t)(v >> (8 * i));				\
	state_put_bytes(sb, b, sizeof(b));				\
}									\
uint##bits##_t state_get_u##bits(struct state_buf *sb)			\
{									\
	uint8_t b[bits / 8];						\
	uint##bits##_t v = 0;						\
	state_get_bytes(sb, b, sizeof(b));				\
	for (unsigned i = 0; i < sizeof(b); i++)			\
		v |= (uint##bits##_t)b[i] << (8 * i);			\
	return v;							\
}
STATE_INT(8)
STATE_INT(16)
STATE_INT(32)
STATE_INT(64)

size_t state_begin_section(struct state_buf *sb, uint32_t tag)
{
	size_t mark;

	state_put_u32(sb, tag);
	mark = sb->len;
	state_put_u32(sb, 0);	/* length, patched by state_end_section */
	return mark;
}

void state_end_section(struct state_buf *sb, size_t mark)
{
	size_t body = sb->len - mark - 4;

	if (sb->error)
		return;
	if (body > UINT32_MAX) {
		sb->error = true;
		return;
	}
	for (unsigned i = 0; i < 4; i++)
		sb->data[mark + i] = (uint8_t)(body >> (8 * i));
}
