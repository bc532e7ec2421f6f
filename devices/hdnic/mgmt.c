// SPDX-License-Identifier: MIT
/*
 * The management socket server (DIR/pf.sock): transport; commands are in
 * mgmt_cmds.c.  At most MGMT_CLIENTS at once (others are told why), none
 * may stall the loop (replies wait for POLLOUT), and one idle for the
 * connection timeout is dropped.  The same coarse timer drops vfio-user
 * clients that never complete VERSION (vfu_check_deadlines()).
 */
#include "devices/hdnic/mgmt.h"

#include <errno.h>
#include <poll.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vdev.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

#define MGMT_CLIENTS	8

struct mgmt_client {
	struct loop_handler h, out_h;
	struct mgmt *m;
	int fd;
	uint64_t deadline;		/* dropped if still idle then */
	struct line_out out;		/* a reply the client has not taken yet */
	bool close_after;
	uint32_t len;
	char buf[MGMT_MAX_REQUEST + 1];
};

struct mgmt {
	struct nic *nic;
	int listen_fd;
	struct loop_handler listen_h;
	int timer_fd;			/* connection deadlines, armed while any is due */
	struct loop_handler timer_h;
	bool timer_armed;
	char path[PATH_MAX];
	struct mgmt_client clients[MGMT_CLIENTS];
};

/* ---- transport ---- */

static char *handle_request(struct nic *nic, const char *line)
{
	json_object *req = json_tokener_parse(line), *cmd, *r = NULL;
	char err[256] = "";
	char *out;

	if (!req || !json_object_is_type(req, json_type_object)) {
		snprintf(err, sizeof(err), "request is not a JSON object");
	} else if (!json_object_object_get_ex(req, "cmd", &cmd) ||
		   !json_object_is_type(cmd, json_type_string)) {
		snprintf(err, sizeof(err), "request has no \"cmd\" string");
	} else {
		const char *name = json_object_get_string(cmd);
		unsigned i;

		for (i = 0; i < mgmt_nr_cmds; i++)
			if (!strcmp(name, mgmt_cmds[i].name))
				break;
		if (i == mgmt_nr_cmds)
			snprintf(err, sizeof(err), "unknown command \"%.64s\"", name);
		else
			r = mgmt_cmds[i].fn(nic, req, err, sizeof(err));
	}
	if (!r) {
		r = json_object_new_object();
		json_object_object_add(r, "ok", json_object_new_boolean(0));
		json_object_object_add(r, "error", json_object_new_string(err[0] ? err : "failed"));
	} else {
		json_object_object_add(r, "ok", json_object_new_boolean(1));
	}
	out = xstrdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(r);
	if (req)
		json_object_put(req);
	return out;
}

static void client_close(struct mgmt_client *c)
{
	loop_unwatch(&c->m->nic->loop, &c->h);
	if (c->out_h.armed)
		loop_unwatch(&c->m->nic->loop, &c->out_h);
	close(c->fd);
	c->fd = -1;
	c->len = 0;
	line_out_clear(&c->out);
	c->close_after = false;
}

static void client_touch(struct mgmt_client *c)
{
	c->deadline = now_ns() + c->m->nic->conn_timeout_ns;
}

/* Send what the client takes: 0 all sent, 1 the rest waits for POLLOUT, -errno. */
static int client_flush(struct mgmt_client *c)
{
	bool progress = false;
	int ret = line_out_send(&c->out, c->fd, &progress);

	if (progress)
		client_touch(c);
	if (ret == 1 && !c->out_h.armed)
		loop_watch_events(&c->m->nic->loop, &c->out_h, c->fd, POLLOUT);
	if (ret == 0 && c->out_h.armed)
		loop_unwatch(&c->m->nic->loop, &c->out_h);
	return ret;
}

/*
 * Send a waiting reply, answer each complete request, read until EAGAIN.
 * Nothing here waits: a client that does not read its reply keeps its
 * requests in its own socket until the reply is taken or it times out.
 */
static void client_pump(struct mgmt_client *c)
{
	for (;;) {
		char *nl;
		ssize_t n;

		if (c->out.buf) {
			int ret = client_flush(c);

			if (ret < 0 || (!ret && c->close_after)) {
				client_close(c);
				return;
			}
			if (ret > 0)
				return;
		}
		nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			uint32_t used = (uint32_t)(nl - c->buf) + 1;

			*nl = '\0';
			line_out_set(&c->out, handle_request(c->m->nic, c->buf));
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			c->buf[c->len] = '\0';
			client_touch(c);
			continue;
		}
		if (c->len == MGMT_MAX_REQUEST) {
			line_out_set(&c->out, xstrdup("{\"ok\":false,\"error\":\"request longer "
						      "than 4096 bytes\"}"));
			c->close_after = true;
			c->len = 0;
			continue;
		}
		n = recv(c->fd, c->buf + c->len, MGMT_MAX_REQUEST - c->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->len += n;
		c->buf[c->len] = '\0';
	}
}

