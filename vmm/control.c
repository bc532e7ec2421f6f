// SPDX-License-Identifier: MIT
/*
 * The control socket server: name lock, listening socket, connections.
 * Everything here runs on the main thread's event loop and never waits:
 * the loop's multishot polls merge wake-ups, so each event drains its
 * socket (accept, read) until EAGAIN, and a reply the client does not take
 * waits in the connection's output buffer behind a POLLOUT watch.
 */
#include "vmm/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/loop.h"
#include "vmm/util.h"
#include "vmm/vm.h"	/* VM_NAME_MAX */

struct conn {
	struct control *ctl;
	int fd;
	struct loop_watch *watch, *out_watch;
	uint64_t deadline;		/* dropped when idle until then */
	bool close_after_reply;
	struct line_out out;		/* reply not yet taken by the client */
	size_t len;
	char buf[CONTROL_MAX_REQUEST];
};

struct control {
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock_path[PATH_MAX];
	int lock_fd, listen_fd;
	struct loop_watch *listen_watch;
	struct event_loop *loop;
	const struct control_cmd *cmds;
	size_t nr_cmds;
	void *opaque;
	uint64_t idle_ns;
	struct conn *conns[CONTROL_MAX_CONNS];
};

const char *control_run_dir(const char *opt)
{
	const char *env = getenv("HDVM_RUN_DIR");

	if (opt && *opt)
		return opt;
	return env && *env ? env : HDVM_DEFAULT_RUN_DIR;
}

int control_valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= VM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-") == n;
}

int control_socket_path(char *out, size_t len, const char *dir, const char *name)
{
	return snprintf(out, len, "%s/%s.sock", dir, name) < (int)len ? 0 : -ENAMETOOLONG;
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

struct control *control_open(const char *run_dir, const char *name)
{
	struct control *c = xzalloc(sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ret;

	c->lock_fd = c->listen_fd = -1;
	c->idle_ns = CONTROL_IDLE_MS * 1000000ull;
	/* every check before the first mkdir: a refused run leaves nothing behind */
	if (control_socket_path(c->sock_path, sizeof(c->sock_path), run_dir, name) < 0 ||
	    snprintf(c->lock_path, sizeof(c->lock_path), "%s/%s.lock", run_dir, name) >=
	    (int)sizeof(c->lock_path)) {
		pr_err("run directory path too long for a socket: %s", run_dir);
		c->lock_path[0] = '\0';
		goto err;
	}
	ret = mkdir_p(run_dir);
	if (ret < 0) {
		pr_err("run directory %s: %s", run_dir, strerror(-ret));
		c->lock_path[0] = '\0';
		goto err;
	}
	c->lock_fd = open(c->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (c->lock_fd < 0) {
		pr_err("%s: %s", c->lock_path, strerror(errno));
		c->lock_path[0] = '\0';
		goto err;
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		pr_err("a VM named '%s' is already running (run directory %s)", name, run_dir);
		close(c->lock_fd);
		c->lock_fd = -1;
		c->lock_path[0] = '\0';	/* not ours: leave it */
		goto err;
	}
	/* We hold the name: whatever socket is there is stale. */
	unlink(c->sock_path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0) {
		pr_err("control socket: %s", strerror(errno));
		goto err;
	}
	memcpy(sa.sun_path, c->sock_path, sizeof(c->sock_path));
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->listen_fd, 64) < 0) {
		pr_err("control socket %s: %s", c->sock_path, strerror(errno));
		goto err;
	}
	return c;
err:
	control_close(c);
	return NULL;
}

void control_set_idle_timeout(struct control *c, int ms)
{
	c->idle_ns = (uint64_t)(ms > 0 ? ms : CONTROL_IDLE_MS) * 1000000ull;
}

unsigned control_nr_conns(const struct control *c)
{
	unsigned n = 0;

	for (int i = 0; i < CONTROL_MAX_CONNS; i++)
		n += !!c->conns[i];
	return n;
}

static void conn_close(struct conn *cn)
{
	struct control *c = cn->ctl;

	loop_unwatch(c->loop, cn->watch);
	loop_unwatch(c->loop, cn->out_watch);
	close(cn->fd);
	for (int i = 0; i < CONTROL_MAX_CONNS; i++)
		if (c->conns[i] == cn)
			c->conns[i] = NULL;
	line_out_clear(&cn->out);
	free(cn);
}

static void conn_touch(struct conn *cn)
{
	cn->deadline = now_ns() + cn->ctl->idle_ns;
}

static void conn_writable(void *opaque, int fd, unsigned revents);

/* Send what the client will take: 0 all sent, 1 the rest waits, -errno. */
static int conn_flush(struct conn *cn)
{
	bool progress = false;
	int ret = line_out_send(&cn->out, cn->fd, &progress);

	if (progress)
		conn_touch(cn);		/* a reader that makes progress is not idle */
	if (ret == 1 && !cn->out_watch) {
		cn->out_watch = loop_watch(cn->ctl->loop, cn->fd, POLLOUT, conn_writable, cn);
		if (!cn->out_watch)
			return -ENOMEM;
	}
	if (ret == 0 && cn->out_watch) {
		loop_unwatch(cn->ctl->loop, cn->out_watch);
		cn->out_watch = NULL;
	}
	return ret;
}

/*
 * Everything this connection can do now: send a waiting reply, answer each
 * complete request, read until EAGAIN.  Stops reading while a reply waits
 * (the client's requests stay in its socket: back-pressure, not memory).
 */
static void conn_pump(struct conn *cn)
{
	struct control *c = cn->ctl;

	for (;;) {
		char *nl;
		ssize_t n;
		int ret;

		if (cn->out.buf) {
			ret = conn_flush(cn);
			if (ret < 0 || (!ret && cn->close_after_reply))
				return conn_close(cn);
			if (ret > 0)
				return;
		}
		nl = memchr(cn->buf, '\n', cn->len);
		if (nl) {
			*nl = '\0';
			line_out_set(&cn->out, control_handle_line(c->cmds, c->nr_cmds, c->opaque,
								    cn->buf));
			cn->len -= nl + 1 - cn->buf;
			memmove(cn->buf, nl + 1, cn->len);
			conn_touch(cn);
			continue;
		}
		if (cn->len >= sizeof(cn->buf) - 1) {
			line_out_set(&cn->out, xstrdup("{\"ok\":false,\"error\":\"request too long\"}"));
			cn->close_after_reply = true;
			cn->len = 0;
			continue;
		}
		n = recv(cn->fd, cn->buf + cn->len, sizeof(cn->buf) - 1 - cn->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			return conn_close(cn);	/* closed, maybe mid-request: free the slot */
		cn->len += n;
	}
}

static void conn_readable(void *opaque, int fd, unsigned revents)
{
	conn_pump(opaque);
}

static void conn_writable(void *opaque, int fd, unsigned revents)
{
	conn_pump(opaque);
}

static void refuse(int fd, const char *why)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "{\"ok\":false,\"error\":\"%s\"}\n", why);

	/* a fresh socket's buffer is empty: this never blocks and never waits */
	if (send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		pr_debug("control: refusal not delivered: %s", strerror(errno));
	close(fd);
}

/*
 * A free slot; when all are taken, first let each connection catch up:
 * clients that closed may not have had their event dispatched yet.
 */
static int free_slot(struct control *c)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < CONTROL_MAX_CONNS; i++)
			if (!c->conns[i])
				return i;
		for (int i = 0; i < CONTROL_MAX_CONNS; i++)
			if (c->conns[i] && !c->conns[i]->out.buf)
				conn_pump(c->conns[i]);
	}
	return -EBUSY;
}

