// SPDX-License-Identifier: MIT
#include "vmm/control.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
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
#include "vmm/vm.h"

#define MAX_CONNS	16

struct conn {
	struct control *ctl;
	int fd;
	struct loop_watch *watch;
	size_t len;
	char buf[CONTROL_MAX_REQUEST];
};

struct control {
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock_path[PATH_MAX];
	int lock_fd, listen_fd;
	struct loop_watch *listen_watch;
	struct vm *vm;
	struct event_loop *loop;
	struct conn *conns[MAX_CONNS];
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

static int socket_path(char *out, size_t len, const char *dir, const char *name)
{
	return snprintf(out, len, "%s/%s.sock", dir, name) < (int)len ? 0 : -1;
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

struct control *control_open(const char *run_dir, const char *name)
{
	struct control *c = xzalloc(sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->lock_fd = c->listen_fd = -1;
	if (mkdir_p(run_dir) < 0) {
		pr_err("run directory %s: %s", run_dir, strerror(errno));
		goto err;
	}
	if (socket_path(c->sock_path, sizeof(c->sock_path), run_dir, name) < 0) {
		pr_err("run directory path too long for a socket: %s", run_dir);
		goto err;
	}
	snprintf(c->lock_path, sizeof(c->lock_path), "%s/%s.lock", run_dir, name);
	c->lock_fd = open(c->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (c->lock_fd < 0) {
		pr_err("%s: %s", c->lock_path, strerror(errno));
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
	    listen(c->listen_fd, MAX_CONNS) < 0) {
		pr_err("control socket %s: %s", c->sock_path, strerror(errno));
		goto err;
	}
	return c;
err:
	control_close(c);
	return NULL;
}

static void conn_close(struct conn *cn)
{
	struct control *c = cn->ctl;

	loop_unwatch(c->loop, cn->watch);
	close(cn->fd);
	for (int i = 0; i < MAX_CONNS; i++)
		if (c->conns[i] == cn)
			c->conns[i] = NULL;
	free(cn);
}

static void reply_error(json_object *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(json_object *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
}

static json_object *us_or_null(uint64_t t, uint64_t start)
{
	return t ? json_object_new_int64((int64_t)(t - start) / 1000) : NULL;
}

static void cmd_status(struct vm *vm, json_object *r)
{
	const struct vm_metrics *m = &vm->metrics;

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "name", json_object_new_string(vm->cfg.name));
	json_object_object_add(r, "pid", json_object_new_int(getpid()));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
	json_object_object_add(r, "vcpus", json_object_new_int(vm->ncpus));
	json_object_object_add(r, "memory_mib", json_object_new_int64(vm->mem.size >> 20));
	json_object_object_add(r, "kernel", json_object_new_string(vm->cfg.kernel));
	json_object_object_add(r, "cmdline", json_object_new_string(vm->cfg.cmdline ? vm->cfg.cmdline : ""));
	json_object_object_add(r, "uptime_ms", json_object_new_int64((now_ns() - m->t_start) / 1000000));
	json_object_object_add(r, "start_to_first_run_us", us_or_null(m->t_first_run, m->t_start));
	json_object_object_add(r, "start_to_marker_us", us_or_null(m->t_marker, m->t_start));
}

static void cmd_pause(struct vm *vm, json_object *r)
{
	char why[256];

	if (vm_pause(vm, why, sizeof(why)) < 0)
		return reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
}

static void cmd_resume(struct vm *vm, json_object *r)
{
	char why[256];

	if (vm_resume(vm, why, sizeof(why)) < 0)
		return reply_error(r, "%s", why);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string(vm_state_name(vm->state)));
}

static void cmd_stop(struct vm *vm, json_object *r)
{
	vm_request_shutdown(vm, 0, "stopped by request on the control socket");
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string("shutdown"));
}

static const struct {
	const char *name;
	void (*fn)(struct vm *vm, json_object *reply);
} commands[] = {
	{ "status", cmd_status },
	{ "pause", cmd_pause },
	{ "resume", cmd_resume },
	{ "stop", cmd_stop },
};

static void handle_request(struct control *c, const char *line, json_object *r)
{
	enum json_tokener_error jerr;
	json_object *req = json_tokener_parse_verbose(line, &jerr);
	json_object *cmd;
	const char *name;

	if (!req)
		return reply_error(r, "malformed request: %s", json_tokener_error_desc(jerr));
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		reply_error(r, "malformed request: expected {\"cmd\": \"...\"}");
		goto out;
	}
	name = json_object_get_string(cmd);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (!strcmp(name, commands[i].name)) {
			commands[i].fn(c->vm, r);
			goto out;
		}
	}
	reply_error(r, "unknown command '%.64s'", name);
out:
	json_object_put(req);
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, 1000) <= 0)
				return -1;	/* a client that does not read is dropped */
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static void conn_readable(void *opaque, int fd, unsigned revents)
{
	struct conn *cn = opaque;
	ssize_t n = recv(fd, cn->buf + cn->len, sizeof(cn->buf) - cn->len - 1, MSG_DONTWAIT);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return conn_close(cn);
	cn->len += n;
	cn->buf[cn->len] = '\0';
	while ((nl = memchr(cn->buf, '\n', cn->len))) {
		json_object *r = json_object_new_object();
		const char *out;
		int ret;

		*nl = '\0';
		handle_request(cn->ctl, cn->buf, r);
		out = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		ret = send_all(fd, out, strlen(out));
		if (!ret)
			ret = send_all(fd, "\n", 1);
		json_object_put(r);
		if (ret < 0)
			return conn_close(cn);
		cn->len -= nl + 1 - cn->buf;
		memmove(cn->buf, nl + 1, cn->len);
	}
	if (cn->len >= sizeof(cn->buf) - 1) {
		static const char err[] = "{\"ok\":false,\"error\":\"request too long\"}\n";

		send_all(fd, err, sizeof(err) - 1);
		conn_close(cn);
	}
}

