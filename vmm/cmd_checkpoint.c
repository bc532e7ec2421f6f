// SPDX-License-Identifier: MIT
/*
 * `hdvm checkpoint NAME URI [...]`: turn Remus protection on for a running
 * VM (the driver runs in the VM process, vmm/checkpoint_job.c) and wait until
 * its first checkpoint is acknowledged; `--stop` turns it off.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/transport.h"
#include "vmm/checkpoint.h"
#include "vmm/cli.h"
#include "vmm/control.h"
#include "vmm/util.h"

#define POLL_US		20000
#define REQ_TIMEOUT_MS	5000
#define WAIT_MS		30000

static void checkpoint_usage(FILE *f)
{
	fprintf(f,
"usage: hdvm checkpoint NAME URI [--epoch-ms N] [--epoch-phase-ms P] [--heartbeat-ms N]\n"
"                       [--failover-ms N] [--on-standby-loss continue|pause] [--dirty-budget PAGES]\n"
"                       [--tls-creds DIR] [--etcd URL[,URL...] [--etcd-ttl S]\n"
"                       [--etcd-renew-ms MS]] [--run-dir DIR]\n"
"       hdvm checkpoint NAME --stop\n"
"\n"
"Protect a running VM with a hot standby ('hdvm run --standby URI' on another\n"
"host): every epoch the VM pauses briefly, its dirty pages and vCPU and device\n"
"state go to the standby, and what its devices send is held until the standby\n"
"has the checkpoint that produced it.  If this host dies the standby takes\n"
"over from the last checkpoint and no client has seen output it lost.\n"
"\n"
"URI:  tcp:HOST:PORT   plain TCP: for network namespaces on one machine only\n"
"      unix:PATH       the same host (tests)\n"
"\n"
"  --epoch-ms N        checkpoint interval (default %d)\n"
"  --epoch-phase-ms P  epochs begin P ms past each multiple of N on the host's\n"
"                      monotonic clock (0 <= P < N): VMs given different phases\n"
"                      never pause at one instant (tools/protect spreads them);\n"
"                      default: N after the last resume, phases drift\n"
"  --heartbeat-ms N    heartbeat interval (default %d)\n"
"  --failover-ms N     a side silent this long is lost (default %d); the standby\n"
"                      takes over, the primary applies --on-standby-loss\n"
"  --on-standby-loss continue|pause\n"
"                      continue: release held output, run unprotected (default)\n"
"                      pause: pause the VM, keep output held ('--stop' releases)\n"
"  --dirty-budget P    end an epoch early once P pages were written (default: off)\n"
"  --tls-creds DIR     TLS for tcp: (between hosts), as for 'hdvm migrate'\n"
"  --etcd URL[,URL]    etcd decides who may release output (an owner key under a\n"
"                      lease, renewed by build/hdvm-owner): a primary that cannot\n"
"                      renew pauses with its output held (fenced)\n"
"  --etcd-ttl S        the owner key's lease TTL (default 5): a dead primary's\n"
"                      standby takes over about this long after its last renewal\n"
"  --etcd-renew-ms MS  renewal interval (default TTL/4, at most 1000); the primary\n"
"                      fences at 70%% of the TTL without one (printed at start)\n"
"  --stop              end protection: the standby is told, held output leaves\n"
"  --run-dir DIR       where control sockets live (default $HDVM_RUN_DIR or %s)\n"
"\n"
"Without --etcd nothing arbitrates a cut link: both sides may serve.\n",
		CKPT_DEFAULT_EPOCH_MS, CKPT_DEFAULT_HEARTBEAT_MS, CKPT_DEFAULT_FAILOVER_MS,
		HDVM_DEFAULT_RUN_DIR);
}

static json_object *request(const char *run_dir, const char *name, json_object *req)
{
	json_object *r;

	return control_call_obj(run_dir, name, req, REQ_TIMEOUT_MS, false, &r) ? NULL : r;
}

static json_object *cmd(const char *c)
{
	json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(c));
	return req;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static long long jint(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

/*
 * Wait for the first acknowledged checkpoint (on) -- one above base, the last
 * one of an earlier protection -- or the end of protection (off).
 */
