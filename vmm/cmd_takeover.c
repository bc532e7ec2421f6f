// SPDX-License-Identifier: MIT
/*
 * `hdvm takeover NAME [--restart-from-stale]`: a standby that etcd refused
 * (`hdvm status` says role "lost" and why) tries to take over again, or --
 * with the flag -- runs the VM from its checkpoint although etcd knows that
 * checkpoint is stale: output a client saw from the lost primary after it is
 * forgotten.  Only an operator decides that (issue 13).
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/control.h"
#include "vmm/util.h"

#define POLL_US		50000
#define WAIT_S		600	/* the lost primary's lease must expire first */

static void takeover_usage(FILE *f)
{
	fprintf(f,
"usage: hdvm takeover NAME [--restart-from-stale] [--run-dir DIR]\n"
"\n"
"A standby started with --etcd that etcd refused stays as a 'lost' VM: its\n"
"checkpoint is stale (its primary went on without it) or behind (it missed\n"
"checkpoints), or the primary still held the key.  This asks it to take over\n"
"again, waiting for the owner key.\n"
"\n"
"  --restart-from-stale  run the VM from this standby's checkpoint even though\n"
"                        etcd recorded it stale: what clients saw after that\n"
"                        checkpoint is lost (the counter goes back)\n"
"  --run-dir DIR         where control sockets live (default $HDVM_RUN_DIR or %s)\n",
		HDVM_DEFAULT_RUN_DIR);
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static json_object *call(const char *run_dir, const char *name, const char *cmd, bool force)
{
	json_object *req = json_object_new_object(), *r;

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (force)
		json_object_object_add(req, "restart_from_stale", json_object_new_boolean(1));
	return control_call_obj(run_dir, name, req, 5000, false, &r) ? NULL : r;
}

int cmd_takeover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "restart-from-stale", no_argument, NULL, 'S' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *run_dir = NULL, *name;
	bool force = false;
	json_object *r;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 'S': force = true; break;
		case 'r': run_dir = optarg; break;
		case 'h': takeover_usage(stdout); return 0;
		case ':': pr_err("option '%s' needs a value", argv[optind - 1]); return EXIT_USAGE;
		default: pr_err("unknown option '%s'", argv[optind - 1]); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || !control_valid_name(argv[optind])) {
		pr_err("takeover: expected the NAME of a lost standby");
		takeover_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	run_dir = control_run_dir(run_dir);
	r = call(run_dir, name, "takeover", force);
	if (!r)
		return 1;	/* the error was printed */
	json_object_put(r);
	for (int waited = 0; waited < WAIT_S * 1000000; waited += POLL_US) {
		json_object *v;
		bool busy;

		usleep(POLL_US);
		r = call(run_dir, name, "status", false);
		if (!r)
			return 1;
		busy = json_object_object_get_ex(r, "taking_over", &v);
		if (!busy && !strcmp(jstr(r, "role"), "lost")) {
			pr_err("VM '%s' did not take over: %s", name, jstr(r, "lost"));
			json_object_put(r);
			return 1;
		}
		if (!busy && strcmp(jstr(r, "role"), "standby")) {
			printf("%s: took over%s; running %s\n", name,
			       force ? " from its stale checkpoint (deliberately)" : "",
			       jstr(r, "role"));
			json_object_put(r);
			return 0;
		}
		json_object_put(r);
	}
	pr_err("VM '%s': no takeover after %d s", name, WAIT_S);
	return 1;
}
