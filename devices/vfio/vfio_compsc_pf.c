// SPDX-License-Identifier: MIT
/*
 * CompSC's PF-held state through hdnic's management socket, as CompSC's PF
 * driver does it: the function served at DIR/DEV.sock is managed at
 * DIR/pf.sock (devices/hdnic/mgmt.h: newline-delimited JSON).  get reads
 * `list` for DEV; set sends set-mac, trust and qos.
 */
#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/vfio/vfio_compsc.h"
#include "vmm/util.h"

#define PF_TIMEOUT_S	5
#define PF_REPLY_MAX	(1 << 20)

/* DIR/pf.sock and DEV ("vf0", "adi-NAME") from DIR/DEV.sock. */
static int split_spec(const char *spec, char *pf, size_t pflen, char *dev, size_t devlen)
{
	char a[108], b[108];
	const char *base;
	size_t n;

	snprintf(a, sizeof(a), "%s", spec);
	snprintf(b, sizeof(b), "%s", spec);
	base = basename(b);
	n = strlen(base);
	if (n < 6 || strcmp(base + n - 5, ".sock"))
		return -EINVAL;
	snprintf(dev, devlen, "%.*s", (int)(n - 5), base);
	if ((size_t)snprintf(pf, pflen, "%s/pf.sock", dirname(a)) >= pflen)
		return -ENAMETOOLONG;
	return 0;
}

/* One request, one reply line; NULL with why filled on failure or "ok": false. */
static json_object *pf_call(const char *pf, json_object *req, char *why, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = PF_TIMEOUT_S };
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	char *buf = xzalloc(PF_REPLY_MAX + 1);
	json_object *r = NULL, *ok;
	size_t got = 0;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", pf);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, len, "cannot reach %s: %s", pf, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	got = (size_t)snprintf(buf, PF_REPLY_MAX, "%s\n", text);	/* one line, one send */
	if (got >= PF_REPLY_MAX || send(fd, buf, got, MSG_NOSIGNAL) != (ssize_t)got) {
		snprintf(why, len, "%s: %s", pf, got >= PF_REPLY_MAX ? "request too long" :
			 strerror(errno));
		goto out;
	}
	got = 0;
	memset(buf, 0, PF_REPLY_MAX);
	while (got < PF_REPLY_MAX && !memchr(buf, '\n', got)) {
		ssize_t n = recv(fd, buf + got, PF_REPLY_MAX - got, 0);

		if (n <= 0) {
			snprintf(why, len, "%s: no reply", pf);
			goto out;
		}
		got += (size_t)n;
	}
	r = json_tokener_parse(buf);
	if (!r || !json_object_object_get_ex(r, "ok", &ok) || !json_object_get_boolean(ok)) {
		json_object *e;

		snprintf(why, len, "%s: %s", pf, r && json_object_object_get_ex(r, "error", &e) ?
			 json_object_get_string(e) : "malformed reply");
		json_object_put(r);
		r = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static json_object *request(const char *cmd, const char *dev)
{
	json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (dev)
		json_object_object_add(req, "dev", json_object_new_string(dev));
	return req;
}

static int64_t geti(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static json_object *find_dev(json_object *list, const char *dev)
{
	static const char *const kinds[] = { "vfs", "adis" };

	for (unsigned k = 0; k < 2; k++) {
		json_object *arr, *d, *name;

		if (!json_object_object_get_ex(list, kinds[k], &arr))
			continue;
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			d = json_object_array_get_idx(arr, i);
			if (json_object_object_get_ex(d, "dev", &name) &&
			    !strcmp(json_object_get_string(name), dev))
				return d;
		}
	}
	return NULL;
}

static int hdnic_get(const char *spec, struct compsc_pf_state *st, char *why, size_t len)
{
	char pf[108], dev[64];
	json_object *req, *r, *d, *v, *q;
	int ret = split_spec(spec, pf, sizeof(pf), dev, sizeof(dev));
	unsigned m[6];

	if (ret) {
		snprintf(why, len, "%s is not an hdnic function socket (DIR/DEV.sock)", spec);
		return ret;
	}
	req = request("list", NULL);
	r = pf_call(pf, req, why, len);
	json_object_put(req);
	if (!r)
		return -EIO;
	d = find_dev(r, dev);
	ret = -ENOENT;
	if (!d) {
		snprintf(why, len, "%s does not list %s", pf, dev);
	} else if (!json_object_object_get_ex(d, "mac", &v) ||
		   sscanf(json_object_get_string(v), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2],
			  &m[3], &m[4], &m[5]) != 6) {
		snprintf(why, len, "%s: no MAC for %s", pf, dev);
	} else {
		for (int i = 0; i < 6; i++)
			st->mac[i] = (uint8_t)m[i];
		st->trusted = json_object_object_get_ex(d, "trusted", &v) &&
			      json_object_get_boolean(v);
		if (json_object_object_get_ex(d, "qos", &q)) {
			st->tx_rate = (uint64_t)geti(q, "tx_rate");
			st->rx_rate = (uint64_t)geti(q, "rx_rate");
			st->weight = (uint32_t)geti(q, "weight");
		}
		st->valid = true;
		ret = 0;
	}
	json_object_put(r);
	return ret;
}

static int hdnic_set(const char *spec, const struct compsc_pf_state *st, char *why, size_t len)
{
	char pf[108], dev[64], mac[18];
	json_object *reqs[3], *r;
	int ret = split_spec(spec, pf, sizeof(pf), dev, sizeof(dev));

	if (ret) {
		snprintf(why, len, "%s is not an hdnic function socket (DIR/DEV.sock)", spec);
		return ret;
	}
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", st->mac[0], st->mac[1],
		 st->mac[2], st->mac[3], st->mac[4], st->mac[5]);
	reqs[0] = request("set-mac", dev);
	json_object_object_add(reqs[0], "mac", json_object_new_string(mac));
	reqs[1] = request("trust", dev);
	json_object_object_add(reqs[1], "on", json_object_new_boolean(st->trusted));
	reqs[2] = request("qos", dev);
	json_object_object_add(reqs[2], "tx_rate", json_object_new_int64((int64_t)st->tx_rate));
	json_object_object_add(reqs[2], "rx_rate", json_object_new_int64((int64_t)st->rx_rate));
	if (st->weight)
		json_object_object_add(reqs[2], "weight", json_object_new_int64(st->weight));
	for (unsigned i = 0; i < 3; i++) {
		if (!ret) {
			r = pf_call(pf, reqs[i], why, len);
			ret = r ? 0 : -EIO;
			json_object_put(r);
		}
		json_object_put(reqs[i]);
	}
	return ret;
}

const struct compsc_pf_ops compsc_pf_hdnic = { .get = hdnic_get, .set = hdnic_set };
