// SPDX-License-Identifier: MIT
/*
 * The migration state machine of a function (vdev_mig.h): the kernel's
 * next-hop table, the table of direct arcs hdnic implements, and what the
 * arcs do to the data path.
 */
#include "devices/hdnic/vdev_mig.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "vmm/failpoint.h"
#include "vmm/util.h"

enum {
	ERROR = VFIO_DEVICE_STATE_ERROR,
	STOP = VFIO_DEVICE_STATE_STOP,
	RUNNING = VFIO_DEVICE_STATE_RUNNING,
	STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY,
	RESUMING = VFIO_DEVICE_STATE_RESUMING,
	RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P,
	PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY,
	PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P,
};

/*
 * The next state on the way from cur to target: the shortest path, with
 * the saving group (PRE_COPY*, STOP_COPY) only at either end.  Copied from
 * drivers/vfio/vfio_main.c (vfio_mig_get_next_state), like every driver does.
 */
static const uint8_t next_hop[VDEV_MIG_NR_STATES][VDEV_MIG_NR_STATES] = {
	[STOP] = {
		[STOP] = STOP, [RUNNING] = RUNNING_P2P, [STOP_COPY] = STOP_COPY,
		[RESUMING] = RESUMING, [RUNNING_P2P] = RUNNING_P2P, [PRE_COPY] = RUNNING_P2P,
		[PRE_COPY_P2P] = RUNNING_P2P, [ERROR] = ERROR,
	},
	[RUNNING] = {
		[STOP] = RUNNING_P2P, [RUNNING] = RUNNING, [STOP_COPY] = RUNNING_P2P,
		[RESUMING] = RUNNING_P2P, [RUNNING_P2P] = RUNNING_P2P, [PRE_COPY] = PRE_COPY,
		[PRE_COPY_P2P] = RUNNING_P2P, [ERROR] = ERROR,
	},
	[STOP_COPY] = {
		[STOP] = STOP, [RUNNING] = STOP, [STOP_COPY] = STOP_COPY, [RESUMING] = STOP,
		[RUNNING_P2P] = STOP, [PRE_COPY] = ERROR, [PRE_COPY_P2P] = ERROR, [ERROR] = ERROR,
	},
	[RESUMING] = {
		[STOP] = STOP, [RUNNING] = STOP, [STOP_COPY] = STOP, [RESUMING] = RESUMING,
		[RUNNING_P2P] = STOP, [PRE_COPY] = STOP, [PRE_COPY_P2P] = STOP, [ERROR] = ERROR,
	},
	[RUNNING_P2P] = {
		[STOP] = STOP, [RUNNING] = RUNNING, [STOP_COPY] = STOP, [RESUMING] = STOP,
		[RUNNING_P2P] = RUNNING_P2P, [PRE_COPY] = RUNNING, [PRE_COPY_P2P] = PRE_COPY_P2P,
		[ERROR] = ERROR,
	},
	[PRE_COPY] = {
		[STOP] = RUNNING, [RUNNING] = RUNNING, [STOP_COPY] = PRE_COPY_P2P,
		[RESUMING] = RUNNING, [RUNNING_P2P] = RUNNING, [PRE_COPY] = PRE_COPY,
		[PRE_COPY_P2P] = PRE_COPY_P2P, [ERROR] = ERROR,
	},
	[PRE_COPY_P2P] = {
		[STOP] = RUNNING_P2P, [RUNNING] = RUNNING_P2P, [STOP_COPY] = STOP_COPY,
		[RESUMING] = RUNNING_P2P, [RUNNING_P2P] = RUNNING_P2P, [PRE_COPY] = PRE_COPY,
		[PRE_COPY_P2P] = PRE_COPY_P2P, [ERROR] = ERROR,
	},
	/* [ERROR] is all ERROR: only a reset leaves it. */
};

/* The migration flags a state needs (vfio_main.c's state_flags_table). */
static const uint32_t state_flags[VDEV_MIG_NR_STATES] = {
	[STOP] = VFIO_MIGRATION_STOP_COPY,
	[RUNNING] = VFIO_MIGRATION_STOP_COPY,
	[STOP_COPY] = VFIO_MIGRATION_STOP_COPY,
	[RESUMING] = VFIO_MIGRATION_STOP_COPY,
	[RUNNING_P2P] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
	[PRE_COPY] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
	[PRE_COPY_P2P] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
			 VFIO_MIGRATION_PRE_COPY,
	[ERROR] = ~0u,
};

