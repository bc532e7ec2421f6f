// SPDX-License-Identifier: MIT
#include "vmm/migrate_policy.h"

static uint64_t expected_downtime_ms(const struct converge_in *in)
{
	uint64_t bw = in->bandwidth;

	if (in->max_bandwidth && (!bw || bw > in->max_bandwidth))
		bw = in->max_bandwidth;	/* the final pass is limited as well */
	if (!in->remaining_bytes)
		return 0;
	if (!bw)
		return UINT64_MAX;
	/* round up: 1 byte left is not "0 ms" */
	return (in->remaining_bytes * 1000 + bw - 1) / bw;
}

void migrate_converge(const struct converge_in *in, struct converge_out *out)
{
	bool high = in->pass > 0 && in->pass_sent_bytes &&
		    in->pass_dirty_bytes * 100 > in->pass_sent_bytes * THROTTLE_TRIGGER_PCT;

	out->expected_downtime_ms = expected_downtime_ms(in);
	out->throttle_pct = in->throttle_pct;
	out->high_dirty_passes = high ? in->high_dirty_passes + 1 : 0;
	if (in->pass > 0 && out->expected_downtime_ms <= in->downtime_ms) {
		out->action = CONVERGE_SWITCHOVER;
		return;
	}
	if (in->timeout_ms && in->elapsed_ms >= in->timeout_ms) {
		out->action = CONVERGE_GIVE_UP;
		return;
	}
	out->action = CONVERGE_CONTINUE;
	if (!in->auto_converge || out->high_dirty_passes < THROTTLE_TRIGGER_PASSES)
		return;
	/* the guest outruns the link: slow it, a step more each time it still does */
	out->high_dirty_passes = 0;
	if (!in->throttle_pct)
		out->throttle_pct = THROTTLE_INITIAL_PCT;
	else if (in->throttle_pct + THROTTLE_STEP_PCT < THROTTLE_MAX_PCT)
		out->throttle_pct = in->throttle_pct + THROTTLE_STEP_PCT;
	else
		out->throttle_pct = THROTTLE_MAX_PCT;
	if (out->throttle_pct != in->throttle_pct)
		out->action = CONVERGE_THROTTLE;
}

const char *migrate_converge_action_name(enum converge_action a)
{
	static const char *const names[] = {
		[CONVERGE_CONTINUE] = "continue", [CONVERGE_SWITCHOVER] = "switchover",
		[CONVERGE_THROTTLE] = "throttle", [CONVERGE_GIVE_UP] = "give-up",
	};

	return a <= CONVERGE_GIVE_UP ? names[a] : "?";
}
