// SPDX-License-Identifier: MIT
/*
 * Split-ring walker (virtio 1.x §2.7).  The driver may change ring memory
 * at any moment, so every shared field is read exactly once (READ_ONCE)
 * into a local before it is checked and used.
 */
#include "devices/virtio/virtq.h"

#include <errno.h>
#include <string.h>

#include "migration/state.h"
#include "vmm/compiler.h"
#include "vmm/memory.h"

/* Ring sizes with the EVENT_IDX trailer, which is reserved even when unused. */
static uint64_t desc_bytes(uint16_t n) { return 16ull * n; }
static uint64_t avail_bytes(uint16_t n) { return 6ull + 2ull * n; }	/* flags idx ring[] used_event */
static uint64_t used_bytes(uint16_t n) { return 6ull + 8ull * n; }	/* flags idx ring[] avail_event */

void vq_reset(struct vq *q, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->size = max_size;
	q->msix_vector = VQ_NO_VECTOR;
}

int vq_attach(struct vq *q, const struct guest_mem *m, bool event_idx, bool device_writes)
{
	uint16_t n = q->size;

	vq_detach(q);
	if (!n || n > VQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
		return -EINVAL;
	q->desc = gpa_to_hva(m, q->desc_gpa, desc_bytes(n));
	q->avail = gpa_to_hva(m, q->avail_gpa, avail_bytes(n));
	q->used = gpa_to_hva(m, q->used_gpa, used_bytes(n));
	if (!q->desc || !q->avail || !q->used) {
		vq_detach(q);
		return -EFAULT;
	}
	q->event_idx = event_idx;
	q->device_writes = device_writes;
	q->ready = true;
	return 0;
}

void vq_detach(struct vq *q)
{
	q->ready = false;
	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
}

int vq_pending(const struct vq *q)
{
	uint16_t pending = (uint16_t)(READ_ONCE(q->avail->idx) - q->last_avail);

	return pending > q->size ? -ERANGE : pending;
}

int vq_pop(struct vq *q, const struct guest_mem *m, struct vq_chain *c)
{
	uint16_t want_write = q->device_writes ? VRING_DESC_F_WRITE : 0;
	uint16_t idx, seen = 0;
	uint64_t total = 0;
	int pending = vq_pending(q);

	if (pending <= 0)
		return pending;
	smp_rmb();			/* ring entries after the index that published them */
	idx = READ_ONCE(q->avail->ring[q->last_avail & (q->size - 1)]);
	if (idx >= q->size)
		return -ECHRNG;
	c->head = idx;
	c->nr = 0;
	for (;;) {
		uint64_t addr = READ_ONCE(q->desc[idx].addr);
		uint32_t len = READ_ONCE(q->desc[idx].len);
		uint16_t flags = READ_ONCE(q->desc[idx].flags);
		uint16_t next = READ_ONCE(q->desc[idx].next);

		if (++seen > q->size)
			return -ELOOP;
		if (flags & VRING_DESC_F_INDIRECT)
			return -EOPNOTSUPP;	/* not offered */
		if ((flags & VRING_DESC_F_WRITE) != want_write)
			return -EACCES;		/* TX buffers are read-only, RX write-only */
		total += len;
		if (total > UINT32_MAX)
			return -EOVERFLOW;
		if (len) {
			uint8_t *p = gpa_to_hva(m, addr, len);

			if (!p)
				return -EFAULT;
			c->iov[c->nr].base = p;
			c->iov[c->nr].len = len;
			c->nr++;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= q->size)
			return -ECHRNG;
		idx = next;
	}
	c->total = (uint32_t)total;
	q->last_avail++;
	return 1;
}

const char *vq_strerror(int err)
{
	switch (-err) {
	case EINVAL: return "bad queue size or misaligned ring";
	case EFAULT: return "ring or buffer outside guest RAM";
	case ERANGE: return "avail index more than the queue size ahead";
	case ECHRNG: return "descriptor index out of range";
	case ELOOP: return "descriptor chain loops";
	case EOVERFLOW: return "chain length overflows 32 bits";
	case EOPNOTSUPP: return "indirect descriptor (not negotiated)";
	case EACCES: return "buffer with the wrong direction";
	default: return "broken ring";
	}
}

void vq_unpop(struct vq *q)
{
	q->last_avail--;
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &q->used->ring[q->used_idx & (q->size - 1)];

	WRITE_ONCE(e->id, head);
	WRITE_ONCE(e->len, len);
	q->used_idx++;
}

void vq_publish(struct vq *q)
{
	smp_wmb();			/* entries before the index */
	WRITE_ONCE(q->used->idx, q->used_idx);
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
	if (q->event_idx) {
		/* avail_event after the used ring; far ahead = "don't bother" */
		uint16_t ev = enable ? q->last_avail : (uint16_t)(q->last_avail + 0x8000);

		WRITE_ONCE(*(volatile uint16_t *)&q->used->ring[q->size], ev);
	} else {
		WRITE_ONCE(q->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY);
	}
	smp_mb();			/* publish before the caller rechecks avail->idx */
}

void vq_save(const struct vq *q, struct state_buf *sb)
{
	state_put_u16(sb, q->size);
	state_put_u16(sb, q->msix_vector);
	state_put_u8(sb, q->enabled);
	state_put_u64(sb, q->desc_gpa);
	state_put_u64(sb, q->avail_gpa);
	state_put_u64(sb, q->used_gpa);
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
	n.desc_gpa = state_get_u64(sb);
	n.avail_gpa = state_get_u64(sb);
	n.used_gpa = state_get_u64(sb);
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
