// SPDX-License-Identifier: MIT
/*
 * Failover ownership (migration/owner.c) against an in-memory etcd and a fake
 * clock: the primary renews on time, fences exactly when it could no longer
 * prove its lease alive and never lets a request run past that instant; a
 * standby takes the key only when it is absent and its checkpoint current,
 * and is refused, with the reason, when it is not.  The real-etcd proof is
 * tests/integration/test_owner_etcd.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/owner.h"

/* ---- a fake etcd: a handful of keys, leases that expire on the fake clock */
#define NKEYS 8
static struct fake {
	int64_t clock_ms;
	int64_t rev;
	int64_t next_lease;
	struct { int64_t id; int64_t expires; } leases[8];
	struct { char key[OWNER_KEY_MAX]; struct etcd_kv kv; } keys[NKEYS];
	bool down;			/* every request times out */
	int keepalives;
	int max_timeout_seen;		/* the longest budget a request was given */
	int64_t last_deadline_gap;	/* deadline - now when the last request ran */
} F;

static struct owner *cur;		/* to check budgets against its deadline */
static int fences;
static char fence_why[200];

static int64_t fake_now(void) { return F.clock_ms; }

static void on_fence(void *arg, const char *why)
{
	fences++;
	snprintf(fence_why, sizeof(fence_why), "%s", why);
}

static void expire(void)
{
	for (int i = 0; i < 8; i++) {
		if (!F.leases[i].id || F.leases[i].expires > F.clock_ms)
			continue;
		for (int k = 0; k < NKEYS; k++)
			if (F.keys[k].kv.present && F.keys[k].kv.lease == F.leases[i].id)
				F.keys[k].kv.present = false;
		F.leases[i].id = 0;
	}
}

static int enter(int timeout_ms)
{
	if (timeout_ms > F.max_timeout_seen)
		F.max_timeout_seen = timeout_ms;
	if (cur && cur->state == OWNER_PRIMARY)
		assert_true(F.clock_ms + timeout_ms <= cur->deadline_ms);
	if (F.down) {
		F.clock_ms += timeout_ms;	/* the request hangs its whole budget */
		return -ETIMEDOUT;
	}
	expire();
	return 0;
}

static struct etcd_kv *slot(const char *key, bool create)
{
	for (int k = 0; k < NKEYS; k++)
		if (F.keys[k].kv.present && !strcmp(F.keys[k].key, key))
			return &F.keys[k].kv;
	if (!create)
		return NULL;
	for (int k = 0; k < NKEYS; k++)
		if (!F.keys[k].kv.present) {
			snprintf(F.keys[k].key, sizeof(F.keys[k].key), "%s", key);
			memset(&F.keys[k].kv, 0, sizeof(F.keys[k].kv));
			return &F.keys[k].kv;
		}
	fail();
	return NULL;
}

static int f_grant(void *c, int ttl, int t, int64_t *lease, int *ttl_out)
{
	int err = enter(t);

	if (err)
		return err;
	for (int i = 0; i < 8; i++)
		if (!F.leases[i].id) {
			F.leases[i].id = *lease = ++F.next_lease;
			F.leases[i].expires = F.clock_ms + ttl * 1000LL;
			*ttl_out = ttl;
			return 0;
		}
	return -ENOSPC;
}

static int f_keepalive(void *c, int64_t lease, int t, int *ttl_out)
{
	int err = enter(t);

	if (err)
		return err;
	F.keepalives++;
	for (int i = 0; i < 8; i++)
		if (F.leases[i].id == lease) {
			/* etcd restarts the TTL when it handles the request: later than sent */
			F.leases[i].expires = F.clock_ms + 5 + cur->cfg.ttl_s * 1000LL;
			*ttl_out = cur->cfg.ttl_s;
			return 0;
		}
	return -ENOENT;
}

static int f_revoke(void *c, int64_t lease, int t)
{
	int err = enter(t);

	if (err)
		return err;
	for (int i = 0; i < 8; i++)
		if (F.leases[i].id == lease)
			F.leases[i].expires = F.clock_ms;
	expire();
	return 0;
}

static int f_ttl(void *c, int64_t lease, int t, int *ttl_out) { return -ENOSYS; }

static int f_get(void *c, const char *key, int t, struct etcd_kv *kv)
{
	int err = enter(t);
	struct etcd_kv *s;

	if (err)
		return err;
	s = slot(key, false);
	if (s)
		*kv = *s;
	else
		memset(kv, 0, sizeof(*kv));
	return 0;
}

