// SPDX-License-Identifier: MIT
/*
 * Re-attach of a passthrough device whose server went away: a new socket file
 * at the same path, or the same server running again after a stall.  The
 * device's ids and BAR sizes must match; setup is redone, the function reset
 * and the guest's vectors raised, as after a function-level reset.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/platform.h"
#include "devices/pci/pci_msix.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_pci_int.h"
#include "vmm/loop.h"
#include "vmm/util.h"
#include "vmm/vm.h"

uint64_t vp_socket_ino(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return (((uint64_t)st.st_ino * 0x9e3779b97f4a7c15ull) ^
		((uint64_t)st.st_ctim.tv_sec * 1000000000ull + (uint64_t)st.st_ctim.tv_nsec)) | 1;
}

/* The new server's device must be the one the guest knows: same ids, same BARs. */
static int reattach_check(struct vfio_pci *vp, struct vfio_device *nd)
{
	uint8_t cfg[PCI_STD_HEADER_SIZEOF];
	struct vfio_irq irq;
	int ret;

	ret = nd->ops->region_read(nd, VFIO_PCI_CONFIG_REGION_INDEX, 0, cfg, sizeof(cfg));
	if (ret < 0)
		return ret;
	if (memcmp(cfg + PCI_VENDOR_ID, vp->phys_cfg + PCI_VENDOR_ID, 4) ||
	    memcmp(cfg + PCI_CLASS_REVISION, vp->phys_cfg + PCI_CLASS_REVISION, 4)) {
		pr_err("passthrough device %s: the server came back with another device", vp->spec);
		return -ENODEV;
	}
	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct vfio_region r;

		if (!vp->bars[n].region.size)
			continue;
		ret = nd->ops->get_region_info(nd, n, &r);
		if (ret < 0)
			return ret;
		vfio_region_release(&r);
		if (r.size != vp->bars[n].region.size) {
			pr_err("passthrough device %s: BAR%d changed size", vp->spec, n);
			return -ENODEV;
		}
	}
	if (vp->msix_cap && (nd->ops->get_irq_info(nd, VFIO_PCI_MSIX_IRQ_INDEX, &irq) < 0 ||
			     irq.count < vp->nr_vectors))
		return -ENODEV;
	return 0;
}

/* Regions, mappings and ioeventfds, MSI-X eventfds and DMA on the new connection. */
static int reattach_setup(struct vfio_pci *vp)
{
	uint16_t cmd = pci_cfg_get(&vp->pd, PCI_COMMAND, 2);
	int ret;

	for (int n = 0; n < PCI_NUM_BARS; n++) {
		struct vfio_pci_bar *b = &vp->bars[n];
		bool was_mapped = b->mapped;

		if (!b->region.size && !was_mapped)
			continue;
		vp_bar_teardown(b);
		b->region.mmap_fd = -1;
		ret = vp->vdev->ops->get_region_info(vp->vdev, n, &b->region);
		if (ret < 0)
			return ret;
		ret = vp->vdev->ops->get_io_fds(vp->vdev, n, &b->evs, &b->nr_evs);
		if (ret < 0 && ret != -ENOTSUP && ret != -EOPNOTSUPP && ret != -ENOSYS)
			return ret;
		if (vp_bar_map_areas(vp, b) < 0)
			return -EIO;
		if (was_mapped) {
			b->mapped = false;
			vp_bar_mapped(&vp->pd, n, b->addr, true);
		}
	}
	if (vp->msix_cap) {
		ret = vp->vdev->ops->set_irqs(vp->vdev, VFIO_PCI_MSIX_IRQ_INDEX,
					      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      0, vp->nr_vectors, vp->irq_efd);
		if (ret < 0)
			return ret;
	}
	ret = vp_dma_setup(vp);
	if (ret < 0)
		return ret;
	/* the function starts from reset; decode and bus mastering as the guest left them */
	vp->vdev->ops->reset(vp->vdev);
	return vp->vdev->ops->region_write(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
					   &cmd, 2);
}

/*
 * A vCPU that read vp->vdev before the swap finishes its call on the old,
 * dead connection at the latest one timeout after it (the call it may wait
 * behind): then nobody holds it.  Frees the oldest such; false if none is.
 */
