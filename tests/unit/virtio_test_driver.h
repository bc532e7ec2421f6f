/* SPDX-License-Identifier: MIT */
/*
 * A VM without KVM (buses, PCI, guarded fake RAM) holding one virtio-net
 * device, and a small virtio driver that programs it the way a guest does:
 * config cycles through the PCI bus, BAR0 accesses through the MMIO bus,
 * rings in guest RAM.  Interrupts are observed on the device's MSI-X
 * eventfds; kicks are notify writes that reach hdvm (no ioeventfd here).
 */
#ifndef HDVM_VIRTIO_TEST_DRIVER_H
#define HDVM_VIRTIO_TEST_DRIVER_H

#include <errno.h>
#include <poll.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/virtio/virtio_net_int.h"
#include "vmm/vm.h"
#include "virtio_test_mem.h"

#define TD_QSIZE	16
#define TD_BUF_LEN	2048
#define TD_RING(q)	(0x10000ull + (q) * 0x10000ull)	/* desc; avail +0x1000, used +0x2000 */
#define TD_BUF(q, i)	(0x100000ull + (q) * 0x100000ull + (i) * TD_BUF_LEN)
#define TD_FEATURES	(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC | \
			 1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_RING_F_EVENT_IDX)

struct td_queue {
	uint16_t size;
	uint16_t avail_idx;
	uint16_t next_desc;
	uint16_t used_seen;
};

struct tdrv {
	struct vm vm;
	struct test_mem mem;
	struct device *dev;
	struct virtio_net *n;
	uint8_t devfn;
	uint64_t bar;
	uint8_t msix_cap;
	struct td_queue q[2];
};

static inline uint32_t td_cfg_read(struct tdrv *t, uint32_t off, unsigned len)
{
	uint32_t v = 0;

	pci_bus_cfg_access(t->vm.pci, t->devfn, off, &v, len, false);
	return v;
}

static inline void td_cfg_write(struct tdrv *t, uint32_t off, uint32_t v, unsigned len)
{
	pci_bus_cfg_access(t->vm.pci, t->devfn, off, &v, len, true);
}

static inline uint64_t td_read(struct tdrv *t, uint32_t off, unsigned len)
{
	uint64_t v = 0;

	iobus_access(&t->vm.mmio, t->bar + off, &v, len, false);
	return v;
}

static inline void td_write(struct tdrv *t, uint32_t off, uint64_t v, unsigned len)
{
	iobus_access(&t->vm.mmio, t->bar + off, &v, len, true);
}

