// SPDX-License-Identifier: MIT
/*
 * The VFIO migration v2 state machine (DEVICE_FEATURE MIGRATION and
 * MIG_DEVICE_STATE), the same for every backend: vfio-user and kernel VFIO
 * differ only in how ops->feature carries the request.
 *
 * A target is reached one arc at a time along the kernel's shortest-path
 * table (drivers/vfio/vfio_main.c, vfio_mig_get_next_state), skipping
 * states the device does not support: with P2P, RUNNING -> STOP goes
 * through RUNNING_P2P, without it the arc is direct.  A failed arc is
 * undone: the device is walked back to where it started, and reset (which
 * leaves it RUNNING) if that fails too or it reports ERROR.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/vfio/vfio.h"

#define S(x)	VFIO_DEVICE_STATE_##x
#define MIG_NR_STATES	8	/* ERROR .. PRE_COPY_P2P */

static const char *const state_names[] = {
	[S(ERROR)] = "ERROR", [S(STOP)] = "STOP", [S(RUNNING)] = "RUNNING",
	[S(STOP_COPY)] = "STOP_COPY", [S(RESUMING)] = "RESUMING",
	[S(RUNNING_P2P)] = "RUNNING_P2P", [S(PRE_COPY)] = "PRE_COPY",
	[S(PRE_COPY_P2P)] = "PRE_COPY_P2P",
};

const char *vfio_mig_state_name(uint32_t state)
{
	return state < MIG_NR_STATES ? state_names[state] : "?";
}

int vfio_mig_get_flags(struct vfio_device *dev, uint64_t *flags)
{
	size_t got = 0;
	int ret;

	*flags = 0;
	ret = dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
				NULL, 0, flags, sizeof(*flags), &got);
	if (ret == -ENOTTY || ret == -EINVAL || ret == -ENOSYS || ret == -EOPNOTSUPP)
		ret = -ENOTSUP;	/* "no such feature", however the backend says it */
	if (!ret && (got < sizeof(*flags) || !(*flags & VFIO_MIGRATION_STOP_COPY)))
		ret = -ENOTSUP;	/* STOP_COPY is the mandatory base of the FSM */
	return ret;
}

int vfio_mig_get_state(struct vfio_device *dev, uint32_t *state)
{
	struct vfio_device_feature_mig_state st = { .data_fd = -1 };
	size_t got = 0;
	int ret;

	ret = dev->ops->feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				NULL, 0, &st, sizeof(st), &got);
	if (!ret && got < sizeof(st))
		ret = -EPROTO;
	*state = ret ? S(ERROR) : st.device_state;
	return ret;
}

int vfio_mig_set_state(struct vfio_device *dev, uint32_t state)
{
	struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };

	return dev->ops->feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 &st, sizeof(st), NULL, 0, NULL);
}

static bool state_supported(uint64_t flags, uint32_t s)
{
	switch (s) {
	case S(RUNNING_P2P):
		return flags & VFIO_MIGRATION_P2P;
	case S(PRE_COPY):
		return flags & VFIO_MIGRATION_PRE_COPY;
	case S(PRE_COPY_P2P):
		return (flags & VFIO_MIGRATION_PRE_COPY) && (flags & VFIO_MIGRATION_P2P);
	default:
		return s < MIG_NR_STATES;
	}
}

