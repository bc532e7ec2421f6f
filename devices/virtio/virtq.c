// SPDX-License-Identifier: MIT
/*
 * Split-ring walker (virtio 1.x §2.7), shared by hdvm and hdnic.  The driver
 * may change ring memory at any moment, so every shared field is read
 * exactly once (READ_ONCE) into a local before it is checked and used.
 */
#include "devices/virtio/virtq.h"

#include <string.h>

#include "migration/state.h"
#include "vmm/compiler.h"
#include "vmm/util.h"

/* Ring sizes with the EVENT_IDX trailer, which is reserved even when unused. */
static uint64_t desc_bytes(uint16_t n) { return 16ull * n; }
static uint64_t avail_bytes(uint16_t n) { return 6ull + 2ull * n; }	/* flags idx ring[] used_event */
static uint64_t used_bytes(uint16_t n) { return 6ull + 8ull * n; }	/* flags idx ring[] avail_event */

void vq_reset(struct vq *q, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->size = max_size;
	q->max_size = max_size;
	q->msix_vector = VQ_NO_VECTOR;
}

int vq_attach(struct vq *q, const struct vq_mem *mem, bool event_idx, enum vq_dir dir)
{
	vq_translate_fn *translate = mem->ops->translate;
	uint16_t n = q->size;

	vq_detach(q);
	if (!n || n > VQ_MAX_SIZE || (q->max_size && n > q->max_size) || (n & (n - 1)))
		return -EINVAL;
	if (q->desc_addr % 16 || q->avail_addr % 2 || q->used_addr % 4)
		return -EINVAL;
	q->desc = translate(mem->opaque, q->desc_addr, desc_bytes(n), VQ_ACCESS_READ);
	q->avail = translate(mem->opaque, q->avail_addr, avail_bytes(n), VQ_ACCESS_READ);
	q->used = translate(mem->opaque, q->used_addr, used_bytes(n),
			    VQ_ACCESS_READ | VQ_ACCESS_WRITE);
	if (!q->desc || !q->avail || !q->used) {
		vq_detach(q);
		return -EFAULT;
	}
	q->mem = *mem;
	q->event_idx = event_idx;
	q->dir = dir;
	q->avail_ahead = 0;
	q->published = q->used_idx;
	q->attached = true;
	return 0;
}

void vq_detach(struct vq *q)
{
	q->attached = false;
	q->avail_ahead = 0;
	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
}

int vq_pop(struct vq *q, struct vq_chain *c)
{
	return vq_pop_with(q, c, q->mem.ops->translate, q->mem.opaque);
}

const char *vq_strerror(int err)
{
	switch (-err) {
	case EINVAL: return "bad queue size or misaligned ring";
	case EFAULT: return "ring or buffer outside the memory the device may access";
	case ERANGE: return "avail index more than the queue size ahead";
	case ECHRNG: return "descriptor index out of range";
	case ELOOP: return "descriptor chain loops";
	case EOVERFLOW: return "chain length overflows 32 bits";
	case EOPNOTSUPP: return "indirect descriptor (not negotiated)";
	case EACCES: return "buffer with the wrong direction";
	default: return "broken ring";
	}
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &q->used->ring[q->used_idx & (q->size - 1)];

	WRITE_ONCE(e->id, head);
	WRITE_ONCE(e->len, len);
	q->used_idx++;
}

/* Tell the written hook about used entries [from, to) and the index. */
static void used_written(struct vq *q, uint16_t from, uint16_t to)
{
	vq_written_fn *written = q->mem.ops->written;
	uint16_t n = (uint16_t)(to - from), start = from & (q->size - 1), first;

	written(q->mem.opaque, q->used_addr, 4);		/* flags, idx */
	if (n > q->size)
		n = q->size;
	first = MIN(n, (uint16_t)(q->size - start));
	if (first)
		written(q->mem.opaque, q->used_addr + 4 + 8ull * start, 8ull * first);
	if (n > first)						/* wrapped */
		written(q->mem.opaque, q->used_addr + 4, 8ull * (n - first));
}

void vq_publish(struct vq *q)
{
	smp_wmb();		/* entries before the index */
	WRITE_ONCE(q->used->idx, q->used_idx);
	if (q->mem.ops->written)
		used_written(q, q->published, q->used_idx);
	q->published = q->used_idx;
}

bool vq_should_interrupt(struct vq *q)
{
	uint16_t old = q->signalled_used, now = q->used_idx;
	bool valid = q->signalled_valid;

	smp_mb();			/* used->idx store before reading what the driver wants */
	q->signalled_used = now;
	q->signalled_valid = true;
	if (!q->event_idx)
		return !(READ_ONCE(q->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	/* used_event lives right after the avail ring */
	return vring_need_event(READ_ONCE(q->avail->ring[q->size]), now, old);
}

void vq_set_notify(struct vq *q, bool enable)
{
	vq_written_fn *written = q->mem.ops->written;

	if (q->event_idx) {
		/* avail_event after the used ring; far ahead = "don't bother" */
		uint16_t ev = enable ? q->last_avail : (uint16_t)(q->last_avail + 0x8000);

		WRITE_ONCE(*(volatile uint16_t *)&q->used->ring[q->size], ev);
		if (written)
			written(q->mem.opaque, q->used_addr + 4 + 8ull * q->size, 2);
	} else {
		WRITE_ONCE(q->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY);
		if (written)
			written(q->mem.opaque, q->used_addr, 2);
	}
	smp_mb();		/* publish before the caller rechecks avail->idx */
}

void vq_chain_written(const struct vq *q, const struct vq_chain *c, uint32_t len)
{
	vq_written_fn *written = q->mem.ops->written;

	if (!written)
		return;
	for (unsigned i = c->nr_out; i < c->nr && len; i++) {
		uint32_t n = MIN(len, c->iov[i].len);

		written(q->mem.opaque, c->iov[i].addr, n);
		len -= n;
	}
}

void vq_save(const struct vq *q, struct state_buf *sb)
{
	state_put_u16(sb, q->size);
	state_put_u16(sb, q->msix_vector);
	state_put_u8(sb, q->enabled);
	state_put_u64(sb, q->desc_addr);
	state_put_u64(sb, q->avail_addr);
	state_put_u64(sb, q->used_addr);
	state_put_u16(sb, q->last_avail);
	state_put_u16(sb, q->used_idx);
	state_put_u16(sb, q->signalled_used);
	state_put_u8(sb, q->signalled_valid);
	state_put_u8(sb, q->broken);
}

int vq_load(struct vq *q, struct state_buf *sb, uint16_t max_size)
{
	struct vq n;

	vq_reset(&n, max_size);
	n.size = state_get_u16(sb);
	n.msix_vector = state_get_u16(sb);
	n.enabled = state_get_u8(sb);
	n.desc_addr = state_get_u64(sb);
	n.avail_addr = state_get_u64(sb);
	n.used_addr = state_get_u64(sb);
	n.last_avail = state_get_u16(sb);
	n.used_idx = state_get_u16(sb);
	n.signalled_used = state_get_u16(sb);
	n.signalled_valid = state_get_u8(sb);
	n.broken = state_get_u8(sb);
	/* the size register only ever holds what the driver may program */
	if (!state_ok(sb) || !n.size || n.size > max_size || (n.size & (n.size - 1)))
		return -EINVAL;
	*q = n;
	return 0;
}
