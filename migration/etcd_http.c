// SPDX-License-Identifier: GPL-2.0
/*
 * etcd v3 over its JSON gateway (grpc-gateway, /v3/... on the client URL;
 * etcd 3.4 also serves the older /v3beta/, 3.5 only /v3/).  libcurl does the
 * HTTP, json-c the JSON; keys and values travel base64-encoded as the gateway
 * wants, int64s come back as JSON strings.
 *
 * Not part of libhdvm.a: hdvm links statically and Debian has no static
 * libcurl dependency chain (krb5), so this file goes into what links
 * dynamically (hdvm-owner, its tests).
 */
#include "migration/etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ETCD_MAX_ENDPOINTS 8

struct etcd_http {
	CURL *curl;
	char *urls[ETCD_MAX_ENDPOINTS];
	int n;
	int cur;			/* the endpoint that answered last */
};

struct reply_buf {
	char *p;
	size_t len;
};

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(const char *in, char *out)
{
	size_t n = strlen(in), o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint8_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint8_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = 0;
}

static int b64_decode(const char *in, char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *in && *in != '='; in++) {
		const char *c = strchr(b64chars, *in);

		if (!c)
			return -EPROTO;
		acc = (acc << 6) | (uint32_t)(c - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -E2BIG;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = 0;
	return 0;
}

static struct json_object *jkey(const char *s)
{
	char buf[ETCD_VALUE_MAX * 2];

	if (strlen(s) >= ETCD_VALUE_MAX)
		return NULL;
	b64_encode(s, buf);
	return json_object_new_string(buf);
}

static int64_t jint(struct json_object *o, const char *field)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, field, &v))
		return 0;		/* the gateway omits zero values */
	if (json_object_is_type(v, json_type_string))
		return strtoll(json_object_get_string(v), NULL, 10);
	return json_object_get_int64(v);
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct reply_buf *r = arg;
	char *np = realloc(r->p, r->len + sz * n + 1);

	if (!np)
		return 0;
	r->p = np;
	memcpy(r->p + r->len, p, sz * n);
	r->len += sz * n;
	r->p[r->len] = 0;
	return sz * n;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

/*
 * POST body to path on the current endpoint, then on the others, sharing
 * timeout_ms between them: a dead endpoint costs its share, not the budget.
 * *out is the parsed reply (caller puts it).
 */
static int etcd_post(struct etcd_http *e, const char *path, struct json_object *body,
		     int timeout_ms, struct json_object **out)
{
	const char *json = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	int64_t end = mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	int err = -ETIMEDOUT;

	for (int tries = 0; tries < e->n; tries++) {
		int idx = (e->cur + tries) % e->n;
		int64_t left = end - mono_ms();
		long share = (long)(left / (e->n - tries));
		struct reply_buf r = { 0 };
		char url[512];
		long status = 0;
		CURLcode rc;

		if (left <= 0)
			break;
		if (share < 1)
			share = 1;
		snprintf(url, sizeof(url), "%s%s", e->urls[idx], path);
		curl_easy_reset(e->curl);
		curl_easy_setopt(e->curl, CURLOPT_URL, url);
		curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, json);
		curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, share);
		curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, share);
		curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &r);
		rc = curl_easy_perform(e->curl);
		if (rc != CURLE_OK) {
			free(r.p);
			err = curl_errno(rc);
			continue;
		}
		curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
		*out = r.p ? json_tokener_parse(r.p) : NULL;
		free(r.p);
		if (!*out) {
			err = -EPROTO;
			continue;
		}
		if (status != 200) {
			/* an answer, not an outage: a leaderless member says so
			 * with 503; another member may have a leader */
			json_object_put(*out);
			*out = NULL;
			err = status == 404 ? -ENOENT : -EIO;
			if (status >= 500)
				continue;
			return err;
		}
		e->cur = idx;
		return 0;
	}
	return err;
}

