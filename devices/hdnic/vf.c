// SPDX-License-Identifier: MIT
/*
 * VF lifecycle: the device ops, what a client connection brings and takes
 * away (doorbell memory, DMA maps, interrupt eventfds) and interrupts.
 */
#include "devices/hdnic/vf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#include "devices/hdnic/nic.h"
#include "vmm/util.h"

#define DB_MEMFD_SIZE	(HDNIC_BAR0_DOORBELL_OFF + HDNIC_PAGE_SIZE)

static void vf_egress(void *ctx, const uint8_t *frame, size_t len)
{
	struct vf *vf = ctx;

	nic_forward_from_vf(vf->nic, vf, frame, (uint32_t)len);
}

static void kick_arm(struct vf_kick *k);

/* Each ioeventfd has a read outstanding on the ring; its completion is the kick. */
static void kick_event(struct loop_handler *h, int res, uint32_t flags)
{
	struct vf_kick *k = container_of(h, struct vf_kick, h);

	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		pr_err("%s: ioeventfd read: %s", k->vf->dev.id, strerror(-res));
		return;
	}
	if (res > 0)
		vf_kick(k->vf, (unsigned)(k - k->vf->kick));
	kick_arm(k);
}

static void kick_arm(struct vf_kick *k)
{
	struct io_uring_sqe *sqe = loop_sqe(&k->vf->nic->loop, &k->h);

	/* A read, not a poll: the client holds this fd and may clear O_NONBLOCK. */
	io_uring_prep_read(sqe, k->fd, &k->buf, sizeof(k->buf), 0);
}

struct vf *vf_create(struct nic *nic, unsigned index, const uint8_t mac[6])
{
	struct vf *vf = xzalloc(sizeof(*vf));

	vf->dev.ops = &vf_dev_ops;
	snprintf(vf->dev.id, sizeof(vf->dev.id), "vf%u", index);
	vf->nic = nic;
	vf->index = index;
	memcpy(vf->mac, mac, 6);
	vf->listen_fd = -1;
	vf->conn.fd = -1;
	vf->conn.vf = vf;
	vf->db_fd = -1;
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		vf->kick[i].fd = -1;
		vf->kick[i].vf = vf;
	}
	for (unsigned i = 0; i < HDNIC_MSIX_VECTORS; i++)
		vf->irq_fd[i] = -1;
	dma_space_init(&vf->dma, HDNIC_VFU_MAX_DMA_MAPS);
	holdq_init(&vf->holdq, vf_egress, vf);
	vf_function_reset(vf);
	return vf;
}

void vf_destroy(struct vf *vf)
{
	if (!vf)
		return;
	if (vf->dev.realized)
		vf->dev.ops->unrealize(&vf->dev);
	free(vf);
}

/* ---- client attach / detach ---- */

static int doorbell_create(struct vf *vf)
{
	char name[48];
	void *p;
	int fd;

	snprintf(name, sizeof(name), "hdnic-%s-doorbell", vf->dev.id);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		pr_err("%s: memfd_create: %s", vf->dev.id, strerror(errno));
		return -errno;
	}
	/* Sealed so a client cannot shrink it under our mapping. */
	if (ftruncate(fd, DB_MEMFD_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		pr_err("%s: doorbell memfd: %s", vf->dev.id, strerror(errno));
		close(fd);
		return -errno;
	}
	p = mmap(NULL, HDNIC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 HDNIC_BAR0_DOORBELL_OFF);
	if (p == MAP_FAILED) {
		pr_err("%s: doorbell mmap: %s", vf->dev.id, strerror(errno));
		close(fd);
		return -errno;
	}
	vf->db_fd = fd;
	vf->db = p;
	return 0;
}

static void doorbell_destroy(struct vf *vf)
{
	if (vf->db)
		munmap((void *)vf->db, HDNIC_PAGE_SIZE);
	if (vf->db_fd >= 0)
		close(vf->db_fd);
	vf->db = NULL;
	vf->db_fd = -1;
}

int vf_client_attach(struct vf *vf)
{
	/* A fresh doorbell page per client: an old VM can't poke the new one. */
	int err = doorbell_create(vf);

	if (err)
		return err;
	vf_function_reset(vf);
	return 0;
}

void vf_client_detach(struct vf *vf)
{
	vf_stop_polling(vf);
	vf_clear_irq_fds(vf);
	dma_space_unmap_all(&vf->dma);
	vf_function_reset(vf);
	doorbell_destroy(vf);
	holdq_discard(&vf->holdq);
}

/* ---- reset ---- */

void vf_virtio_reset(struct vf *vf)
{
	struct virtio_net_state *vn = &vf->vn;

	vf_stop_polling(vf);
	memset(vn, 0, sizeof(*vn));
	vn->msix_config = VIRTQ_NO_VECTOR;
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++)
		virtq_reset(&vn->vq[i]);
	vf->irq_want = 0;
	if (vf->db)
		memset((void *)vf->db, 0, HDNIC_PAGE_SIZE);
	vf_update_running(vf);
}

void vf_function_reset(struct vf *vf)
{
	vf_pci_init(vf);
	for (unsigned i = 0; i < HDNIC_MSIX_VECTORS; i++) {
		vf->msix[i] = (struct vf_msix_entry){ .ctrl = 1 };	/* masked */
		vf->irq_masked[i] = false;
	}
	vf->msix_pba = 0;
	vf_virtio_reset(vf);
}

void vf_needs_reset(struct vf *vf, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (vf->vn.status & VST_NEEDS_RESET)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_err("%s: %s: device needs reset", vf->dev.id, why);
	vf->stats.needs_reset++;
	vf->vn.status |= VST_NEEDS_RESET;
	vf_update_running(vf);
	vf_raise_config(vf);
}

