/* SPDX-License-Identifier: MIT */
/*
 * When pre-copy switches over, throttles or gives up: a pure function of
 * what the last pass measured, so the policy is tested as a table.
 *
 *  - expected downtime = what would go while stopped (dirty RAM + what the
 *    devices still hold back, VFIO_MIG_GET_PRECOPY_INFO) / measured bandwidth
 *    (capped by --max-bandwidth);
 *  - switch over after pass 0 once that is within --downtime-ms;
 *  - give up at --timeout (the VM runs on);
 *  - auto-converge, as QEMU's cpu-throttle: when the guest dirtied more than
 *    half of what a pass sent (throttle-trigger-threshold 50), twice in a row,
 *    throttle its vCPUs: 20 % first, +10 % each time after, at most 99 %.
 */
#ifndef HDVM_MIGRATE_POLICY_H
#define HDVM_MIGRATE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define THROTTLE_INITIAL_PCT	20
#define THROTTLE_STEP_PCT	10
#define THROTTLE_MAX_PCT	99
#define THROTTLE_TRIGGER_PCT	50	/* dirtied / sent in a pass */
#define THROTTLE_TRIGGER_PASSES	2	/* ... that many passes in a row */

struct converge_in {
	uint32_t pass;			/* the pass just finished (0 = the first, all RAM) */
	uint64_t remaining_bytes;	/* dirty RAM + device pending */
	uint64_t pass_sent_bytes;	/* sent during the pass */
	uint64_t pass_dirty_bytes;	/* dirtied during the pass */
	uint64_t bandwidth;		/* bytes/s measured */
	uint64_t max_bandwidth;		/* --max-bandwidth, 0: none */
	uint64_t downtime_ms;		/* --downtime-ms */
	uint64_t elapsed_ms, timeout_ms;	/* timeout 0: none */
	bool auto_converge;
	uint32_t throttle_pct;		/* now */
	uint32_t high_dirty_passes;	/* passes in a row above the trigger, before this one */
};

enum converge_action {
	CONVERGE_CONTINUE,	/* another pass */
	CONVERGE_SWITCHOVER,	/* stop the VM and send the rest */
	CONVERGE_THROTTLE,	/* another pass, vCPUs throttled to out.throttle_pct */
	CONVERGE_GIVE_UP,	/* --timeout: the VM runs on */
};

struct converge_out {
	enum converge_action action;
	uint64_t expected_downtime_ms;	/* UINT64_MAX: no bandwidth measured yet */
	uint32_t throttle_pct;
	uint32_t high_dirty_passes;	/* carry into the next call */
};

void migrate_converge(const struct converge_in *in, struct converge_out *out);
const char *migrate_converge_action_name(enum converge_action a);

#endif
