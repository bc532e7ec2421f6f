// SPDX-License-Identifier: MIT
/* Command-line tokenizer and option lookup (see cmdline.h for the rules). */
#include <stdbool.h>
#include "guest/bootinfo.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/lib.h"

#define CMDLINE_OPTS_MAX	64

struct option {
	const char *key;
	const char *val;
	bool app;		/* came after app=NAME, */
};

static char buf[BOOT_CMDLINE_MAX];
static struct option opts[CMDLINE_OPTS_MAX];
static int nr_opts;
static const char *app_name;

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Split "key=val" in place. */
static void add_option(char *item, bool app)
{
	char *eq = strchr(item, '=');

	if (!*item)
		return;
	if (nr_opts == CMDLINE_OPTS_MAX) {
		printf("hdguest: more than %d command-line options, ignoring '%s'\n",
		       CMDLINE_OPTS_MAX, item);
		return;
	}
	if (eq)
		*eq = '\0';
	opts[nr_opts++] = (struct option){ item, eq ? eq + 1 : "", app };
}

/* app=NAME[,opt...]: a later app= replaces an earlier one and its options. */
static void add_app(char *val)
{
	char *item, *comma;
	int i, kept = 0;

	for (i = 0; i < nr_opts; i++)
		if (!opts[i].app)
			opts[kept++] = opts[i];
	nr_opts = kept;

	comma = strchr(val, ',');
	if (comma)
		*comma = '\0';
	app_name = val;
	for (item = comma ? comma + 1 : NULL; item; item = comma ? comma + 1 : NULL) {
		comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		add_option(item, true);
	}
}

void cmdline_parse(const char *cmdline)
{
	char *p = buf, *tok;
	size_t len = strnlen(cmdline, sizeof(buf) - 1);

	memcpy(buf, cmdline, len);
	buf[len] = '\0';
	nr_opts = 0;
	app_name = NULL;
	while (*p) {
		while (is_space(*p))
			p++;
		if (!*p)
			break;
		tok = p;
		while (*p && !is_space(*p))
			p++;
		if (*p)
			*p++ = '\0';
		if (!strncmp(tok, "app=", 4))
			add_app(tok + 4);
		else
			add_option(tok, false);
	}
}

const char *cmdline_app(void)
{
	return app_name;
}

const char *cmdline_get(const char *key)
{
	const char *found = NULL;
	int i;

	for (i = 0; i < nr_opts; i++) {
		if (strcmp(opts[i].key, key))
			continue;
		if (opts[i].app)
			return opts[i].val;
		found = opts[i].val;
	}
	return found;
}

int cmdline_get_u64(const char *who, const char *key, uint64_t def, uint64_t min,
		    uint64_t max, uint64_t *out)
{
	const char *v = cmdline_get(key);
	uint64_t n;

	if (!v) {
		*out = def;
		return 0;
	}
	if (!parse_u64(v, &n) || n < min || n > max) {
		printf("%s: bad value '%s' for %s (expected %lu..%lu)\n", who, v, key, min, max);
		return -1;
	}
	*out = n;
	return 0;
}
