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

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/qos.h"
#include "vmm/util.h"

#define CTL_TIMEOUT_S	5
#define CTL_REPLY_MAX	(8 << 20)
#define CTL_MAX_ARGS	4

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: hdnic ctl DIR list [--json]\n"
		"       hdnic ctl DIR stats [--json]\n"
		"       hdnic ctl DIR set-mac DEV MAC\n"
		"       hdnic ctl DIR egress DEV hold|epoch|commit|discard|pass [EPOCH]\n"
		"       hdnic ctl DIR adi-add NAME [--queues K] [--mac MAC] [--no-migration] [--json]\n"
		"       hdnic ctl DIR adi-del NAME\n"
		"       hdnic ctl DIR trust DEV on|off\n"
		"       hdnic ctl DIR qos DEV [--tx-rate R] [--weight W] [--rx-rate R] [--json]\n"
		"  DEV  3 or vf3 (a VF), adi-NAME or NAME (an ADI)\n"
		"  R    bit/s of Ethernet frames, k/M/G multipliers: 10M = 10 Mbit/s; 0 = no limit\n");
}

/* Send one request line, return the parsed reply (or NULL, reported). */
static json_object *ctl_call(const char *dir, const char *req)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	size_t cap = 65536, len = 0;
	char *buf = NULL;
	json_object *r = NULL;
	int fd, send_err = 0;

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
		/* a server that refused us said why before closing: read that first */
		send_err = errno;
	}
	buf = xzalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *bigger;

			if (cap >= CTL_REPLY_MAX) {
				pr_err("reply from %s is too long", sa.sun_path);
				goto out;
			}
			cap *= 2;
			bigger = realloc(buf, cap + 1);
			if (!bigger)
				goto out;
			buf = bigger;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n <= 0 && send_err) {
			pr_err("sending to %s: %s", sa.sun_path, strerror(send_err));
			goto out;
		}
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

static bool getb(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static const char *rate_str(json_object *qos, const char *key, char *buf, size_t len)
{
	uint64_t bits = (uint64_t)geti(qos, key);

	if (!bits)
		return "-";
	qos_format_rate(bits, buf, len);
	return buf;
}

/* ---- output ---- */

static void print_devs(json_object *arr)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *v = json_object_array_get_idx(arr, i), *qos = NULL;
		char tx[24], rx[24];

		json_object_object_get_ex(v, "qos", &qos);
		printf("%-16s %-18s %-12s %-6s %3lld %-4s %6s %6s %3lld %s\n", gets_(v, "dev"),
		       gets_(v, "mac"), gets_(v, "state"), getb(v, "client") ? "yes" : "no",
		       (long long)geti(v, "queues"), getb(v, "trusted") ? "yes" : "no",
		       rate_str(qos, "tx_rate", tx, sizeof(tx)), rate_str(qos, "rx_rate", rx, sizeof(rx)),
		       (long long)geti(qos, "weight"), gets_(v, "socket"));
	}
}

static void print_list(json_object *r)
{
	json_object *vfs = NULL, *adis = NULL, *up = NULL, *qps = NULL;
	char rate[24];

	json_object_object_get_ex(r, "uplink", &up);
	json_object_object_get_ex(r, "qps", &qps);
	printf("NIC %s  uplink %s:%s (%s)  queue pairs %lld free of %lld\n", gets_(r, "nic"),
	       gets_(up, "kind"), gets_(up, "ifname"),
	       geti(up, "rate") ? rate_str(up, "rate", rate, sizeof(rate)) : "no line rate",
	       (long long)geti(qps, "free"), (long long)geti(qps, "total"));
	printf("%-16s %-18s %-12s %-6s %3s %-4s %6s %6s %3s %s\n", "DEV", "MAC", "STATE", "CLIENT",
	       "QPS", "TRUST", "TXRATE", "RXRATE", "WT", "SOCKET");
	json_object_object_get_ex(r, "vfs", &vfs);
	json_object_object_get_ex(r, "adis", &adis);
	print_devs(vfs);
	print_devs(adis);
}

static void print_stats_rows(json_object *arr)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *v = json_object_array_get_idx(arr, i);

		printf("%-16s %10lld %12lld %8lld %8lld %8lld %8lld %8lld %8lld %10lld %12lld %8lld "
		       "%7lld %7lld %6lld\n",
		       gets_(v, "dev"), (long long)geti(v, "rx_packets"),
		       (long long)geti(v, "rx_bytes"), (long long)geti(v, "rx_drops"),
		       (long long)geti(v, "rx_policed"), (long long)geti(v, "rx_filtered"),
		       (long long)geti(v, "rx_stopped"), (long long)geti(v, "rx_waited"),
		       (long long)geti(v, "rx_wait_drops"),
		       (long long)geti(v, "tx_packets"),
		       (long long)geti(v, "tx_bytes"), (long long)geti(v, "tx_drops"),
		       (long long)geti(v, "tx_spoofed"),
		       (long long)(geti(v, "rx_errors") + geti(v, "tx_errors") +
				   geti(v, "dma_faults")),
		       (long long)geti(v, "needs_reset"));
	}
}

