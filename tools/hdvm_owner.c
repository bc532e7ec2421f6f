// SPDX-License-Identifier: GPL-2.0
/*
 * hdvm-owner: failover ownership of one VM through etcd, for operators and
 * tests (the checkpoint driver uses migration/owner.h directly).
 *
 *   hdvm-owner --etcd URL[,URL..] --vm NAME [options] status
 *   hdvm-owner ... hold [--epoch N] [--wait-ms W]   primary: take the key, renew
 *   hdvm-owner ... takeover --epoch N [--wait-ms W] [--restart-from-stale]
 *
 * hold/takeover keep the key and renew it until stdin says "release" or ends;
 * EOF means the VMM that started us died: the lease is revoked, nothing is
 * marked stale (its standby holds every released epoch) and the standby takes
 * over at once ("abandoned"); stdin "current N" records that the standby holds epoch
 * N, "stale N" records its checkpoint stale.  Events go to stdout, one per
 * line, with the wall-clock time in ms: acquired, active, current, stale,
 * fenced, refused, lost-race, released, abandoned.
 * Exit: 0 released, 2 busy, 3 fenced, 4 refused (stale), 5 lost the race,
 * 1 anything else.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migration/etcd.h"
#include "migration/owner.h"

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void event(const char *what, const char *detail)
{
	printf("%s %" PRId64 " %s\n", what, wall_ms(), detail ? detail : "");
	fflush(stdout);
}

/* A VM would stop releasing output and pause here. */
static void on_fence(void *arg, const char *why)
{
	event("fenced", why);
}

static int status(struct owner *o, const struct etcd_ops *ops, void *ctx)
{
	const char *keys[] = { o->key_owner, o->key_epoch, o->key_stale };
	struct etcd_kv kv;
	int err, ttl;

	for (size_t i = 0; i < 3; i++) {
		err = ops->get(ctx, keys[i], o->cfg.timeout_ms, &kv);
		if (err) {
			fprintf(stderr, "hdvm-owner: etcd: %s\n", strerror(-err));
			return 1;
		}
		printf("%s: %s", keys[i], kv.present ? kv.value : "(absent)");
		if (kv.lease && !ops->lease_ttl(ctx, kv.lease, o->cfg.timeout_ms, &ttl))
			printf(" (lease %" PRIx64 ", %d s left)", kv.lease, ttl);
		printf("\n");
	}
	return 0;
}

/* Renew until released, fenced or stdin ends. */
static int hold(struct owner *o)
{
	char line[128], st[400];
	uint64_t n;

	for (;;) {
		struct pollfd p = { .fd = 0, .events = POLLIN };

		if (owner_renew(o))
			return 3;
		if (poll(&p, 1, 10) <= 0)
			continue;
		if (!fgets(line, sizeof(line), stdin)) {
			int err = owner_abandon(o);

			event("abandoned", err ? strerror(-err) : "the VMM is gone");
			return err ? 1 : 0;
		}
		if (!strncmp(line, "release", 7)) {
			int err = owner_release(o);

			event("released", err ? strerror(-err) : "");
			return err ? 1 : 0;
		}
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "current %" SCNu64, &n) == 1) {
			int err = owner_standby_current(o, n);

			event(err ? "current-failed" : "current", err ? strerror(-err) : line);
		} else if (sscanf(line, "stale %" SCNu64, &n) == 1) {
			/* only after this may unprotected output leave */
			int err = owner_mark_standby_stale(o, n);

			event(err ? "stale-failed" : "stale", err ? strerror(-err) : line);
		} else if (!strncmp(line, "status", 6)) {
			owner_status(o, st, sizeof(st));
			event("status", st);
		}
		if (o->state == OWNER_FENCED)
			return 3;
	}
}

static int takeover(struct owner *o, uint64_t epoch, int wait_ms, int poll_ms, bool force)
{
	int64_t end = wall_ms() + wait_ms;
	int err;

	for (;;) {
		err = owner_try_takeover(o, epoch, force);
		if (!err) {
			event("active", o->why);
			return hold(o);
		}
		if (err == -ESTALE) {
			event("refused", o->why);
			return 4;
		}
		if (err == -EAGAIN) {
			event("lost-race", o->why);
			return 5;
		}
		if (wall_ms() >= end) {
			event("busy", err == -EBUSY ? o->why : strerror(-err));
			return 2;
		}
		usleep(poll_ms * 1000);
	}
}

