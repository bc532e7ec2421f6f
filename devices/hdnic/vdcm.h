/* SPDX-License-Identifier: MIT */
/*
 * The VDCM (virtual device composition module): the host software, part of
 * the PF driver in a real HD-IOV/Scalable-IOV NIC, that builds an ADI's
 * virtual device on demand.  It takes queue pairs from the pool, wraps them
 * in a software-emulated PCI function (config space, control registers,
 * MSI-X: vdev.c and friends) and serves it over vfio-user at
 * DIR/adi-NAME.sock, the same way a VF is served, so the same guest driver
 * runs on it.  When a VMM connects, the VDCM binds a PASID to the VMM's
 * address space and programs the queue pairs with it, with the doorbell
 * page and with IMS entries; from then on DMA, doorbells and interrupts go
 * between the queue pairs and the guest without the VDCM.
 */
#ifndef HDNIC_VDCM_H
#define HDNIC_VDCM_H

#include <stddef.h>
#include <stdint.h>

struct nic;
struct vdev;

#define VDCM_NAME_MAX	27	/* "adi-" + NAME fits a device id */

/*
 * Compose an ADI of `queues` queue pairs (mac NULL: a default one) without
 * its socket; NULL with err filled on failure.  vdcm_adi_add() also opens
 * the socket and measures the attach time (creation to socket ready).
 */
struct vdev *vdcm_adi_compose(struct nic *nic, const char *name, unsigned queues,
			      const uint8_t *mac, char *err, size_t errlen);
struct vdev *vdcm_adi_add(struct nic *nic, const char *name, unsigned queues,
			  const uint8_t *mac, char *err, size_t errlen);
/* Tear an ADI down: its client is dropped, its queue pairs go back to the pool. */
void vdcm_adi_del(struct nic *nic, struct vdev *vd);

#endif