static int f_txn(void *c, const struct etcd_cmp *cmp, int ncmp, const struct etcd_op *ops,
		 int nops, int t, bool *ok)
{
	int err = enter(t);

	if (err)
		return err;
	*ok = true;
	for (int i = 0; i < ncmp; i++) {
		struct etcd_kv *s = slot(cmp[i].key, false), z = { 0 };

		if (!s)
			s = &z;
		int64_t have = cmp[i].target == ETCD_CREATE_REV ? s->create_rev :
			       cmp[i].target == ETCD_MOD_REV ? s->mod_rev : s->lease;
		if (have != cmp[i].want)
			*ok = false;
	}
	if (!*ok)
		return 0;
	F.rev++;
	for (int i = 0; i < nops; i++) {
		struct etcd_kv *s = slot(ops[i].key, ops[i].kind == ETCD_PUT);

		if (ops[i].kind == ETCD_DELETE) {
			if (s)
				s->present = false;
			continue;
		}
		if (!s->present)
			s->create_rev = F.rev;
		s->present = true;
		s->mod_rev = F.rev;
		s->lease = ops[i].lease;
		snprintf(s->value, sizeof(s->value), "%s", ops[i].value);
	}
	return 0;
}

static const struct etcd_ops fake_ops = {
	.lease_grant = f_grant, .lease_keepalive = f_keepalive, .lease_revoke = f_revoke,
	.lease_ttl = f_ttl, .get = f_get, .txn = f_txn,
};

/* TTL 2 s, renew 300 ms, margin 800 ms: fence 1200 ms after a renewal's send */
static void make(struct owner *o, const char *holder)
{
	struct owner_cfg cfg = {
		.vm = "vm1", .holder = holder, .ttl_s = 2, .renew_ms = 300, .margin_ms = 800,
		.timeout_ms = 500, .fence = on_fence, .now_ms = fake_now,
	};

	assert_int_equal(owner_init(o, &cfg, &fake_ops, NULL), 0);
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	F.clock_ms = 1000000;
	fences = 0;
	cur = NULL;
	return 0;
}

static void run_for(struct owner *o, int ms)
{
	for (int i = 0; i < ms; i += 10) {
		owner_renew(o);
		F.clock_ms += 10;
	}
}

static void test_primary_renews_at_its_interval_and_keeps_the_key(void **state)
{
	struct owner a;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	run_for(&a, 6000);			/* three TTLs */
	assert_int_equal(a.state, OWNER_PRIMARY);
	assert_in_range(F.keepalives, 6000 / 300 - 1, 6000 / 300 + 1);
	assert_string_equal(slot("/hdvm/vm/vm1/owner", false)->value, "A");
	assert_true(owner_may_release(&a));
	assert_int_equal(fences, 0);
}

static void test_unreachable_etcd_fences_before_the_lease_can_expire(void **state)
{
	struct owner a;
	int64_t renewed, expires;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	run_for(&a, 1000);
	renewed = a.renewed_ms;
	expires = F.leases[0].expires;
	F.down = true;
	while (a.state == OWNER_PRIMARY) {
		assert_true(owner_may_release(&a) || a.state == OWNER_FENCED);
		owner_renew(&a);
		F.clock_ms += 10;
	}
	assert_int_equal(fences, 1);
	/* fenced no later than the deadline, which is a margin short of expiry */
	assert_true(F.clock_ms <= renewed + 2000 - 800 + 10);
	assert_true(F.clock_ms < expires - 700);
	assert_false(owner_may_release(&a));
	assert_non_null(strstr(fence_why, "unreachable"));
	/* requests never outlived the fence deadline (checked in enter()) */
	assert_true(F.max_timeout_seen <= 500);
}

static void test_lease_gone_in_etcd_fences_at_once(void **state)
{
	struct owner a;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	F.leases[0].expires = F.clock_ms;	/* etcd dropped it (e.g. revoked) */
	F.clock_ms += 300;
	assert_int_equal(owner_renew(&a), -ENOLCK);
	assert_int_equal(fences, 1);
	assert_non_null(strstr(fence_why, "gone"));
}

static void test_second_primary_is_busy_and_says_who_holds(void **state)
{
	struct owner a, b;

	make(&a, "A");
	make(&b, "B");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	assert_int_equal(owner_acquire(&b), -EBUSY);
	assert_non_null(strstr(b.why, "held by A"));
}

static void primary_dies(struct owner *a, uint64_t epoch, bool stale)
{
	make(a, "A");
	cur = a;
	assert_int_equal(owner_acquire(a), 0);
	assert_int_equal(owner_standby_current(a, epoch), 0);
	if (stale)
		assert_int_equal(owner_mark_standby_stale(a, epoch), 0);
	cur = NULL;				/* A is gone: nobody renews */
}

static void test_standby_waits_for_expiry_then_takes_over(void **state)
{
	struct owner a, b;

	primary_dies(&a, 5, false);
	make(&b, "B");
	assert_int_equal(owner_try_takeover(&b, 5, false), -EBUSY);
	F.clock_ms += 1999;
	assert_int_equal(owner_try_takeover(&b, 5, false), -EBUSY);
	F.clock_ms += 1;
	assert_int_equal(owner_try_takeover(&b, 5, false), 0);
	assert_int_equal(b.state, OWNER_PRIMARY);
	assert_string_equal(slot("/hdvm/vm/vm1/owner", false)->value, "B");
	/* B runs unprotected now: no checkpoint is current until a standby acks */
	assert_non_null(strstr(slot("/hdvm/vm/vm1/stale", false)->value, "taken over"));
}