static const char *const state_names[VDEV_MIG_NR_STATES] = {
	[ERROR] = "error", [STOP] = "stop", [RUNNING] = "running", [STOP_COPY] = "stop-copy",
	[RESUMING] = "resuming", [RUNNING_P2P] = "running-p2p", [PRE_COPY] = "pre-copy",
	[PRE_COPY_P2P] = "pre-copy-p2p",
};

static bool offered(uint32_t state)
{
	return state < VDEV_MIG_NR_STATES &&
	       (state_flags[state] & VDEV_MIG_FLAGS) == state_flags[state];
}

/* ---- what the arcs do ---- */

/*
 * Into quiescence: what is in flight completes first (used entries
 * published, their interrupts sent), then the data path stops: no polling,
 * no delivery, interrupts held (vdev_flush_irqs).
 */
static int arc_quiesce(struct vdev *vd)
{
	vdev_flush(vd);
	vd->dev.paused = true;
	vdev_update_running(vd);
	return 0;
}

/*
 * The guest's MAC is here now: one RARP from it (as QEMU's announce-self
 * sends), broadcast through the switch, so the uplink's bridge, the peers
 * and the other functions move their forwarding entries to this NIC at
 * once instead of when the old ones age out.
 */
static void announce(struct vdev *vd)
{
	uint8_t f[60] = { 0 };

	memset(f, 0xff, 6);
	memcpy(f + 6, vd->mac, 6);
	f[12] = 0x80, f[13] = 0x35;		/* ETH_P_RARP */
	f[15] = 1;				/* hardware type Ethernet */
	f[16] = 0x08;				/* protocol IPv4 */
	f[18] = 6, f[19] = 4;			/* address lengths */
	f[21] = 3;				/* reverse request */
	memcpy(f + 22, vd->mac, 6);		/* sender MAC, IP 0 */
	memcpy(f + 32, vd->mac, 6);		/* target MAC, IP 0 */
	nic_forward_from_vdev(vd->nic, vd, f, sizeof(f));
	vd->mig.announces++;
}

/*
 * Back to full operation: the TX rings and the control queue are looked at
 * again (kicks while quiesced were not acted on), held interrupts go out;
 * after a load the guest's MAC is announced first.
 */
static int arc_run(struct vdev *vd)
{
	if (vd->mig.announce) {
		vd->mig.announce = false;
		announce(vd);
	}
	vd->dev.paused = false;
	vdev_update_running(vd);
	if (vd->running && vdev_ctrlq_index(vd) >= 0)
		vdev_ctrlq_kick(vd);
	nic_irq_pending(vd->nic, vd);
	return 0;
}

/* Between quiesced states nothing on the data path changes. */
static int arc_none(struct vdev *vd)
{
	return 0;
}

static void session_end(struct vdev *vd)
{
	if (vd->mig.session)
		state_free(&vd->mig.data);
	vd->mig.session = false;
}

/* STOP -> STOP_COPY: the function's whole state, read with MIG_DATA_READ. */
static int arc_save_begin(struct vdev *vd)
{
	int err;

	state_init_writer(&vd->mig.data);
	vd->mig.session = true;
	err = vdev_save(vd, &vd->mig.data);
	if (err) {
		session_end(vd);
		return err;
	}
	vd->mig.data.pos = 0;	/* read back from the start */
	return 0;
}

/* STOP -> RESUMING: an empty stream MIG_DATA_WRITE appends to. */
static int arc_load_begin(struct vdev *vd)
{
	state_init_writer(&vd->mig.data);
	vd->mig.session = true;
	vd->mig.prechecked = false;
	vd->mig.error[0] = 0;
	return 0;
}

