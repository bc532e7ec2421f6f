/* SPDX-License-Identifier: MIT */
/*
 * Work that hdvm's main seccomp filter (vmm/seccomp.c) would refuse, done by
 * a thread made before the filter was installed.  A filter is inherited by
 * the threads a filtered thread creates, so a thread started from the
 * control socket or the checkpoint job cannot fork and exec the etcd helper,
 * kill it, or start vCPU threads (each installs a filter of its own, and the
 * seccomp call is not in the main filter).
 */
#ifndef HDVM_UNFILTERED_H
#define HDVM_UNFILTERED_H

/* Start the thread; before seccomp_install(SECCOMP_ROLE_MAIN).  0 or -errno. */
int unfiltered_start(void);
/* Run fn(arg) on it and wait; without the thread (no seccomp, unit tests) here. */
void unfiltered_run(void (*fn)(void *arg), void *arg);

#endif
