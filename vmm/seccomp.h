/* SPDX-License-Identifier: MIT */
#ifndef HDVM_SECCOMP_H
#define HDVM_SECCOMP_H

enum seccomp_role {
	SECCOMP_ROLE_MAIN,	/* event loop, control socket, device back ends */
	SECCOMP_ROLE_VCPU,	/* KVM_RUN and device emulation */
	SECCOMP_ROLE_IO,	/* a device's I/O thread: io_uring and eventfds only */
};

/* Exit status of a process killed for a forbidden system call. */
#define HDVM_EXIT_SECCOMP	159

/* Install the allow-list for the calling thread only; 0 or -errno (libseccomp's). */
int seccomp_install(enum seccomp_role role);

#endif
