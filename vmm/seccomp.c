// SPDX-License-Identifier: MIT
/*
 * Per-thread seccomp allow-lists (libseccomp).  Each thread loads its own
 * filter after its set-up is done, so only the calls its steady state needs
 * remain.  A forbidden call traps: the handler names the call on stderr and
 * ends the process with HDVM_EXIT_SECCOMP, so a refusal is never silent.
 */
#include <errno.h>
#include <signal.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include <unistd.h>

#include "vmm/seccomp.h"
#include "vmm/util.h"

/* Calls any thread of hdvm (glibc, malloc, logging, liburing) needs. */
static const int common_calls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(readv),
	SCMP_SYS(close), SCMP_SYS(futex), SCMP_SYS(mmap), SCMP_SYS(munmap),
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigaction),
	SCMP_SYS(sigaltstack), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(exit),
	SCMP_SYS(exit_group), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall),
	SCMP_SYS(tgkill), SCMP_SYS(getrandom), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), SCMP_SYS(eventfd2), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(rseq), SCMP_SYS(sched_getaffinity), SCMP_SYS(prctl),
};

/* The main thread: event loop, control socket, teardown. */
static const int main_calls[] = {
	SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register), SCMP_SYS(accept4),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(connect), SCMP_SYS(socket),
	SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(openat), SCMP_SYS(fcntl),
	SCMP_SYS(flock), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(shutdown),
	SCMP_SYS(getrusage), SCMP_SYS(mincore), SCMP_SYS(sysinfo), SCMP_SYS(uname),
	SCMP_SYS(dup), SCMP_SYS(ftruncate), SCMP_SYS(wait4), SCMP_SYS(ioctl),
	SCMP_SYS(set_robust_list), SCMP_SYS(clone), SCMP_SYS(clone3),
	SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(epoll_wait),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(fsync),
};

#ifdef __SANITIZE_ADDRESS__
/*
 * ASan/UBSan builds (make SANITIZE=1): LeakSanitizer's exit-time check clones a
 * tracer that ptraces the other threads; without these calls it dies and the
 * process never exits.  Never compiled into a normal build.
 */
static const int sanitizer_calls[] = {
	SCMP_SYS(ptrace), SCMP_SYS(getppid), SCMP_SYS(getdents64), SCMP_SYS(getdents),
	SCMP_SYS(open), SCMP_SYS(openat),
	SCMP_SYS(wait4), SCMP_SYS(waitid), SCMP_SYS(clone), SCMP_SYS(kill),
	SCMP_SYS(readlink), SCMP_SYS(process_vm_readv), SCMP_SYS(sched_yield),
};
#endif

/* vCPU threads: KVM ioctls only on top of the common set. */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS,
	KVM_IRQ_LINE, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD,
	KVM_SET_USER_MEMORY_REGION, KVM_SIGNAL_MSI,
};
static const int vcpu_calls[] = {
	/* trapped passthrough accesses go to the vfio-user server from vCPU threads;
	 * a server that times out gets its connection shut down */
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(shutdown),
};

/*
 * Device I/O threads (devices/virtio/net_io.c): everything goes through
 * io_uring (TAP reads and writes, eventfd reads); interrupts and wake-ups are
 * eventfd writes, which the common set covers.
 */
static const int io_calls[] = {
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(poll), SCMP_SYS(ppoll),	/* virtio-net: is a frame waiting on the TAP? */
};

static void sigsys_handler(int sig, siginfo_t *info, void *uctx)
{
	char msg[128];
	int n;

	(void)sig;
	(void)uctx;
	n = snprintf(msg, sizeof(msg),
		     "hdvm: seccomp: forbidden system call %d refused, stopping\n",
		     info->si_syscall);
	if (write(STDERR_FILENO, msg, n) < 0)
		_exit(HDVM_EXIT_SECCOMP);
	_exit(HDVM_EXIT_SECCOMP);
}

static int allow_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* A call missing on this architecture/libseccomp is not an error. */
		if (calls[i] < 0)
			continue;
		int err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (err < 0)
			return err;	/* libseccomp: -errno */
	}
	return 0;
}

int seccomp_install(enum seccomp_role role)
{
	struct sigaction sa = { .sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx;
	int ret;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	ret = allow_all(ctx, common_calls, ARRAY_SIZE(common_calls));
#ifdef __SANITIZE_ADDRESS__
	if (!ret)
		ret = allow_all(ctx, sanitizer_calls, ARRAY_SIZE(sanitizer_calls));
#endif
	if (ret < 0)
		goto out;
	if (role == SECCOMP_ROLE_MAIN) {
		ret = allow_all(ctx, main_calls, ARRAY_SIZE(main_calls));
	} else if (role == SECCOMP_ROLE_IO) {
		ret = allow_all(ctx, io_calls, ARRAY_SIZE(io_calls));
	} else {
		ret = allow_all(ctx, vcpu_calls, ARRAY_SIZE(vcpu_calls));
		for (size_t i = 0; !ret && i < ARRAY_SIZE(vcpu_ioctls); i++)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					       SCMP_A1(SCMP_CMP_EQ, vcpu_ioctls[i]));
	}
	if (ret < 0)
		goto out;
	ret = seccomp_load(ctx);
	if (ret < 0)
		pr_err("seccomp_load: %s", strerror(-ret));
out:
	seccomp_release(ctx);
	return ret < 0 ? ret : 0;
}
