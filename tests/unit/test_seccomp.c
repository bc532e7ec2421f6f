// SPDX-License-Identifier: MIT
/*
 * The seccomp allow-lists hdvm installs: a child process loads the real
 * filter for a role, then makes a call the role must not make.  The call must
 * be refused (process ends with HDVM_EXIT_SECCOMP) while allowed calls work.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/seccomp.h"

/* Run fn in a child under the role's filter; return its exit status or -signal. */
static int run_filtered(enum seccomp_role role, void (*fn)(void))
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (seccomp_install(role) < 0)
			_exit(100);
		fn();
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void make_socket(void) { socket(AF_INET, SOCK_STREAM, 0); }
static void do_execve(void)
{
	char *argv[] = { "/bin/true", NULL };

	execve("/bin/true", argv, NULL);
}
static void do_fork(void) { syscall(SYS_fork); }
static void allowed_calls(void)
{
	char c = 'x';

	if (write(STDOUT_FILENO, &c, 0) < 0 || getpid() <= 0)
		_exit(101);
}
static void non_kvm_ioctl(void)
{
	int n;

	ioctl(STDIN_FILENO, 0x541b /* FIONREAD */, &n);
}

static void test_vcpu_refuses_socket(void **st)
{
	assert_int_equal(run_filtered(SECCOMP_ROLE_VCPU, make_socket), HDVM_EXIT_SECCOMP);
}

static void test_vcpu_refuses_exec_and_fork(void **st)
{
	assert_int_equal(run_filtered(SECCOMP_ROLE_VCPU, do_execve), HDVM_EXIT_SECCOMP);
	assert_int_equal(run_filtered(SECCOMP_ROLE_VCPU, do_fork), HDVM_EXIT_SECCOMP);
}

static void test_vcpu_refuses_foreign_ioctl(void **st)
{
	assert_int_equal(run_filtered(SECCOMP_ROLE_VCPU, non_kvm_ioctl), HDVM_EXIT_SECCOMP);
}

static void test_main_refuses_exec(void **st)
{
	assert_int_equal(run_filtered(SECCOMP_ROLE_MAIN, do_execve), HDVM_EXIT_SECCOMP);
}

static void test_allowed_calls_work(void **st)
{
	assert_int_equal(run_filtered(SECCOMP_ROLE_VCPU, allowed_calls), 0);
	assert_int_equal(run_filtered(SECCOMP_ROLE_MAIN, allowed_calls), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_refuses_socket),
		cmocka_unit_test(test_vcpu_refuses_exec_and_fork),
		cmocka_unit_test(test_vcpu_refuses_foreign_ioctl),
		cmocka_unit_test(test_main_refuses_exec),
		cmocka_unit_test(test_allowed_calls_work),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
