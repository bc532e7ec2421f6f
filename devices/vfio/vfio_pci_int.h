/* SPDX-License-Identifier: MIT */
/* The passthrough device's insides, shared by vfio_pci.c and vfio_pci_mig.c. */
#ifndef HDVM_VFIO_PCI_INT_H
#define HDVM_VFIO_PCI_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_msix.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_compsc.h"

#define MAX_AREAS	8

struct vfio_pci_area {
	uint64_t offset, size;	/* within the BAR */
	void *host;		/* our mapping of the device memory */
	int slot;		/* KVM slot while mapped, else -1 */
};

struct vfio_pci_bar {
	struct vfio_pci *vp;
	int index;
	struct vfio_region region;
	struct vfio_pci_area areas[MAX_AREAS];
	unsigned nr_areas;
	struct vfio_ioeventfd *evs;
	unsigned nr_evs;
	uint64_t addr;		/* guest address while mapped */
	bool mapped;
};

struct vfio_pci {
	struct device dev;	/* first: teardown frees the container */
	struct pci_dev pd;
	struct vm *vm;
	char spec[108];
	bool kernel;
	struct vfio_device *vdev;
	struct vfio_pci_bar bars[PCI_NUM_BARS];
	uint8_t phys_cfg[PCI_CFG_SIZE];	/* the device's config space at realize */
	/* MSI-X */
	struct pci_msix msix;
	uint8_t msix_cap;
	int msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	unsigned nr_vectors;
	int *irq_efd;
	bool *irqfd_on;
	struct loop_watch *hup_watch;
	atomic_bool gone_reported;
	/* migration v2: FEATURE_MIGRATION flags, or the reason there are none */
	uint64_t mig_flags;
	int mig_err;
	/*
	 * RUNNING, RUNNING_P2P (prepared) or STOP (paused); during a migration
	 * also PRE_COPY (source, live), PRE_COPY_P2P and STOP_COPY (source,
	 * paused) and RESUMING (destination, pre-copy data arriving).
	 */
	uint32_t mig_state;
	uint32_t load_from;	/* RESUMING: the state to return to once loaded */
	uint64_t precopy_bytes;	/* read (source) or written (destination) in pre-copy */
	bool dirty_logging;	/* DMA_LOGGING_START succeeded */
	struct vfio_compsc compsc;	/* no FEATURE_MIGRATION: CompSC (vfio_compsc.c) */
	/* re-attach (vfio-user): which socket file we attached to, and the retry timer */
	uint64_t sock_ino;
	int retry_fd;
	struct loop_watch *retry_watch;
	struct vfio_device *retired[4];	/* earlier connections: vCPUs may still hold one */
	uint64_t retired_at[4];		/* now_ns() of each swap */
	unsigned nr_retired;
};

/* False (and said once) when the device's server is gone. */
bool vp_alive(struct vfio_pci *vp);

/* vfio_pci.c: pieces of realize that re-attach redoes */
void vp_announce_removal(struct vfio_pci *vp);
void vp_server_hup(void *opaque, int fd, unsigned revents);
/* The socket watch (POLLIN | POLLRDHUP): the server's requests answered, or its hang-up. */
void vp_server_event(void *opaque, int fd, unsigned revents);
/* A vfio-user device's server may reach guest RAM with DMA_READ/DMA_WRITE. */
void vp_guest_dma(struct vfio_pci *vp, struct vfio_device *d);
#define VP_SERVER_EVENTS	(POLLIN | POLLRDHUP)
void vp_bar_mapped(struct pci_dev *pd, int bar, uint64_t addr, bool mapped);
int vp_bar_map_areas(struct vfio_pci *vp, struct vfio_pci_bar *b);
void vp_bar_teardown(struct vfio_pci_bar *b);
int vp_dma_setup(struct vfio_pci *vp);

/* vfio_pci_reattach.c */
uint64_t vp_socket_ino(const char *path);
void vp_reattach_arm(struct vfio_pci *vp);
void vp_reattach_disarm(struct vfio_pci *vp);

/* vfio_pci_mig.c: pause/resume through the migration FSM, device state */
int vp_pause_prepare(struct device *dev);
int vp_pause(struct device *dev);
int vp_resume(struct device *dev);
int vp_pause_early(struct device *dev);
extern const struct device_mig_ops vfio_pci_mig_ops;

#endif