static bool retired_free_oldest(struct vfio_pci *vp)
{
	uint64_t quiet = 2 * (uint64_t)(vp->vm->cfg.vfio_timeout_ms ?: VFIO_USER_DEFAULT_TIMEOUT_MS) *
			 1000000ull + 1000000000ull;

	if (!vp->nr_retired || now_ns() - vp->retired_at[0] < quiet)
		return false;
	vfio_device_close(vp->retired[0]);
	vp->nr_retired--;
	memmove(&vp->retired[0], &vp->retired[1], vp->nr_retired * sizeof(vp->retired[0]));
	memmove(&vp->retired_at[0], &vp->retired_at[1], vp->nr_retired * sizeof(vp->retired_at[0]));
	return true;
}

int vfio_pci_reattach(struct device *dev)
{
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct vfio_device *nd = NULL, *old = vp->vdev;
	int ret;

	if (vp->kernel || !vfio_device_dead(old))
		return -EINVAL;
	if (vp->nr_retired == ARRAY_SIZE(vp->retired) && !retired_free_oldest(vp))
		return -EMFILE;		/* a server that keeps dying: leave it removed */
	ret = vfio_user_open(vp->spec, &nd);
	if (ret < 0)
		return ret;
	if (vp->vm->cfg.vfio_timeout_ms)
		vfio_user_set_timeout(nd, vp->vm->cfg.vfio_timeout_ms);
	vp_guest_dma(vp, nd);
	ret = reattach_check(vp, nd);
	if (ret < 0) {
		vfio_device_close(nd);
		return ret;
	}
	/* the old connection stays allocated: a vCPU may be inside a call on it */
	vp->retired_at[vp->nr_retired] = now_ns();
	vp->retired[vp->nr_retired++] = old;
	__atomic_store_n(&vp->vdev, nd, __ATOMIC_RELEASE);
	ret = reattach_setup(vp);
	if (ret < 0) {
		pr_err("passthrough device %s: re-attach failed: %s", vp->spec, strerror(-ret));
		atomic_store(&nd->dead, true);
		return ret;
	}
	vfio_user_set_stall(nd, 0);	/* set up: the guest's accesses may stall now */
	vp->sock_ino = vp_socket_ino(vp->spec);
	if (vp->vm->loop)
		vp->hup_watch = loop_watch(vp->vm->loop, vfio_user_socket(nd), VP_SERVER_EVENTS,
					   vp_server_event, vp);
	atomic_store(&vp->gone_reported, false);
	pr_info("passthrough device %s: its server is back; re-attached, the guest sees a "
		"function reset", vp->spec);
	vp_announce_removal(vp);	/* the same kick: the driver looks and finds it reset */
	return 0;
}

void vp_reattach_disarm(struct vfio_pci *vp)
{
	if (vp->retry_watch)
		loop_unwatch(vp->vm->loop, vp->retry_watch);
	vp->retry_watch = NULL;
	if (vp->retry_fd >= 0)
		close(vp->retry_fd);
	vp->retry_fd = -1;
}

static void vp_reattach_tick(void *opaque, int fd, unsigned revents)
{
	struct vfio_pci *vp = opaque;
	uint64_t ticks, ino;

	if (read(fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	ino = vp_socket_ino(vp->spec);
	/* the dead server's file is still there: wait for a new one */
	if (!ino || ino == vp->sock_ino)
		return;
	if (vfio_pci_reattach(&vp->dev) == 0)
		vp_reattach_disarm(vp);
	else
		vp->sock_ino = ino;	/* this one failed: wait for the next server */
}

void vp_reattach_arm(struct vfio_pci *vp)
{
	struct itimerspec its = {
		.it_interval = { .tv_nsec = VFIO_REATTACH_MS * 1000000L },
		.it_value = { .tv_nsec = VFIO_REATTACH_MS * 1000000L },
	};

	if (vp->kernel || vp->retry_fd >= 0 || !vp->vm->loop)
		return;
	vp->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (vp->retry_fd < 0 || timerfd_settime(vp->retry_fd, 0, &its, NULL) < 0) {
		pr_debug("%s: no re-attach timer: %s", vp->spec, strerror(errno));
		vp_reattach_disarm(vp);
		return;
	}
	vp->retry_watch = loop_watch(vp->vm->loop, vp->retry_fd, POLLIN, vp_reattach_tick, vp);
}

/* ---- device ops ---- */
