// SPDX-License-Identifier: MIT
/*
 * Fail points (vmm/failpoint.c): a point armed from the environment kills
 * the process with SIGKILL exactly at that point of that epoch and nowhere
 * else; malformed values and unknown names are refused at start.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/failpoint.h"

static const char *const known[] = { "after-commit", "release", NULL };

/* Run the points of epochs 1..5 in a child; how it ended. */
static int run_child(const char *env)
{
	int status;
	pid_t pid = fork();

	if (!pid) {
		setenv("TEST_FAILPOINT", env, 1);
		if (failpoint_init("TEST_FAILPOINT", known))
			_exit(2);
		for (uint64_t e = 1; e <= 5; e++) {
			failpoint("after-commit", e);
			failpoint("release", e);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_armed_point_kills_at_its_epoch_only(void **st)
{
	int status = run_child("release:3");

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	status = run_child("release:9");		/* never reached */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	status = run_child("");				/* off */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	status = run_child("release:9,after-commit:2");
	assert_true(WIFSIGNALED(status));
}

static void test_bad_values_are_refused(void **st)
{
	static const char *const bad[] = { "nope:1", "release", "release:x", "release:-1",
					   ":3", "release:9,," };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int status = run_child(bad[i]);

		if (i == 5) {	/* empty items are skipped by strtok: still valid */
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			continue;
		}
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 2);
	}
}

static void test_arm_and_clear(void **st)
{
	failpoint_clear();
	for (int i = 0; i < FAILPOINT_MAX; i++)
		assert_int_equal(failpoint_arm("release", 100 + i), 0);
	assert_int_equal(failpoint_arm("release", 1), -ENOSPC);
	failpoint_clear();
	failpoint("release", 100);	/* cleared: nothing happens */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_armed_point_kills_at_its_epoch_only),
		cmocka_unit_test(test_bad_values_are_refused),
		cmocka_unit_test(test_arm_and_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