/* RESUMING -> STOP: load what was written; a bad stream is refused, the function untouched. */
static int arc_load_end(struct vdev *vd)
{
	struct state_buf in;
	uint32_t len;
	size_t at;
	int err;

	/*
	 * What PRE_COPY sent ahead (if anything), then one state section
	 * exactly: trailing bytes are refused before anything is loaded.
	 */
	state_init_reader(&in, vd->mig.data.data, vd->mig.data.len);
	err = vdev_precopy_check(vd, &in);
	at = in.pos;
	state_get_u32(&in);
	len = state_get_u32(&in);
	if (!err && state_ok(&in) && len < in.len - in.pos) {
		err = -EINVAL;
		snprintf(vd->mig.error, sizeof(vd->mig.error),
			 "corrupt: %zu bytes after the function's state", in.len - in.pos - len);
		pr_err("%s: device state refused: %s", vd->dev.id, vd->mig.error);
	} else if (!err) {
		state_init_reader(&in, vd->mig.data.data, vd->mig.data.len);
		in.pos = at;
		err = vdev_load(vd, &in);
	}
	session_end(vd);
	if (err)
		vd->mig.state = ERROR;	/* the stream is spent: only a reset helps */
	else
		vd->mig.announce = true;
	return err;
}

/* STOP_COPY -> STOP, PRE_COPY -> RUNNING, PRE_COPY_P2P -> RUNNING_P2P: the session ends. */
static int arc_save_end(struct vdev *vd)
{
	session_end(vd);
	return 0;
}

/*
 * RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P: a session whose first
 * bytes (version, shape, features: vdev_precopy_save) can go while the
 * function still runs, so the destination refuses an incompatible function
 * before the source stops.  The data path is as it was.
 */
static int arc_precopy_begin(struct vdev *vd)
{
	int err;

	state_init_writer(&vd->mig.data);
	vd->mig.session = true;
	err = vdev_precopy_save(vd, &vd->mig.data);
	if (err)
		session_end(vd);
	return err;
}

/* PRE_COPY_P2P -> STOP_COPY: quiesced already; the whole state follows what was sent ahead. */
static int arc_precopy_stop(struct vdev *vd)
{
	return vdev_save(vd, &vd->mig.data);
}


/* The direct arcs hdnic implements; any other hop is refused. */
static int (*const arcs[VDEV_MIG_NR_STATES][VDEV_MIG_NR_STATES])(struct vdev *vd) = {
	[RUNNING][RUNNING_P2P] = arc_quiesce,
	[RUNNING_P2P][RUNNING] = arc_run,
	[RUNNING_P2P][STOP] = arc_none,
	[STOP][RUNNING_P2P] = arc_none,
	[STOP][STOP_COPY] = arc_save_begin,
	[STOP_COPY][STOP] = arc_save_end,
	[STOP][RESUMING] = arc_load_begin,
	[RESUMING][STOP] = arc_load_end,
	[RUNNING][PRE_COPY] = arc_precopy_begin,
	[RUNNING_P2P][PRE_COPY_P2P] = arc_precopy_begin,
	[PRE_COPY][RUNNING] = arc_save_end,
	[PRE_COPY_P2P][RUNNING_P2P] = arc_save_end,
	[PRE_COPY][PRE_COPY_P2P] = arc_quiesce,	/* the session goes on */
	[PRE_COPY_P2P][PRE_COPY] = arc_run,
	[PRE_COPY_P2P][STOP_COPY] = arc_precopy_stop,
};

/* ---- the walk ---- */

void vdev_mig_init(struct vdev *vd)
{
	memset(&vd->mig, 0, sizeof(vd->mig));
	vd->mig.state = RUNNING;
	vd->dev.paused = false;
}

void vdev_mig_reset(struct vdev *vd)
{
	session_end(vd);
	vd->mig.announce = false;
	vd->mig.state = RUNNING;
	vd->dev.paused = false;
}

void vdev_mig_destroy(struct vdev *vd)
{
	session_end(vd);
}

uint32_t vdev_mig_get_state(const struct vdev *vd)
{
	return vd->mig.state;
}

const char *vdev_mig_state_name(uint32_t state)
{
	return state < VDEV_MIG_NR_STATES ? state_names[state] : "invalid";
}

/* The next hop towards target, skipping states the device does not offer. */
static uint32_t hop(uint32_t cur, uint32_t target)
{
	uint32_t next = next_hop[cur][target];

	while (!offered(next) && next != ERROR)
		next = next_hop[next][target];
	return next;
}