/* Output commit per device, for those that ever held a frame or hold now. */
static void print_output_rows(json_object *arr, bool *header)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *v = json_object_array_get_idx(arr, i);

		if (!getb(v, "egress_holding") && !geti(v, "egress_held_total"))
			continue;
		if (!*header) {
			printf("\n%-16s %7s %10s %8s %10s %10s %9s\n", "OUTPUT COMMIT", "holding",
			       "epoch", "held", "released", "discarded", "tx_full");
			*header = true;
		}
		printf("%-16s %7s %10lld %8lld %10lld %10lld %9lld\n", gets_(v, "dev"),
		       getb(v, "egress_holding") ? "yes" : "no", (long long)geti(v, "egress_epoch"),
		       (long long)geti(v, "egress_held"), (long long)geti(v, "egress_released"),
		       (long long)geti(v, "egress_discarded"), (long long)geti(v, "tx_held_full"));
	}
}

static void print_stats(json_object *r)
{
	bool header = false;

	json_object *vfs = NULL, *adis = NULL, *up;

	printf("%-16s %10s %12s %8s %8s %8s %8s %8s %8s %10s %12s %8s %7s %7s %6s\n", "DEV",
	       "rx_pkts", "rx_bytes", "rx_drop", "policed", "filtered", "stopped", "waited",
	       "wdrop", "tx_pkts", "tx_bytes", "tx_drop", "spoofed", "errors", "reset");
	json_object_object_get_ex(r, "vfs", &vfs);
	json_object_object_get_ex(r, "adis", &adis);
	print_stats_rows(vfs);
	print_stats_rows(adis);
	if (json_object_object_get_ex(r, "uplink", &up))
		printf("%-16s %10lld %12lld %8lld %8s %8s %8s %8s %8s %10lld %12lld %8lld %7s %7lld\n",
		       "uplink", (long long)geti(up, "rx_packets"), (long long)geti(up, "rx_bytes"),
		       (long long)geti(up, "rx_drops"), "", "", "", "", "",
		       (long long)geti(up, "tx_packets"),
		       (long long)geti(up, "tx_bytes"), (long long)geti(up, "tx_drops"), "",
		       (long long)(geti(up, "rx_errors") + geti(up, "tx_errors")));
	print_output_rows(vfs, &header);
	print_output_rows(adis, &header);
}

static void print_adi_add(json_object *r)
{
	json_object *attach;

	json_object_object_get_ex(r, "attach_us", &attach);
	printf("%s ready at %s in %.1f us (%lld queue pair%s, mac %s)\n",
	       gets_(r, "dev"), gets_(r, "socket"), json_object_get_double(attach),
	       (long long)geti(r, "queues"), geti(r, "queues") == 1 ? "" : "s", gets_(r, "mac"));
}

static void print_trust(json_object *r)
{
	printf("%s: %s\n", gets_(r, "dev"), getb(r, "trusted") ? "trusted" : "not trusted");
}

static void print_qos(json_object *r)
{
	json_object *q = NULL;
	char tx[24], rx[24];

	json_object_object_get_ex(r, "qos", &q);
	printf("%s: tx-rate %s  rx-rate %s  weight %lld\n", gets_(r, "dev"),
	       rate_str(q, "tx_rate", tx, sizeof(tx)), rate_str(q, "rx_rate", rx, sizeof(rx)),
	       (long long)geti(q, "weight"));
}

/* ---- requests ---- */

enum opt_type { OPT_UINT, OPT_STR, OPT_RATE, OPT_FLAG };

struct ctl_opt {
	const char *flag;	/* "--queues" */
	const char *key;	/* JSON key */
	enum opt_type type;
	uint64_t max;		/* OPT_UINT */
};

struct ctl_cmd {
	const char *name;
	unsigned min_args, max_args;
	const char *args;	/* what the positionals are, for errors */
	const char *const *keys;	/* JSON keys of the positionals */
	const struct ctl_opt *opts;
	void (*print)(json_object *reply);
};

static const char *const dev_mac[] = { "dev", "mac" };
static const char *const dev_action_epoch[] = { "dev", "action", "epoch" };
static const char *const name_only[] = { "name" };
static const char *const dev_onoff[] = { "dev", "on" };
static const char *const dev_only[] = { "dev" };

static const struct ctl_opt adi_opts[] = {
	{ "--queues", "queues", OPT_UINT, HDNIC_MAX_QPS_PER_DEV },
	{ "--mac", "mac", OPT_STR, 0 },
	{ "--no-migration", "no_migration", OPT_FLAG, 0 },
	{ 0 },
};

static const struct ctl_opt qos_opts[] = {
	{ "--tx-rate", "tx_rate", OPT_RATE, 0 },
	{ "--rx-rate", "rx_rate", OPT_RATE, 0 },
	{ "--weight", "weight", OPT_UINT, QOS_WEIGHT_MAX },
	{ 0 },
};

