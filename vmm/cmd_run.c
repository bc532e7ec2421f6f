// SPDX-License-Identifier: MIT
/* `hdvm run`: options into a vm_config, then vmm_run(). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "devices/virtio/net_cli.h"
#include "vmm/cli.h"
#include "migration/transport.h"
#include "vmm/control.h"
#include "vmm/migrate.h"
#include "vmm/run.h"
#include "vmm/snapshot.h"
#include "vmm/standby_run.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define DEFAULT_MEM	(128ULL << 20)
#define MAX_CMDLINE	4095

static void run_usage(FILE *f)
{
	fprintf(f,
"usage: hdvm run --kernel PATH [options]\n"
"       hdvm run --restore FILE [--name NAME] [--vfio-user SOCKET]... [options]\n"
"       hdvm run --incoming URI --name NAME [--vfio-user SOCKET]... [options]\n"
"       hdvm run --standby URI --name NAME [--vfio-user SOCKET]... [options]\n"
"\n"
"  --kernel PATH        ELF64 (vmlinux, hdguest) or bzImage kernel\n"
"  --initrd PATH        initial ramdisk\n"
"  --cmdline STR        kernel command line\n"
"  --boot auto|linux64|pvh\n"
"                       entry protocol (auto: Linux 64-bit boot protocol)\n"
"  --mem SIZE           guest RAM, e.g. 256M, 2G (default 128M)\n"
"  --cpus N             vCPUs (default 1)\n"
"  --name NAME          VM name for ps/status/pause/resume/stop (default vm-PID)\n"
"  --console stdio|file:PATH|none\n"
"                       where the serial console goes (default stdio)\n"
"  --metrics FILE       write boot/exit timings and memory use as JSON at exit\n"
"  --run-dir DIR        control sockets live here (default $HDVM_RUN_DIR or %s)\n"
"  --vfio-user SOCKET   pass through a vfio-user device (e.g. an hdnic VF)\n"
"  --vfio PATH|BDF      pass through a kernel VFIO device (/dev/vfio/devices/vfioN\n"
"                       or a PCI address); untested on hardware\n"
"  --vfio-timeout MS    a vfio-user server silent this long is declared lost\n"
"                       (default 5000); before that a guest's access waits at\n"
"                       most 20 ms and reads all-ones while the server is slow\n"
"  --net tap=IFNAME[,mac=MAC]\n"
"                       paravirtual virtio-net on a TAP (created if missing)\n"
"  --restore FILE       continue a VM saved by 'hdvm snapshot' (RAM size, vCPUs,\n"
"                       --net devices and kernel come from FILE; give as many\n"
"                       --vfio-user/--vfio devices as it had, same or another)\n"
"  --incoming URI       receive a VM that 'hdvm migrate' sends: tcp:HOST:PORT\n"
"                       (plain TCP: for network namespaces on one machine),\n"
"                       unix:PATH (the same host; RAM is shared, not copied)\n"
"                       or file:PATH; RAM size, vCPUs, --net devices and\n"
"                       kernel come from the stream; give as many --vfio-user/\n"
"                       --vfio devices as the source had (this host's own)\n"
"  --standby URI        hold the checkpoints 'hdvm checkpoint' sends (tcp:HOST:PORT\n"
"                       or unix:PATH) and take over when the primary is gone\n"
"                       (connection lost, or no heartbeat for its --failover-ms);\n"
"                       the VM's shape comes from the primary; give as many\n"
"                       --vfio-user/--vfio devices as it has (this host's own)\n"
"  --etcd URL[,URL]     with --standby: take over only after taking the VM's\n"
"                       owner key in etcd (never from a stale checkpoint;\n"
"                       refused, it stays 'lost': 'hdvm takeover NAME\n"
"                       --restart-from-stale' starts it from there deliberately)\n"
"  --etcd-ttl S         the owner key's lease TTL once it took over (default 5)\n"
"  --etcd-renew-ms MS   its renewal interval (default TTL/4, at most 1000)\n"
"  --tls-creds DIR      TLS for a tcp: --incoming/--standby: DIR has ca-cert.pem,\n"
"                       server-cert.pem, server-key.pem; only a source whose\n"
"                       certificate the CA signed is accepted\n"
"  --tls-hostname NAME  with --incoming --tls-creds: the source's certificate\n"
"                       must also name NAME (DNS SAN, or CN; an IP: IP SAN);\n"
"                       without it any certificate from that CA is accepted\n"
"  --no-seccomp         do not install the seccomp filters\n"
"  --debug              verbose diagnostics\n"
"\n"
"Exits with the guest's power-off status; 1 if the VM could not run.\n",
		HDVM_DEFAULT_RUN_DIR);
}

enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_BOOT, OPT_MEM, OPT_CPUS, OPT_NAME,
       OPT_CONSOLE, OPT_METRICS, OPT_RUN_DIR, OPT_NO_SECCOMP, OPT_DEBUG, OPT_VFIO_USER,
       OPT_VFIO, OPT_NET, OPT_RESTORE, OPT_VFIO_TIMEOUT, OPT_INCOMING, OPT_TLS_CREDS, OPT_TLS_HOSTNAME, OPT_STANDBY, OPT_ETCD,
       OPT_ETCD_TTL, OPT_ETCD_RENEW, OPT_HELP };

static const struct option run_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "vfio-user", required_argument, NULL, OPT_VFIO_USER },
	{ "vfio", required_argument, NULL, OPT_VFIO },
	{ "net", required_argument, NULL, OPT_NET },
	{ "vfio-timeout", required_argument, NULL, OPT_VFIO_TIMEOUT },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "incoming", required_argument, NULL, OPT_INCOMING },
	{ "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
	{ "tls-hostname", required_argument, NULL, OPT_TLS_HOSTNAME },
	{ "standby", required_argument, NULL, OPT_STANDBY },
	{ "etcd", required_argument, NULL, OPT_ETCD },
	{ "etcd-ttl", required_argument, NULL, OPT_ETCD_TTL },
	{ "etcd-renew-ms", required_argument, NULL, OPT_ETCD_RENEW },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_console(struct vm_config *cfg, const char *arg)
{
	if (!strcmp(arg, "stdio")) {
		cfg->console = CONSOLE_STDIO;
	} else if (!strcmp(arg, "none")) {
		cfg->console = CONSOLE_NONE;
	} else if (!strncmp(arg, "file:", 5) && arg[5]) {
		cfg->console = CONSOLE_FILE;
		cfg->console_path = arg + 5;
	} else {
		pr_err("--console '%s': expected stdio, file:PATH or none", arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_boot(struct vm_config *cfg, const char *arg)
{
	static const struct { const char *name; enum boot_proto proto; } protos[] = {
		{ "auto", BOOT_AUTO }, { "linux64", BOOT_LINUX64 }, { "pvh", BOOT_PVH },
	};

	for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
		if (!strcmp(arg, protos[i].name)) {
			cfg->boot = protos[i].proto;
			return 0;
		}
	}
	pr_err("--boot '%s': expected auto, linux64 or pvh", arg);
	return -EINVAL;
}

static int add_repeatable(const char **list, int *nr, const char *opt, const char *arg)
{
	if (*nr >= 16) {
		pr_err("--%s: at most 16 allowed", opt);
		return -EINVAL;
	}
	list[(*nr)++] = arg;
	return 0;
}

static const char *option_name(int opt)
{
	for (const struct option *o = run_options; o->name; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

/* Options that build the machine: with --restore the snapshot decides them. */
static bool builds_machine(int opt)
{
	return opt == OPT_KERNEL || opt == OPT_INITRD || opt == OPT_CMDLINE || opt == OPT_BOOT ||
	       opt == OPT_MEM || opt == OPT_CPUS || opt == OPT_NET;
}

