/* SPDX-License-Identifier: MIT */
/*
 * Memory for device rings and packet buffers: carved at run time from the
 * RAM right after the image (guest-physical = virtual: identity mapped).
 * It is not part of the ELF, so hdvm neither loads nor clears it and apps
 * without a device never touch it; users initialise what they allocate.
 */
#ifndef HDGUEST_DMA_H
#define HDGUEST_DMA_H

#include <stddef.h>
#include "guest/bootinfo.h"

/* Where allocations may go: [end of image, 16 MiB), and only inside RAM. */
void dma_init(const struct boot_info *bi);
/* size bytes aligned to align (a power of two); NULL (printed) if it does not fit. */
void *dma_alloc(size_t size, size_t align, const char *what);

#endif