static int follow(const char *run_dir, const char *name, bool stopping, long long base)
{
	for (int waited = 0; waited < WAIT_MS * 1000; waited += POLL_US) {
		json_object *r = request(run_dir, name, cmd("status"));
		const char *role;

		if (!r)
			return 1;
		role = jstr(r, "role");
		if (stopping && strcmp(role, "primary")) {
			printf("%s: unprotected (%s)\n", name, jstr(r, "protection_ended"));
			json_object_put(r);
			return 0;
		}
		if (!stopping && strcmp(role, "primary")) {
			pr_err("VM '%s' is unprotected: %s", name, jstr(r, "protection_ended"));
			json_object_put(r);
			return 1;
		}
		if (!stopping && jint(r, "committed_epoch") > base) {
			printf("%s: protected by %s, checkpoint %lld acknowledged (pause p50 %lld us)\n",
			       name, jstr(r, "standby"), jint(r, "committed_epoch"),
			       jint(r, "pause_p50_us"));
			if (jstr(r, "failover_timing")[0])
				printf("%s: etcd: %s\n", name, jstr(r, "failover_timing"));
			else
				printf("%s: failover arbiter: %s\n", name, jstr(r, "failover_arbiter"));
			json_object_put(r);
			return 0;
		}
		json_object_put(r);
		usleep(POLL_US);
	}
	pr_err("VM '%s': no %s after %d s", name, stopping ? "end of protection" :
	       "acknowledged checkpoint", WAIT_MS / 1000);
	return 1;
}

