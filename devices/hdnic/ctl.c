// SPDX-License-Identifier: MIT
/* `hdnic ctl DIR ...`: the management client. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/hdnic/mgmt.h"
#include "vmm/util.h"

#define CTL_TIMEOUT_S	5
#define CTL_REPLY_MAX	(8 << 20)

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: hdnic ctl DIR list [--json]\n"
		"       hdnic ctl DIR stats [--json]\n"
		"       hdnic ctl DIR set-mac VF MAC\n"
		"       hdnic ctl DIR egress VF hold|commit|discard|pass [EPOCH]\n");
}

/* Send one request line, return the parsed reply (or NULL, reported). */
static json_object *ctl_call(const char *dir, const char *req)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	size_t cap = 65536, len = 0;
	char *buf = NULL;
	json_object *r = NULL;
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, MGMT_SOCK_NAME) >=
	    sizeof(sa.sun_path)) {
		pr_err("%s: path too long", dir);
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		pr_err("cannot reach %s: %s (is hdnic running with --dir %s?)", sa.sun_path,
		       strerror(errno), dir);
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req) ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		pr_err("sending to %s: %s", sa.sun_path, strerror(errno));
		goto out;
	}
	buf = xzalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= CTL_REPLY_MAX) {
				pr_err("reply from %s is too long", sa.sun_path);
				goto out;
			}
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				goto out;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n <= 0) {
			pr_err("no reply from %s: %s", sa.sun_path, n ? strerror(errno) : "closed");
			goto out;
		}
		len += n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len))
			break;
	}
	r = json_tokener_parse(buf);
	if (!r || !json_object_is_type(r, json_type_object)) {
		pr_err("malformed reply from %s", sa.sun_path);
		if (r)
			json_object_put(r);
		r = NULL;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static int64_t geti(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *gets_(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void print_list(json_object *r)
{
	json_object *vfs, *up;

	json_object_object_get_ex(r, "uplink", &up);
	printf("NIC %s  uplink %s:%s\n", gets_(r, "nic"), gets_(up, "kind"), gets_(up, "ifname"));
	printf("%-4s %-18s %-13s %-7s %s\n", "VF", "MAC", "STATE", "CLIENT", "SOCKET");
	if (!json_object_object_get_ex(r, "vfs", &vfs))
		return;
	for (size_t i = 0; i < json_object_array_length(vfs); i++) {
		json_object *v = json_object_array_get_idx(vfs, i), *client;

		json_object_object_get_ex(v, "client", &client);
		printf("%-4lld %-18s %-13s %-7s %s\n", (long long)geti(v, "vf"), gets_(v, "mac"),
		       gets_(v, "state"), json_object_get_boolean(client) ? "yes" : "no",
		       gets_(v, "socket"));
	}
}

static void print_stats(json_object *r)
{
	json_object *vfs, *up;

	printf("%-4s %10s %12s %8s %10s %12s %8s %7s %6s\n", "VF", "rx_pkts", "rx_bytes",
	       "rx_drop", "tx_pkts", "tx_bytes", "tx_drop", "errors", "reset");
	if (json_object_object_get_ex(r, "vfs", &vfs)) {
		for (size_t i = 0; i < json_object_array_length(vfs); i++) {
			json_object *v = json_object_array_get_idx(vfs, i);

			printf("%-4lld %10lld %12lld %8lld %10lld %12lld %8lld %7lld %6lld\n",
			       (long long)geti(v, "vf"), (long long)geti(v, "rx_packets"),
			       (long long)geti(v, "rx_bytes"), (long long)geti(v, "rx_drops"),
			       (long long)geti(v, "tx_packets"), (long long)geti(v, "tx_bytes"),
			       (long long)geti(v, "tx_drops"),
			       (long long)(geti(v, "rx_errors") + geti(v, "tx_errors")),
			       (long long)geti(v, "needs_reset"));
		}
	}
	if (json_object_object_get_ex(r, "uplink", &up))
		printf("%-4s %10lld %12lld %8lld %10lld %12lld %8lld %7lld\n", "up",
		       (long long)geti(up, "rx_packets"), (long long)geti(up, "rx_bytes"),
		       (long long)geti(up, "rx_drops"), (long long)geti(up, "tx_packets"),
		       (long long)geti(up, "tx_bytes"), (long long)geti(up, "tx_drops"),
		       (long long)(geti(up, "rx_errors") + geti(up, "tx_errors")));
}

int ctl_main(int argc, char **argv)
{
	const char *dir, *cmd;
	json_object *req, *reply, *ok;
	bool json = false;
	int nargs = 0, ret = 1;
	const char *args[4] = { 0 };
	uint64_t vf, epoch = 0;

	if (argc < 3) {
		ctl_usage(stderr);
		return 2;
	}
	dir = argv[1];
	cmd = argv[2];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (nargs < 4)
			args[nargs++] = argv[i];
		else {
			pr_err("ctl %s: too many arguments", cmd);
			return 2;
		}
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (!strcmp(cmd, "list") || !strcmp(cmd, "stats")) {
		if (nargs) {
			pr_err("ctl %s takes no arguments besides --json", cmd);
			goto usage;
		}
	} else if (!strcmp(cmd, "set-mac") || !strcmp(cmd, "egress")) {
		bool egress = !strcmp(cmd, "egress");

		if (nargs < 2 || nargs > (egress ? 3 : 2) ||
		    parse_u64(args[0], 0, 65535, &vf)) {
			pr_err("ctl %s: expected a VF number and %s", cmd,
			       egress ? "an action" : "a MAC");
			goto usage;
		}
		json_object_object_add(req, "vf", json_object_new_int64((int64_t)vf));
		json_object_object_add(req, egress ? "action" : "mac",
				       json_object_new_string(args[1]));
		if (nargs == 3) {
			if (parse_u64(args[2], 0, INT64_MAX, &epoch)) {
				pr_err("ctl egress: bad epoch %s", args[2]);
				goto usage;
			}
			json_object_object_add(req, "epoch", json_object_new_int64((int64_t)epoch));
		}
	} else {
		pr_err("ctl: unknown command \"%s\"", cmd);
		goto usage;
	}
	reply = ctl_call(dir, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(req);
	if (!reply)
		return 1;
	if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		pr_err("%s: %s", cmd, gets_(reply, "error"));
	} else {
		ret = 0;
		if (json)
			printf("%s\n", json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		else if (!strcmp(cmd, "list"))
			print_list(reply);
		else if (!strcmp(cmd, "stats"))
			print_stats(reply);
	}
	json_object_put(reply);
	return ret;
usage:
	json_object_put(req);
	ctl_usage(stderr);
	return 2;
}
