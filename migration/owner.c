// SPDX-License-Identifier: GPL-2.0
/*
 * Failover ownership through etcd: one owner key per protected VM, bound to
 * the primary's lease; persistent epoch and stale records beside it.  The
 * timing rule that keeps two copies from releasing output at once: the
 * primary's fence deadline is measured from the moment it SENT its last
 * successful keepalive (etcd restarts the lease's TTL later than that, never
 * earlier), minus a margin, and no etcd request may run past it.
 */
#include "migration/owner.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char owner_status_no_etcd[] =
	"no --etcd: failover decided by connection loss and heartbeats alone; split brain is possible";

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int64_t now(const struct owner *o)
{
	return o->cfg.now_ms ? o->cfg.now_ms() : mono_ms();
}

static bool vm_name_ok(const char *vm)
{
	if (!vm || !*vm || strlen(vm) > 64)
		return false;
	for (const char *p = vm; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		      ('0' <= *p && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			return false;
	return true;
}

int owner_init(struct owner *o, const struct owner_cfg *cfg,
	       const struct etcd_ops *ops, void *ctx)
{
	memset(o, 0, sizeof(*o));
	o->cfg = *cfg;
	o->ops = ops;
	o->ctx = ctx;
	if (!o->cfg.ttl_s)
		o->cfg.ttl_s = OWNER_TTL_S_DEFAULT;
	/* renew 4 times a TTL (at most every second), fence at 70% of it: a
	 * TTL given alone (a long one for slow hosts) gets a timing that fits */
	if (!o->cfg.renew_ms)
		o->cfg.renew_ms = o->cfg.ttl_s > 0 && o->cfg.ttl_s * 250 < OWNER_RENEW_MS_DEFAULT ?
				  o->cfg.ttl_s * 250 : OWNER_RENEW_MS_DEFAULT;
	if (!o->cfg.margin_ms)
		o->cfg.margin_ms = o->cfg.ttl_s == OWNER_TTL_S_DEFAULT || o->cfg.ttl_s < 1 ?
				   OWNER_MARGIN_MS_DEFAULT : o->cfg.ttl_s * 300;
	if (!o->cfg.timeout_ms)	/* a longer TTL: a slower host, longer requests */
		o->cfg.timeout_ms = o->cfg.ttl_s > OWNER_TTL_S_DEFAULT ? o->cfg.ttl_s * 200 :
				    OWNER_TIMEOUT_MS_DEFAULT;
	if (!o->cfg.holder)
		o->cfg.holder = "hdvm";
	if (!vm_name_ok(cfg->vm)) {
		snprintf(o->why, sizeof(o->why), "bad VM name for an etcd key");
		return -EINVAL;
	}
	/* a renewal, and a retry, must fit between two fence deadlines */
	if (o->cfg.ttl_s < 1 || o->cfg.renew_ms < 1 || o->cfg.margin_ms < 1 ||
	    o->cfg.margin_ms >= o->cfg.ttl_s * 1000 ||
	    o->cfg.renew_ms >= o->cfg.ttl_s * 1000 - o->cfg.margin_ms) {
		snprintf(o->why, sizeof(o->why),
			 "need renew (%d ms) < TTL (%d s) - margin (%d ms)",
			 o->cfg.renew_ms, o->cfg.ttl_s, o->cfg.margin_ms);
		return -EINVAL;
	}
	snprintf(o->key_owner, sizeof(o->key_owner), "/hdvm/vm/%s/owner", cfg->vm);
	snprintf(o->key_epoch, sizeof(o->key_epoch), "/hdvm/vm/%s/epoch", cfg->vm);
	snprintf(o->key_stale, sizeof(o->key_stale), "/hdvm/vm/%s/stale", cfg->vm);
	return 0;
}

static void fence(struct owner *o, const char *why)
{
	if (o->state != OWNER_PRIMARY)
		return;
	o->state = OWNER_FENCED;
	snprintf(o->why, sizeof(o->why), "%s", why);
	if (o->cfg.fence)
		o->cfg.fence(o->cfg.fence_arg, o->why);
}

static void renewed(struct owner *o, int64_t sent, int ttl_s)
{
	o->ttl_s = ttl_s;
	o->renewed_ms = sent;
	o->deadline_ms = sent + ttl_s * 1000LL - o->cfg.margin_ms;
	o->next_renew_ms = sent + o->cfg.renew_ms;
}

/* Time left for a request: never past the fence deadline while primary. */
static int budget(struct owner *o)
{
	int64_t left;

	if (o->state != OWNER_PRIMARY)
		return o->cfg.timeout_ms;
	left = o->deadline_ms - now(o);
	if (left < 1)
		return 0;
	return left < o->cfg.timeout_ms ? (int)left : o->cfg.timeout_ms;
}

static void holder_of(struct owner *o, char *buf, size_t len)
{
	struct etcd_kv kv;

	if (o->ops->get(o->ctx, o->key_owner, o->cfg.timeout_ms, &kv) || !kv.present)
		snprintf(buf, len, "nobody");
	else
		snprintf(buf, len, "%.80s (lease %" PRIx64 ")", kv.value, kv.lease);
}

/* Grant a lease and put the owner key under it if the compares hold. */
static int take_key(struct owner *o, struct etcd_cmp *cmp, int ncmp,
		    struct etcd_op *ops, int nops)
{
	int64_t lease, sent = now(o);
	bool ok = false;
	int ttl, err;

	err = o->ops->lease_grant(o->ctx, o->cfg.ttl_s, o->cfg.timeout_ms, &lease, &ttl);
	if (err)
		return err;
	ops[0] = (struct etcd_op){ ETCD_PUT, o->key_owner, o->cfg.holder, lease };
	err = o->ops->txn(o->ctx, cmp, ncmp, ops, nops, o->cfg.timeout_ms, &ok);
	if (err || !ok) {
		o->ops->lease_revoke(o->ctx, lease, o->cfg.timeout_ms);
		return err ? err : -EAGAIN;
	}
	o->lease = lease;
	o->state = OWNER_PRIMARY;
	o->stale_recorded = false;
	renewed(o, sent, ttl);
	return 0;
}

int owner_acquire(struct owner *o)
{
	struct etcd_cmp cmp[] = { { o->key_owner, ETCD_CREATE_REV, 0 } };
	struct etcd_op ops[1];
	char who[120];
	int err;

	if (o->state == OWNER_PRIMARY)
		return 0;
	err = take_key(o, cmp, 1, ops, 1);
	if (err == -EAGAIN) {
		holder_of(o, who, sizeof(who));
		snprintf(o->why, sizeof(o->why), "owner key held by %.120s", who);
		return -EBUSY;
	}
	return err;
}

int owner_renew(struct owner *o)
{
	int64_t t = now(o);
	int ttl, err, left;
	char why[120];

	if (o->state != OWNER_PRIMARY)
		return -ENOLCK;
	if (t >= o->deadline_ms) {
		snprintf(why, sizeof(why), "lease not renewed for %" PRId64 " ms",
			 t - o->renewed_ms);
		fence(o, why);
		return -ENOLCK;
	}
	if (t < o->next_renew_ms)
		return 0;
	left = budget(o);
	err = o->ops->lease_keepalive(o->ctx, o->lease, left, &ttl);
	if (!err) {
		renewed(o, t, ttl);
		return 0;
	}
	if (err == -ENOENT) {
		fence(o, "etcd says the lease is gone");
		return -ENOLCK;
	}
	/* etcd unreachable: retry soon, fence when the deadline comes */
	o->next_renew_ms = now(o) + (o->cfg.renew_ms < 200 ? o->cfg.renew_ms : 200);
	if (now(o) >= o->deadline_ms) {
		snprintf(why, sizeof(why), "etcd unreachable (%s) for %" PRId64 " ms",
			 strerror(-err), now(o) - o->renewed_ms);
		fence(o, why);
		return -ENOLCK;
	}
	return 0;
}

bool owner_may_release(struct owner *o)
{
	if (o->state != OWNER_PRIMARY)
		return false;
	if (now(o) >= o->deadline_ms) {
		fence(o, "lease not renewed before the fence deadline");
		return false;
	}
	return true;
}

/* A write that only the holder of the lease may make. */
static int guarded(struct owner *o, struct etcd_op *ops, int nops)
{
	struct etcd_cmp cmp[] = { { o->key_owner, ETCD_LEASE, o->lease } };
	bool ok = false;
	int err, left;

	if (!owner_may_release(o))
		return -ENOLCK;
	left = budget(o);
	err = o->ops->txn(o->ctx, cmp, 1, ops, nops, left, &ok);
	if (err)
		return err;
	if (!ok) {
		fence(o, "the owner key is no longer ours");
		return -ENOLCK;
	}
	return 0;
}

int owner_standby_current(struct owner *o, uint64_t epoch)
{
	char val[32];
	struct etcd_op ops[] = {
		{ ETCD_PUT, o->key_epoch, val, 0 },
		{ ETCD_DELETE, o->key_stale, NULL, 0 },
	};
	int err;

	snprintf(val, sizeof(val), "%" PRIu64, epoch);
	err = guarded(o, ops, 2);
	if (!err) {
		o->epoch = epoch;
		o->stale_recorded = false;
	}
	return err;
}

static int put_stale(struct owner *o, uint64_t epoch, const char *reason)
{
	char val[ETCD_VALUE_MAX];
	struct etcd_op ops[] = { { ETCD_PUT, o->key_stale, val, 0 } };
	int err;

	snprintf(val, sizeof(val), "%" PRIu64 " %s (%.100s)", epoch, reason, o->cfg.holder);
	err = guarded(o, ops, 1);
	if (!err)
		o->stale_recorded = true;
	return err;
}

int owner_mark_standby_stale(struct owner *o, uint64_t epoch)
{
	return put_stale(o, epoch, "primary went on without its standby");
}

int owner_try_takeover(struct owner *o, uint64_t epoch, bool restart_from_stale)
{
	struct etcd_kv owner, stale, rec;
	char staleval[ETCD_VALUE_MAX], epochval[32], who[120];
	int err;

	if (o->state == OWNER_PRIMARY)
		return 0;
	if (o->state == OWNER_REFUSED)
		return -ESTALE;
	err = o->ops->get(o->ctx, o->key_owner, o->cfg.timeout_ms, &owner);
	if (!err)
		err = o->ops->get(o->ctx, o->key_stale, o->cfg.timeout_ms, &stale);
	if (!err)
		err = o->ops->get(o->ctx, o->key_epoch, o->cfg.timeout_ms, &rec);
	if (err)
		return err;
	/* a primary that holds the key and went on without us: never our turn */
	if (owner.present && !(stale.present && !restart_from_stale)) {
		snprintf(o->why, sizeof(o->why), "owner key held by %.80s (lease %" PRIx64 ")",
			 owner.value, owner.lease);
		return -EBUSY;
	}
	if (!restart_from_stale && stale.present) {
		o->state = OWNER_REFUSED;
		snprintf(o->why, sizeof(o->why),
			 "standby checkpoint is stale: epoch %.200s; restart from it only deliberately",
			 stale.value);
		return -ESTALE;
	}
	if (!restart_from_stale && rec.present && strtoull(rec.value, NULL, 10) > epoch) {
		o->state = OWNER_REFUSED;
		snprintf(o->why, sizeof(o->why),
			 "standby holds epoch %" PRIu64 " but epoch %.30s was committed", epoch,
			 rec.value);
		return -ESTALE;
	}

	/* Take the key only if nothing changed since we looked; the new primary
	 * runs unprotected, so no checkpoint is current until a standby acks. */
	snprintf(epochval, sizeof(epochval), "%" PRIu64, epoch);
	snprintf(staleval, sizeof(staleval), "%" PRIu64 " taken over, unprotected (%.100s)",
		 epoch, o->cfg.holder);
	struct etcd_cmp cmp[] = {
		{ o->key_owner, ETCD_CREATE_REV, 0 },
		{ o->key_stale, ETCD_MOD_REV, stale.mod_rev },
		{ o->key_epoch, ETCD_MOD_REV, rec.mod_rev },
	};
	struct etcd_op ops[] = {
		{ ETCD_PUT, o->key_owner, NULL, 0 },	/* filled by take_key */
		{ ETCD_PUT, o->key_epoch, epochval, 0 },
		{ ETCD_PUT, o->key_stale, staleval, 0 },
	};
	err = take_key(o, cmp, 3, ops, 3);
	if (err == -EAGAIN) {
		holder_of(o, who, sizeof(who));
		snprintf(o->why, sizeof(o->why), "lost the race: owner is %.120s", who);
	} else if (!err) {
		o->epoch = epoch;
		o->stale_recorded = true;
		snprintf(o->why, sizeof(o->why), "took over at epoch %" PRIu64 "%s", epoch,
			 restart_from_stale ? " (operator restart from a stale checkpoint)" : "");
	}
	return err;
}

int owner_release(struct owner *o)
{
	struct etcd_op ops[] = { { ETCD_DELETE, o->key_owner, NULL, 0 } };
	int err = 0;

	if (o->state == OWNER_PRIMARY) {
		/* the standby must not bring the VM back after a clean stop */
		if (!o->stale_recorded)
			err = put_stale(o, o->epoch, "released by its primary");
		if (!err)
			err = guarded(o, ops, 1);
	}
	if (o->lease)
		o->ops->lease_revoke(o->ctx, o->lease, o->cfg.timeout_ms);
	o->lease = 0;
	o->state = OWNER_RELEASED;
	return err;
}

int owner_abandon(struct owner *o)
{
	int err = 0;

	if (o->lease)
		err = o->ops->lease_revoke(o->ctx, o->lease, o->cfg.timeout_ms);
	o->lease = 0;
	o->state = OWNER_RELEASED;
	return err;
}

void owner_status(struct owner *o, char *buf, size_t len)
{
	int64_t t = now(o);

	switch (o->state) {
	case OWNER_PRIMARY:
		snprintf(buf, len,
			 "primary: owns %s (lease %" PRIx64 ", TTL %d s), renewed %" PRId64
			 " ms ago, fences in %" PRId64 " ms unless renewed%s",
			 o->key_owner, o->lease, o->ttl_s, t - o->renewed_ms,
			 o->deadline_ms - t,
			 o->stale_recorded ? "; standby checkpoint recorded stale" : "");
		break;
	case OWNER_FENCED:
		snprintf(buf, len, "fenced: %.300s; output stopped, VM paused", o->why);
		break;
	case OWNER_REFUSED:
		snprintf(buf, len, "lost: standby refused to activate: %.300s", o->why);
		break;
	case OWNER_RELEASED:
		snprintf(buf, len, "released: %s given up", o->key_owner);
		break;
	default:
		snprintf(buf, len, "not owner%s%.300s", *o->why ? ": " : "", o->why);
	}
}

void owner_timing(const struct owner_cfg *cfg, char *buf, size_t len)
{
	int ttl_ms = cfg->ttl_s * 1000;

	snprintf(buf, len,
		 "lease TTL %d s, renew every %d ms, fence margin %d ms: a primary cut from "
		 "etcd fences %d ms after its last renewal, >= %d ms before its lease can "
		 "expire; a standby takes over within ~%d ms of the primary's death (TTL + "
		 "etcd's 500 ms expiry sweep) plus its poll interval",
		 cfg->ttl_s, cfg->renew_ms, cfg->margin_ms, ttl_ms - cfg->margin_ms,
		 cfg->margin_ms, ttl_ms + 500);
}
