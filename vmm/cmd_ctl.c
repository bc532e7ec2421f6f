// SPDX-License-Identifier: MIT
/* `hdvm ps|status|pause|resume|stop`: clients of the per-VM control socket. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/control.h"
#include "vmm/util.h"

struct ctl_args {
	const char *run_dir;
	const char *name;
	int json;
};

static void ctl_usage(FILE *f, const char *cmd, int needs_name)
{
	fprintf(f, "usage: hdvm %s %s[--json] [--run-dir DIR]\n\n"
		"  --json          print the raw JSON reply\n"
		"  --run-dir DIR   where control sockets live (default $HDVM_RUN_DIR or %s)\n",
		cmd, needs_name ? "NAME " : "", HDVM_DEFAULT_RUN_DIR);
}

/* 0 ok, 1 help printed, -1 usage error */
static int parse_ctl_args(int argc, char **argv, int needs_name, struct ctl_args *a)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': a->run_dir = optarg; break;
		case 'j': a->json = 1; break;
		case 'h': ctl_usage(stdout, argv[0], needs_name); return 1;
		case ':': pr_err("option '%s' needs a value", argv[optind - 1]); return -EINVAL;
		default: pr_err("unknown option '%s'", argv[optind - 1]); return -EINVAL;
		}
	}
	if (needs_name) {
		if (optind >= argc) {
			pr_err("%s: which VM? (give its name; 'hdvm ps' lists them)", argv[0]);
			return -EINVAL;
		}
		a->name = argv[optind++];
		if (!control_valid_name(a->name)) {
			pr_err("'%s' is not a valid VM name", a->name);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	a->run_dir = control_run_dir(a->run_dir);
	return 0;
}

/* Send {"cmd": cmd} to a VM; on success *reply is the parsed object. */
static int request(const struct ctl_args *a, const char *name, const char *cmd,
		   json_object **reply, int quiet)
{
	char req[64];

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	return control_call(a->run_dir, name, req, CONTROL_CLIENT_TIMEOUT_MS, quiet, reply);
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return "-";
	return json_object_get_string(v);
}

static int simple_command(int argc, char **argv, const char *cmd)
{
	struct ctl_args a;
	json_object *r;
	int ret = parse_ctl_args(argc, argv, 1, &a);

	if (ret)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (request(&a, a.name, cmd, &r, 0) < 0)
		return 1;
	if (a.json)
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		printf("%s: %s\n", a.name, str_field(r, "state"));
	json_object_put(r);
	return 0;
}

int cmd_pause(int argc, char **argv) { return simple_command(argc, argv, "pause"); }
int cmd_resume(int argc, char **argv) { return simple_command(argc, argv, "resume"); }
int cmd_stop(int argc, char **argv) { return simple_command(argc, argv, "stop"); }

int cmd_status(int argc, char **argv)
{
	static const char *const fields[] = {
		"name", "pid", "state", "vcpus", "memory_mib", "kernel", "cmdline",
		"uptime_ms", "start_to_first_run_us", "start_to_marker_us",
	};
	/* Remus (vmm/checkpoint_job.c, vmm/standby_run.c): those the VM has */
	static const char *const protection_fields[] = {
		"role", "epoch", "committed_epoch", "epochs_unacknowledged", "pause_p50_us",
		"pause_p99_us", "checkpoint_bytes", "checkpoint_pages", "checkpoint_bytes_total",
		"frames_held", "standby_lag_ms", "standby", "refused_checkpoints",
		"primary_silent_ms", "failover_ms", "output_held", "protection_ended",
		"took_over_from_epoch", "took_over_because", "failover_arbiter",
	};
	struct ctl_args a;
	json_object *r;
	int ret = parse_ctl_args(argc, argv, 1, &a);

	if (ret)
		return ret > 0 ? 0 : EXIT_USAGE;
	if (request(&a, a.name, "status", &r, 0) < 0)
		return 1;
	if (a.json) {
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			printf("%-22s %s\n", fields[i], str_field(r, fields[i]));
		for (size_t i = 0; i < ARRAY_SIZE(protection_fields); i++)
			if (json_object_object_get_ex(r, protection_fields[i], NULL))
				printf("%-22s %s\n", protection_fields[i],
				       str_field(r, protection_fields[i]));
	}
	json_object_put(r);
	return 0;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

int cmd_ps(int argc, char **argv)
{
	struct ctl_args a;
	struct control_query *queries;
	json_object *all;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	int ret = parse_ctl_args(argc, argv, 0, &a);

	if (ret)
		return ret > 0 ? 0 : EXIT_USAGE;
	d = opendir(a.run_dir);
	if (!d && errno != ENOENT) {
		pr_err("run directory %s: %s", a.run_dir, strerror(errno));
		return 1;
	}
	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len <= 5 || strcmp(de->d_name + len - 5, ".sock"))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[n++] = strndup(de->d_name, len - 5);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);

	queries = xzalloc((n ? n : 1) * sizeof(*queries));
	for (size_t i = 0; i < n; i++)
		queries[i].name = names[i];
	/* every VM at once, one short deadline: a stopped VM cannot stall the list */
	control_request_many(a.run_dir, "{\"cmd\":\"status\"}", queries, n,
			     CONTROL_PS_TIMEOUT_MS);
	all = json_object_new_array();
	if (!a.json)
		printf("%-24s %8s %-12s %5s %8s %10s  %s\n", "NAME", "PID", "STATE", "CPUS",
		       "MEM_MIB", "UPTIME_S", "ROLE");
	for (size_t i = 0; i < n; i++) {
		struct control_query *q = &queries[i];
		json_object *r;

		/* Nobody listening: the socket of a VM that is gone; skip it. */
		if (q->result == -ECONNREFUSED || q->result == -ENOENT)
			continue;
		if (q->result || control_parse_reply(q->name, q->reply, true, &r) < 0) {
			const char *why = q->result == -ETIMEDOUT ? "did not answer" :
					  q->result ? strerror(-q->result) : "bad reply";

			if (a.json) {
				r = json_object_new_object();
				json_object_object_add(r, "name", json_object_new_string(q->name));
				json_object_object_add(r, "state", json_object_new_string("unresponsive"));
				json_object_object_add(r, "error", json_object_new_string(why));
				json_object_array_add(all, r);
			} else {
				printf("%-24s %8s %-12s %5s %8s %10s  (%s)\n", q->name, "-",
				       "unresponsive", "-", "-", "-", why);
			}
			continue;
		}
		if (a.json) {
			json_object_array_add(all, r);
		} else {
			json_object *up;
			long long ms = json_object_object_get_ex(r, "uptime_ms", &up) ?
				       json_object_get_int64(up) : 0;

			printf("%-24s %8s %-12s %5s %8s %10.1f  %s\n", str_field(r, "name"),
			       str_field(r, "pid"), str_field(r, "state"),
			       str_field(r, "vcpus"), str_field(r, "memory_mib"), ms / 1000.0,
			       str_field(r, "role"));
			json_object_put(r);
		}
	}
	if (a.json)
		printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(queries);
	free(names);
	return 0;
}
