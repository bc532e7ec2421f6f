// SPDX-License-Identifier: MIT
#include "vmm/kvm_ops.h"

#include <errno.h>
#include <sys/ioctl.h>

static int host_ioctl(int fd, unsigned long request, void *arg)
{
	int r = ioctl(fd, request, arg);

	return r < 0 ? -errno : r;
}

const struct kvm_ops kvm_host_ops = {
	.ioctl = host_ioctl,
};
