/* SPDX-License-Identifier: MIT */
/*
 * A minimal hdnic for libFuzzer harnesses: a NIC with one VF and one ADI of
 * two queue pairs (multi-queue, control queue) whose clients are
 * "connected" (no sockets), an uplink that writes to /dev/null, and a memfd
 * the fuzzer can DMA-map and fill.  Built with every hdnic source but
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
#include "devices/hdnic/vdcm.h"
#include "devices/hdnic/vdev.h"
#include "vmm/util.h"

#define FUZZ_DEVS	2	/* [0] a VF, [1] an ADI with two queue pairs */
#define FUZZ_MEM_SIZE	(256 * 1024)

static struct nic *fz_nic;
static struct vdev *fz_devs[FUZZ_DEVS];
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

static void fz_connect(struct vdev *vd)
{
	struct vfu_conn *c = &vd->vfu->conn;

	c->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	c->negotiated = false;
	c->peer_max_fds = VFIO_USER_MAX_MSG_FDS;
	c->offer_max_fds = VFIO_USER_MAX_MSG_FDS;
	c->peer_max_xfer = VFIO_USER_MAX_DATA_XFER;
	c->write_multiple = false;
	if (vdev_client_attach(vd))
		abort();
}

static void fz_disconnect(struct vdev *vd)
{
	close(vd->vfu->conn.fd);
	vd->vfu->conn.fd = -1;
	vdev_client_detach(vd);
}

static void fz_setup(void)
{
	struct nic_config cfg = {
		.dir = "/nonexistent", .name = "fuzz", .nr_vfs = 1, .nr_qps = 8, .idle_us = 1,
	};
	uint8_t mac[6] = { 0x02, 0, 0, 0, 0, 1 };
	char err[256];
	struct nic *nic;
	struct qp *qp;

	if (fz_nic)
		return;
	prog_name = "hdnic-fuzz";
	nic = xzalloc(sizeof(*nic));
	if (nic_init(nic, &cfg) || uplink_create(nic, &null_uplink_ops, "null", &nic->uplink))
		abort();
	if (qp_pool_alloc(&nic->qps, 1, NULL, &qp))
		abort();
	fz_devs[0] = vdev_create(nic, VDEV_VF, 0, 0, "vf0", mac, &qp, 1);
	qp->owner = fz_devs[0];
	nic_plug(nic, fz_devs[0]);
	sw_set_static(&nic->sw, mac, 0);
	mac[5] = 2;
	fz_devs[1] = vdcm_adi_compose(nic, "fz", 2, mac, err, sizeof(err));
	if (!fz_devs[1])
		abort();
	for (unsigned i = 0; i < FUZZ_DEVS; i++)
		fz_connect(fz_devs[i]);
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

static inline void fz_w(struct vdev *vd, uint64_t off, uint64_t v, uint32_t len)
{
	vdev_bar0_write(vd, off, &v, len);
}

/*
 * A driver brings the function up: every offered feature, every queue in
 * guest RAM (16 entries each), DRIVER_OK.
 */
static inline void fz_driver_up(struct vdev *vd)
{
	uint64_t f = vdev_features(vd);

	dma_space_map_fd(&vd->as, 0, FUZZ_MEM_SIZE, fz_memfd, 0, DMA_PROT_READ | DMA_PROT_WRITE);
	fz_w(vd, 20, 3, 1);
	fz_w(vd, 8, 0, 4);
	fz_w(vd, 12, f & 0xffffffff, 4);
	fz_w(vd, 8, 1, 4);
	fz_w(vd, 12, f >> 32, 4);
	fz_w(vd, 20, 0x0b, 1);
	for (unsigned q = 0; q < vdev_nr_queues(vd); q++) {
		fz_w(vd, 22, q, 2);
		fz_w(vd, 24, 16, 2);
		fz_w(vd, 26, q + 1, 2);
		fz_w(vd, 32, 0x3000 * q, 8);
		fz_w(vd, 40, 0x3000 * q + 0x1000, 8);
		fz_w(vd, 48, 0x3000 * q + 0x2000, 8);
		fz_w(vd, 28, 1, 2);
	}
	fz_w(vd, 16, 0, 2);
	fz_w(vd, 20, 0x0f, 1);
}

/* Back to a freshly connected state for the next input. */
static void fz_reset(void)
{
	for (unsigned i = 0; i < FUZZ_DEVS; i++) {
		struct vdev *vd = fz_devs[i];

		fz_disconnect(vd);
		fz_connect(vd);
		vd->trusted = false;
		sw_port_set_trusted(&fz_nic->sw, vd->port, false);
		sched_entry_init(&vd->sched, fz_nic->now_ns);
	}
	fz_pass();
	if (ftruncate(fz_memfd, 0) || ftruncate(fz_memfd, FUZZ_MEM_SIZE))
		abort();
}

#endif
