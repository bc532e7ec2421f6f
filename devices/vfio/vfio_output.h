/* SPDX-License-Identifier: MIT */
/*
 * Output commit (Remus/ReNIC) on an hdnic function through its vendor
 * device feature: frames the function sends are held per epoch until the
 * epoch is committed.  0 or -errno (-EINVAL: epoch out of order or not
 * holding; -EOPNOTSUPP: the device has no such feature).
 */
#ifndef HDVM_VFIO_OUTPUT_H
#define HDVM_VFIO_OUTPUT_H

#include <stdint.h>

struct vfio_device;
struct hdnic_output_status;

int vfio_output_commit_probe(struct vfio_device *dev);
/* Any op by number (HDNIC_OUTPUT_*, the same as enum holdq_op): what devices/ calls. */
int vfio_output_commit_op(struct vfio_device *dev, uint32_t op, uint64_t epoch,
			  uint32_t max_frames);
/* Hold from now on, tagging frames epoch; max_frames 0: the device's default. */
int vfio_output_commit_start(struct vfio_device *dev, uint64_t epoch, uint32_t max_frames);
/* Frames from now on belong to epoch (greater than the current one). */
int vfio_output_commit_epoch(struct vfio_device *dev, uint64_t epoch);
/* Every epoch <= epoch is committed: its frames leave, in order. */
int vfio_output_commit_commit(struct vfio_device *dev, uint64_t epoch);
/* Stop holding: everything held leaves. */
int vfio_output_commit_stop(struct vfio_device *dev);
/* Throw away what is not committed. */
int vfio_output_commit_discard(struct vfio_device *dev);
int vfio_output_commit_status(struct vfio_device *dev, struct hdnic_output_status *st);

#endif
