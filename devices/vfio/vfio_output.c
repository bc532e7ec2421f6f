// SPDX-License-Identifier: MIT
/*
 * Output commit on a passed-through hdnic function (ReNIC, issue 11):
 * hdnic's vendor DEVICE_FEATURE (devices/hdnic/hdnic_vf_abi.h) on the
 * device's own vfio-user connection, one round trip per call.  The
 * checkpoint driver starts holding when protection starts, opens epoch N+1
 * at each pause, commits N when the standby acknowledged checkpoint N, and
 * stops (releasing everything) when protection ends.
 */
#include <errno.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_output.h"

#define OC_FEATURE(dir)	(HDNIC_FEATURE_OUTPUT_COMMIT | (dir))

static int output_op(struct vfio_device *dev, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	struct hdnic_output_commit oc = { .op = op, .max_frames = max_frames, .epoch = epoch };
	struct hdnic_output_commit echo;	/* the reply echoes the request */

	return dev->ops->feature(dev, OC_FEATURE(VFIO_DEVICE_FEATURE_SET), &oc, sizeof(oc),
				 &echo, sizeof(echo), NULL);
}

int vfio_output_commit_op(struct vfio_device *dev, uint32_t op, uint64_t epoch,
			  uint32_t max_frames)
{
	return output_op(dev, op, epoch, max_frames);
}

int vfio_output_commit_probe(struct vfio_device *dev)
{
	int ret = dev->ops->feature(dev, OC_FEATURE(VFIO_DEVICE_FEATURE_PROBE |
						    VFIO_DEVICE_FEATURE_SET), NULL, 0,
				    NULL, 0, NULL);

	return ret == -EINVAL || ret == -ENOTTY ? -EOPNOTSUPP : ret;
}

int vfio_output_commit_start(struct vfio_device *dev, uint64_t epoch, uint32_t max_frames)
{
	return output_op(dev, HDNIC_OUTPUT_START, epoch, max_frames);
}

int vfio_output_commit_epoch(struct vfio_device *dev, uint64_t epoch)
{
	return output_op(dev, HDNIC_OUTPUT_EPOCH, epoch, 0);
}

int vfio_output_commit_commit(struct vfio_device *dev, uint64_t epoch)
{
	return output_op(dev, HDNIC_OUTPUT_COMMIT, epoch, 0);
}

int vfio_output_commit_stop(struct vfio_device *dev)
{
	return output_op(dev, HDNIC_OUTPUT_STOP, 0, 0);
}

int vfio_output_commit_discard(struct vfio_device *dev)
{
	return output_op(dev, HDNIC_OUTPUT_DISCARD, 0, 0);
}

int vfio_output_commit_status(struct vfio_device *dev, struct hdnic_output_status *st)
{
	size_t got = 0;
	int ret = dev->ops->feature(dev, OC_FEATURE(VFIO_DEVICE_FEATURE_GET), NULL, 0, st,
				    sizeof(*st), &got);

	if (!ret && got < sizeof(*st))
		ret = -EPROTO;
	return ret;
}