/*
 * The key, retried for wait_ms while etcd does not answer in time (a slow or
 * starting etcd) or holds a key of ours whose revoke timed out too.
 */
static int acquire(struct owner *o, int wait_ms, int poll_ms)
{
	int64_t end = wall_ms() + wait_ms;
	char self[128];
	int err;

	snprintf(self, sizeof(self), "held by %.80s (", o->cfg.holder);
	for (;;) {
		err = owner_acquire(o);
		if (!err || wall_ms() >= end)
			return err;
		if (err != -ETIMEDOUT && err != -ECONNREFUSED && err != -EHOSTUNREACH &&
		    !(err == -EBUSY && strstr(o->why, self)))
			return err;
		usleep(poll_ms * 1000);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: hdvm-owner --etcd URL[,URL...] --vm NAME [--id HOLDER] [--ttl S]\n"
		"       [--renew-ms MS] [--margin-ms MS] [--timeout-ms MS]\n"
		"       status | hold [--epoch N] |\n"
		"       takeover --epoch N [--wait-ms MS] [--poll-ms MS] [--restart-from-stale]\n");
}

static int run(struct owner *o, const char *cmd, uint64_t epoch, int wait_ms, int poll_ms,
	       bool force, void *ctx)
{
	char buf[400];
	int err;

	if (!strcmp(cmd, "status"))
		return status(o, &etcd_http_ops, ctx);
	owner_timing(&o->cfg, buf, sizeof(buf));
	event("timing", buf);
	if (!strcmp(cmd, "takeover"))
		return takeover(o, epoch, wait_ms, poll_ms, force);
	if (strcmp(cmd, "hold")) {
		usage();
		return 1;
	}
	err = acquire(o, wait_ms, poll_ms);
	if (err) {
		event(err == -EBUSY ? "busy" : "error", err == -EBUSY ? o->why : strerror(-err));
		return err == -EBUSY ? 2 : 1;
	}
	snprintf(buf, sizeof(buf), "lease=%" PRIx64 " ttl=%d", o->lease, o->ttl_s);
	event("acquired", buf);
	if (epoch) {
		err = owner_standby_current(o, epoch);
		snprintf(buf, sizeof(buf), "%" PRIu64, epoch);
		event(err ? "current-failed" : "current", err ? strerror(-err) : buf);
	}
	return hold(o);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "vm", required_argument, NULL, 'v' },
		{ "id", required_argument, NULL, 'i' },
		{ "ttl", required_argument, NULL, 't' },
		{ "renew-ms", required_argument, NULL, 'r' },
		{ "margin-ms", required_argument, NULL, 'm' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "epoch", required_argument, NULL, 'E' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "poll-ms", required_argument, NULL, 'p' },
		{ "restart-from-stale", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct owner_cfg cfg = { .fence = on_fence };
	const char *urls = NULL, *cmd;
	int wait_ms = 30000, poll_ms = 50, c, err;
	uint64_t epoch = 0;
	bool force = false;
	char hostid[96];
	struct owner o;
	void *ctx;

	snprintf(hostid, sizeof(hostid), "pid%d", getpid());
	cfg.holder = hostid;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': urls = optarg; break;
		case 'v': cfg.vm = optarg; break;
		case 'i': cfg.holder = optarg; break;
		case 't': cfg.ttl_s = atoi(optarg); break;
		case 'r': cfg.renew_ms = atoi(optarg); break;
		case 'm': cfg.margin_ms = atoi(optarg); break;
		case 'T': cfg.timeout_ms = atoi(optarg); break;
		case 'E': epoch = strtoull(optarg, NULL, 10); break;
		case 'w': wait_ms = atoi(optarg); break;
		case 'p': poll_ms = atoi(optarg); break;
		case 'S': force = true; break;
		default: usage(); return c == 'h' ? 0 : 1;
		}
	}
	if (!urls || !cfg.vm || optind != argc - 1) {
		usage();
		return 1;
	}
	cmd = argv[optind];
	err = etcd_http_open(urls, &ctx);
	if (err) {
		fprintf(stderr, "hdvm-owner: --etcd %s: %s\n", urls, strerror(-err));
		return 1;
	}
	err = owner_init(&o, &cfg, &etcd_http_ops, ctx);
	if (err) {
		fprintf(stderr, "hdvm-owner: %s\n", o.why);
		etcd_http_close(ctx);
		return 1;
	}
	err = run(&o, cmd, epoch, wait_ms, poll_ms, force, ctx);
	etcd_http_close(ctx);
	return err;
}
