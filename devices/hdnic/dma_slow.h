/* SPDX-License-Identifier: MIT */
/*
 * The slow path: a function whose client mapped memory without an fd
 * (vfio-user DMA_MAP without a file descriptor).  hdnic cannot mmap that
 * memory; the spec has the server reach it with DMA_READ and DMA_WRITE
 * messages to the client over the same socket (vfu_req.h).
 *
 * The fast path stays what it is: the one ring library walking rings and
 * copying frames through dma_translate() pointers.  For such a function
 * the pointers lead to copies the slow path keeps coherent:
 *  - every queue's rings (wherever they live) are private copies: the
 *    fast path sees a new avail entry only once the slow path has fetched
 *    its descriptors and every buffer the device will read;
 *  - buffers in fd-less memory live in the region's shadow (dma_space.h);
 *  - what the device writes (RX data, used entries, avail_event, the
 *    control queue's ack) is recorded by dma_written() and written back at
 *    the end of the loop pass, data first, used indexes last, with
 *    DMA_WRITE (or a copy into fd-backed memory), and the queue
 *    interrupts of that pass are held until the client has acknowledged
 *    every one of those writes.
 *
 * Asynchronous, in hdnic's one loop: a refresh sends its DMA_READs and the
 * function goes on when the replies are in; nothing ever waits for a
 * client, so one that does not answer stalls only its own function.  A
 * request without a reply by the deadline (--dma-timeout-ms), an error
 * reply or a malformed one puts the function in NEEDS_RESET with the
 * reason logged and counted (`dma_msg_errors`); a virtio reset starts it
 * afresh.  Requests are only ever sent for ranges dma_translate() accepted
 * in the function's own PASID space with the access they need.
 *
 * A refresh runs when the driver kicks a queue or stores its doorbell,
 * and every SLOW_REFRESH_NS while hdnic's loop is awake (a driver that
 * only publishes avail entries is seen that late, or at its next kick).  Interrupts are not
 * suppressed on this path (the driver's used_event is client memory: a
 * spurious interrupt is harmless, a missed one is not).
 */
#ifndef HDNIC_DMA_SLOW_H
#define HDNIC_DMA_SLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"

struct dma_slow;
struct vdev;

#define SLOW_REFRESH_NS		(10 * 1000 * 1000ull)

/* The function's client mapped its first region without an fd. */
int dma_slow_create(struct vdev *vd);
/* The client is gone (its maps were dropped). */
void dma_slow_destroy(struct vdev *vd);
/* The function is freed. */
void dma_slow_free(struct dma_slow *s);
/* vq's rings were just resolved in the function's space: give it private copies. */
void dma_slow_bind(struct dma_slow *s, struct vq *vq);
/* A kick for the driver's queue: refresh it, then let the fast path look. */
void dma_slow_kick(struct dma_slow *s, unsigned queue);
/* Once per loop pass: doorbells, the periodic refresh, the write-back. */
void dma_slow_pass(struct dma_slow *s, uint64_t now_ns);
/* vdev_flush_irqs(): true if the slow path holds the interrupts back for now. */
bool dma_slow_hold_irqs(struct dma_slow *s);
/* The DMA map changed: nothing in flight may land in memory that went away. */
void dma_slow_map_changed(struct dma_slow *s);
/* Virtio reset: queues unbound, requests forgotten, errors cleared. */
void dma_slow_reset(struct dma_slow *s);
/* Why the function stopped, or NULL. */
const char *dma_slow_error(const struct dma_slow *s);

#endif
