// SPDX-License-Identifier: MIT
#include "devices/virtio/net_cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/util.h"

const char *net_mac_str(const uint8_t mac[6], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return buf;
}

/* What Linux accepts as a name, minus '%' (TUNSETIFF would treat it as a template). */
static bool valid_ifname(const char *s, size_t len)
{
	if (!len || len >= IFNAMSIZ)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] == '%' || isspace((unsigned char)s[i]) ||
		    !isprint((unsigned char)s[i]))
			return false;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly six two-digit hex bytes separated by ':'. */
static bool parse_mac(const char *s, size_t len, uint8_t mac[6])
{
	if (len != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		int hi = hexval(p[0]), lo = hexval(p[1]);

		if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static int parse_tap(const char *arg, const char *v, size_t len, struct net_opts *o)
{
	if (o->tap[0]) {
		pr_err("--net '%s': tap= given twice", arg);
		return -EINVAL;
	}
	if (!valid_ifname(v, len)) {
		pr_err("--net '%s': '%.*s' is not a usable interface name "
		       "(1-%d characters, no '/', ':', '%%' or spaces)", arg, (int)len, v,
		       IFNAMSIZ - 1);
		return -EINVAL;
	}
	memcpy(o->tap, v, len);
	o->tap[len] = '\0';
	return 0;
}

static int parse_mac_opt(const char *arg, const char *v, size_t len, struct net_opts *o)
{
	static const uint8_t zero[6];
	char buf[18];

	if (o->mac_given) {
		pr_err("--net '%s': mac= given twice", arg);
		return -EINVAL;
	}
	if (!parse_mac(v, len, o->mac)) {
		pr_err("--net '%s': '%.*s' is not a MAC address (expected six hex bytes "
		       "like 02:00:00:00:00:01)", arg, (int)len, v);
		return -EINVAL;
	}
	if (o->mac[0] & 1) {
		pr_err("--net '%s': %s is a multicast address; a NIC needs a unicast MAC",
		       arg, net_mac_str(o->mac, buf));
		return -EINVAL;
	}
	if (!memcmp(o->mac, zero, 6)) {
		pr_err("--net '%s': the all-zero MAC is not a valid address", arg);
		return -EINVAL;
	}
	o->mac_given = true;
	return 0;
}

static const struct {
	const char *key;
	int (*parse)(const char *arg, const char *v, size_t len, struct net_opts *o);
} net_keys[] = {
	{ "tap", parse_tap },
	{ "mac", parse_mac_opt },
};

int net_opts_parse(const char *arg, struct net_opts *o)
{
	const char *p = arg;
	int err;

	memset(o, 0, sizeof(*o));
	while (*p) {
		const char *end = strchrnul(p, ','), *eq = memchr(p, '=', end - p);
		size_t i;

		if (!eq) {
			pr_err("--net '%s': '%.*s' is not key=value (expected tap=IFNAME[,mac=MAC])",
			       arg, (int)(end - p), p);
			return -EINVAL;
		}
		for (i = 0; i < ARRAY_SIZE(net_keys); i++)
			if (strlen(net_keys[i].key) == (size_t)(eq - p) &&
			    !strncmp(p, net_keys[i].key, eq - p))
				break;
		if (i == ARRAY_SIZE(net_keys)) {
			pr_err("--net '%s': unknown key '%.*s' (expected tap= or mac=)", arg,
			       (int)(eq - p), p);
			return -EINVAL;
		}
		err = net_keys[i].parse(arg, eq + 1, end - eq - 1, o);
		if (err < 0)
			return err;
		p = *end ? end + 1 : end;
		if (*end && !*p) {
			pr_err("--net '%s': trailing ','", arg);
			return -EINVAL;
		}
	}
	if (!o->tap[0]) {
		pr_err("--net '%s': tap=IFNAME is required", arg);
		return -EINVAL;
	}
	return 0;
}

void net_default_mac(const char *vm_name, unsigned index, uint8_t mac[6])
{
	uint32_t h = 2166136261u;	/* FNV-1a of the name: stable for a named VM */

	for (const char *c = vm_name; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	mac[0] = 0x02;			/* locally administered, unicast */
	mac[1] = (uint8_t)(h >> 24);
	mac[2] = (uint8_t)(h >> 16);
	mac[3] = (uint8_t)(h >> 8);
	mac[4] = (uint8_t)h;
	mac[5] = (uint8_t)index;
}

int net_opts_parse_all(const char *const *args, int n, const char *vm_name,
		       struct net_opts *out)
{
	char buf[18];
	int err;

	if (n > NET_MAX_DEVICES) {
		pr_err("--net: at most %d devices", NET_MAX_DEVICES);
		return -E2BIG;
	}
	for (int i = 0; i < n; i++) {
		err = net_opts_parse(args[i], &out[i]);
		if (err < 0)
			return err;
		if (!out[i].mac_given)
			net_default_mac(vm_name, i, out[i].mac);
	}
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < i; j++) {
			if (!strcmp(out[i].tap, out[j].tap)) {
				pr_err("--net: TAP '%s' is given to two devices", out[i].tap);
				return -EINVAL;
			}
			if (!memcmp(out[i].mac, out[j].mac, 6)) {
				pr_err("--net: MAC %s is given to two devices",
				       net_mac_str(out[i].mac, buf));
				return -EINVAL;
			}
		}
	}
	return 0;
}