static void client_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt_client *c = container_of(h, struct mgmt_client, h);
	bool ended = loop_poll_ended(h, flags);

	client_pump(c);
	if (ended && c->fd >= 0)
		loop_watch(&c->m->nic->loop, h, c->fd);
}

static void client_writable(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt_client *c = container_of(h, struct mgmt_client, out_h);
	bool ended = loop_poll_ended(h, flags);

	client_pump(c);
	if (ended && c->fd >= 0 && c->out.buf)
		loop_watch_events(&c->m->nic->loop, h, c->fd, POLLOUT);
}

/* ---- connection deadlines: idle management clients, vfio-user clients ---- */

void mgmt_arm_timer(struct mgmt *m)
{
	struct itimerspec its;
	uint64_t tick;

	if (!m || m->timer_armed || m->timer_fd < 0)
		return;
	tick = MAX(MIN(m->nic->conn_timeout_ns / 4, 250000000ull), 1000000ull);
	its.it_interval = (struct timespec){ .tv_sec = tick / 1000000000,
					     .tv_nsec = tick % 1000000000 };
	its.it_value = its.it_interval;
	if (timerfd_settime(m->timer_fd, 0, &its, NULL) == 0)
		m->timer_armed = true;
}

static void timer_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt *m = container_of(h, struct mgmt, timer_h);
	bool ended = loop_poll_ended(h, flags), pending = false;
	struct itimerspec off = { 0 };
	uint64_t now = now_ns(), ticks;

	if (read(m->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		pr_debug("timerfd: %s", strerror(errno));
	for (unsigned i = 0; i < MGMT_CLIENTS; i++) {
		struct mgmt_client *c = &m->clients[i];

		if (c->fd < 0)
			continue;
		if (now >= c->deadline) {
			pr_info("management client idle for %llu ms: dropped",
				(unsigned long long)(m->nic->conn_timeout_ns / 1000000));
			client_close(c);
		} else {
			pending = true;
		}
	}
	for (unsigned i = 0; i < m->nic->nr_devs; i++)
		pending |= vfu_check_deadlines(m->nic->devs[i]->vfu, now);
	if (!pending && timerfd_settime(m->timer_fd, 0, &off, NULL) == 0)
		m->timer_armed = false;
	if (ended)
		loop_watch(&m->nic->loop, h, m->timer_fd);
}

static void accept_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt *m = container_of(h, struct mgmt, listen_h);
	bool ended = loop_poll_ended(h, flags);

	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct mgmt_client *c = NULL;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		for (unsigned i = 0; i < MGMT_CLIENTS; i++)
			if (m->clients[i].fd < 0)
				c = &m->clients[i];
		if (!c) {
			char busy[160];

			snprintf(busy, sizeof(busy), "{\"ok\":false,\"error\":\"too many management "
				 "clients (%u connected); try again\"}\n", MGMT_CLIENTS);
			send(fd, busy, strlen(busy), MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		client_touch(c);
		loop_handler_init(&c->h, client_event);
		loop_handler_init(&c->out_h, client_writable);
		loop_watch(&m->nic->loop, &c->h, fd);
		mgmt_arm_timer(m);
		client_pump(c);
	}
	if (ended)
		loop_watch(&m->nic->loop, h, m->listen_fd);
}

int mgmt_create(struct nic *nic, struct mgmt **out)
{
	struct mgmt *m = xzalloc(sizeof(*m));

	m->nic = nic;
	for (unsigned i = 0; i < MGMT_CLIENTS; i++) {
		m->clients[i].fd = -1;
		m->clients[i].m = m;
	}
	snprintf(m->path, sizeof(m->path), "%s/%s", nic->dir, MGMT_SOCK_NAME);
	m->listen_fd = hdnic_listen_unix(m->path);
	if (m->listen_fd < 0) {
		int err = m->listen_fd;

		free(m);
		return err;
	}
	loop_handler_init(&m->listen_h, accept_event);
	loop_watch(&nic->loop, &m->listen_h, m->listen_fd);
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->timer_fd < 0) {
		pr_err("timerfd: %s", strerror(errno));
	} else {
		loop_handler_init(&m->timer_h, timer_event);
		loop_watch(&nic->loop, &m->timer_h, m->timer_fd);
	}
	nic->mgmt = m;		/* vfio-user clients' deadlines arm the timer too */
	*out = m;
	return 0;
}

void mgmt_destroy(struct mgmt *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < MGMT_CLIENTS; i++)
		if (m->clients[i].fd >= 0)
			client_close(&m->clients[i]);
	loop_unwatch(&m->nic->loop, &m->listen_h);
	close(m->listen_fd);
	if (m->timer_fd >= 0) {
		loop_unwatch(&m->nic->loop, &m->timer_h);
		close(m->timer_fd);
	}
	unlink(m->path);
	m->nic->mgmt = NULL;
	free(m);
}
