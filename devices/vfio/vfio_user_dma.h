/* SPDX-License-Identifier: MIT */
/*
 * The server's DMA_READ / DMA_WRITE answered from the client's memory
 * (vfio-user spec, "Client memory access").  A server may reach memory the
 * client DMA-mapped with these messages instead of through the fd it got
 * (libvfio-user's servers do whenever they do not ask for direct access),
 * so hdvm answers them for everything it mapped: an access must lie wholly
 * inside one DMA_MAP of this server and have the access the map allowed;
 * the bytes come from / go to the owner's memory (guest RAM through
 * vmm/memory.c, where writes are dirty-tracked like any device write).
 */
#ifndef HDVM_VFIO_USER_DMA_H
#define HDVM_VFIO_USER_DMA_H

#include <pthread.h>
#include <stdint.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_user_conn.h"

struct vfio_user_dma {
	pthread_mutex_t lock;		/* maps change while requests are answered */
	struct vfio_user_dma_map_entry {
		uint64_t iova, size;
		uint32_t prot;		/* VFIO_DMA_PROT_* */
	} *maps;
	unsigned nr, cap;
	const struct vfio_dma_mem_ops *mem;	/* NULL: nothing to answer from (EFAULT) */
	void *mem_opaque;
	uint64_t reads, writes, refused;
};

void vfio_user_dma_init(struct vfio_user_dma *d);
void vfio_user_dma_destroy(struct vfio_user_dma *d);
/* DMA_MAP / DMA_UNMAP went through: what requests may reach. */
int vfio_user_dma_add(struct vfio_user_dma *d, uint64_t iova, uint64_t size, uint32_t prot);
void vfio_user_dma_remove(struct vfio_user_dma *d, uint64_t iova, uint64_t size);

/* The transport's ops (vfio_user_conn.h); opaque is the struct vfio_user_dma. */
extern const struct vfio_user_dma_ops vfio_user_dma_answer;

#endif