static int h_lease_grant(void *ctx, int ttl_s, int timeout_ms, int64_t *lease, int *ttl_out)
{
	struct json_object *req = json_object_new_object(), *rep = NULL;
	int err;

	json_object_object_add(req, "TTL", json_object_new_int64(ttl_s));
	err = etcd_post(ctx, "/v3/lease/grant", req, timeout_ms, &rep);
	json_object_put(req);
	if (err)
		return err;
	*lease = jint(rep, "ID");
	*ttl_out = (int)jint(rep, "TTL");
	json_object_put(rep);
	return *lease && *ttl_out > 0 ? 0 : -EPROTO;
}

static int lease_call(void *ctx, const char *path, int64_t lease, int timeout_ms,
		      struct json_object **rep)
{
	struct json_object *req = json_object_new_object();
	int err;

	json_object_object_add(req, "ID", json_object_new_int64(lease));
	err = etcd_post(ctx, path, req, timeout_ms, rep);
	json_object_put(req);
	return err;
}

static int h_lease_keepalive(void *ctx, int64_t lease, int timeout_ms, int *ttl_out)
{
	struct json_object *rep, *res;
	int err = lease_call(ctx, "/v3/lease/keepalive", lease, timeout_ms, &rep);

	if (err)
		return err;
	/* a stream of one: {"result": {"ID":.., "TTL":..}}; no TTL = lease gone */
	if (!json_object_object_get_ex(rep, "result", &res)) {
		json_object_put(rep);
		return -EPROTO;
	}
	*ttl_out = (int)jint(res, "TTL");
	json_object_put(rep);
	return *ttl_out > 0 ? 0 : -ENOENT;
}

static int h_lease_revoke(void *ctx, int64_t lease, int timeout_ms)
{
	struct json_object *rep;
	int err = lease_call(ctx, "/v3/lease/revoke", lease, timeout_ms, &rep);

	if (!err)
		json_object_put(rep);
	return err;
}

static int h_lease_ttl(void *ctx, int64_t lease, int timeout_ms, int *ttl_out)
{
	struct json_object *rep;
	int err = lease_call(ctx, "/v3/lease/timetolive", lease, timeout_ms, &rep);

	if (err)
		return err;
	*ttl_out = (int)jint(rep, "TTL");
	json_object_put(rep);
	return *ttl_out > 0 ? 0 : -ENOENT;
}

static int parse_kv(struct json_object *kvs, struct etcd_kv *kv)
{
	struct json_object *first, *v;

	memset(kv, 0, sizeof(*kv));
	if (!kvs || !json_object_is_type(kvs, json_type_array) ||
	    json_object_array_length(kvs) == 0)
		return 0;
	first = json_object_array_get_idx(kvs, 0);
	kv->present = true;
	kv->create_rev = jint(first, "create_revision");
	kv->mod_rev = jint(first, "mod_revision");
	kv->lease = jint(first, "lease");
	if (json_object_object_get_ex(first, "value", &v))
		return b64_decode(json_object_get_string(v), kv->value, sizeof(kv->value));
	return 0;
}

static int h_get(void *ctx, const char *key, int timeout_ms, struct etcd_kv *kv)
{
	struct json_object *req = json_object_new_object(), *rep, *kvs = NULL;
	struct json_object *k = jkey(key);
	int err;

	if (!k) {
		json_object_put(req);
		return -ENAMETOOLONG;
	}
	json_object_object_add(req, "key", k);
	err = etcd_post(ctx, "/v3/kv/range", req, timeout_ms, &rep);
	json_object_put(req);
	if (err)
		return err;
	json_object_object_get_ex(rep, "kvs", &kvs);
	err = parse_kv(kvs, kv);
	json_object_put(rep);
	return err;
}

static const char *const target_names[] = {
	[ETCD_CREATE_REV] = "CREATE", [ETCD_MOD_REV] = "MOD", [ETCD_LEASE] = "LEASE",
};
static const char *const target_fields[] = {
	[ETCD_CREATE_REV] = "create_revision", [ETCD_MOD_REV] = "mod_revision",
	[ETCD_LEASE] = "lease",
};