int vdev_mig_set_state(struct vdev *vd, uint32_t target)
{
	if (!offered(target) || target == ERROR || vd->mig.state == ERROR)
		return -EINVAL;
	while (vd->mig.state != target) {
		uint32_t cur = vd->mig.state, next = hop(cur, target);
		int err;

		if (next == ERROR)
			return -EINVAL;
		if (!arcs[cur][next]) {
			pr_err("%s: migration arc %s -> %s is not implemented", vd->dev.id,
			       state_names[cur], state_names[next]);
			return -EOPNOTSUPP;
		}
		err = arcs[cur][next](vd);
		if (err) {
			pr_err("%s: migration arc %s -> %s: %s", vd->dev.id, state_names[cur],
			       state_names[next], strerror(-err));
			return err;
		}
		vd->mig.state = next;
		vd->mig.arcs++;
		/* handed away: STOP_COPY entered, and from there only STOP (vdev.h) */
		vd->handed_off = next == STOP_COPY || (vd->handed_off && next == STOP);
	}
	return 0;
}

/* ---- session data ---- */

int vdev_mig_read(struct vdev *vd, void *buf, uint32_t len, uint32_t *got)
{
	struct state_buf *sb = &vd->mig.data;
	size_t n;

	if ((vd->mig.state != STOP_COPY && vd->mig.state != PRE_COPY &&
	     vd->mig.state != PRE_COPY_P2P) || !vd->mig.session)
		return -EINVAL;
	n = MIN((size_t)len, sb->len - sb->pos);
	memcpy(buf, sb->data + sb->pos, n);
	sb->pos += n;
	*got = (uint32_t)n;	/* short: the end of the state */
	return 0;
}

/*
 * Once the pre-copy section (if the stream starts with one) is complete,
 * check it at once: an incompatible destination says so while the source
 * still runs, not after it stopped.
 */
static int precheck(struct vdev *vd)
{
	struct state_buf in;
	uint32_t tag, len;

	if (vd->mig.prechecked)
		return 0;
	state_init_reader(&in, vd->mig.data.data, vd->mig.data.len);
	tag = state_get_u32(&in);
	len = state_get_u32(&in);
	if (!state_ok(&in))
		return 0;	/* not enough yet */
	if (tag != VDEV_PRECOPY_TAG) {
		vd->mig.prechecked = true;	/* a STOP_COPY-only stream */
		return 0;
	}
	if (len > in.len - in.pos)
		return 0;
	vd->mig.prechecked = true;
	state_init_reader(&in, vd->mig.data.data, vd->mig.data.len);
	return vdev_precopy_check(vd, &in);
}

int vdev_mig_write(struct vdev *vd, const void *buf, uint32_t len)
{
	static uint64_t nr_writes;	/* this hdnic's, all functions: the fail point's "epoch" */
	struct state_buf *sb = &vd->mig.data;

	if (vd->mig.state != RESUMING || !vd->mig.session)
		return -EINVAL;
	failpoint("resuming", ++nr_writes);
	if (sb->len + len > VDEV_MIG_MAX_STREAM)
		return -EFBIG;
	state_put_bytes(sb, buf, len);
	if (!state_ok(sb))
		return -ENOMEM;
	return precheck(vd);
}

int vdev_mig_precopy_info(struct vdev *vd, uint64_t *initial, uint64_t *dirty)
{
	if ((vd->mig.state != PRE_COPY && vd->mig.state != PRE_COPY_P2P) || !vd->mig.session)
		return -EINVAL;
	*initial = vd->mig.data.len - vd->mig.data.pos;
	*dirty = 0;	/* everything that changes goes once, in STOP_COPY */
	return 0;
}

uint64_t vdev_mig_stop_copy_size(struct vdev *vd)
{
	struct state_buf sb;
	uint64_t n;

	if (vd->mig.state == STOP_COPY && vd->mig.session)
		return vd->mig.data.len - vd->mig.data.pos;	/* all of it is in the session */
	state_init_writer(&sb);
	vdev_save(vd, &sb);
	n = sb.len;
	state_free(&sb);
	if (vd->mig.session && vd->mig.state != RESUMING)
		n += vd->mig.data.len - vd->mig.data.pos;	/* pre-copy bytes not read yet */
	return n;
}
