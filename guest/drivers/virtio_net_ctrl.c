// SPDX-License-Identifier: MIT
/*
 * The virtio-net control queue, used for one thing: telling the device which
 * frames this guest wants.  Every multicast frame a NIC floods wakes every
 * sleeping guest on it; this guest speaks only IPv4 unicast and broadcast, so
 * it turns promiscuous and all-multicast off and the device drops the rest
 * before they cost a wake-up (see virtio_net.h).  One command at a time,
 * polled to completion: it runs once, at bring-up.
 */
#include "guest/console.h"
#include "guest/drivers/dma.h"
#include "guest/drivers/virtio_net.h"
#include "guest/io.h"
#include "guest/lib.h"

#define WHO			"virtio-net"
#define VNET_CTRL_QUEUE		2	/* without MQ: after RX 0 and TX 1 */
#define VNET_CTRL_SIZE		8
#define CTRL_TIMEOUT_CYCLES	(TSC_ROUGH_HZ)	/* about a second */

#define VIRTIO_NET_CTRL_RX		0
#define VIRTIO_NET_CTRL_RX_PROMISC	0
#define VIRTIO_NET_CTRL_RX_ALLMULTI	1
#define VIRTIO_NET_OK			0

/* A command the device reads (class, command, one state byte) and its ack. */
struct vnet_ctrl_cmd {
	uint8_t cls, cmd, on;
	uint8_t ack __attribute__((aligned(8)));
};

static struct vring_area *ctrl_ring;	/* kept across a re-open, like the data rings */
static struct vnet_ctrl_cmd *ctrl_cmd;

int virtio_net_ctrl_setup(struct virtio_net *vn)
{
	struct virtio_queue_info qi;
	struct vring_area *r;

	if (!virtio_has_feature(&vn->vp, VIRTIO_NET_F_CTRL_VQ))
		return 0;
	if (!ctrl_ring) {
		ctrl_ring = dma_alloc(sizeof(*ctrl_ring), 4096, "the control ring");
		ctrl_cmd = ctrl_ring ? dma_alloc(sizeof(*ctrl_cmd), 64, "control commands") : NULL;
		if (!ctrl_cmd) {
			ctrl_ring = NULL;
			return -1;
		}
	}
	r = ctrl_ring;
	virtq_init(&vn->ctrl, "ctrl", VNET_CTRL_QUEUE, r,
		   virtio_has_feature(&vn->vp, VIRTIO_F_RING_EVENT_IDX));
	if (virtio_pci_setup_queue(&vn->vp, VNET_CTRL_QUEUE, VNET_CTRL_SIZE, (uint64_t)r->desc,
				   (uint64_t)&r->avail, (uint64_t)&r->used, &qi, WHO))
		return -1;
	virtq_set_transport(&vn->ctrl, qi.size, qi.notify_addr, qi.doorbell_addr);
	return 0;
}

/* One RX-mode command: the device's ack, or NULL with *why when it never came. */
static int ctrl_rx_mode(struct virtio_net *vn, uint8_t cmd, bool on, const char **why)
{
	volatile struct vnet_ctrl_cmd *c = ctrl_cmd;
	uint64_t start;
	uint16_t id;
	uint32_t len;
	int r;

	c->cls = VIRTIO_NET_CTRL_RX;
	c->cmd = cmd;
	c->on = on;
	c->ack = 0xff;
	if (virtq_post_out_in(&vn->ctrl, 0, (uint64_t)ctrl_cmd, 3, (uint64_t)&ctrl_cmd->ack, 1)) {
		*why = vn->ctrl.error ? vn->ctrl.error : "no free descriptor";
		return -1;
	}
	virtq_kick_notify(&vn->ctrl);
	start = rdtsc();
	while (!(r = virtq_get_used(&vn->ctrl, &id, &len))) {
		if (rdtsc() - start > CTRL_TIMEOUT_CYCLES) {
			*why = "no answer";
			return -1;
		}
		cpu_relax();
	}
	if (r < 0) {
		*why = vn->ctrl.error;
		return -1;
	}
	return c->ack;
}

void virtio_net_ctrl_filter(struct virtio_net *vn)
{
	const char *why = NULL;
	int promisc, allmulti = -1;

	if (!virtio_has_feature(&vn->vp, VIRTIO_NET_F_CTRL_RX))
		return;
	promisc = ctrl_rx_mode(vn, VIRTIO_NET_CTRL_RX_PROMISC, false, &why);
	if (promisc >= 0)
		allmulti = ctrl_rx_mode(vn, VIRTIO_NET_CTRL_RX_ALLMULTI, false, &why);
	if (why)
		printf(WHO ": control queue: %s, receiving everything\n", why);
	else if (promisc != VIRTIO_NET_OK || allmulti != VIRTIO_NET_OK)
		printf(WHO ": rx filter refused (acks %d %d), receiving everything\n", promisc,
		       allmulti);
	else
		printf(WHO ": rx filter: promisc off allmulti off\n");
}
