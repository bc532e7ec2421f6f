// SPDX-License-Identifier: MIT
/*
 * `hdvm migrate NAME URI [...]`: ask a running VM to migrate itself (the
 * job runs in the VM process, vmm/migrate_job.c), print a line per pass
 * and the final report; `--cancel` stops a running migration.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/transport.h"
#include "vmm/cli.h"
#include "vmm/control.h"
#include "vmm/util.h"

#define POLL_US		100000
#define REQ_TIMEOUT_MS	5000

static void migrate_usage(FILE *f)
{
	fprintf(f,
"usage: hdvm migrate NAME URI [--downtime-ms N] [--max-bandwidth R] [--timeout S]\n"
"                    [--no-auto-converge] [--postcopy | --postcopy-after N]\n"
"                    [--tls-creds DIR [--tls-hostname NAME]] [--json] [--run-dir DIR]\n"
"       hdvm migrate NAME --cancel\n"
"\n"
"Move a running VM to 'hdvm run --incoming URI' while it runs (pre-copy):\n"
"RAM pass after pass while the guest runs, then a pause of about --downtime-ms\n"
"for the last pages and the vCPU and device state.  On success the source VM\n"
"exits 0 once the destination runs; on failure it keeps running and this\n"
"command says why and exits 1.\n"
"\n"
"URI:  tcp:HOST:PORT   plain TCP: for network namespaces on one machine only\n"
"      unix:PATH       the same host: the RAM memfd is passed, no RAM is copied\n"
"      file:PATH       write the stream to a file ('hdvm run --incoming file:PATH')\n"
"\n"
"  --downtime-ms N     the pause to aim for (default 300)\n"
"  --max-bandwidth R   bytes per second, K/M/G suffixes (default unlimited)\n"
"  --timeout S         give up (the VM runs on) after S seconds (default none)\n"
"  --no-auto-converge  never throttle the vCPUs; by default a guest that dirties\n"
"                      faster than the link is slowed (20 %%, then +10 %% a step)\n"
"  --tls-creds DIR     TLS for tcp: (between hosts): DIR has ca-cert.pem,\n"
"                      client-cert.pem, client-key.pem; the destination's\n"
"                      certificate must be signed by that CA\n"
"  --tls-hostname NAME the destination's certificate must also name NAME\n"
"  --postcopy          post-copy: switch over at once, the destination runs the\n"
"                      VM and fetches the pages it lacks from this host on\n"
"                      demand while the rest is pushed (for guests that dirty\n"
"                      memory faster than pre-copy converges)\n"
"  --postcopy-after N  pre-copy first; switch to post-copy if it has not\n"
"                      converged after N passes\n"
"                      WARNING: from the switchover until every page is there,\n"
"                      the VM lives on both hosts: if either dies (or the link\n"
"                      breaks), the VM is LOST -- there is no copy to go back\n"
"                      to.  Refused for a VM under Remus protection, with a\n"
"                      kernel VFIO device, over file:, and with --tls-creds\n"
"                      (not yet); over unix: the pages are sent, not the memfd.\n"
"                      vfio-user devices are held (stopped) on the destination\n"
"                      until RAM is complete.\n"
"  --json              print the final report as JSON\n"
"  --cancel            stop the VM's running migration; the VM runs on (Ctrl-C\n"
"                      on a running 'hdvm migrate' does the same)\n"
"  --run-dir DIR       where control sockets live (default $HDVM_RUN_DIR or %s)\n",
		HDVM_DEFAULT_RUN_DIR);
}

/* NULL when the request failed; the reason was printed. */
static json_object *request(const char *run_dir, const char *name, json_object *req)
{
	json_object *r;

	return control_call_obj(run_dir, name, req, REQ_TIMEOUT_MS, false, &r) ? NULL : r;
}

static long long jint(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

static json_object *cmd(const char *c)
{
	json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(c));
	return req;
}

static void print_pass(json_object *p)
{
	printf("pass %lld: %.1f MiB sent, %.1f MiB remaining, dirty %.1f MiB/s, "
	       "bandwidth %.1f MiB/s, expected downtime %lld ms", jint(p, "pass"),
	       jint(p, "sent_bytes") / 1048576.0, jint(p, "remaining_bytes") / 1048576.0,
	       jint(p, "dirty_rate") / 1048576.0, jint(p, "bandwidth") / 1048576.0,
	       jint(p, "expected_downtime_ms"));
	if (jint(p, "throttle_pct"))
		printf(", vCPUs throttled %lld %%", jint(p, "throttle_pct"));
	printf("\n");
	fflush(stdout);
}

