/* SPDX-License-Identifier: MIT */
/*
 * Receive flow control (rx_wait.c): hdnic never drops a frame it has paid
 * to read just because the destination's RX ring is momentarily full.
 *
 * - A frame from the uplink for a full ring waits on the function's wait
 *   queue, in arrival order, at most nic->rxw_max frames and nic->rxw_ns
 *   long; past either bound it is dropped (rx_wait_drops).  Frames for
 *   other functions keep flowing.  When every running function is waiting
 *   nothing can be delivered: the uplink's reads are not re-armed, so the
 *   excess waits (or is dropped) in the kernel, for free.  Waiting ends on
 *   the function's refill: its avail index or doorbell moves (polled each
 *   pass) or it kicks the RX queue (notifications are on while it waits).
 * - A function sending to a function whose ring is full keeps the frame in
 *   its own TX ring (the scheduler puts it back) for at most rxw_ns; then
 *   the frame is dropped, and the receiver is "stuck": frames for it are
 *   dropped at once until it posts buffers, so the senders' other flows go.
 */
#ifndef HDNIC_RX_WAIT_H
#define HDNIC_RX_WAIT_H

#include <stdbool.h>
#include <stdint.h>

struct nic;
struct vdev;
struct rxw_frame;

#define RXW_DEFAULT_MAX		256	/* frames per function */
#define RXW_DEFAULT_US		100000	/* 100 ms */

struct rx_wait {
	struct rxw_frame *head, *tail;
	unsigned nr;
	struct vdev *next;	/* on nic->rxw_list */
	bool listed;
	bool stuck;		/* full past the bound: function senders' frames drop at once */
};

/* vd's ring had no buffer (or frames wait already): queue a copy of the frame. */
void rxw_enqueue(struct vdev *vd, const uint8_t *frame, uint32_t len);
/* Each loop pass: deliver what refilled rings take, drop what waited too long. */
void rxw_service(struct nic *nic);
/* vd's RX queue was kicked: look at its waiting frames now. */
void rxw_kick(struct vdev *vd);
/* vd leaves the NIC: its waiting frames are dropped (counted). */
void rxw_forget(struct vdev *vd);
/* Free whatever still waits (vdev_free: nothing else is touched). */
void rxw_release(struct vdev *vd);
/* A function started running: the uplink may have something to deliver again. */
void rxw_update_block(struct nic *nic);

/*
 * Function-to-function: may src send a frame for rcv now?  RXW_SEND: yes;
 * RXW_WAIT: keep it in src's TX ring; RXW_DROP: drop it (counted on rcv).
 */
enum rxw_verdict { RXW_SEND, RXW_WAIT, RXW_DROP };
enum rxw_verdict rxw_switch_admit(struct vdev *src, struct vdev *rcv, const uint8_t *frame,
				  uint32_t len);
/* src sent or dropped its frame: it no longer waits. */
void rxw_switch_done(struct vdev *src);

#endif
