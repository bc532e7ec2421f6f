/* SPDX-License-Identifier: MIT */
#ifndef HDVM_CLI_H
#define HDVM_CLI_H

/* Each subcommand: argv[0] is the subcommand name; returns the exit status. */
int cmd_run(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_takeover(int argc, char **argv);
int cmd_vfio_probe(int argc, char **argv);

/* Exit statuses of hdvm itself (a guest's own status passes through as is). */
#define EXIT_USAGE	2

#endif