void vf_set_mac(struct vf *vf, const uint8_t mac[6])
{
	memcpy(vf->mac, mac, 6);
	vf_raise_config(vf);
}

const char *vf_state_name(const struct vf *vf)
{
	uint8_t st = vf->vn.status;

	if (vf->conn.fd < 0)
		return "no-client";
	if (st & VST_NEEDS_RESET)
		return "needs-reset";
	if (st & VST_FAILED)
		return "failed";
	if (vf->dev.paused)
		return "paused";
	if (st & VST_DRIVER_OK)
		return "running";
	if (st)
		return "initialising";
	return "reset";
}

/* ---- interrupts ---- */

void vf_raise(struct vf *vf, uint16_t vector)
{
	if (vector >= HDNIC_MSIX_VECTORS)
		return;		/* VIRTIO_MSI_NO_VECTOR: the driver polls */
	vf->irq_want |= 1u << vector;
	nic_irq_pending(vf->nic, vf);
}

void vf_raise_config(struct vf *vf)
{
	vf->vn.isr |= VIRTIO_ISR_CONFIG;
	vf->vn.config_generation++;
	vf_raise(vf, vf->vn.msix_config);
}

static const uint64_t irq_one = 1;

void vf_flush_irqs(struct vf *vf)
{
	uint8_t want = vf->irq_want;

	vf->irq_want = 0;
	for (unsigned v = 0; want; v++, want >>= 1) {
		struct io_uring_sqe *sqe;

		if (!(want & 1))
			continue;
		if (vf->irq_masked[v]) {
			vf->msix_pba |= 1u << v;
			continue;
		}
		if (vf->irq_fd[v] < 0)
			continue;
		/*
		 * Through the ring: an eventfd whose counter the client
		 * pushed to the limit would block a plain write().
		 */
		sqe = loop_sqe(&vf->nic->loop, NULL);
		io_uring_prep_write(sqe, vf->irq_fd[v], &irq_one, sizeof(irq_one), 0);
		vf->stats.irqs++;
	}
}

static bool fd_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:[eventfd]");
}

int vf_set_irq_fds(struct vf *vf, unsigned start, unsigned count, const int *fds)
{
	if (start + count > HDNIC_MSIX_VECTORS)
		return -EINVAL;
	for (unsigned i = 0; fds && i < count; i++)
		if (!fd_is_eventfd(fds[i]))
			return -EINVAL;
	for (unsigned i = 0; i < count; i++) {
		unsigned v = start + i;

		if (vf->irq_fd[v] >= 0)
			close(vf->irq_fd[v]);
		vf->irq_fd[v] = fds ? fds[i] : -1;
	}
	return 0;
}

void vf_clear_irq_fds(struct vf *vf)
{
	for (unsigned v = 0; v < HDNIC_MSIX_VECTORS; v++) {
		if (vf->irq_fd[v] >= 0)
			close(vf->irq_fd[v]);
		vf->irq_fd[v] = -1;
	}
}

/* ---- device ops ---- */

static int vf_realize(struct hdnic_dev *dev, struct nic *nic)
{
	struct vf *vf = container_of(dev, struct vf, dev);
	char path[PATH_MAX];
	int err;

	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		struct vf_kick *k = &vf->kick[i];

		k->fd = eventfd(0, EFD_CLOEXEC);
		if (k->fd < 0) {
			pr_err("%s: eventfd: %s", dev->id, strerror(errno));
			return -errno;
		}
		loop_handler_init(&k->h, kick_event);
		kick_arm(k);
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/vf%u.sock", nic->dir, vf->index) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	err = vfu_listen(vf, path);
	if (err)
		return err;
	dev->realized = true;
	return 0;
}

static void vf_unrealize(struct hdnic_dev *dev)
{
	struct vf *vf = container_of(dev, struct vf, dev);

	vfu_unlisten(vf);
	for (unsigned i = 0; i < HDNIC_NUM_QUEUES; i++) {
		if (vf->kick[i].fd >= 0) {
			loop_unwatch(&vf->nic->loop, &vf->kick[i].h);
			close(vf->kick[i].fd);
			vf->kick[i].fd = -1;
		}
	}
	vf_clear_irq_fds(vf);
	dma_space_destroy(&vf->dma);
	doorbell_destroy(vf);
	holdq_destroy(&vf->holdq);
	dev->realized = false;
}

static void vf_reset_op(struct hdnic_dev *dev)
{
	vf_function_reset(container_of(dev, struct vf, dev));
}

static void vf_pause(struct hdnic_dev *dev)
{
	struct vf *vf = container_of(dev, struct vf, dev);

	dev->paused = true;
	vf_update_running(vf);
}

static void vf_resume(struct hdnic_dev *dev)
{
	struct vf *vf = container_of(dev, struct vf, dev);

	dev->paused = false;
	vf_update_running(vf);
}

static int vf_save_op(struct hdnic_dev *dev, struct state_buf *sb)
{
	return vf_save(container_of(dev, struct vf, dev), sb);
}

static int vf_load_op(struct hdnic_dev *dev, struct state_buf *sb)
{
	return vf_load(container_of(dev, struct vf, dev), sb);
}

const struct hdnic_dev_ops vf_dev_ops = {
	.type = "virtio-net-vf",
	.realize = vf_realize,
	.reset = vf_reset_op,
	.pause = vf_pause,
	.resume = vf_resume,
	.save = vf_save_op,
	.load = vf_load_op,
	.unrealize = vf_unrealize,
};
