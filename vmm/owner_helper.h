/* SPDX-License-Identifier: MIT */
/*
 * Failover ownership through etcd for the checkpoint driver (issue 13):
 * `hdvm checkpoint --etcd URL` and `hdvm run --standby ... --etcd URL`.
 * hdvm links statically and libcurl cannot be (migration/README.md), so the
 * etcd client runs in a helper process, build/hdvm-owner (tools/hdvm_owner.c,
 * over migration/owner.c), spoken to over its stdin/stdout:
 *  - primary: `hold`; "acquired" before the first checkpoint; "current N"
 *    after each ack; a "fenced" event -- or the helper gone -- means this
 *    side may no longer release output: the driver stops committing and
 *    pauses (the helper fences before the lease can expire); "stale N" must
 *    be confirmed before a primary without its standby releases output;
 *    "release" at the end of protection; its stdin closed ("abandoned": no
 *    stale mark) when a primary paused by its standby's loss hands over.
 *  - standby: `takeover --epoch N`: "active" lets it take over, "refused"
 *    (its checkpoint is stale or behind) or "lost-race" never.
 * HDVM_OWNER_HELPER overrides the helper's path (tests use a fake).
 */
#ifndef HDVM_OWNER_HELPER_H
#define HDVM_OWNER_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where etcd is and the lease timing (0: hdvm-owner's defaults, owner.h). */
struct ownerh_cfg {
	const char *etcd;		/* URL[,URL...] */
	int ttl_s, renew_ms;
};

struct owner_helper {
	pid_t pid;
	int in_fd, out_fd;		/* its stdin (we write), its stdout (we read) */
	char buf[512];
	size_t len;
	bool fenced, gone;
	char why[400];			/* the fence's or the refusal's reason */
	char timing[400];		/* the failover time the lease settings imply */
};

/* Before hdvm's seccomp filter: the helper found, and the thread (vmm/unfiltered.h)
 * that starts and kills it. */
int ownerh_prepare(void);

/*
 * Primary: take the owner key of VM name (at epoch), waiting up to
 * timeout_ms for "acquired".  0, or -EBUSY (someone holds it: why), -errno.
 */
int ownerh_hold(struct owner_helper *h, const struct ownerh_cfg *c, const char *name,
		uint64_t epoch, int timeout_ms);
/*
 * Standby: may it take over holding checkpoint epoch?  0 active, -ESTALE
 * refused, -EBUSY the primary still holds the key after timeout_ms.
 * restart_from_stale: the operator's deliberate restart from a checkpoint
 * etcd knows to be stale (`hdvm takeover NAME --restart-from-stale`).
 */
int ownerh_takeover(struct owner_helper *h, const struct ownerh_cfg *c, const char *name,
		    uint64_t epoch, bool restart_from_stale, int timeout_ms);
/* Read the helper's events without waiting: false once fenced or gone. */
bool ownerh_may_release(struct owner_helper *h);
int ownerh_current(struct owner_helper *h, uint64_t epoch);
/* The standby's checkpoint is stale, confirmed by etcd within timeout_ms: 0 or -errno. */
int ownerh_mark_stale(struct owner_helper *h, uint64_t epoch, int timeout_ms);
/* Give the key up (end of protection) and reap the helper. */
void ownerh_release(struct owner_helper *h);
/*
 * Give the key up WITHOUT a stale mark (its lease revoked: "abandoned"), so
 * the standby, current to the last released epoch, takes over at once; waits
 * up to timeout_ms for the helper to confirm, then reaps it.  0 confirmed,
 * -errno otherwise (the lease then expires by itself: no more renewals).
 */
int ownerh_abandon(struct owner_helper *h, int timeout_ms);
/* Reap without a word (the helper keeps nothing: tests, failure paths). */
void ownerh_kill(struct owner_helper *h);
/* A helper runs (holds or may hold the key). */
static inline bool ownerh_alive(const struct owner_helper *h)
{
	return h->pid > 0;
}

#endif
