/* SPDX-License-Identifier: MIT */
/*
 * A minimal hdnic for libFuzzer harnesses: a NIC with two VFs whose clients
 * are "connected" (no sockets), an uplink that writes to /dev/null, and a
 * memfd the fuzzer can DMA-map and fill.  Built with every hdnic source but
 * main.c (see `make fuzz` in devices/hdnic/hdnic.mk).
 */
#ifndef HDNIC_FUZZ_COMMON_H
#define HDNIC_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/hdnic/nic.h"
#include "devices/hdnic/uplink.h"
#include "devices/hdnic/vf.h"
#include "vmm/util.h"

#define FUZZ_VFS	2
#define FUZZ_MEM_SIZE	(256 * 1024)

static struct nic *fz_nic;
static int fz_memfd = -1, fz_eventfd = -1;

static int null_open(struct uplink *up)
{
	up->fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	return up->fd < 0 ? -errno : 0;
}

static void null_close(struct uplink *up)
{
	close(up->fd);
	up->fd = -1;
}

static const struct uplink_ops null_uplink_ops = {
	.kind = "null", .open = null_open, .close = null_close,
};

static void fz_connect(struct vf *vf)
{
	struct vfu_conn *c = &vf->conn;

	c->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	c->vf = vf;
	c->negotiated = false;
	c->peer_max_fds = VFIO_USER_MAX_MSG_FDS;
	c->offer_max_fds = VFIO_USER_MAX_MSG_FDS;
	c->peer_max_xfer = VFIO_USER_MAX_DATA_XFER;
	c->write_multiple = false;
	if (vf_client_attach(vf))
		abort();
}

static void fz_disconnect(struct vf *vf)
{
	close(vf->conn.fd);
	vf->conn.fd = -1;
	vf_client_detach(vf);
}

static void fz_setup(void)
{
	struct nic *nic;

	if (fz_nic)
		return;
	prog_name = "hdnic-fuzz";
	nic = xzalloc(sizeof(*nic));
	snprintf(nic->name, sizeof(nic->name), "fuzz");
	snprintf(nic->dir, sizeof(nic->dir), "/nonexistent");
	nic->nr_vfs = FUZZ_VFS;
	nic->idle_ns = 1000;
	if (loop_init(&nic->loop, 256) || sw_init(&nic->sw, 64) || dma_fault_guard_install())
		abort();
	nic->vfs = xzalloc(sizeof(*nic->vfs) * (FUZZ_VFS + 1));
	nic->active = xzalloc(sizeof(*nic->active) * (FUZZ_VFS + 1));
	nic->irq_list = xzalloc(sizeof(*nic->irq_list) * (FUZZ_VFS + 1));
	nic->poll_snap = xzalloc(sizeof(*nic->poll_snap) * (FUZZ_VFS + 1));
	if (uplink_create(nic, &null_uplink_ops, "null", &nic->uplink))
		abort();
	for (unsigned i = 0; i < FUZZ_VFS; i++) {
		uint8_t mac[6] = { 0x02, 0, 0, 0, 0, (uint8_t)(i + 1) };
		struct vf *vf = vf_create(nic, i, mac);

		nic->vfs[i] = vf;
		sw_set_static(&nic->sw, mac, i);
		for (unsigned q = 0; q < HDNIC_NUM_QUEUES; q++)
			vf->kick[q].fd = eventfd(0, EFD_CLOEXEC);
		fz_connect(vf);
	}
	fz_memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
	fz_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fz_memfd < 0 || fz_eventfd < 0 || ftruncate(fz_memfd, FUZZ_MEM_SIZE))
		abort();
	fz_nic = nic;
}

/* End of a loop pass: what nic_run() does after reaping completions. */
static void fz_pass(void)
{
	struct nic *nic = fz_nic;
	uint64_t v;

	loop_run_once(&nic->loop, false);
	nic_pass(nic);
	loop_submit(&nic->loop);
	while (read(fz_eventfd, &v, sizeof(v)) == sizeof(v))
		;
}

/* Back to a freshly connected state for the next input. */
static void fz_reset(void)
{
	for (unsigned i = 0; i < FUZZ_VFS; i++) {
		fz_disconnect(fz_nic->vfs[i]);
		fz_connect(fz_nic->vfs[i]);
	}
	fz_pass();
	if (ftruncate(fz_memfd, 0) || ftruncate(fz_memfd, FUZZ_MEM_SIZE))
		abort();
}

#endif
