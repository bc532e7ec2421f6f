/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few etcd v3 operations failover ownership needs, behind an ops table:
 * etcd_http.c implements them over etcd's JSON gateway (libcurl + json-c),
 * unit tests implement them in memory.  Every call takes a time budget and
 * returns 0 or -errno: -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH when no
 * endpoint answered in time, -ENOENT when a lease is gone, -EPROTO for a reply
 * that does not parse.
 */
#ifndef HDVM_MIGRATION_ETCD_H
#define HDVM_MIGRATION_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#define ETCD_VALUE_MAX 256

struct etcd_kv {
	bool present;
	int64_t create_rev;
	int64_t mod_rev;
	int64_t lease;			/* 0: not bound to a lease */
	char value[ETCD_VALUE_MAX];
};

/* A transaction compare; the result is always EQUAL.  On an absent key etcd
 * compares against zero revisions and lease 0, so "== 0" means "absent". */
enum etcd_target { ETCD_CREATE_REV, ETCD_MOD_REV, ETCD_LEASE };
struct etcd_cmp {
	const char *key;
	enum etcd_target target;
	int64_t want;
};

enum etcd_op_kind { ETCD_PUT, ETCD_DELETE };
struct etcd_op {
	enum etcd_op_kind kind;
	const char *key;
	const char *value;		/* ETCD_PUT */
	int64_t lease;			/* ETCD_PUT: 0 for a key that outlives leases */
};

struct etcd_ops {
	/* *ttl_s: the TTL etcd granted (it may raise a too-short one) */
	int (*lease_grant)(void *ctx, int ttl_s, int timeout_ms, int64_t *lease, int *ttl_s_out);
	/* one keepalive; -ENOENT if the lease expired or was revoked */
	int (*lease_keepalive)(void *ctx, int64_t lease, int timeout_ms, int *ttl_s_out);
	int (*lease_revoke)(void *ctx, int64_t lease, int timeout_ms);
	/* remaining TTL as etcd reports it; -ENOENT if gone */
	int (*lease_ttl)(void *ctx, int64_t lease, int timeout_ms, int *ttl_s_out);
	int (*get)(void *ctx, const char *key, int timeout_ms, struct etcd_kv *kv);
	/* all compares hold -> all ops applied, *succeeded = true; else nothing */
	int (*txn)(void *ctx, const struct etcd_cmp *cmp, int ncmp,
		   const struct etcd_op *ops, int nops, int timeout_ms, bool *succeeded);
};

/* etcd_http.c: the real client.  urls: "http://h:p[,http://h2:p2...]";
 * a request that fails on one endpoint is retried on the next within its
 * time budget, and the endpoint that answered is tried first next time. */
extern const struct etcd_ops etcd_http_ops;
int etcd_http_open(const char *urls, void **ctx);
void etcd_http_close(void *ctx);
const char *etcd_http_endpoint(void *ctx);	/* the endpoint last used */

#endif
