// SPDX-License-Identifier: MIT
#include "devices/vfio/vfio_user_dma.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

void vfio_user_dma_init(struct vfio_user_dma *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
}

void vfio_user_dma_destroy(struct vfio_user_dma *d)
{
	free(d->maps);
	d->maps = NULL;
	d->nr = d->cap = 0;
	pthread_mutex_destroy(&d->lock);
}

int vfio_user_dma_add(struct vfio_user_dma *d, uint64_t iova, uint64_t size, uint32_t prot)
{
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (d->nr == d->cap) {
		unsigned cap = d->cap ? 2 * d->cap : 8;
		void *m = realloc(d->maps, cap * sizeof(*d->maps));

		if (!m) {
			ret = -ENOMEM;
			goto out;
		}
		d->maps = m;
		d->cap = cap;
	}
	d->maps[d->nr++] = (struct vfio_user_dma_map_entry){ iova, size, prot };
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void vfio_user_dma_remove(struct vfio_user_dma *d, uint64_t iova, uint64_t size)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->nr; i++) {
		if (d->maps[i].iova == iova && d->maps[i].size == size) {
			d->maps[i] = d->maps[--d->nr];
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* Is [addr, addr+len) inside one map with prot?  (lock held) */
static bool mapped(const struct vfio_user_dma *d, uint64_t addr, uint64_t len, uint32_t prot)
{
	for (unsigned i = 0; i < d->nr; i++) {
		const struct vfio_user_dma_map_entry *m = &d->maps[i];

		if (addr >= m->iova && addr - m->iova < m->size && len <= m->size - (addr - m->iova))
			return (m->prot & prot) == prot;
	}
	return false;
}

static int dma_access(struct vfio_user_dma *d, uint64_t addr, void *buf, uint64_t len, bool write)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	if (!d->mem || !mapped(d, addr, len, write ? VFIO_DMA_PROT_WRITE : VFIO_DMA_PROT_READ))
		ret = -EFAULT;	/* outside what this server was given: never touched */
	else if (write)
		ret = d->mem->write(d->mem_opaque, addr, buf, len);
	else
		ret = d->mem->read(d->mem_opaque, addr, buf, len);
	if (ret)
		d->refused++;
	else if (write)
		d->writes++;
	else
		d->reads++;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static int answer_read(void *opaque, uint64_t addr, void *dst, uint64_t len)
{
	return dma_access(opaque, addr, dst, len, false);
}

static int answer_write(void *opaque, uint64_t addr, const void *src, uint64_t len)
{
	return dma_access(opaque, addr, (void *)src, len, true);
}

const struct vfio_user_dma_ops vfio_user_dma_answer = {
	.read = answer_read,
	.write = answer_write,
};