static void listen_readable(void *opaque, int fd, unsigned revents)
{
	struct control *c = opaque;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct conn *cn;
	int slot = -1;

	if (cfd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		if (!c->conns[i])
			slot = i;
	if (slot < 0) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many control connections\"}\n";

		send_all(cfd, busy, sizeof(busy) - 1);
		close(cfd);
		return;
	}
	cn = xzalloc(sizeof(*cn));
	cn->ctl = c;
	cn->fd = cfd;
	cn->watch = loop_watch(c->loop, cfd, POLLIN, conn_readable, cn);
	if (!cn->watch) {
		close(cfd);
		free(cn);
		return;
	}
	c->conns[slot] = cn;
}

int control_start(struct control *c, struct vm *vm, struct event_loop *loop)
{
	c->vm = vm;
	c->loop = loop;
	c->listen_watch = loop_watch(loop, c->listen_fd, POLLIN, listen_readable, c);
	return c->listen_watch ? 0 : -1;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
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

int control_request(const char *run_dir, const char *name, const char *request_json,
		    char *reply, size_t reply_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd;
	size_t got = 0;
	int fd, ret = -1;

	if (socket_path(sa.sun_path, sizeof(sa.sun_path), run_dir, name) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	if (send_all(fd, request_json, strlen(request_json)) < 0 || send_all(fd, "\n", 1) < 0) {
		ret = -EPIPE;
		goto out;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (got < reply_len - 1) {
		ssize_t n;

		if (poll(&pfd, 1, 10000) <= 0) {
			ret = -ETIMEDOUT;
			goto out;
		}
		n = recv(fd, reply + got, reply_len - 1 - got, 0);
		if (n <= 0) {
			ret = -ECONNRESET;
			goto out;
		}
		got += n;
		reply[got] = '\0';
		if (memchr(reply, '\n', got)) {
			ret = 0;
			goto out;
		}
	}
	ret = -EMSGSIZE;
out:
	close(fd);
	return ret;
}