static int parse_run_options(int argc, char **argv, struct vm_config *cfg)
{
	const char *machine_opt = NULL;
	bool name_given = false;
	uint64_t v;
	int opt;

	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = DEFAULT_MEM;
	cfg->ncpus = 1;
	cfg->seccomp = true;
	cfg->console = CONSOLE_STDIO;
	snprintf(cfg->name, sizeof(cfg->name), "vm-%d", getpid());
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", run_options, NULL)) != -1) {
		if (builds_machine(opt) && !machine_opt)
			machine_opt = option_name(opt);
		switch (opt) {
		case OPT_KERNEL: cfg->kernel = optarg; break;
		case OPT_INITRD: cfg->initrd = optarg; break;
		case OPT_CMDLINE:
			if (strlen(optarg) > MAX_CMDLINE) {
				pr_err("--cmdline: longer than %d bytes", MAX_CMDLINE);
				return -EINVAL;
			}
			cfg->cmdline = optarg;
			break;
		case OPT_BOOT:
			if (parse_boot(cfg, optarg) < 0)
				return -EINVAL;
			break;
		case OPT_MEM:
			if (parse_size(optarg, &v) < 0) {
				pr_err("--mem '%s': not a size (examples: 512M, 2G)", optarg);
				return -EINVAL;
			}
			if (v < GUEST_MEM_MIN || v % 4096) {
				pr_err("--mem '%s': must be at least %llu MiB and a multiple of 4 KiB",
				       optarg, GUEST_MEM_MIN >> 20);
				return -EINVAL;
			}
			cfg->mem_size = v;
			break;
		case OPT_CPUS:
			if (parse_u64(optarg, 1, 4096, &v) < 0) {
				pr_err("--cpus '%s': expected a number of vCPUs, at least 1", optarg);
				return -EINVAL;
			}
			cfg->ncpus = (int)v;
			break;
		case OPT_NAME:
			if (!control_valid_name(optarg)) {
				pr_err("--name '%s': use 1-%d letters, digits, '.', '_' or '-'",
				       optarg, VM_NAME_MAX - 1);
				return -EINVAL;
			}
			snprintf(cfg->name, sizeof(cfg->name), "%s", optarg);
			name_given = true;
			break;
		case OPT_CONSOLE:
			if (parse_console(cfg, optarg) < 0)
				return -EINVAL;
			break;
		case OPT_METRICS: cfg->metrics_path = optarg; break;
		case OPT_RUN_DIR: cfg->run_dir = optarg; break;
		case OPT_NO_SECCOMP: cfg->seccomp = false; break;
		case OPT_DEBUG: debug_enabled = true; break;
		case OPT_VFIO_USER:
			if (add_repeatable(cfg->vfio_user, &cfg->nr_vfio_user, "vfio-user", optarg) < 0)
				return -EINVAL;
			break;
		case OPT_VFIO_TIMEOUT:
			if (parse_u64(optarg, 100, 3600000, &v) < 0) {
				pr_err("--vfio-timeout '%s': expected milliseconds, 100 to 3600000",
				       optarg);
				return -EINVAL;
			}
			cfg->vfio_timeout_ms = (int)v;
			break;
		case OPT_VFIO:
			if (add_repeatable(cfg->vfio_kernel, &cfg->nr_vfio_kernel, "vfio", optarg) < 0)
				return -EINVAL;
			break;
		case OPT_NET: {
			struct net_opts no;

			if (net_opts_parse(optarg, &no) < 0)
				return -EINVAL;	/* the parser names the bad value */
			if (add_repeatable(cfg->net, &cfg->nr_net, "net", optarg) < 0)
				return -EINVAL;
			break;
		}
		case OPT_RESTORE: cfg->restore_path = optarg; break;
		case OPT_INCOMING: cfg->incoming_uri = optarg; break;
		case OPT_TLS_CREDS: cfg->tls_creds = optarg; break;
		case OPT_TLS_HOSTNAME: cfg->tls_hostname = optarg; break;
		case OPT_STANDBY: cfg->standby_uri = optarg; break;
		case OPT_ETCD: cfg->etcd = optarg; break;
		case OPT_ETCD_TTL:
		case OPT_ETCD_RENEW:
			if (parse_u64(optarg, 1, opt == OPT_ETCD_TTL ? 3600 : 600000, &v) < 0) {
				pr_err("--%s '%s': out of range", opt == OPT_ETCD_TTL ? "etcd-ttl" :
				       "etcd-renew-ms", optarg);
				return -EINVAL;
			}
			*(opt == OPT_ETCD_TTL ? &cfg->etcd_ttl_s : &cfg->etcd_renew_ms) = (int)v;
			break;
		case OPT_HELP:
			run_usage(stdout);
			exit(0);
		case ':':
			pr_err("option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			pr_err("unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (cfg->restore_path && machine_opt) {
		pr_err("--%s cannot be combined with --restore: the snapshot decides it",
		       machine_opt);
		return -EINVAL;
	}
	if (cfg->incoming_uri && (machine_opt || cfg->restore_path)) {
		pr_err("--%s cannot be combined with --incoming: the stream decides it",
		       cfg->restore_path ? "restore" : machine_opt);
		return -EINVAL;
	}
	if (cfg->standby_uri && (machine_opt || cfg->restore_path || cfg->incoming_uri)) {
		pr_err("--%s cannot be combined with --standby: the primary decides it",
		       cfg->restore_path ? "restore" : cfg->incoming_uri ? "incoming" : machine_opt);
		return -EINVAL;
	}
	if ((cfg->etcd_ttl_s || cfg->etcd_renew_ms) && !cfg->etcd) {
		pr_err("--etcd-ttl and --etcd-renew-ms go with --etcd");
		return -EINVAL;
	}
	if (cfg->etcd && !cfg->standby_uri) {
		pr_err("--etcd goes with --standby (and with 'hdvm checkpoint')");
		return -EINVAL;
	}
	if (cfg->standby_uri && !name_given) {
		pr_err("--standby needs --name: the VM keeps its name on this host");
		return -EINVAL;
	}
	if (cfg->tls_hostname && (!cfg->tls_creds || !cfg->incoming_uri ||
				  strlen(cfg->tls_hostname) >= 256)) {
		pr_err("--tls-hostname goes with --incoming and --tls-creds (a name, < 256 bytes)");
		return -EINVAL;
	}
	if (cfg->tls_creds && !cfg->incoming_uri && !cfg->standby_uri) {
		pr_err("--tls-creds goes with --incoming or --standby");
		return -EINVAL;
	}
	if (cfg->incoming_uri && !name_given) {
		pr_err("--incoming needs --name: the VM keeps its name on this host");
		return -EINVAL;
	}
	if (!cfg->kernel && !cfg->restore_path && !cfg->incoming_uri && !cfg->standby_uri) {
		pr_err("--kernel is required");
		return -EINVAL;
	}
	cfg->run_dir = control_run_dir(cfg->run_dir);
	return 0;
}

/*
 * --incoming: wait for the source, read the manifest, build the VM from it;
 * vm_boot() takes the rest of the stream (vmm/migrate.c) and answers.
 */
static int run_incoming(struct vm_config *cfg)
{
	struct migrate_incoming *in = xzalloc(sizeof(*in));
	struct mig_uri uri;
	struct mig_io io;
	char why[512] = "";
	int lfd = -1, ret, status;

	ret = mig_uri_parse(cfg->incoming_uri, &uri, why, sizeof(why));
	if (!ret)
		ret = mig_tls_check(&uri, cfg->tls_creds, why, sizeof(why));
	if (!ret && cfg->tls_hostname)
		snprintf(uri.tls_hostname, sizeof(uri.tls_hostname), "%s", cfg->tls_hostname);
	else if (!ret && cfg->tls_creds)
		pr_info("--tls-creds without --tls-hostname: any source whose certificate the "
			"CA signed is accepted");
	if (!ret)
		ret = mig_listen(&uri, &lfd, why, sizeof(why));
	if (!ret) {
		if (uri.kind == MIG_FILE)
			pr_info("VM '%s' restoring from %s", cfg->name, uri.path);
		else
			pr_info("VM '%s' waiting for a migration on %s", cfg->name,
				cfg->incoming_uri);
		ret = mig_accept(&uri, cfg->tls_creds, lfd, 0, &io, why, sizeof(why));
	}
	/* one source: later peers are refused by the closed socket */
	mig_listen_close(&uri, lfd);
	if (ret) {
		pr_err("--incoming %s: %s", cfg->incoming_uri, why);
		free(in);
		return 1;
	}
	ret = migrate_recv_begin(in, &io, why, sizeof(why));
	if (!ret)
		ret = migrate_config_from_manifest(&in->m, cfg, why, sizeof(why));
	if (ret) {
		pr_err("--incoming %s: %s", cfg->incoming_uri, why);
		migrate_recv_answer(in, ret, why);
		status = 1;
	} else {
		cfg->incoming = in;
		cfg->net_fds = in->net_fds;
		cfg->nr_net_fds = in->nr_net_fds;
		status = vmm_run(cfg);
		if (!in->answered)
			migrate_recv_answer(in, -EIO, "the destination VM could not start "
					    "(see its log)");
	}
	migrate_recv_end(in);
	mig_io_close(&io);
	free(in);
	return status;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg;

	if (parse_run_options(argc, argv, &cfg) < 0) {
		fprintf(stderr, "Try 'hdvm run --help'.\n");
		return EXIT_USAGE;
	}
	/*
	 * A snapshot in the stream format (what `hdvm snapshot` writes) goes the
	 * --incoming file: way, each section checked before it is applied;
	 * a version 1 file is checked whole before /dev/kvm is opened.
	 */
	if (cfg.restore_path && snapshot_is_stream(cfg.restore_path)) {
		static char uri[PATH_MAX + 8];

		snprintf(uri, sizeof(uri), "file:%s", cfg.restore_path);
		cfg.incoming_uri = uri;
		return run_incoming(&cfg);
	}
	if (cfg.restore_path && snapshot_restore_prepare(&cfg, cfg.restore_path) < 0)
		return 1;
	if (cfg.incoming_uri)
		return run_incoming(&cfg);
	if (cfg.standby_uri)
		return standby_run_cmd(&cfg);
	return vmm_run(&cfg);	/* the VM releases the snapshot once loaded */
}
