// SPDX-License-Identifier: MIT
/*
 * hdnic: an emulated SR-IOV NIC.
 *
 *   hdnic --dir DIR --vfs N --uplink tap:IFNAME|iface:IFNAME [options]
 *   hdnic ctl DIR list|stats|set-mac|egress|adi-add|adi-del|trust|qos ...
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "devices/hdnic/mgmt.h"
#include "devices/hdnic/nic.h"
#include "devices/hdnic/qos.h"
#include "vmm/failpoint.h"
#include "devices/hdnic/rx_wait.h"
#include "vmm/util.h"

#define DEFAULT_IDLE_US	500

/* HDNIC_FAILPOINT=NAME:EPOCH[,...] (vmm/failpoint.h; README "Fail points"). */
static const char *const hdnic_failpoints[] = {
	"after-commit",	/* a commit for EPOCH arrived, nothing of it released yet */
	"release",	/* the first frame of EPOCH's commit released, the rest not */
	"resuming",	/* the EPOCH-th MIG_DATA_WRITE in RESUMING arrived, not taken */
	NULL,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hdnic --dir DIR --vfs N --uplink tap:IFNAME|iface:IFNAME [options]\n"
		"       hdnic ctl DIR COMMAND ...   (hdnic ctl without arguments lists them)\n"
		"\n"
		"  --dir DIR          where vfK.sock and adi-NAME.sock (vfio-user, one per device)\n"
		"                     and pf.sock (management) live\n"
		"  --vfs N            number of VFs, 0..%u\n"
		"  --qps N            queue pairs in the pool, VFs' included (default %u, max %u);\n"
		"                     ADIs take theirs from what the VFs leave\n"
		"  --uplink SPEC      tap:IFNAME creates a TAP; iface:IFNAME uses an existing\n"
		"                     interface through AF_PACKET\n"
		"  --uplink-rate R    uplink line rate in bit/s (10M, 1G...); default: unlimited\n"
		"  --switch-rate R    internal switch capacity (device to device); default: unlimited\n"
		"  --name NIC         name used in logs and default MACs (default hdnic0)\n"
		"  --idle-us US       keep a quiet device's doorbells suppressed this long before\n"
		"                     it sleeps (default %u); the loop yields the CPU meanwhile\n"
		"  --spin-passes N    empty loop passes spun before yielding (default %u)\n"
		"  --rx-wait N        frames that may wait for one function's full RX ring\n"
		"                     (default %u; more are dropped, counted as rx_wait_drops)\n"
		"  --rx-wait-us US    how long a frame may wait for a refill (default %u)\n"
		"  --no-rx-flow-control  drop at a full RX ring at once (for comparison)\n"
		"  --no-migration     VFs that cannot migrate, like most SR-IOV VFs in service:\n"
		"                     no VFIO migration or DMA logging, read-clear statistics\n"
		"                     (hdvm moves them the CompSC way, devices/compsc.md)\n"
		"  --conn-timeout MS  drop a management client idle this long, and a vfio-user\n"
		"                     client that has not completed VERSION by then (default %u)\n"
		"  --dma-timeout-ms MS  a client's answer to DMA_READ/DMA_WRITE (memory mapped\n"
		"                     without an fd) later than this stops its function (default %u)\n"
		"  --debug            verbose logging\n",
		HDNIC_MAX_VFS, HDNIC_DEFAULT_QPS, HDNIC_MAX_QPS, DEFAULT_IDLE_US,
		NIC_DEFAULT_SPIN_PASSES, RXW_DEFAULT_MAX, RXW_DEFAULT_US,
		MGMT_DEFAULT_CONN_TIMEOUT_MS, NIC_DEFAULT_DMA_TIMEOUT_MS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "vfs", required_argument, NULL, 'n' },
		{ "uplink", required_argument, NULL, 'u' },
		{ "name", required_argument, NULL, 'N' },
		{ "idle-us", required_argument, NULL, 'i' },
		{ "qps", required_argument, NULL, 'q' },
		{ "uplink-rate", required_argument, NULL, 'r' },
		{ "switch-rate", required_argument, NULL, 's' },
		{ "conn-timeout", required_argument, NULL, 'T' },
		{ "dma-timeout-ms", required_argument, NULL, 'A' },
		{ "spin-passes", required_argument, NULL, 'S' },
		{ "rx-wait", required_argument, NULL, 'W' },
		{ "rx-wait-us", required_argument, NULL, 'U' },
		{ "no-rx-flow-control", no_argument, NULL, 'F' },
		{ "no-migration", no_argument, NULL, 'M' },
		{ "debug", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct nic_config cfg = {
		.name = "hdnic0", .idle_us = DEFAULT_IDLE_US, .nr_qps = HDNIC_DEFAULT_QPS,
	};
	bool have_vfs = false;
	struct nic *nic = NULL;
	uint64_t v;
	int c, err;

	prog_name = "hdnic";
	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.dir = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, 0, HDNIC_MAX_VFS, &v)) {
				pr_err("--vfs %s: expected a number from 0 to %u", optarg,
				       HDNIC_MAX_VFS);
				return 2;
			}
			cfg.nr_vfs = (unsigned)v;
			have_vfs = true;
			break;
		case 'u':
			cfg.uplink = optarg;
			break;
		case 'N':
			if (!*optarg || strlen(optarg) >= 32) {
				pr_err("--name must be 1 to 31 characters");
				return 2;
			}
			cfg.name = optarg;
			break;
		case 'i':
			if (parse_u64(optarg, 1, 10000000, &v)) {
				pr_err("--idle-us %s: expected 1..10000000", optarg);
				return 2;
			}
			cfg.idle_us = v;
			break;
		case 'q':
			if (parse_u64(optarg, 1, HDNIC_MAX_QPS, &v)) {
				pr_err("--qps %s: expected a number from 1 to %u", optarg,
				       HDNIC_MAX_QPS);
				return 2;
			}
			cfg.nr_qps = (unsigned)v;
			break;
		case 'r':
		case 's':
			if (qos_parse_rate(optarg, &v)) {
				pr_err("--%s-rate %s: expected a rate like 100M or 1G (bit/s), "
				       "0 for unlimited", c == 'r' ? "uplink" : "switch", optarg);
				return 2;
			}
			*(c == 'r' ? &cfg.uplink_rate : &cfg.switch_rate) = v;
			break;
		case 'T':
			if (parse_u64(optarg, 10, 3600000, &v)) {
				pr_err("--conn-timeout %s: expected milliseconds, 10..3600000", optarg);
				return 2;
			}
			cfg.conn_timeout_ms = v;
			break;
		case 'A':
			if (parse_u64(optarg, 10, 3600000, &v)) {
				pr_err("--dma-timeout-ms %s: expected milliseconds, 10..3600000", optarg);
				return 2;
			}
			cfg.dma_timeout_ms = v;
			break;
		case 'S':
			if (parse_u64(optarg, 1, 1000000, &v)) {
				pr_err("--spin-passes %s: expected 1..1000000", optarg);
				return 2;
			}
			cfg.spin_passes = (unsigned)v;
			break;
		case 'W':
			if (parse_u64(optarg, 1, 65536, &v)) {
				pr_err("--rx-wait %s: expected 1..65536 frames", optarg);
				return 2;
			}
			cfg.rx_wait_max = (unsigned)v;
			break;
		case 'U':
			if (parse_u64(optarg, 1, 10000000, &v)) {
				pr_err("--rx-wait-us %s: expected 1..10000000", optarg);
				return 2;
			}
			cfg.rx_wait_us = v;
			break;
		case 'F':
			cfg.no_rx_fc = true;
			break;
		case 'M':
			cfg.no_migration = true;
			break;
		case 'D':
			debug_enabled = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument \"%s\"", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!cfg.dir || !have_vfs || !cfg.uplink) {
		pr_err("--dir, --vfs and --uplink are required");
		usage(stderr);
		return 2;
	}
	if (cfg.nr_qps < cfg.nr_vfs) {
		pr_err("--qps %u: fewer queue pairs than VFs (%u)", cfg.nr_qps, cfg.nr_vfs);
		return 2;
	}
	if (failpoint_init("HDNIC_FAILPOINT", hdnic_failpoints))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	err = nic_create(&nic, &cfg);
	if (!err)
		err = nic_run(nic);
	nic_destroy(nic);
	return err ? 1 : 0;
}
