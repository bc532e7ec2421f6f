// SPDX-License-Identifier: MIT
/* The etcd ownership helper process and its line protocol (owner_helper.h). */
#include "vmm/owner_helper.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/unfiltered.h"
#include "vmm/util.h"

/*
 * build/hdvm-owner next to this hdvm, unless HDVM_OWNER_HELPER says otherwise;
 * found once, before the seccomp filter (which has no readlink).
 */
static void helper_path(char *out, size_t len)
{
	static char found[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n;

	if (getenv("HDVM_OWNER_HELPER")) {
		snprintf(out, len, "%s", getenv("HDVM_OWNER_HELPER"));
		return;
	}
	if (!found[0]) {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = 0;
		snprintf(found, sizeof(found), "%s/hdvm-owner", n > 0 ? dirname(self) : ".");
	}
	snprintf(out, len, "%s", found);
}

int ownerh_prepare(void)
{
	char path[PATH_MAX];

	helper_path(path, sizeof(path));
	return unfiltered_start();
}

struct spawn_req {
	struct owner_helper *h;
	char *const *argv;
	int in[2], out[2];
	int ret;
};

static void do_spawn(void *arg)
{
	struct spawn_req *r = arg;

	r->ret = 0;
	if (pipe2(r->in, O_CLOEXEC) || pipe2(r->out, O_CLOEXEC)) {
		r->ret = -errno;
		return;
	}
	r->h->pid = fork();
	if (r->h->pid < 0) {
		r->ret = -errno;
		return;
	}
	if (!r->h->pid) {
		dup2(r->in[0], STDIN_FILENO);
		dup2(r->out[1], STDOUT_FILENO);
		execv(r->argv[0], r->argv);
		_exit(127);
	}
}

static void do_kill(void *arg)
{
	kill(*(pid_t *)arg, SIGKILL);
}

static int spawn(struct owner_helper *h, char *const argv[])
{
	struct spawn_req r = { .h = h, .argv = argv };
	int *in = r.in, *out = r.out;

	memset(h, 0, sizeof(*h));
	h->pid = -1;
	unfiltered_run(do_spawn, &r);	/* fork+exec: not from a filtered thread */
	if (r.ret)
		return r.ret;
	close(in[0]);
	close(out[1]);
	h->in_fd = in[1];
	h->out_fd = out[0];
	fcntl(h->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/*
 * The next event line ("what wall_ms detail"), waiting up to timeout_ms
 * (0: not at all): 1 with what/detail, 0 none yet, -EPIPE the helper is gone.
 */
static int next_event(struct owner_helper *h, int timeout_ms, char *what, size_t wlen,
		      char *detail, size_t dlen)
{
	uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		char *nl = memchr(h->buf, '\n', h->len);
		struct pollfd p = { .fd = h->out_fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			char w[32] = "", d[400] = "";

			*nl = 0;
			sscanf(h->buf, "%31s %*s %399[^\n]", w, d);
			snprintf(what, wlen, "%s", w);
			snprintf(detail, dlen, "%s", d);
			h->len -= (size_t)(nl + 1 - h->buf);
			memmove(h->buf, nl + 1, h->len);
			return 1;
		}
		n = read(h->out_fd, h->buf + h->len, sizeof(h->buf) - 1 - h->len);
		if (n > 0) {
			h->len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			h->gone = true;
			return -EPIPE;
		}
		if (now_ns() >= until)
			return 0;
		poll(&p, 1, (int)((until - now_ns()) / 1000000) + 1);
	}
}

/* Wait for one of the events in want (NULL-ended); the others are noted. */
static int wait_event(struct owner_helper *h, const char *const *want, int timeout_ms,
		      char *what, size_t wlen)
{
	uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000;

	for (;;) {
		char detail[400];
		uint64_t now = now_ns();
		int ret = next_event(h, now < until ? (int)((until - now) / 1000000) : 0, what,
				     wlen, detail, sizeof(detail));

		if (ret <= 0)
			return ret ?: -ETIMEDOUT;
		if (!strcmp(what, "fenced")) {
			h->fenced = true;
			snprintf(h->why, sizeof(h->why), "%s", detail);
		}
		if (!strcmp(what, "timing"))
			snprintf(h->timing, sizeof(h->timing), "%s", detail);
		for (const char *const *w = want; *w; w++)
			if (!strcmp(what, *w)) {
				if (strcmp(what, "fenced"))
					snprintf(h->why, sizeof(h->why), "%s", detail);
				return 1;
			}
	}
}

static void reap(struct owner_helper *h, bool kill_it)
{
	if (h->pid <= 0)
		return;
	if (kill_it)
		unfiltered_run(do_kill, &h->pid);
	if (h->in_fd >= 0)
		close(h->in_fd);
	close(h->out_fd);
	waitpid(h->pid, NULL, 0);
	h->pid = -1;
}

static int start(struct owner_helper *h, const struct ownerh_cfg *c, const char *name,
		 const char *cmd, uint64_t epoch, bool restart_from_stale, int wait_ms)
{
	char path[PATH_MAX], ep[24], ttl[16], renew[16], wait[16];
	char *argv[16] = { path, "--etcd", (char *)c->etcd, "--vm", (char *)name };
	int n = 5;

	helper_path(path, sizeof(path));
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	if (c->ttl_s) {
		snprintf(ttl, sizeof(ttl), "%d", c->ttl_s);
		argv[n++] = "--ttl";
		argv[n++] = ttl;
	}
	if (c->renew_ms) {
		snprintf(renew, sizeof(renew), "%d", c->renew_ms);
		argv[n++] = "--renew-ms";
		argv[n++] = renew;
	}
	argv[n++] = (char *)cmd;
	argv[n++] = "--epoch";
	argv[n++] = ep;
	if (restart_from_stale)
		argv[n++] = "--restart-from-stale";
	if (wait_ms) {
		snprintf(wait, sizeof(wait), "%d", wait_ms);
		argv[n++] = "--wait-ms";
		argv[n++] = wait;
	}
	argv[n] = NULL;
	return spawn(h, argv);
}

int ownerh_hold(struct owner_helper *h, const struct ownerh_cfg *c, const char *name,
		uint64_t epoch, int timeout_ms)
{
	static const char *const want[] = { "acquired", "busy", "error", NULL };
	char what[32];
	/* the helper retries a slow etcd; it gives up before we do */
	int ret = start(h, c, name, "hold", epoch, false, timeout_ms > 6000 ? timeout_ms - 3000 : 0);

	if (!ret)
		ret = wait_event(h, want, timeout_ms, what, sizeof(what));
	if (ret == 1 && !strcmp(what, "acquired"))
		return 0;
	if (ret == 1)
		ret = !strcmp(what, "busy") ? -EBUSY : -EIO;
	else if (!h->why[0])
		snprintf(h->why, sizeof(h->why), "the etcd helper %s", ret == -ETIMEDOUT ?
			 "did not answer" : "failed (is build/hdvm-owner there?)");
	ownerh_kill(h);
	return ret;
}

int ownerh_takeover(struct owner_helper *h, const struct ownerh_cfg *c, const char *name,
		    uint64_t epoch, bool restart_from_stale, int timeout_ms)
{
	static const char *const want[] = { "active", "refused", "lost-race", "busy", "error",
					    NULL };
	char what[32];
	/* the helper says "busy" when its wait ends; ours lasts a little longer */
	int ret = start(h, c, name, "takeover", epoch, restart_from_stale, timeout_ms);

	if (!ret)
		ret = wait_event(h, want, timeout_ms + 5000, what, sizeof(what));
	if (ret == 1 && !strcmp(what, "active"))
		return 0;		/* the helper keeps the key for the new primary */
	if (ret == 1)
		ret = !strcmp(what, "refused") ? -ESTALE : !strcmp(what, "lost-race") ? -EAGAIN :
		      !strcmp(what, "busy") ? -EBUSY : -EIO;
	else if (!h->why[0])
		snprintf(h->why, sizeof(h->why), "the etcd helper %s", ret == -ETIMEDOUT ?
			 "did not answer in time" : "failed");
	ownerh_kill(h);
	return ret;
}

bool ownerh_may_release(struct owner_helper *h)
{
	char what[32], detail[400];
	int ret;

	while (!h->fenced && (ret = next_event(h, 0, what, sizeof(what), detail,
					       sizeof(detail))) == 1)
		if (!strcmp(what, "fenced")) {
			h->fenced = true;
			snprintf(h->why, sizeof(h->why), "%s", detail);
		}
	if (h->gone && !h->fenced) {
		h->fenced = true;
		snprintf(h->why, sizeof(h->why), "the etcd helper is gone");
	}
	return !h->fenced;
}

static int say(struct owner_helper *h, const char *verb, uint64_t epoch)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", verb, epoch);

	return write(h->in_fd, line, (size_t)n) == n ? 0 : -EPIPE;
}

int ownerh_current(struct owner_helper *h, uint64_t epoch)
{
	return say(h, "current", epoch);
}

int ownerh_mark_stale(struct owner_helper *h, uint64_t epoch, int timeout_ms)
{
	static const char *const want[] = { "stale", "stale-failed", "fenced", NULL };
	char what[32];
	int ret = say(h, "stale", epoch);

	if (!ret)
		ret = wait_event(h, want, timeout_ms, what, sizeof(what));
	if (ret == 1)
		return !strcmp(what, "stale") ? 0 : -EIO;
	return ret ?: -ETIMEDOUT;
}

void ownerh_release(struct owner_helper *h)
{
	if (h->pid <= 0)
		return;
	if (write(h->in_fd, "release\n", 8) != 8)
		pr_debug("etcd helper: release: %s", strerror(errno));
	reap(h, false);
}

int ownerh_abandon(struct owner_helper *h, int timeout_ms)
{
	static const char *const want[] = { "abandoned", NULL };
	char what[32];
	int ret;

	if (h->pid <= 0)
		return -ENOENT;
	/* stdin's end is the helper's "abandon" (tools/hdvm_owner.c) */
	close(h->in_fd);
	h->in_fd = -1;
	ret = wait_event(h, want, timeout_ms, what, sizeof(what));
	reap(h, ret != 1);
	return ret == 1 ? 0 : ret ?: -ETIMEDOUT;
}

void ownerh_kill(struct owner_helper *h)
{
	reap(h, true);
}