static int h_txn(void *ctx, const struct etcd_cmp *cmp, int ncmp,
		 const struct etcd_op *ops, int nops, int timeout_ms, bool *succeeded)
{
	struct json_object *req = json_object_new_object(), *rep, *ok;
	struct json_object *carr = json_object_new_array(), *sarr = json_object_new_array();
	int err = 0;

	json_object_object_add(req, "compare", carr);
	json_object_object_add(req, "success", sarr);
	for (int i = 0; i < ncmp; i++) {
		struct json_object *c = json_object_new_object(), *k = jkey(cmp[i].key);

		json_object_array_add(carr, c);
		if (!k) {
			err = -ENAMETOOLONG;
			break;
		}
		json_object_object_add(c, "key", k);
		json_object_object_add(c, "target",
				       json_object_new_string(target_names[cmp[i].target]));
		json_object_object_add(c, "result", json_object_new_string("EQUAL"));
		json_object_object_add(c, target_fields[cmp[i].target],
				       json_object_new_int64(cmp[i].want));
	}
	for (int i = 0; i < nops && !err; i++) {
		struct json_object *o = json_object_new_object(), *r = json_object_new_object();
		struct json_object *k = jkey(ops[i].key);

		json_object_array_add(sarr, o);
		json_object_object_add(o, ops[i].kind == ETCD_PUT ? "request_put"
								  : "request_delete_range", r);
		if (!k) {
			err = -ENAMETOOLONG;
			break;
		}
		json_object_object_add(r, "key", k);
		if (ops[i].kind == ETCD_PUT) {
			struct json_object *v = jkey(ops[i].value);

			if (!v) {
				err = -E2BIG;
				break;
			}
			json_object_object_add(r, "value", v);
			if (ops[i].lease)
				json_object_object_add(r, "lease",
						       json_object_new_int64(ops[i].lease));
		}
	}
	if (!err)
		err = etcd_post(ctx, "/v3/kv/txn", req, timeout_ms, &rep);
	json_object_put(req);
	if (err)
		return err;
	*succeeded = json_object_object_get_ex(rep, "succeeded", &ok) &&
		     json_object_get_boolean(ok);
	json_object_put(rep);
	return 0;
}

const struct etcd_ops etcd_http_ops = {
	.lease_grant = h_lease_grant,
	.lease_keepalive = h_lease_keepalive,
	.lease_revoke = h_lease_revoke,
	.lease_ttl = h_lease_ttl,
	.get = h_get,
	.txn = h_txn,
};

int etcd_http_open(const char *urls, void **ctx)
{
	struct etcd_http *e;
	char *copy, *save = NULL;

	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return -EIO;
	e = calloc(1, sizeof(*e));
	copy = strdup(urls);
	if (!e || !copy) {
		free(e);
		free(copy);
		return -ENOMEM;
	}
	for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		size_t len = strlen(u);

		if (e->n == ETCD_MAX_ENDPOINTS || strncmp(u, "http", 4)) {
			free(copy);
			etcd_http_close(e);
			return -EINVAL;
		}
		while (len && u[len - 1] == '/')
			u[--len] = 0;
		e->urls[e->n++] = strdup(u);
	}
	free(copy);
	e->curl = curl_easy_init();
	if (!e->n || !e->curl) {
		int err = e->n ? -ENOMEM : -EINVAL;

		etcd_http_close(e);
		return err;
	}
	*ctx = e;
	return 0;
}

void etcd_http_close(void *ctx)
{
	struct etcd_http *e = ctx;

	if (!e)
		return;
	for (int i = 0; i < e->n; i++)
		free(e->urls[i]);
	if (e->curl)
		curl_easy_cleanup(e->curl);
	free(e);
	curl_global_cleanup();
}

const char *etcd_http_endpoint(void *ctx)
{
	struct etcd_http *e = ctx;

	return e->urls[e->cur];
}
