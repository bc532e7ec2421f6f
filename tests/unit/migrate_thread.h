/* SPDX-License-Identifier: MIT */
/*
 * A migration to a destination on a thread of the test, what the migration
 * unit tests share whatever their destination does (migrate_harness.h,
 * test_migrate_precopy.c, test_migrate_tap.c, test_postcopy_vm.c).
 */
#ifndef HDVM_TEST_MIGRATE_THREAD_H
#define HDVM_TEST_MIGRATE_THREAD_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "migration/stream.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"

/*
 * vm_migrate_send() of vm with o over one end of a socketpair of domain
 * while dest(d) runs on its own thread, the other end in *dest_fd (the
 * destination closes it); joined before this returns.  src_fds: the
 * source's end passes fds (mig_io_unix, a unix: URI), else it is a plain
 * stream (mig_io_fd, as tcp:).  vm_migrate_send's result.
 */
static inline int migrate_to_thread(struct vm *vm, int domain, bool src_fds,
				    void *(*dest)(void *), void *d, int *dest_fd,
				    const struct migrate_opts *o, struct migrate_result *res,
				    char *why, size_t len)
{
	struct mig_io io;
	pthread_t t;
	int sv[2], ret;

	assert_int_equal(socketpair(domain, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*dest_fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, dest, d), 0);
	if (src_fds)
		mig_io_unix(&io, sv[0]);
	else
		mig_io_fd(&io, sv[0]);
	ret = vm_migrate_send(vm, &io, o, res, why, len);
	mig_io_close(&io);
	pthread_join(t, NULL);
	return ret;
}

#endif
