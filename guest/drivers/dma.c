// SPDX-License-Identifier: MIT
/* A bump allocator for DMA memory after the image (see dma.h). */
#include <stdint.h>
#include "guest/console.h"
#include "guest/drivers/dma.h"

/* The dirty app's area starts here; nothing else lives above the image. */
#define DMA_LIMIT	0x1000000ULL

extern char _end[];

static const struct boot_info *boot;
static uint64_t next;

void dma_init(const struct boot_info *bi)
{
	boot = bi;
	next = (uint64_t)_end;
}

void *dma_alloc(size_t size, size_t align, const char *what)
{
	uint64_t addr = (next + align - 1) & ~(uint64_t)(align - 1);

	if (!boot || addr < next || addr > DMA_LIMIT || size > DMA_LIMIT - addr) {
		printf("dma: no room for %s (%zu bytes)\n", what, size);
		return NULL;
	}
	if (boot->nr_ram && !bootinfo_ram_covers(boot, addr, size)) {
		printf("dma: no RAM for %s at 0x%lx-0x%lx\n", what, addr, addr + size);
		return NULL;
	}
	next = addr + size;
	return (void *)addr;
}