static void test_stale_standby_is_refused_even_after_expiry(void **state)
{
	struct owner a, b, op;
	char st[400];

	primary_dies(&a, 5, true);
	make(&b, "B");
	F.clock_ms += 5000;
	assert_int_equal(owner_try_takeover(&b, 5, false), -ESTALE);
	assert_int_equal(b.state, OWNER_REFUSED);
	owner_status(&b, st, sizeof(st));
	assert_non_null(strstr(st, "lost: standby refused"));
	assert_non_null(strstr(st, "without its standby"));
	assert_null(slot("/hdvm/vm/vm1/owner", false));
	/* refused for good: asking again does not turn into a takeover */
	assert_int_equal(owner_try_takeover(&b, 5, false), -ESTALE);
	/* the operator's deliberate restart from the stale checkpoint */
	make(&op, "B");
	assert_int_equal(owner_try_takeover(&op, 5, true), 0);
	assert_non_null(strstr(op.why, "operator restart"));
}

static void test_standby_behind_the_recorded_epoch_is_refused(void **state)
{
	struct owner a, b;

	primary_dies(&a, 9, false);
	make(&b, "B");
	F.clock_ms += 5000;
	assert_int_equal(owner_try_takeover(&b, 7, false), -ESTALE);
	assert_non_null(strstr(b.why, "holds epoch 7 but epoch 9"));
}

static void test_re_protection_clears_the_stale_mark(void **state)
{
	struct owner a;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	assert_int_equal(owner_mark_standby_stale(&a, 3), 0);
	assert_non_null(slot("/hdvm/vm/vm1/stale", false));
	assert_int_equal(owner_standby_current(&a, 4), 0);
	assert_null(slot("/hdvm/vm/vm1/stale", false));
	assert_string_equal(slot("/hdvm/vm/vm1/epoch", false)->value, "4");
}

static void test_stale_record_needs_the_key_still_ours(void **state)
{
	struct owner a;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	slot("/hdvm/vm/vm1/owner", false)->lease = 999;	/* someone else's now */
	assert_int_equal(owner_mark_standby_stale(&a, 3), -ENOLCK);
	assert_int_equal(fences, 1);
	assert_false(owner_may_release(&a));
}

static void test_release_deletes_the_key_and_marks_the_checkpoint(void **state)
{
	struct owner a, b;

	make(&a, "A");
	cur = &a;
	assert_int_equal(owner_acquire(&a), 0);
	assert_int_equal(owner_release(&a), 0);
	assert_null(slot("/hdvm/vm/vm1/owner", false));
	make(&b, "B");
	cur = NULL;
	assert_int_equal(owner_try_takeover(&b, 0, false), -ESTALE);
	assert_non_null(strstr(b.why, "released"));
}

static void test_settings_that_cannot_renew_in_time_are_refused(void **state)
{
	struct owner o;
	struct owner_cfg bad = { .vm = "vm1", .ttl_s = 2, .renew_ms = 1500, .margin_ms = 800 };
	struct owner_cfg badname = { .vm = "a/b" };
	char t[400];

	assert_int_equal(owner_init(&o, &bad, &fake_ops, NULL), -EINVAL);
	assert_non_null(strstr(o.why, "renew"));
	assert_int_equal(owner_init(&o, &badname, &fake_ops, NULL), -EINVAL);
	make(&o, "A");
	owner_timing(&o.cfg, t, sizeof(t));
	assert_non_null(strstr(t, "fences 1200 ms after its last renewal"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_primary_renews_at_its_interval_and_keeps_the_key, setup),
		cmocka_unit_test_setup(test_unreachable_etcd_fences_before_the_lease_can_expire, setup),
		cmocka_unit_test_setup(test_lease_gone_in_etcd_fences_at_once, setup),
		cmocka_unit_test_setup(test_second_primary_is_busy_and_says_who_holds, setup),
		cmocka_unit_test_setup(test_standby_waits_for_expiry_then_takes_over, setup),
		cmocka_unit_test_setup(test_stale_standby_is_refused_even_after_expiry, setup),
		cmocka_unit_test_setup(test_standby_behind_the_recorded_epoch_is_refused, setup),
		cmocka_unit_test_setup(test_re_protection_clears_the_stale_mark, setup),
		cmocka_unit_test_setup(test_stale_record_needs_the_key_still_ours, setup),
		cmocka_unit_test_setup(test_release_deletes_the_key_and_marks_the_checkpoint, setup),
		cmocka_unit_test_setup(test_settings_that_cannot_renew_in_time_are_refused, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