uint32_t vfio_mig_next_state(uint64_t flags, uint32_t cur, uint32_t target)
{
	static const uint8_t next[8][8] = {
		[S(STOP)] = {
			[S(STOP)] = S(STOP), [S(RUNNING)] = S(RUNNING_P2P),
			[S(STOP_COPY)] = S(STOP_COPY), [S(RESUMING)] = S(RESUMING),
			[S(RUNNING_P2P)] = S(RUNNING_P2P), [S(PRE_COPY)] = S(RUNNING_P2P),
			[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		},
		[S(RUNNING)] = {
			[S(STOP)] = S(RUNNING_P2P), [S(RUNNING)] = S(RUNNING),
			[S(STOP_COPY)] = S(RUNNING_P2P), [S(RESUMING)] = S(RUNNING_P2P),
			[S(RUNNING_P2P)] = S(RUNNING_P2P), [S(PRE_COPY)] = S(PRE_COPY),
			[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		},
		[S(STOP_COPY)] = {
			[S(STOP)] = S(STOP), [S(RUNNING)] = S(STOP), [S(STOP_COPY)] = S(STOP_COPY),
			[S(RESUMING)] = S(STOP), [S(RUNNING_P2P)] = S(STOP),
			[S(PRE_COPY)] = S(ERROR), [S(PRE_COPY_P2P)] = S(ERROR),
		},
		[S(RESUMING)] = {
			[S(STOP)] = S(STOP), [S(RUNNING)] = S(STOP), [S(STOP_COPY)] = S(STOP),
			[S(RESUMING)] = S(RESUMING), [S(RUNNING_P2P)] = S(STOP),
			[S(PRE_COPY)] = S(STOP), [S(PRE_COPY_P2P)] = S(STOP),
		},
		[S(RUNNING_P2P)] = {
			[S(STOP)] = S(STOP), [S(RUNNING)] = S(RUNNING), [S(STOP_COPY)] = S(STOP),
			[S(RESUMING)] = S(STOP), [S(RUNNING_P2P)] = S(RUNNING_P2P),
			[S(PRE_COPY)] = S(RUNNING), [S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		},
		[S(PRE_COPY)] = {
			[S(STOP)] = S(RUNNING), [S(RUNNING)] = S(RUNNING),
			[S(STOP_COPY)] = S(PRE_COPY_P2P), [S(RESUMING)] = S(RUNNING),
			[S(RUNNING_P2P)] = S(RUNNING), [S(PRE_COPY)] = S(PRE_COPY),
			[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		},
		[S(PRE_COPY_P2P)] = {
			[S(STOP)] = S(RUNNING_P2P), [S(RUNNING)] = S(RUNNING_P2P),
			[S(STOP_COPY)] = S(STOP_COPY), [S(RESUMING)] = S(RUNNING_P2P),
			[S(RUNNING_P2P)] = S(RUNNING_P2P), [S(PRE_COPY)] = S(PRE_COPY),
			[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		},
	};

	if (cur >= MIG_NR_STATES || target >= MIG_NR_STATES ||
	    cur == S(ERROR) || target == S(ERROR) || !state_supported(flags, target))
		return S(ERROR);
	/* an unsupported hop is skipped: look again from it (the kernel's while loop) */
	for (uint32_t s = next[cur][target];; s = next[s][target])
		if (state_supported(flags, s) || s == S(ERROR))
			return s;
}

/* Walk from *cur to target; *cur follows every arc that succeeded. */
static int walk(struct vfio_device *dev, uint64_t flags, uint32_t *cur, uint32_t target)
{
	while (*cur != target) {
		uint32_t hop = vfio_mig_next_state(flags, *cur, target);
		int ret;

		if (hop == S(ERROR))
			return -EINVAL;
		ret = vfio_mig_set_state(dev, hop);
		if (ret)
			return ret;
		*cur = hop;
	}
	return 0;
}

int vfio_mig_goto(struct vfio_device *dev, uint64_t flags, uint32_t from, uint32_t target,
		  char *why, size_t len)
{
	uint32_t cur = from, failed, now;
	int ret = walk(dev, flags, &cur, target);

	if (!ret)
		return 0;
	failed = vfio_mig_next_state(flags, cur, target);
	if (why && len)
		snprintf(why, len, "the device refused %s -> %s: %s", vfio_mig_state_name(cur),
			 vfio_mig_state_name(failed), strerror(-ret));
	if (vfio_device_dead(dev))
		return ret;
	/* the arc may have left it anywhere along the way: ask, then go back */
	if (vfio_mig_get_state(dev, &now) == 0 && now != S(ERROR)) {
		cur = now;
		if (walk(dev, flags, &cur, from) == 0)
			return ret;
	}
	dev->ops->reset(dev);	/* the only way out of ERROR: back to RUNNING */
	return ret;
}
