// SPDX-License-Identifier: MIT
/* The management socket server (DIR/pf.sock), JSON with json-c. */
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
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vf.h"
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

typedef json_object *(*mgmt_cmd_fn)(struct nic *nic, json_object *req, char *err, size_t errlen);

/* ---- commands ---- */

static json_object *u64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static json_object *cmd_list(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *r = json_object_new_object(), *vfs = json_object_new_array();
	json_object *up = json_object_new_object();

	json_object_object_add(r, "nic", json_object_new_string(nic->name));
	json_object_object_add(up, "kind", json_object_new_string(nic->uplink->ops->kind));
	json_object_object_add(up, "ifname", json_object_new_string(nic->uplink->ifname));
	json_object_object_add(r, "uplink", up);
	for (unsigned i = 0; i < nic->nr_vfs; i++) {
		struct vf *vf = nic->vfs[i];
		json_object *o = json_object_new_object();
		char mac[18];

		mac_format(vf->mac, mac);
		json_object_object_add(o, "vf", json_object_new_int((int)i));
		json_object_object_add(o, "mac", json_object_new_string(mac));
		json_object_object_add(o, "socket", json_object_new_string(vf->sock_path));
		json_object_object_add(o, "client", json_object_new_boolean(vf->conn.fd >= 0));
		json_object_object_add(o, "state", json_object_new_string(vf_state_name(vf)));
		json_object_object_add(o, "device_status", json_object_new_int(vf->vn.status));
		json_object_object_add(o, "polling", json_object_new_boolean(vf->polling));
		json_object_object_add(o, "dma_maps", json_object_new_int((int)vf->dma.nr));
		json_object_array_add(vfs, o);
	}
	json_object_object_add(r, "vfs", vfs);
	return r;
}

static json_object *cmd_stats(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *r = json_object_new_object(), *vfs = json_object_new_array();
	json_object *up = json_object_new_object(), *sw = json_object_new_object();
	const struct uplink_stats *us = &nic->uplink->stats;
	const struct sw_stats *ss = &nic->sw.stats;

	for (unsigned i = 0; i < nic->nr_vfs; i++) {
		const struct vf *vf = nic->vfs[i];
		const struct vf_stats *s = &vf->stats;
		json_object *o = json_object_new_object();

		json_object_object_add(o, "vf", json_object_new_int((int)i));
		json_object_object_add(o, "rx_packets", u64(s->rx_packets));
		json_object_object_add(o, "rx_bytes", u64(s->rx_bytes));
		json_object_object_add(o, "rx_drops", u64(s->rx_drops));
		json_object_object_add(o, "rx_errors", u64(s->rx_errors));
		json_object_object_add(o, "tx_packets", u64(s->tx_packets));
		json_object_object_add(o, "tx_bytes", u64(s->tx_bytes));
		json_object_object_add(o, "tx_drops", u64(s->tx_drops));
		json_object_object_add(o, "tx_errors", u64(s->tx_errors));
		json_object_object_add(o, "needs_reset", u64(s->needs_reset));
		json_object_object_add(o, "proto_errors", u64(s->proto_errors));
		json_object_object_add(o, "irqs", u64(s->irqs));
		json_object_object_add(o, "kicks", u64(s->kicks));
		json_object_object_add(o, "connects", u64(s->connects));
		json_object_object_add(o, "egress_held", u64(vf->holdq.count));
		json_object_array_add(vfs, o);
	}
	json_object_object_add(r, "vfs", vfs);
	json_object_object_add(up, "rx_packets", u64(us->rx_packets));
	json_object_object_add(up, "rx_bytes", u64(us->rx_bytes));
	json_object_object_add(up, "rx_drops", u64(us->rx_drops));
	json_object_object_add(up, "rx_errors", u64(us->rx_errors));
	json_object_object_add(up, "tx_packets", u64(us->tx_packets));
	json_object_object_add(up, "tx_bytes", u64(us->tx_bytes));
	json_object_object_add(up, "tx_drops", u64(us->tx_drops));
	json_object_object_add(up, "tx_errors", u64(us->tx_errors));
	json_object_object_add(r, "uplink", up);
	json_object_object_add(sw, "fdb_learned", u64(nic->sw.nr_learned));
	json_object_object_add(sw, "flooded", u64(ss->flooded));
	json_object_object_add(sw, "unknown_unicast_drops", u64(ss->unknown_unicast_drops));
	json_object_object_add(sw, "spoof_drops", u64(ss->spoof_drops));
	json_object_object_add(sw, "loop_drops", u64(ss->loop_drops));
	json_object_object_add(r, "switch", sw);
	json_object_object_add(r, "loop_passes", u64(nic->polls));
	json_object_object_add(r, "sleeps", u64(nic->sleeps));
	return r;
}

/* "vf": a non-negative integer naming an existing VF. */
static struct vf *req_vf(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(req, "vf", &v) || !json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "\"vf\" must be an integer");
		return NULL;
	}
	n = json_object_get_int64(v);
	if (n < 0 || n >= nic->nr_vfs) {
		snprintf(err, errlen, "vf %lld does not exist (this NIC has %u)", (long long)n,
			 nic->nr_vfs);
		return NULL;
	}
	return nic->vfs[n];
}

static json_object *cmd_set_mac(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vf *vf = req_vf(nic, req, err, errlen);
	json_object *v;
	uint8_t mac[6];

	if (!vf)
		return NULL;
	if (!json_object_object_get_ex(req, "mac", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    mac_parse(json_object_get_string(v), mac)) {
		snprintf(err, errlen, "\"mac\" must look like 02:00:00:00:00:01");
		return NULL;
	}
	if (nic_set_vf_mac(nic, vf->index, mac, err, errlen))
		return NULL;
	return json_object_new_object();
}

static json_object *cmd_egress(struct nic *nic, json_object *req, char *err, size_t errlen)
{
	struct vf *vf = req_vf(nic, req, err, errlen);
	json_object *v, *r;
	const char *action;
	uint64_t epoch = 0;

	if (!vf)
		return NULL;
	if (!json_object_object_get_ex(req, "action", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"action\" must be hold, commit, discard or pass");
		return NULL;
	}
	action = json_object_get_string(v);
	if (json_object_object_get_ex(req, "epoch", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
			snprintf(err, errlen, "\"epoch\" must be a non-negative integer");
			return NULL;
		}
		epoch = (uint64_t)json_object_get_int64(v);
	}
	if (!strcmp(action, "hold")) {
		if (holdq_hold(&vf->holdq, epoch)) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
	} else if (!strcmp(action, "commit")) {
		holdq_commit(&vf->holdq, epoch);
	} else if (!strcmp(action, "discard")) {
		holdq_discard(&vf->holdq);
	} else if (!strcmp(action, "pass")) {
		holdq_pass(&vf->holdq);
	} else {
		snprintf(err, errlen, "unknown egress action \"%s\"", action);
		return NULL;
	}
	r = json_object_new_object();
	json_object_object_add(r, "held", u64(vf->holdq.count));
	json_object_object_add(r, "holding", json_object_new_boolean(vf->holdq.holding));
	return r;
}

static const struct { const char *name; mgmt_cmd_fn fn; } mgmt_cmds[] = {
	{ "list", cmd_list },
	{ "stats", cmd_stats },
	{ "set-mac", cmd_set_mac },
	{ "egress", cmd_egress },
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

		for (i = 0; i < ARRAY_SIZE(mgmt_cmds); i++)
			if (!strcmp(name, mgmt_cmds[i].name))
				break;
		if (i == ARRAY_SIZE(mgmt_cmds))
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
