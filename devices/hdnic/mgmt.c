// SPDX-License-Identifier: MIT
/* The management socket server (DIR/pf.sock): transport; commands are in mgmt_cmds.c. */
#include "devices/hdnic/mgmt.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/vfu_server.h"
#include "vmm/util.h"

#define MGMT_CLIENTS	8

struct mgmt_client {
	struct loop_handler h;
	struct mgmt *m;
	int fd;
	uint32_t len;
	char buf[MGMT_MAX_REQUEST + 1];
};

struct mgmt {
	struct nic *nic;
	int listen_fd;
	struct loop_handler listen_h;
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
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static int client_send(struct mgmt_client *c, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		off += n;
	}
	return send(c->fd, "\n", 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void client_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt_client *c = container_of(h, struct mgmt_client, h);
	bool ended = loop_poll_ended(h, flags);

	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, MGMT_MAX_REQUEST - c->len, MSG_DONTWAIT);
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->len += n;
		c->buf[c->len] = '\0';
		while ((nl = memchr(c->buf, '\n', c->len))) {
			char *reply;
			uint32_t used = (uint32_t)(nl - c->buf) + 1;

			*nl = '\0';
			reply = handle_request(c->m->nic, c->buf);
			n = client_send(c, reply);
			free(reply);
			if (n) {
				client_close(c);
				return;
			}
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			c->buf[c->len] = '\0';
		}
		if (c->len == MGMT_MAX_REQUEST) {
			client_send(c, "{\"ok\":false,\"error\":\"request longer than 4096 bytes\"}");
			client_close(c);
			return;
		}
	}
	if (ended)
		loop_watch(&c->m->nic->loop, h, c->fd);
}

static void accept_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct mgmt *m = container_of(h, struct mgmt, listen_h);
	bool ended = loop_poll_ended(h, flags);

	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		struct timeval tv = { .tv_sec = 1 };
		struct mgmt_client *c = NULL;

		if (fd < 0)
			break;
		for (unsigned i = 0; i < MGMT_CLIENTS; i++)
			if (m->clients[i].fd < 0)
				c = &m->clients[i];
		if (!c) {
			const char *busy = "{\"ok\":false,\"error\":\"too many management clients\"}\n";

			send(fd, busy, strlen(busy), MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		/* Replies are sent blocking, but never wait on a stuck reader long. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		c->fd = fd;
		c->len = 0;
		loop_handler_init(&c->h, client_event);
		loop_watch(&m->nic->loop, &c->h, fd);
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
	unlink(m->path);
	free(m);
}
