// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the split-ring walker.  The input is the device's
 * whole DMA-visible memory (rings and buffers) plus a small header choosing
 * the queue size, ring addresses and direction.  Every chain the walker
 * accepts must lie inside the mapped memory; anything else must come back
 * as an error, never as a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/dma_space.h"
#include "devices/hdnic/dma_ring.h"
#include "vmm/util.h"

#define MEM_SIZE	(64 * 1024)
#define IOVA		0x100000ULL

static uint8_t *mem;

struct fz_hdr {
	uint8_t size_log2;
	uint8_t flags;		/* bit 0 device writes, bit 1 event_idx, bit 2 read-only map,
				 * bit 3 mixed (control-queue) chains */
	uint16_t desc, avail, used;	/* offsets / 16 into the map */
	uint16_t last_avail;
} __attribute__((packed));

static void check_chain(const struct vq *vq, const struct vq_chain *c)
{
	uint64_t total = 0;

	/* zero-length descriptors are left out: an all-empty chain has none */
	if (c->nr > vq->size || c->head >= vq->size || c->nr_out > c->nr)
		abort();
	for (unsigned i = 0; i < c->nr; i++) {
		const uint8_t *b = c->iov[i].base;

		if (!c->iov[i].len || c->iov[i].addr - IOVA != (uint64_t)(b - mem))
			abort();
		if (b < mem || b + c->iov[i].len > mem + MEM_SIZE)
			abort();
		total += c->iov[i].len;
	}
	if (total != c->total)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dma_space ds;
	struct vq vq;
	struct vq_chain *c;
	enum vq_dir dir;
	struct fz_hdr h;

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	if (!mem)
		mem = aligned_alloc(4096, MEM_SIZE);
	memset(mem, 0, MEM_SIZE);
	memcpy(mem, data + sizeof(h), MIN(size - sizeof(h), (size_t)MEM_SIZE));

	dma_space_init(&ds, 4);
	dma_space_map_host(&ds, IOVA, MEM_SIZE, mem,
			   (h.flags & 4) ? DMA_PROT_READ : DMA_PROT_READ | DMA_PROT_WRITE);
	vq_reset(&vq, HDNIC_QUEUE_MAX_SIZE);
	vq.size = (uint16_t)(1u << (h.size_log2 % 10));	/* 1..512: 512 must be refused */
	vq.enabled = true;
	vq.desc_addr = IOVA + 16ULL * h.desc;
	vq.avail_addr = IOVA + 16ULL * h.avail;
	vq.used_addr = IOVA + 16ULL * h.used;
	c = malloc(sizeof(*c));
	dir = h.flags & 8 ? VQ_BOTH : h.flags & 1 ? VQ_FROM_DEVICE : VQ_TO_DEVICE;
	if (dma_vq_attach(&vq, &ds, h.flags & 2, dir) == 0) {
		vq.last_avail = h.last_avail;
		vq.used_idx = h.last_avail;
		vq_set_notify(&vq, false);
		for (unsigned i = 0; i < 2u * vq.size + 2; i++) {
			int r = dma_vq_pop(&vq, &ds, c);

			if (r <= 0)
				break;
			check_chain(&vq, c);
			vq_push(&vq, c->head, (uint32_t)c->total);
		}
		vq_publish(&vq);
		vq_should_interrupt(&vq);
		vq_set_notify(&vq, true);
		vq_pending(&vq);
	}
	free(c);
	dma_space_destroy(&ds);
	return 0;
}
