/* SPDX-License-Identifier: MIT */
/*
 * The seam between hdvm and /dev/kvm.  Every KVM ioctl that memory slots and
 * the vCPU/VM state code issue goes through kvm_ops, so a unit test drives that
 * code against a fake KVM (this machine has no /dev/kvm).  Same idea as
 * vfio_sys_ops in devices/vfio/vfio_sys.h.
 */
#ifndef HDVM_KVM_OPS_H
#define HDVM_KVM_OPS_H

struct kvm_ops {
	/* An ioctl on a KVM fd: the (non-negative) result, or -errno. */
	int (*ioctl)(int fd, unsigned long request, void *arg);
};

extern const struct kvm_ops kvm_host_ops;

#endif
