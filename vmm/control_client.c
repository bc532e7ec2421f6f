// SPDX-License-Identifier: MIT
/*
 * The control socket's client side (hdvm ps/status/pause/resume/stop).
 * Non-blocking sockets under one deadline, so `hdvm ps` asks every VM at
 * once and a VM that does not answer (SIGSTOPped, wedged) costs the
 * deadline once, not once per VM.
 */
#include "vmm/control.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/util.h"

struct query_io {
	int fd;
	uint64_t busy_since;	/* first refused as busy; retried for a while */
	const char *req;
	size_t req_len, sent, got;
};

static int query_connect(const char *run_dir, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	ret = control_socket_path(sa.sun_path, sizeof(sa.sun_path), run_dir, name);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* AF_UNIX connects at once or fails (EAGAIN: the backlog is full, retry) */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* One step of one query: 1 still going, 0 done, -errno failed. */
static int query_step(struct query_io *io, struct control_query *q, size_t cap)
{
	ssize_t n;

	while (io->sent < io->req_len) {
		n = send(io->fd, io->req + io->sent, io->req_len - io->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			break;	/* the server may still answer (a refusal): read */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			io->sent = io->req_len;	/* a refusal may be waiting: read it */
			break;
		}
		io->sent += n;
	}
	for (;;) {
		n = recv(io->fd, q->reply + io->got, cap - 1 - io->got, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0)
			return errno == EPIPE ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		io->got += n;
		q->reply[io->got] = '\0';
		if (memchr(q->reply, '\n', io->got))
			return 0;
		if (io->got == cap - 1)
			return -EMSGSIZE;
	}
}

/* Every slot was busy at that instant: start over, for a while.  True if retrying. */
static bool retry_if_busy(struct query_io *io, struct control_query *q, uint64_t now,
			  uint64_t deadline)
{
	if (q->result || !strstr(q->reply, CONTROL_BUSY_ERROR))
		return false;
	if (!io->busy_since)
		io->busy_since = now;
	if (now >= deadline || now - io->busy_since >= CONTROL_BUSY_RETRY_MS * 1000000ull)
		return false;	/* still busy: the refusal is the answer */
	close(io->fd);
	*io = (struct query_io){ .fd = -1, .req = io->req, .req_len = io->req_len,
				 .busy_since = io->busy_since };
	q->result = 1;
	return true;
}

/* A query that ends without an answer; one that was refused as busy says so. */
static void query_give_up(struct query_io *io, struct control_query *q)
{
	if (io->busy_since) {
		snprintf(q->reply, sizeof(q->reply), "{\"ok\":false,\"error\":\"%s; gave up "
			 "after %d s\"}\n", CONTROL_BUSY_ERROR, CONTROL_BUSY_RETRY_MS / 1000);
		q->result = 0;
	} else {
		q->result = -ETIMEDOUT;
	}
}

void control_request_many(const char *run_dir, const char *request_json,
			  struct control_query *q, size_t n, int timeout_ms)
{
	struct query_io *io = xzalloc((n ? n : 1) * sizeof(*io));
	struct pollfd *pfd = xzalloc((n ? n : 1) * sizeof(*pfd));
	char *req = xzalloc(strlen(request_json) + 2);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t live = 0;

	strcpy(req, request_json);
	strcat(req, "\n");
	for (size_t i = 0; i < n; i++) {
		q[i].reply[0] = '\0';
		q[i].result = 1;
		io[i] = (struct query_io){ .fd = -1, .req = req, .req_len = strlen(req) };
		live++;
	}
	while (live) {
		uint64_t now = now_ns();
		size_t k = 0;
		bool connecting = false;
		int ret, wait_ms;

		for (size_t i = 0; i < n; i++) {
			if (q[i].result != 1)
				continue;
			if (io[i].busy_since &&
			    now - io[i].busy_since >= CONTROL_BUSY_RETRY_MS * 1000000ull) {
				query_give_up(&io[i], &q[i]);
				live--;
				continue;
			}
			if (io[i].fd >= 0)
				continue;
			ret = query_connect(run_dir, q[i].name);
			if (ret == -EAGAIN) {
				connecting = true;	/* a full backlog: try again shortly */
				continue;
			}
			io[i].fd = ret;
			q[i].result = ret < 0 ? ret : query_step(&io[i], &q[i], sizeof(q[i].reply));
			if (retry_if_busy(&io[i], &q[i], now, deadline))
				connecting = true;
			else if (q[i].result != 1)
				live--;
		}
		if (!live || now >= deadline)
			break;
		for (size_t i = 0; i < n; i++)
			if (q[i].result == 1 && io[i].fd >= 0)
				pfd[k++] = (struct pollfd){ .fd = io[i].fd,
					.events = POLLIN | (io[i].sent < io[i].req_len ? POLLOUT : 0) };
		wait_ms = (int)((deadline - now + 999999) / 1000000);
		ret = poll(pfd, k, connecting ? MIN(wait_ms, 5) : MIN(wait_ms, 100));
		if (ret < 0 && errno != EINTR)
			break;
		for (size_t i = 0, j = 0; i < n; i++) {
			if (q[i].result != 1 || io[i].fd < 0)
				continue;
			if (pfd[j++].revents) {
				q[i].result = query_step(&io[i], &q[i], sizeof(q[i].reply));
				if (retry_if_busy(&io[i], &q[i], now_ns(), deadline))
					continue;
				if (q[i].result != 1)
					live--;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (q[i].result == 1)
			query_give_up(&io[i], &q[i]);
		if (io[i].fd >= 0)
			close(io[i].fd);
	}
	free(req);
	free(pfd);
	free(io);
}

int control_request(const char *run_dir, const char *name, const char *request_json,
		    char *reply, size_t reply_len, int timeout_ms)
{
	struct control_query *q = xzalloc(sizeof(*q));
	int ret;

	q->name = name;
	control_request_many(run_dir, request_json, q, 1, timeout_ms);
	ret = q->result;
	if (!ret)
		snprintf(reply, reply_len, "%s", q->reply);
	free(q);
	return ret;
}

int control_parse_reply(const char *name, const char *buf, bool quiet, json_object **reply)
{
	json_object *ok, *err = NULL;

	*reply = json_tokener_parse(buf);
	if (!*reply || !json_object_object_get_ex(*reply, "ok", &ok)) {
		if (!quiet)
			pr_err("VM '%s': malformed reply on the control socket", name);
		json_object_put(*reply);
		*reply = NULL;
		return -EPROTO;
	}
	if (!json_object_get_boolean(ok)) {
		json_object_object_get_ex(*reply, "error", &err);
		if (!quiet)
			pr_err("VM '%s': %s", name, err ? json_object_get_string(err) : "error");
		json_object_put(*reply);
		*reply = NULL;
		return -EIO;	/* the VM refused; its reason was printed */
	}
	return 0;
}

int control_call(const char *run_dir, const char *name, const char *request_json,
		 int timeout_ms, bool quiet, json_object **reply)
{
	struct control_query *q = xzalloc(sizeof(*q));
	int ret;

	*reply = NULL;
	q->name = name;
	control_request_many(run_dir, request_json, q, 1, timeout_ms);
	ret = q->result;
	if (ret < 0 && !quiet) {
		if (ret == -ENOENT || ret == -ECONNREFUSED)
			pr_err("no VM named '%s' is running (run directory %s)", name, run_dir);
		else if (ret == -ETIMEDOUT)
			pr_err("VM '%s' did not answer within %d s (stopped or wedged?)", name,
			       timeout_ms / 1000);
		else
			pr_err("VM '%s': control socket: %s", name, strerror(-ret));
	}
	if (!ret)
		ret = control_parse_reply(name, q->reply, quiet, reply);
	free(q);
	return ret;
}

int control_call_obj(const char *run_dir, const char *name, json_object *req,
		     int timeout_ms, bool quiet, json_object **reply)
{
	int ret = control_call(run_dir, name, json_object_to_json_string_ext(req,
			       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
			       timeout_ms, quiet, reply);

	json_object_put(req);
	return ret;
}