/* Ctrl-C (or SIGTERM) while following: cancel the migration, then report as usual. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

static void cancel_on_interrupt(const char *run_dir, const char *name)
{
	json_object *req, *r;

	if (!interrupted || interrupted < 0)
		return;
	req = cmd("migrate");
	json_object_object_add(req, "cancel", json_object_new_boolean(1));
	json_object_object_add(req, "reason", json_object_new_string(
		interrupted == SIGINT ? "Ctrl-C on hdvm migrate" : "SIGTERM to hdvm migrate"));
	interrupted = -1;		/* once; the job's report follows */
	r = request(run_dir, name, req);
	if (r)
		fprintf(stderr, "hdvm: cancelling the migration of '%s'; the VM runs on\n", name);
	json_object_put(r);
}

/* Poll the job: a line per pass, then the report. */
static int follow(const char *run_dir, const char *name, const char *uri, bool json)
{
	long long last_pass = -1;

	struct sigaction sa = { .sa_handler = on_interrupt };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		json_object *r, *p, *res, *v;

		cancel_on_interrupt(run_dir, name);
		r = request(run_dir, name, cmd("migrate-status"));

		if (!r)
			return 1;
		if (json_object_object_get_ex(r, "progress", &p) && jint(p, "pass") != last_pass) {
			last_pass = jint(p, "pass");
			if (!json)
				print_pass(p);
		}
		if (json_object_object_get_ex(r, "done", &v) && json_object_get_boolean(v)) {
			bool success = json_object_object_get_ex(r, "success", &v) &&
				       json_object_get_boolean(v);

			json_object_object_get_ex(r, "result", &res);
			if (json) {
				json_object_object_add(res, "success", json_object_new_boolean(success));
				json_object_object_add(res, "uri", json_object_new_string(uri));
				if (!success && json_object_object_get_ex(r, "error", &v))
					json_object_object_add(res, "error", json_object_get(v));
				printf("%s\n", json_object_to_json_string_ext(res,
				       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			} else if (success) {
				printf("%s: migrated to %s in %lld ms, downtime %lld ms, %lld passes, "
				       "%.1f MiB sent (%lld pages, %lld zero pages left out, "
				       "%lld bytes of device state, %lld of them in pre-copy)%s\n",
				       name, uri, jint(res, "total_ms"),
				       jint(res, "downtime_ms"), jint(res, "passes"),
				       jint(res, "bytes") / 1048576.0, jint(res, "pages"),
				       jint(res, "zero_pages"),
				       jint(res, "device_bytes") + jint(res, "device_precopy_bytes"),
				       jint(res, "device_precopy_bytes"),
				       jint(res, "throttle_pct") ? ", vCPUs were throttled" : "");
			}
			if (success && !json && jint(res, "postcopy_pages"))
				printf("%s: post-copy: %lld pages after the switchover (%lld on demand, "
				       "%lld pushed) in %lld ms\n", name, jint(res, "postcopy_pages"),
				       jint(res, "postcopy_on_demand"), jint(res, "postcopy_pushed"),
				       jint(res, "postcopy_ms"));
			if (!success && json_object_object_get_ex(res, "vm_lost", &v) &&
			    json_object_get_boolean(v))
				pr_err("VM '%s': post-copy migration to %s failed after the "
				       "switchover: the VM is LOST: %s", name, uri,
				       json_object_object_get_ex(r, "error", &v) ?
				       json_object_get_string(v) : "?");
			else if (!success)
				pr_err("VM '%s': migration to %s failed, the VM runs on: %s", name, uri,
				       json_object_object_get_ex(r, "error", &v) ?
				       json_object_get_string(v) : "?");
			json_object_put(r);
			return success ? 0 : 1;
		}
		json_object_put(r);
		usleep(POLL_US);
	}
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "max-bandwidth", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "tls-creds", required_argument, NULL, 'T' },
		{ "tls-hostname", required_argument, NULL, 'H' },
		{ "cancel", no_argument, NULL, 'c' },
		{ "no-auto-converge", no_argument, NULL, 'A' },
		{ "postcopy", no_argument, NULL, 'P' },
		{ "postcopy-after", required_argument, NULL, 'N' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t downtime = 0, bandwidth = 0, timeout = 0, pc_after = 0;
	bool postcopy = false;
	const char *run_dir = NULL, *name, *uri, *tls = NULL, *tls_host = NULL;
	char tls_abs[PATH_MAX];
	bool json = false, cancel = false, auto_converge = true;
	struct mig_uri u;
	json_object *req, *r;
	char why[256];
	int opt, ret;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (parse_u64(optarg, 1, 3600000, &downtime) < 0) {
				pr_err("--downtime-ms '%s': a number of milliseconds", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'b':
			if (parse_size(optarg, &bandwidth) < 0 || !bandwidth) {
				pr_err("--max-bandwidth '%s': bytes per second, e.g. 100M", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &timeout) < 0) {
				pr_err("--timeout '%s': a number of seconds", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'T': tls = optarg; break;
		case 'H': tls_host = optarg; break;
		case 'c': cancel = true; break;
		case 'A': auto_converge = false; break;
		case 'P': postcopy = true; break;
		case 'N':
			if (parse_u64(optarg, 1, 1000000, &pc_after) < 0) {
				pr_err("--postcopy-after '%s': a number of pre-copy passes", optarg);
				return EXIT_USAGE;
			}
			postcopy = true;
			break;
		case 'r': run_dir = optarg; break;
		case 'h': migrate_usage(stdout); return 0;
		case ':': pr_err("option '%s' needs a value", argv[optind - 1]); return EXIT_USAGE;
		default: pr_err("unknown option '%s'", argv[optind - 1]); return EXIT_USAGE;
		}
	}
	if (argc - optind != (cancel ? 1 : 2)) {
		pr_err(cancel ? "migrate --cancel: expected NAME" : "migrate: expected NAME and URI");
		migrate_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	uri = cancel ? NULL : argv[optind + 1];
	if (!control_valid_name(name)) {
		pr_err("'%s' is not a valid VM name", name);
		return EXIT_USAGE;
	}
	if (uri && mig_uri_parse(uri, &u, why, sizeof(why)) < 0) {
		pr_err("migrate: %s", why);
		return EXIT_USAGE;
	}
	if (tls && uri && mig_tls_check(&u, tls, why, sizeof(why)) < 0) {
		pr_err("migrate: %s", why);
		return EXIT_USAGE;
	}
	if (postcopy && uri && (u.kind == MIG_FILE || tls)) {
		pr_err("migrate: post-copy needs a live destination over tcp: or unix: "
		       "(not file:, and not with --tls-creds yet)");
		return EXIT_USAGE;
	}
	if (tls_host && !tls) {
		pr_err("--tls-hostname goes with --tls-creds");
		return EXIT_USAGE;
	}
	if (tls && !realpath(tls, tls_abs)) {
		pr_err("--tls-creds %s: %s", tls, strerror(errno));
		return EXIT_USAGE;
	}
	run_dir = control_run_dir(run_dir);

	req = cmd("migrate");
	if (cancel) {
		json_object_object_add(req, "cancel", json_object_new_boolean(1));
		r = request(run_dir, name, req);
		ret = r ? 0 : 1;
		if (!ret)
			printf("%s: migration cancelled, the VM runs on\n", name);
		json_object_put(r);
		return ret;
	}
	json_object_object_add(req, "uri", json_object_new_string(uri));
	if (downtime)
		json_object_object_add(req, "downtime_ms", json_object_new_int64((int64_t)downtime));
	if (bandwidth)
		json_object_object_add(req, "max_bandwidth", json_object_new_int64((int64_t)bandwidth));
	if (tls)
		json_object_object_add(req, "tls_creds", json_object_new_string(tls_abs));
	if (tls_host)
		json_object_object_add(req, "tls_hostname", json_object_new_string(tls_host));
	if (timeout)
		json_object_object_add(req, "timeout_ms", json_object_new_int64((int64_t)timeout * 1000));
	if (!auto_converge)
		json_object_object_add(req, "auto_converge", json_object_new_boolean(0));
	if (postcopy)
		json_object_object_add(req, "postcopy", json_object_new_boolean(1));
	if (pc_after)
		json_object_object_add(req, "postcopy_after", json_object_new_int64((int64_t)pc_after));
	r = request(run_dir, name, req);
	if (!r)
		return 1;
	json_object_put(r);
	return follow(run_dir, name, uri, json);
}
