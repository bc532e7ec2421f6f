/* SPDX-License-Identifier: MIT */
/*
 * The syscalls of the kernel VFIO backend, as a table so unit tests can put a
 * fake kernel behind them.  Every call returns -errno on failure.
 */
#ifndef HDVM_VFIO_SYS_H
#define HDVM_VFIO_SYS_H

#include <stddef.h>
#include <sys/types.h>

struct vfio_sys_ops {
	int (*open)(const char *path, int flags);
	int (*close)(int fd);
	/* arg is a pointer or a plain integer, as the request defines */
	int (*ioctl)(int fd, unsigned long request, unsigned long arg);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	ssize_t (*read)(int fd, void *buf, size_t len);	/* migration data_fd */
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*mmap)(int fd, size_t len, int prot, off_t off, void **addr);
	ssize_t (*readlink)(const char *path, char *buf, size_t len);
};

extern const struct vfio_sys_ops vfio_sys_host;

#endif