static const struct ctl_cmd ctl_cmds[] = {
	{ "list", 0, 0, "no arguments besides --json", NULL, NULL, print_list },
	{ "stats", 0, 0, "no arguments besides --json", NULL, NULL, print_stats },
	{ "set-mac", 2, 2, "a device and a MAC", dev_mac, NULL, NULL },
	{ "egress", 2, 3, "a device and an action", dev_action_epoch, NULL, NULL },
	{ "adi-add", 1, 1, "an ADI name", name_only, adi_opts, print_adi_add },
	{ "adi-del", 1, 1, "an ADI name", name_only, NULL, NULL },
	{ "trust", 2, 2, "a device and on or off", dev_onoff, NULL, print_trust },
	{ "qos", 1, 1, "a device", dev_only, qos_opts, print_qos },
};

/* A positional argument into the request; false (reported) if it is malformed. */
static bool put_arg(json_object *req, const char *cmd, const char *key, const char *arg)
{
	uint64_t n;

	if (!strcmp(key, "epoch")) {
		if (parse_u64(arg, 0, INT64_MAX, &n)) {
			pr_err("ctl %s: bad epoch %s", cmd, arg);
			return false;
		}
		json_object_object_add(req, key, json_object_new_int64((int64_t)n));
	} else if (!strcmp(key, "on")) {
		if (strcmp(arg, "on") && strcmp(arg, "off")) {
			pr_err("ctl %s: expected on or off, not \"%s\"", cmd, arg);
			return false;
		}
		json_object_object_add(req, key, json_object_new_boolean(!strcmp(arg, "on")));
	} else {
		json_object_object_add(req, key, json_object_new_string(arg));
	}
	return true;
}

static bool put_opt(json_object *req, const char *cmd, const struct ctl_opt *o, const char *val)
{
	uint64_t n;

	switch (o->type) {
	case OPT_UINT:
		if (parse_u64(val, 1, o->max, &n)) {
			pr_err("ctl %s: %s %s: expected 1 to %llu", cmd, o->flag, val,
			       (unsigned long long)o->max);
			return false;
		}
		break;
	case OPT_RATE:
		if (qos_parse_rate(val, &n)) {
			pr_err("ctl %s: %s %s: expected a rate like 10M (bit/s, k/M/G), 0 for none",
			       cmd, o->flag, val);
			return false;
		}
		break;
	default:
		json_object_object_add(req, o->key, json_object_new_string(val));
		return true;
	}
	json_object_object_add(req, o->key, json_object_new_int64((int64_t)n));
	return true;
}

/* Build the request from argv; NULL (reported) if the command line is wrong. */
static json_object *build_request(const struct ctl_cmd *c, int argc, char **argv, bool *json)
{
	json_object *req = json_object_new_object();
	const char *args[CTL_MAX_ARGS];
	unsigned nargs = 0;

	json_object_object_add(req, "cmd", json_object_new_string(c->name));
	for (int i = 0; i < argc; i++) {
		const struct ctl_opt *o = c->opts;

		if (!strcmp(argv[i], "--json")) {
			*json = true;
			continue;
		}
		for (; o && o->flag && strcmp(argv[i], o->flag); o++)
			;
		if (o && o->flag && o->type == OPT_FLAG) {
			json_object_object_add(req, o->key, json_object_new_boolean(true));
			continue;
		}
		if (o && o->flag) {
			if (i + 1 >= argc) {
				pr_err("ctl %s: %s needs a value", c->name, o->flag);
				goto bad;
			}
			if (!put_opt(req, c->name, o, argv[++i]))
				goto bad;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1] == '-') {
			pr_err("ctl %s: unknown option %s", c->name, argv[i]);
			goto bad;
		}
		if (nargs == c->max_args) {
			pr_err("ctl %s takes %s", c->name, c->args);
			goto bad;
		}
		args[nargs++] = argv[i];
	}
	if (nargs < c->min_args) {
		pr_err("ctl %s: expected %s", c->name, c->args);
		goto bad;
	}
	for (unsigned i = 0; i < nargs; i++)
		if (!put_arg(req, c->name, c->keys[i], args[i]))
			goto bad;
	return req;
bad:
	json_object_put(req);
	return NULL;
}

int ctl_main(int argc, char **argv)
{
	const struct ctl_cmd *c = NULL;
	json_object *req, *reply, *ok;
	bool json = false;
	int ret = 1;

	if (argc < 3) {
		ctl_usage(stderr);
		return 2;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(ctl_cmds); i++)
		if (!strcmp(argv[2], ctl_cmds[i].name))
			c = &ctl_cmds[i];
	if (!c) {
		pr_err("ctl: unknown command \"%s\"", argv[2]);
		ctl_usage(stderr);
		return 2;
	}
	req = build_request(c, argc - 3, argv + 3, &json);
	if (!req) {
		ctl_usage(stderr);
		return 2;
	}
	reply = ctl_call(argv[1], json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
						JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(req);
	if (!reply)
		return 1;
	if (!json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		pr_err("%s: %s", c->name, gets_(reply, "error"));
	} else {
		ret = 0;
		if (json)
			printf("%s\n", json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE));
		else if (c->print)
			c->print(reply);
	}
	json_object_put(reply);
	return ret;
}