static int parse_ms(const char *opt, const char *arg, uint64_t max, uint64_t *v)
{
	if (parse_u64(arg, 1, max, v) < 0) {
		pr_err("--%s '%s': a number from 1 to %llu", opt, arg, (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "epoch-ms", required_argument, NULL, 'e' },
		{ "epoch-phase-ms", required_argument, NULL, 'p' },
		{ "heartbeat-ms", required_argument, NULL, 'H' },
		{ "failover-ms", required_argument, NULL, 'f' },
		{ "on-standby-loss", required_argument, NULL, 'l' },
		{ "dirty-budget", required_argument, NULL, 'b' },
		{ "tls-creds", required_argument, NULL, 'T' },
		{ "etcd", required_argument, NULL, 'E' },
		{ "etcd-ttl", required_argument, NULL, 't' },
		{ "etcd-renew-ms", required_argument, NULL, 'R' },
		{ "stop", no_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t epoch = 0, hb = 0, failover = 0, budget = 0, phase = 0, ttl = 0, renew = 0;
	bool phased = false;
	long long base;
	const char *run_dir = NULL, *name, *uri, *tls = NULL, *loss = NULL, *etcd = NULL;
	char tls_abs[PATH_MAX], why[256];
	bool stop = false;
	struct mig_uri u;
	json_object *req, *r;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': if (parse_ms("epoch-ms", optarg, 60000, &epoch)) return EXIT_USAGE; break;
		case 'p':
			if (parse_u64(optarg, 0, 59999, &phase) < 0) {
				pr_err("--epoch-phase-ms '%s': a number from 0 to 59999", optarg);
				return EXIT_USAGE;
			}
			phased = true;
			break;
		case 'H': if (parse_ms("heartbeat-ms", optarg, 60000, &hb)) return EXIT_USAGE; break;
		case 'f': if (parse_ms("failover-ms", optarg, 600000, &failover)) return EXIT_USAGE; break;
		case 'b': if (parse_ms("dirty-budget", optarg, 1u << 30, &budget)) return EXIT_USAGE; break;
		case 'l':
			if (strcmp(optarg, "continue") && strcmp(optarg, "pause")) {
				pr_err("--on-standby-loss '%s': continue or pause", optarg);
				return EXIT_USAGE;
			}
			loss = optarg;
			break;
		case 'T': tls = optarg; break;
		case 'E': etcd = optarg; break;
		case 't': if (parse_ms("etcd-ttl", optarg, 3600, &ttl)) return EXIT_USAGE; break;
		case 'R': if (parse_ms("etcd-renew-ms", optarg, 600000, &renew)) return EXIT_USAGE; break;
		case 's': stop = true; break;
		case 'r': run_dir = optarg; break;
		case 'h': checkpoint_usage(stdout); return 0;
		case ':': pr_err("option '%s' needs a value", argv[optind - 1]); return EXIT_USAGE;
		default: pr_err("unknown option '%s'", argv[optind - 1]); return EXIT_USAGE;
		}
	}
	if (argc - optind != (stop ? 1 : 2)) {
		pr_err(stop ? "checkpoint --stop: expected NAME" : "checkpoint: expected NAME and URI");
		checkpoint_usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[optind];
	uri = stop ? NULL : argv[optind + 1];
	if (!control_valid_name(name)) {
		pr_err("'%s' is not a valid VM name", name);
		return EXIT_USAGE;
	}
	if (uri && (mig_uri_parse(uri, &u, why, sizeof(why)) < 0 ||
		    (tls && mig_tls_check(&u, tls, why, sizeof(why)) < 0))) {
		pr_err("checkpoint: %s", why);
		return EXIT_USAGE;
	}
	if (tls && !realpath(tls, tls_abs)) {
		pr_err("--tls-creds %s: %s", tls, strerror(errno));
		return EXIT_USAGE;
	}
	if (phased && phase >= (epoch ?: CKPT_DEFAULT_EPOCH_MS)) {
		pr_err("--epoch-phase-ms %llu: must be below the epoch (%llu ms)",
		       (unsigned long long)phase, (unsigned long long)(epoch ?: CKPT_DEFAULT_EPOCH_MS));
		return EXIT_USAGE;
	}
	run_dir = control_run_dir(run_dir);
	req = cmd("checkpoint");
	if (stop) {
		json_object_object_add(req, "stop", json_object_new_boolean(1));
		r = request(run_dir, name, req);
		if (!r)
			return 1;
		if (json_object_object_get_ex(r, "released", NULL)) {
			printf("%s: held output released\n", name);
			json_object_put(r);
			return 0;
		}
		json_object_put(r);
		return follow(run_dir, name, true, 0);
	}
	r = request(run_dir, name, cmd("status"));
	if (!r)
		return 1;
	base = jint(r, "committed_epoch");	/* a re-protection acknowledges above it */
	json_object_put(r);
	json_object_object_add(req, "uri", json_object_new_string(uri));
	if (epoch)
		json_object_object_add(req, "epoch_ms", json_object_new_int64((int64_t)epoch));
	if (phased)
		json_object_object_add(req, "epoch_phase_ms", json_object_new_int64((int64_t)phase));
	if (hb)
		json_object_object_add(req, "heartbeat_ms", json_object_new_int64((int64_t)hb));
	if (failover)
		json_object_object_add(req, "failover_ms", json_object_new_int64((int64_t)failover));
	if (budget)
		json_object_object_add(req, "dirty_budget", json_object_new_int64((int64_t)budget));
	if (loss)
		json_object_object_add(req, "on_standby_loss", json_object_new_string(loss));
	if (tls)
		json_object_object_add(req, "tls_creds", json_object_new_string(tls_abs));
	if (etcd)
		json_object_object_add(req, "etcd", json_object_new_string(etcd));
	if (ttl)
		json_object_object_add(req, "etcd_ttl_s", json_object_new_int64((int64_t)ttl));
	if (renew)
		json_object_object_add(req, "etcd_renew_ms", json_object_new_int64((int64_t)renew));
	r = request(run_dir, name, req);
	if (!r)
		return 1;
	json_object_put(r);
	return follow(run_dir, name, false, base);
}