static inline uint8_t td_status(struct tdrv *t)
{
	return (uint8_t)td_read(t, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline uint8_t td_find_cap(struct tdrv *t, uint8_t id, uint8_t from)
{
	uint8_t pos = from ? td_cfg_read(t, from + 1, 1) : td_cfg_read(t, PCI_CAPABILITY_LIST, 1);

	for (int i = 0; pos && i < 48; i++, pos = td_cfg_read(t, pos + 1, 1))
		if (td_cfg_read(t, pos, 1) == id)
			return pos;
	return 0;
}

static inline struct vring_desc *td_desc(struct tdrv *t, int q)
{
	return test_gpa(&t->mem, TD_RING(q));
}

static inline struct vring_avail *td_avail(struct tdrv *t, int q)
{
	return test_gpa(&t->mem, TD_RING(q) + 0x1000);
}

static inline struct vring_used *td_used(struct tdrv *t, int q)
{
	return test_gpa(&t->mem, TD_RING(q) + 0x2000);
}

/* A VM with buses and fake RAM, the PCI host bridge and one virtio-net device. */
static inline void td_create(struct tdrv *t, const char *mac)
{
	struct net_opts o;
	char arg[64];

	memset(t, 0, sizeof(*t));
	t->vm.kvm_fd = t->vm.vm_fd = t->vm.exit_efd = -1;
	snprintf(t->vm.cfg.name, sizeof(t->vm.cfg.name), "unit");
	t->vm.cfg.seccomp = true;
	iobus_init(&t->vm.pio, "pio");
	iobus_init(&t->vm.mmio, "mmio");
	if (test_mem_init(&t->mem, 32ull << 20, 0) < 0)
		abort();
	t->vm.mem = t->mem.gm;
	t->vm.pci = pci_bus_create(&t->vm);
	if (t->vm.devices->ops->realize(t->vm.devices, &t->vm) < 0)
		abort();
	snprintf(arg, sizeof(arg), "tap=hdvt0%s%s", mac ? ",mac=" : "", mac ? mac : "");
	if (net_opts_parse(arg, &o) < 0)
		abort();
	if (virtio_net_create(&t->vm, &o, 0, &t->dev) < 0)
		abort();
	t->n = container_of(t->dev, struct virtio_net, dev);
	t->devfn = t->n->vp.pd.devfn;
	t->bar = td_cfg_read(t, PCI_BASE_ADDRESS_0, 4) & ~0xfull;
	t->msix_cap = td_find_cap(t, PCI_CAP_ID_MSIX, 0);
}

static inline void td_destroy(struct tdrv *t)
{
	devices_unrealize(&t->vm);
	while (t->vm.devices) {
		struct device *d = t->vm.devices;

		t->vm.devices = d->next;
		free(d);
	}
	iobus_destroy(&t->vm.pio);
	iobus_destroy(&t->vm.mmio);
	test_mem_destroy(&t->mem);
}

/* Vectors: 0 config, 1 RX, 2 TX (data = vector number). */
static inline void td_enable_msix(struct tdrv *t)
{
	for (unsigned v = 0; v < 3; v++) {
		uint32_t off = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v;

		td_write(t, off, 0xfee00000u, 4);
		td_write(t, off + 4, 0, 4);
		td_write(t, off + 8, v, 4);
		td_write(t, off + 12, 0, 4);
	}
	td_cfg_write(t, t->msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

/* How many times vector v fired since the last call. */
static inline uint64_t td_irqs(struct tdrv *t, unsigned v)
{
	uint64_t n = 0;

	if (read(t->n->vp.irq_fd[v], &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/*
 * Interrupts on vector v, waiting up to ms for the first: the I/O thread
 * publishes the used index before it signals, so a test that saw the index
 * may look before the signal is there.
 */
static inline uint64_t td_wait_irqs(struct tdrv *t, unsigned v, unsigned ms)
{
	struct pollfd p = { .fd = t->n->vp.irq_fd[v], .events = POLLIN };

	poll(&p, 1, (int)ms);
	return td_irqs(t, v);
}

static inline void td_setup_queue(struct tdrv *t, int q, uint16_t size, uint16_t vector)
{
	memset(test_gpa(&t->mem, TD_RING(q)), 0, 0x3000);
	t->q[q] = (struct td_queue){ .size = size };
	td_write(t, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	td_write(t, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	td_write(t, VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
	td_write(t, VIRTIO_PCI_COMMON_Q_DESCLO, TD_RING(q), 8);
	td_write(t, VIRTIO_PCI_COMMON_Q_AVAILLO, TD_RING(q) + 0x1000, 8);
	td_write(t, VIRTIO_PCI_COMMON_Q_USEDLO, TD_RING(q) + 0x2000, 8);
	td_write(t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

/* Reset, negotiate `features`, both queues (qsize) on vectors 1/2, DRIVER_OK. */
static inline uint8_t td_init_sized(struct tdrv *t, uint64_t features, uint16_t qsize)
{
	td_write(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	td_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	td_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER, 1);
	td_write(t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	td_write(t, VIRTIO_PCI_COMMON_GF, (uint32_t)features, 4);
	td_write(t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	td_write(t, VIRTIO_PCI_COMMON_GF, (uint32_t)(features >> 32), 4);
	td_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_FEATURES_OK, 1);
	if (!(td_status(t) & VIRTIO_CONFIG_S_FEATURES_OK))
		return td_status(t);
	td_write(t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	td_setup_queue(t, VIRTIO_NET_RXQ, qsize, 1);
	td_setup_queue(t, VIRTIO_NET_TXQ, qsize, 2);
	td_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_DRIVER_OK, 1);
	return td_status(t);
}

static inline uint8_t td_init(struct tdrv *t, uint64_t features)
{
	return td_init_sized(t, features, TD_QSIZE);
}

static inline void td_kick(struct tdrv *t, int q)
{
	td_write(t, VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULT, q, 2);
}

static inline void td_offer(struct tdrv *t, int q, uint16_t head)
{
	struct td_queue *tq = &t->q[q];

	td_avail(t, q)->ring[tq->avail_idx % tq->size] = head;
	smp_wmb();
	td_avail(t, q)->idx = ++tq->avail_idx;
}

/* One frame in two descriptors: header + 20 bytes, then the rest. */
static inline void td_send(struct tdrv *t, const void *frame, size_t len, bool kick)
{
	struct td_queue *tq = &t->q[VIRTIO_NET_TXQ];
	uint16_t d = tq->next_desc % tq->size, d2 = (d + 1) % tq->size;
	uint8_t *buf = test_gpa(&t->mem, TD_BUF(1, d));
	struct vring_desc *desc = td_desc(t, VIRTIO_NET_TXQ);

	/* junk in the header: no offload was negotiated, the device must not pass it on */
	memset(buf, 0x5a, NET_TAP_HDR_LEN);
	memcpy(buf + NET_TAP_HDR_LEN, frame, len);
	desc[d] = (struct vring_desc){ TD_BUF(1, d), NET_TAP_HDR_LEN + 20, VRING_DESC_F_NEXT, d2 };
	desc[d2] = (struct vring_desc){ TD_BUF(1, d) + NET_TAP_HDR_LEN + 20, (uint32_t)len - 20, 0, 0 };
	tq->next_desc += 2;
	td_offer(t, VIRTIO_NET_TXQ, d);
	if (kick)
		td_kick(t, VIRTIO_NET_TXQ);
}

static inline void td_post_rx(struct tdrv *t, unsigned count, uint32_t len)
{
	struct td_queue *tq = &t->q[VIRTIO_NET_RXQ];

	for (unsigned i = 0; i < count; i++) {
		uint16_t d = tq->next_desc++ % tq->size;

		td_desc(t, VIRTIO_NET_RXQ)[d] = (struct vring_desc){ TD_BUF(0, d), len,
								     VRING_DESC_F_WRITE, 0 };
		td_offer(t, VIRTIO_NET_RXQ, d);
	}
}

static inline uint64_t td_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* Wait up to ms for queue q's used index to reach idx. */
static inline bool td_wait_used(struct tdrv *t, int q, uint16_t idx, unsigned ms)
{
	uint64_t end = td_now_ms() + ms;

	while ((int16_t)(__atomic_load_n(&td_used(t, q)->idx, __ATOMIC_ACQUIRE) - idx) < 0) {
		if (td_now_ms() > end)
			return false;
		usleep(1000);
	}
	return true;
}

#endif
