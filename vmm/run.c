// SPDX-License-Identifier: MIT
/*
 * The life of one `hdvm run`: claim the name, create and boot the VM, serve
 * the control socket and console from the event loop until the guest powers
 * off (or is stopped or signalled), then tear everything down so nothing is
 * left behind: no socket, no lock file, no threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "vmm/control.h"
#include "vmm/loop.h"
#include "vmm/metrics.h"
#include "vmm/checkpoint_job.h"
#include "vmm/migrate_job.h"
#include "vmm/run.h"
#include "vmm/seccomp.h"
#include "vmm/snapshot.h"
#include "vmm/owner_helper.h"
#include "vmm/standby_run.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct run_ctx {
	struct vm *vm;
	struct event_loop *loop;
	struct loop_watch *stdin_watch;
	struct device *serial;
	int sig_fd;
};

static void on_vm_exit(void *opaque, int fd, unsigned revents)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("exit eventfd: %s", strerror(errno));
}

static void on_signal(void *opaque, int fd, unsigned revents)
{
	struct run_ctx *rc = opaque;
	struct signalfd_siginfo si;
	char why[64];

	/* drain: wake-ups merge, and the first signal decides the exit status */
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		snprintf(why, sizeof(why), "stopped by signal %s", strsignal(si.ssi_signo));
		vm_request_shutdown(rc->vm, 128 + si.ssi_signo, why);
	}
}

static void console_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct run_ctx *rc = opaque;

	serial_input(rc->serial, buf, len);
}

static void on_stdin(void *opaque, int fd, unsigned revents)
{
	struct run_ctx *rc = opaque;

	/* wake-ups merge and no new one comes for old input: take all there is */
	if (fd_drain(fd, console_input, rc) != 0) {
		loop_unwatch(rc->loop, rc->stdin_watch);	/* EOF: no more input */
		rc->stdin_watch = NULL;
	}
}

static int console_open(struct vm *vm, const struct vm_config *cfg)
{
	switch (cfg->console) {
	case CONSOLE_STDIO:
		vm->console_out_fd = STDOUT_FILENO;
		vm->console_in_fd = STDIN_FILENO;
		break;
	case CONSOLE_FILE:
		vm->console_out_fd = open(cfg->console_path,
					  O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (vm->console_out_fd < 0) {
			int err = -errno;

			pr_err("--console file:%s: %s", cfg->console_path, strerror(-err));
			return err;
		}
		break;
	case CONSOLE_NONE:
		break;
	}
	return 0;
}

static int signals_open(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Blocked before vCPU threads exist, so they inherit the mask. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int watch_all(struct run_ctx *rc, struct control *ctl)
{
	struct vm *vm = rc->vm;
	int ret;

	if (!loop_watch(rc->loop, vm->exit_efd, POLLIN, on_vm_exit, rc) ||
	    !loop_watch(rc->loop, rc->sig_fd, POLLIN, on_signal, rc)) {
		pr_err("event loop: no room to watch the VM's exit and signals");
		return -EBUSY;
	}
	ret = control_start(ctl, rc->loop, vm_control_cmds, vm_nr_control_cmds, vm);
	if (ret < 0) {
		pr_err("control socket: %s", strerror(-ret));
		return ret;
	}
	if (vm->console_in_fd >= 0) {
		rc->serial = device_find(vm, "com1");
		fcntl(vm->console_in_fd, F_SETFL, fcntl(vm->console_in_fd, F_GETFL) | O_NONBLOCK);
		rc->stdin_watch = loop_watch(rc->loop, vm->console_in_fd, POLLIN, on_stdin, rc);
	}
	return 0;
}

int vmm_run(const struct vm_config *cfg)
{
	static struct vm vm;
	struct run_ctx rc = { .vm = &vm, .sig_fd = -1 };
	struct mem_usage mu = { 0 };
	struct metrics_file mf = { .fd = -1 };
	struct control *ctl;
	int status = 1;

	if (cfg->metrics_path && metrics_open(&mf, cfg->metrics_path) < 0)
		return 1;
	ctl = control_open(cfg->run_dir, cfg->name);
	if (!ctl) {
		metrics_abandon(&mf);
		return 1;
	}
	rc.sig_fd = signals_open();
	if (rc.sig_fd < 0) {
		pr_err("signalfd: %s", strerror(errno));
		goto out_ctl;
	}
	rc.loop = loop_create(64);
	if (!rc.loop || vm_create(&vm, cfg) < 0)
		goto out_vm;
	vm.loop = rc.loop;	/* devices watch their back ends from the main loop */
	if (console_open(&vm, cfg) < 0 || vm_boot(&vm) < 0 || watch_all(&rc, ctl) < 0)
		goto out_vm;
	if (cfg->standby && standby_start(&vm) < 0)
		goto out_vm;
	/* --etcd: the helper is forked and exec'd, which the filter forbids */
	if (cfg->seccomp && ownerh_prepare() < 0)
		goto out_vm;
	if (cfg->seccomp && seccomp_install(SECCOMP_ROLE_MAIN) < 0) {
		pr_err("installing the main seccomp filter failed");
		goto out_vm;
	}
	while (!atomic_load(&vm.shutdown)) {
		if (loop_run_once(rc.loop, control_timeout_ms(ctl)) < 0)
			break;
		control_tick(ctl);
	}
	status = vm.exit_code;
	if (status)
		pr_info("%s", vm.exit_reason);
	else
		pr_debug("%s", vm.exit_reason);
out_vm:
	if (rc.stdin_watch && vm.console_in_fd >= 0)
		fcntl(vm.console_in_fd, F_SETFL, fcntl(vm.console_in_fd, F_GETFL) & ~O_NONBLOCK);
	if (!atomic_load(&vm.shutdown))
		vm_request_shutdown(&vm, status, "VM could not start");
	if (cfg->metrics_path)
		metrics_sample_memory(&vm, &mu);
	migrate_job_stop();	/* a migration thread uses the VM to the end */
	checkpoint_job_stop();	/* the standby is told: it must not take over */
	standby_join();
	vm_destroy(&vm);
	snapshot_restore_done(&vm.cfg);	/* if the VM never got to load it */
	if (cfg->metrics_path && metrics_write(&mf, &vm, &mu) < 0 && !status)
		status = 1;
	if (vm.console_out_fd > STDERR_FILENO)
		close(vm.console_out_fd);
	if (rc.sig_fd >= 0)
		close(rc.sig_fd);
out_ctl:
	metrics_abandon(&mf);	/* nothing if it was written */
	control_close(ctl);
	loop_destroy(rc.loop);
	return status;
}
