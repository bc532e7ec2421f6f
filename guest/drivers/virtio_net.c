// SPDX-License-Identifier: MIT
/* Poll-mode virtio-net driver, RX interrupts for the idle mode (see virtio_net.h). */
#include "guest/console.h"
#include "guest/drivers/dma.h"
#include "guest/drivers/virtio_net.h"
#include "guest/io.h"
#include "guest/lib.h"

#define WHO			"virtio-net"
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_STATUS	16
#define VIRTIO_NET_S_LINK_UP	1
#define VNET_RX_QUEUE		0
#define VNET_TX_QUEUE		1
#define VNET_RX_MSIX_ENTRY	0

#define VNET_FEATURES	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_NET_F_MAC | \
			 1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_F_RING_EVENT_IDX | \
			 VNET_CTRL_FEATURES)

/*
 * Rings and buffers come from dma_alloc() at open (GPA = VA, identity
 * mapped): virtq_set_transport() clears the rings; buffers are written before they
 * are read.
 */
typedef uint8_t vnet_buf[VNET_BUF_SIZE];
static struct vring_area *rx_ring, *tx_ring;
static vnet_buf *rx_bufs, *tx_bufs;

static int alloc_dma(void)
{
	if (rx_ring)
		return 0;	/* kept across a re-open */
	if (!(rx_ring = dma_alloc(sizeof(*rx_ring), 4096, "the RX ring")) ||
	    !(tx_ring = dma_alloc(sizeof(*tx_ring), 4096, "the TX ring")) ||
	    !(rx_bufs = dma_alloc(VQ_MAX_SIZE * sizeof(vnet_buf), 4096, "RX buffers")) ||
	    !(tx_bufs = dma_alloc(VQ_MAX_SIZE * sizeof(vnet_buf), 4096, "TX buffers"))) {
		rx_ring = NULL;
		return -1;
	}
	return 0;
}

uint64_t virtio_net_tx_buf_addr(uint16_t id)
{
	return (uint64_t)tx_bufs[id % VQ_MAX_SIZE];
}