static void listen_readable(void *opaque, int fd, unsigned revents)
{
	struct control *c = opaque;

	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct conn *cn;
		int slot = -1;

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;		/* EAGAIN: drained; anything else: next event */
		}
		slot = free_slot(c);
		if (slot < 0) {
			refuse(cfd, CONTROL_BUSY_ERROR " (16 busy); try again");
			continue;
		}
		cn = xzalloc(sizeof(*cn));
		cn->ctl = c;
		cn->fd = cfd;
		conn_touch(cn);
		cn->watch = loop_watch(c->loop, cfd, POLLIN, conn_readable, cn);
		if (!cn->watch) {
			refuse(cfd, "control server out of resources");
			free(cn);
			continue;
		}
		c->conns[slot] = cn;
		conn_pump(cn);	/* a request may already be waiting */
	}
}

int control_timeout_ms(const struct control *c)
{
	uint64_t now = now_ns(), first = UINT64_MAX;

	for (int i = 0; i < CONTROL_MAX_CONNS; i++)
		if (c->conns[i] && c->conns[i]->deadline < first)
			first = c->conns[i]->deadline;
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)MIN((first - now) / 1000000 + 1, (uint64_t)INT_MAX);
}

void control_tick(struct control *c)
{
	uint64_t now = now_ns();

	for (int i = 0; i < CONTROL_MAX_CONNS; i++) {
		struct conn *cn = c->conns[i];

		if (cn && cn->deadline <= now) {
			pr_debug("control: dropping a client idle for %llu ms",
				 (unsigned long long)(c->idle_ns / 1000000));
			conn_close(cn);
		}
	}
}

int control_start(struct control *c, struct event_loop *loop,
		  const struct control_cmd *cmds, size_t nr_cmds, void *opaque)
{
	c->loop = loop;
	c->cmds = cmds;
	c->nr_cmds = nr_cmds;
	c->opaque = opaque;
	c->listen_watch = loop_watch(loop, c->listen_fd, POLLIN, listen_readable, c);
	return c->listen_watch ? 0 : -ENOMEM;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	for (int i = 0; i < CONTROL_MAX_CONNS; i++)
		if (c->conns[i])
			conn_close(c->conns[i]);
	if (c->listen_watch)
		loop_unwatch(c->loop, c->listen_watch);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->sock_path);
	}
	if (c->lock_fd >= 0) {
		unlink(c->lock_path);
		close(c->lock_fd);
	}
	free(c);
}
