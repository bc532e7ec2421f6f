// SPDX-License-Identifier: MIT
/* `hdvm snapshot NAME FILE [--stop]`: ask a running VM to save itself. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/control.h"
#include "vmm/util.h"

/* Writing RAM takes a while for a big guest: allow minutes, not the usual seconds. */
#define SNAPSHOT_TIMEOUT_MS	(10 * 60 * 1000)

static void snapshot_usage(FILE *f)
{
	fprintf(f,
"usage: hdvm snapshot NAME FILE [--stop] [--run-dir DIR]\n"
"\n"
"Pause the VM (vCPUs and devices), write its RAM, vCPU, VM and device state to\n"
"FILE (replaced atomically), then resume it -- or stop it with --stop.\n"
"'hdvm run --restore FILE' continues it.\n"
"\n"
"  --stop          stop the VM once the snapshot is written\n"
"  --run-dir DIR   where control sockets live (default $HDVM_RUN_DIR or %s)\n",
		HDVM_DEFAULT_RUN_DIR);
}

/* FILE as an absolute path (the VM has its own working directory); its directory must exist. */
static int absolute_path(const char *file, char *out, size_t len)
{
	char copy[PATH_MAX], dir[PATH_MAX];
	const char *base;
	struct stat st;

	if (!*file || strlen(file) >= sizeof(copy)) {
		pr_err("snapshot: '%s' is not a usable file name", file);
		return -EINVAL;
	}
	snprintf(copy, sizeof(copy), "%s", file);
	base = basename(copy);
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		pr_err("snapshot: '%s' is a directory, not a file name", file);
		return -EISDIR;
	}
	snprintf(copy, sizeof(copy), "%s", file);
	if (!realpath(dirname(copy), dir)) {
		pr_err("snapshot: directory of '%s': %s", file, strerror(errno));
		return -errno;
	}
	if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
		pr_err("snapshot: '%s' is a directory", file);
		return -EISDIR;
	}
	snprintf(copy, sizeof(copy), "%s", file);
	if ((size_t)snprintf(out, len, "%s/%s", strcmp(dir, "/") ? dir : "",
			     basename(copy)) >= len) {
		pr_err("snapshot: '%s': path too long", file);
		return -ENAMETOOLONG;
	}
	return 0;
}

static long long json_int(json_object *r, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(r, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stop", no_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *run_dir = NULL, *name, *file;
	char path[PATH_MAX];
	json_object *req, *r;
	bool stop = false;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 's': stop = true; break;
		case 'r': run_dir = optarg; break;
		case 'h': snapshot_usage(stdout); return 0;
		case ':': pr_err("option '%s' needs a value", argv[optind - 1]); return EXIT_USAGE;
		default: pr_err("unknown option '%s'", argv[optind - 1]); return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		pr_err("snapshot: expected NAME and FILE");
		snapshot_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	file = argv[optind + 1];
	if (!control_valid_name(name)) {
		pr_err("'%s' is not a valid VM name", name);
		return EXIT_USAGE;
	}
	if (absolute_path(file, path, sizeof(path)) < 0)
		return EXIT_USAGE;
	run_dir = control_run_dir(run_dir);

	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("snapshot"));
	json_object_object_add(req, "path", json_object_new_string(path));
	json_object_object_add(req, "stop", json_object_new_boolean(stop));
	if (control_call_obj(run_dir, name, req, SNAPSHOT_TIMEOUT_MS, false, &r) < 0)
		return 1;
	printf("%s: %s written (%lld MiB, %lld non-zero RAM pages), guest paused %lld ms%s\n",
	       name, path, json_int(r, "bytes") >> 20, json_int(r, "ram_pages"),
	       json_int(r, "paused_ms"), stop ? ", VM stopped" : "");
	json_object_put(r);
	return 0;
}
