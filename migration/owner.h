/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Failover ownership of one protected VM through etcd (issue 13): who may
 * release the VM's output.  The checkpoint driver on the primary calls
 * owner_acquire once, owner_renew from its loop and owner_may_release before
 * every output commit; the standby calls owner_try_takeover until it wins or
 * is refused.  Key layout, timing rules and guarantees: migration/README.md.
 */
#ifndef HDVM_MIGRATION_OWNER_H
#define HDVM_MIGRATION_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/etcd.h"

#define OWNER_TTL_S_DEFAULT	5
#define OWNER_RENEW_MS_DEFAULT	1000
#define OWNER_MARGIN_MS_DEFAULT	1500
#define OWNER_TIMEOUT_MS_DEFAULT 1000
#define OWNER_KEY_MAX		160

enum owner_state {
	OWNER_IDLE,		/* nothing held */
	OWNER_PRIMARY,		/* holds the key: may release output */
	OWNER_FENCED,		/* could not renew in time: output stopped, paused */
	OWNER_REFUSED,		/* standby that must not activate (reason in why) */
	OWNER_RELEASED,		/* gave the key up */
};

struct owner_cfg {
	const char *vm;		/* key component: [A-Za-z0-9_.-]+ */
	const char *holder;	/* who we are, stored in the owner key */
	int ttl_s;		/* lease TTL */
	int renew_ms;		/* keepalive interval */
	int margin_ms;		/* fence this long before the lease can expire */
	int timeout_ms;		/* bound on any one etcd request */
	/* stop releasing output and pause; called once, from owner_renew or
	 * owner_may_release, before the lease can expire */
	void (*fence)(void *arg, const char *why);
	void *fence_arg;
	int64_t (*now_ms)(void);	/* monotonic; NULL: CLOCK_MONOTONIC */
};

struct owner {
	struct owner_cfg cfg;
	const struct etcd_ops *ops;
	void *ctx;
	enum owner_state state;
	int64_t lease;
	int ttl_s;		/* as granted */
	int64_t renewed_ms;	/* send time of the last keepalive that succeeded */
	int64_t deadline_ms;	/* fence at this instant unless renewed */
	int64_t next_renew_ms;
	uint64_t epoch;		/* standby epoch last recorded / taken over with */
	bool stale_recorded;
	char key_owner[OWNER_KEY_MAX], key_epoch[OWNER_KEY_MAX], key_stale[OWNER_KEY_MAX];
	char why[400];
};

int owner_init(struct owner *o, const struct owner_cfg *cfg,
	       const struct etcd_ops *ops, void *ctx);

/* Primary: grant a lease and create the owner key under it.  -EBUSY if another
 * holder has it (why says who). */
int owner_acquire(struct owner *o);
/* Primary: keepalive if due, fence if the deadline passed.  0 while primary,
 * -ENOLCK once fenced (or if not primary). */
int owner_renew(struct owner *o);
/* Primary: true only while the lease is certainly alive; fences otherwise. */
bool owner_may_release(struct owner *o);
/* Primary: the standby acknowledged checkpoint `epoch` (protection is on):
 * record it, clearing any stale mark.  Guarded by our lease. */
int owner_standby_current(struct owner *o, uint64_t epoch);
/* Primary going on without its standby: record that the standby's checkpoint
 * (last epoch `epoch`) is stale.  Only after 0 may unprotected output leave. */
int owner_mark_standby_stale(struct owner *o, uint64_t epoch);
/* Standby holding checkpoint `epoch`: take the key if the primary's lease is
 * gone and our checkpoint is current.  0: we are primary now (renew as one);
 * -EBUSY: still held; -ESTALE: refused for good (why); -EAGAIN: another
 * standby won the race.  restart_from_stale: the operator's deliberate restart
 * from a checkpoint known to be stale. */
int owner_try_takeover(struct owner *o, uint64_t epoch, bool restart_from_stale);
/* Give the key and lease up (clean stop / protection off). */
int owner_release(struct owner *o);
/* The primary died (its VMM is gone, nothing of it can release output):
 * revoke the lease so the standby takes the key at once, its checkpoint NOT
 * marked stale -- it holds every epoch that was released. */
int owner_abandon(struct owner *o);

/* One line for `hdvm status`. */
void owner_status(struct owner *o, char *buf, size_t len);
/* What the TTL/renew/margin settings imply (printed at start). */
void owner_timing(const struct owner_cfg *cfg, char *buf, size_t len);
/* For `hdvm status` without --etcd. */
extern const char owner_status_no_etcd[];

#endif
