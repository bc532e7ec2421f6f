// SPDX-License-Identifier: MIT
/* hdvm: command dispatch. */
#include <stdio.h>
#include <string.h>

#include "vmm/cli.h"
#include "vmm/failpoint.h"
#include "vmm/util.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} subcommands[] = {
	{ "run", cmd_run, "boot a microVM and run it until it powers off" },
	{ "ps", cmd_ps, "list running microVMs" },
	{ "status", cmd_status, "show one microVM's state and boot metrics" },
	{ "pause", cmd_pause, "pause a microVM's vCPUs and devices" },
	{ "resume", cmd_resume, "resume a paused microVM" },
	{ "stop", cmd_stop, "stop a microVM" },
	{ "snapshot", cmd_snapshot, "save a microVM (RAM, vCPU and device state) to a file" },
	{ "migrate", cmd_migrate, "move a running microVM to 'hdvm run --incoming' (live)" },
	{ "checkpoint", cmd_checkpoint, "protect a running microVM with a hot standby (Remus)" },
	{ "takeover", cmd_takeover, "restart a standby etcd refused (--restart-from-stale)" },
	{ "vfio-probe", cmd_vfio_probe, "attach to a vfio-user server, print what it offers" },
};

/*
 * HDVM_FAILPOINT=NAME:EPOCH[,...] (vmm/failpoint.h): hdvm's named points.
 * The checkpoint driver's are in the order of an epoch (vmm/checkpoint.h).
 */
static const char *const hdvm_failpoints[] = {
	"after-pause",	/* checkpoint EPOCH: vCPUs parked, devices stopped */
	"harvest",	/* checkpoint EPOCH: dirty pages harvested, state not yet saved */
	"stop-copy",	/* checkpoint EPOCH: device STOP_COPY state read */
	"send",		/* checkpoint EPOCH half sent (no end marker yet) */
	"after-ack-before-release", /* the standby acknowledged EPOCH, nothing released */
	"release",	/* EPOCH's commit sent to the devices (PV virtio-net: the
			   first frame of it released) */
	"standby-apply", /* standby: EPOCH verified, being applied */
	"after-commit",	/* PV virtio-net: COMMIT EPOCH taken, nothing of it released */
	NULL,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hdvm <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\n'hdvm <command> --help' describes each command's options.\n");
}

int main(int argc, char **argv)
{
	process_start_ns = now_ns();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (failpoint_init("HDVM_FAILPOINT", hdvm_failpoints))
		return EXIT_USAGE;
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	pr_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