static void print_mac(const uint8_t *m)
{
	printf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* No MAC feature: a locally administered address from the TSC. */
static void make_mac(uint8_t *mac)
{
	uint64_t t = rdtsc();
	int i;

	mac[0] = 0x02;
	for (i = 1; i < 6; i++, t >>= 8)
		mac[i] = (uint8_t)t;
}

static int fail(struct virtio_net *vn, const char *what)
{
	printf(WHO ": %s\n", what);
	virtio_pci_add_status(&vn->vp, VIRTIO_STATUS_FAILED);
	return -1;
}

static int setup_queue(struct virtio_net *vn, struct virtq *vq)
{
	struct virtio_queue_info qi;
	struct vring_area *r = vq->ring;

	if (virtio_pci_setup_queue(&vn->vp, vq->index, VQ_MAX_SIZE, (uint64_t)r->desc,
				   (uint64_t)&r->avail, (uint64_t)&r->used, &qi, WHO))
		return -1;
	virtq_set_transport(vq, qi.size, qi.notify_addr, qi.doorbell_addr);
	return 0;
}

static void post_rx(struct virtio_net *vn, uint16_t id)
{
	if (!virtq_post(&vn->rx, id, (uint64_t)rx_bufs[id], VNET_BUF_SIZE, VRING_DESC_F_WRITE))
		vn->rx_repost = true;
}

static void print_up(struct virtio_net *vn)
{
	const struct pci_device *pci = vn->vp.pci;

	printf(WHO ": 00:%02x.%x mac ", pci->slot, pci->func);
	print_mac(vn->mac);
	printf(" rx %u tx %u%s%s\n", vn->rx.size, vn->tx.size,
	       virtio_has_feature(&vn->vp, VIRTIO_F_RING_EVENT_IDX) ? " event-idx" : "",
	       vn->tx.doorbell_addr ? " doorbell" : "");
}

int virtio_net_open(struct virtio_net *vn, int n)
{
	const struct pci_device *pci = pci_find(VIRTIO_PCI_VENDOR, VIRTIO_NET_DEVICE_ID, n);
	struct compsc_page *cs = vn->cs;	/* a re-open keeps the shared page */
	uint16_t link;

	memset(vn, 0, sizeof(*vn));
	if (!pci) {
		printf(WHO ": no device (1af4:1041) found\n");
		return -1;
	}
	if (alloc_dma() || virtio_pci_probe(&vn->vp, pci, WHO))
		return -1;
	vn->cs = cs;
	if (vnet_bring_up(vn))
		return -1;
	print_up(vn);
	vnet_compsc_setup(vn);
	if (virtio_has_feature(&vn->vp, VIRTIO_NET_F_STATUS) && vn->vp.device_len >= 8 &&
	    !virtio_pci_read_config(&vn->vp, 6, &link, 2) && !(link & VIRTIO_NET_S_LINK_UP))
		printf(WHO ": link is down\n");
	return 0;
}

/*
 * Reset, the features, the queues, DRIVER_OK, every RX buffer posted, every
 * TX buffer free, the receive filter: what open does, and what a CompSC
 * restore replays on a fresh function.  The RX ring restarts at index 0
 * with every buffer the driver owns posted (hdguest hands frames up inside
 * virtio_net_rx and reposts at once, so it holds none outside the ring):
 * that is CompSC's ring shift, the old head at index 0.
 */
int vnet_bring_up(struct virtio_net *vn)
{
	bool event_idx;
	unsigned i;

	if (virtio_pci_reset(&vn->vp)) {
		printf(WHO ": device did not acknowledge reset\n");
		return -1;
	}
	virtio_pci_add_status(&vn->vp, VIRTIO_STATUS_ACK);
	virtio_pci_add_status(&vn->vp, VIRTIO_STATUS_DRIVER);
	if (virtio_pci_negotiate(&vn->vp, VNET_FEATURES, 1ULL << VIRTIO_F_VERSION_1, WHO))
		return fail(vn, "feature negotiation failed");
	if (virtio_has_feature(&vn->vp, VIRTIO_NET_F_MAC)) {
		if (vn->vp.device_len < 6 || virtio_pci_read_config(&vn->vp, 0, vn->mac, 6))
			return fail(vn, "cannot read the MAC address");
	} else {
		make_mac(vn->mac);
	}

	event_idx = virtio_has_feature(&vn->vp, VIRTIO_F_RING_EVENT_IDX);
	virtq_init(&vn->rx, "rx", VNET_RX_QUEUE, rx_ring, event_idx);
	virtq_init(&vn->tx, "tx", VNET_TX_QUEUE, tx_ring, event_idx);
	if (setup_queue(vn, &vn->rx) || setup_queue(vn, &vn->tx) || virtio_net_ctrl_setup(vn))
		return fail(vn, "queue setup failed");
	virtio_pci_add_status(&vn->vp, VIRTIO_STATUS_DRIVER_OK);
	if (!(virtio_pci_get_status(&vn->vp) & VIRTIO_STATUS_DRIVER_OK))
		return fail(vn, "device did not accept DRIVER_OK");

	for (i = 0; i < vn->rx.size; i++)
		post_rx(vn, i);
	virtq_kick(&vn->rx);
	vn->rx_repost = false;
	/* every TX buffer is free again but one the stack holds between alloc and submit */
	vn->tx_nfree = 0;
	for (i = vn->tx.size; i-- > 0;)
		if (!vn->tx_taken[i])
			vn->tx_free[vn->tx_nfree++] = (uint16_t)i;
	vn->health = VNET_OK;
	virtio_net_ctrl_filter(vn);
	return 0;
}

/* A ring broke: stop using the device and say why, once. */
static void ring_broken(struct virtio_net *vn, const struct virtq *vq)
{
	if (vn->health == VNET_OK)
		printf(WHO ": %s queue: %s, stopping\n", vq->name, vq->error);
	if (vn->health != VNET_GONE)
		vn->health = VNET_NEEDS_RESET;
}

int virtio_net_rx(struct virtio_net *vn, vnet_rx_fn fn, void *ctx, int budget)
{
	uint16_t id;
	uint32_t len;
	int n = 0, r;

	vnet_enter(vn);
	if (vn->health != VNET_OK) {
		vnet_leave(vn);
		return 0;
	}
	while (n < budget) {
		r = virtq_get_used(&vn->rx, &id, &len);
		if (r <= 0) {
			if (r < 0)
				ring_broken(vn, &vn->rx);
			break;
		}
		n++;
		if (len < VNET_HDR_LEN || len > VNET_BUF_SIZE) {
			vn->stats.rx_bad_len++;	/* empty (too-small) or impossible */
		} else {
			vn->stats.rx_packets++;
			/*
			 * CompSC's dummy write: the device's DMA is in no dirty
			 * log; rewriting one byte of the buffer's page (a buffer
			 * never crosses one) puts it in KVM's.
			 */
			if (vn->cs) {
				volatile uint8_t *b = rx_bufs[id];

				b[0] = b[0];
			}
			fn(ctx, rx_bufs[id] + VNET_HDR_LEN, len - VNET_HDR_LEN);
		}
		post_rx(vn, id);
	}
	if (vn->rx_repost && vn->health == VNET_OK) {
		virtq_kick(&vn->rx);
		vn->rx_repost = false;
	}
	vnet_leave(vn);
	return n;
}

void virtio_net_tx_reclaim(struct virtio_net *vn)
{
	uint16_t id;
	uint32_t len;
	int r;

	vnet_enter(vn);
	if (vn->health == VNET_OK) {
		while ((r = virtq_get_used(&vn->tx, &id, &len)) > 0)
			vn->tx_free[vn->tx_nfree++] = id;
		if (r < 0)
			ring_broken(vn, &vn->tx);
	}
	vnet_leave(vn);
}

unsigned virtio_net_tx_room(struct virtio_net *vn)
{
	virtio_net_tx_reclaim(vn);
	return vn->health == VNET_OK ? vn->tx_nfree : 0;
}

uint8_t *virtio_net_tx_alloc(struct virtio_net *vn, uint16_t *id)
{
	if (!vn->tx_nfree)
		virtio_net_tx_reclaim(vn);
	if (!vn->tx_nfree || vn->health != VNET_OK) {
		vn->stats.tx_ring_full++;
		return NULL;
	}
	*id = vn->tx_free[--vn->tx_nfree];
	vn->tx_taken[*id] = true;
	return tx_bufs[*id] + VNET_HDR_LEN;
}

void virtio_net_tx_cancel(struct virtio_net *vn, uint16_t id)
{
	vn->tx_taken[id] = false;
	vn->tx_free[vn->tx_nfree++] = id;
}

void virtio_net_tx_submit(struct virtio_net *vn, uint16_t id, uint32_t len)
{
	uint8_t *buf = tx_bufs[id];

	if (len < VNET_MIN_FRAME) {
		memset(buf + VNET_HDR_LEN + len, 0, VNET_MIN_FRAME - len);
		len = VNET_MIN_FRAME;
	}
	memset(buf, 0, VNET_HDR_LEN);	/* no offloads */
	vnet_enter(vn);
	vn->tx_taken[id] = false;
	if (virtq_post(&vn->tx, id, (uint64_t)buf, VNET_HDR_LEN + len, 0)) {
		virtio_net_tx_cancel(vn, id);
	} else {
		vn->stats.tx_packets++;
		vn->tx_unkicked = true;
	}
	vnet_leave(vn);
}

void virtio_net_tx_flush(struct virtio_net *vn)
{
	vnet_enter(vn);
	if (vn->tx_unkicked && vn->health == VNET_OK) {
		virtq_kick(&vn->tx);
		vn->tx_unkicked = false;
	}
	vnet_leave(vn);
}

enum vnet_health virtio_net_check(struct virtio_net *vn)
{
	uint8_t st;

	if (vn->health == VNET_GONE)
		return VNET_GONE;
	vnet_enter(vn);		/* a moved device is restored before we judge it */
	st = virtio_pci_get_status(&vn->vp);
	vnet_leave(vn);
	if (st == 0xff || !pci_present(vn->vp.pci)) {
		vn->health = VNET_GONE;
		return VNET_GONE;
	}
	if (st & VIRTIO_STATUS_NEEDS_RESET) {
		if (!vn->needs_reset_reported)
			printf(WHO ": device needs reset\n");
		vn->needs_reset_reported = true;
		vn->health = VNET_NEEDS_RESET;
	} else if (!(st & VIRTIO_STATUS_DRIVER_OK) && vn->health == VNET_OK) {
		printf(WHO ": device dropped DRIVER_OK (status 0x%x), stopping\n", st);
		vn->health = VNET_NEEDS_RESET;
	}
	return vn->health;
}

int virtio_net_rx_irq_setup(struct virtio_net *vn, uint8_t apic_id, uint8_t vector,
			    const char **why)
{
	if (vn->health != VNET_OK) {
		*why = "device not usable";
		return -1;
	}
	if (pci_msix_route(vn->vp.pci, VNET_RX_MSIX_ENTRY, apic_id, vector, why))
		return -1;
	if (virtio_pci_set_queue_vector(&vn->vp, VNET_RX_QUEUE, VNET_RX_MSIX_ENTRY)) {
		*why = "device refused the RX queue's MSI-X vector";
		return -1;
	}
	return 0;
}

bool virtio_net_rx_irq_arm(struct virtio_net *vn)
{
	bool armed;

	vnet_enter(vn);
	armed = vn->health == VNET_OK && virtq_irq_enable(&vn->rx);
	vnet_leave(vn);
	return armed;
}

void virtio_net_rx_irq_disarm(struct virtio_net *vn)
{
	vnet_enter(vn);
	virtq_irq_disable(&vn->rx);
	vnet_leave(vn);
}

uint64_t virtio_net_progress(const struct virtio_net *vn)
{
	return (uint64_t)vn->rx.last_used + vn->tx.last_used + vn->stats.tx_packets;
}
