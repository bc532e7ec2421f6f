// SPDX-License-Identifier: MIT
/*
 * hostile,kind=K: for the isolation and robustness tests.  Brings the
 * device up like any network app, then posts ONE deliberately bad TX chain
 * of kind K and kicks (doorbell and notify register both), prints
 * "hostile: posted K", watches the device status until it shows
 * NEEDS_RESET ("virtio-net: device needs reset"; at most ~10 s) and then
 * idles with the vCPU halted, answering nothing.
 */
#include "devices/platform.h"
#include "guest/app.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/drivers/virtio_net.h"
#include "guest/io.h"
#include "guest/lib.h"
#include "guest/net/net.h"

#define HOSTILE_FRAME_LEN	(VNET_HDR_LEN + 64)
#define HOSTILE_OOB_ADDR	0x7ff000000000ULL	/* far outside guest RAM */
#define HOSTILE_HUGE_LEN	0xfffff000u		/* runs past the end of RAM */
#define HOSTILE_POLL_CYCLES	(TSC_ROUGH_HZ / 100)	/* status read every ~10 ms */
#define HOSTILE_WAIT_CYCLES	(10 * TSC_ROUGH_HZ)

struct hostile_kind {
	const char *name;
	/* Write the bad chain into the TX ring (descriptor id is ours to use). */
	void (*post)(struct virtio_net *vn, uint16_t id);
};

static void put_desc(struct virtq *vq, uint16_t id, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	*virtq_raw_desc(vq, id) = (struct vring_desc){
		.addr = addr, .len = len, .flags = flags, .next = next,
	};
}

static void post_oob(struct virtio_net *vn, uint16_t id)
{
	put_desc(&vn->tx, id, HOSTILE_OOB_ADDR, HOSTILE_FRAME_LEN, 0, 0);
	virtq_raw_avail_put(&vn->tx, id);
}

static void post_len(struct virtio_net *vn, uint16_t id)
{
	put_desc(&vn->tx, id, virtio_net_tx_buf_addr(id), HOSTILE_HUGE_LEN, 0, 0);
	virtq_raw_avail_put(&vn->tx, id);
}

static void post_loop(struct virtio_net *vn, uint16_t id)
{
	put_desc(&vn->tx, id, virtio_net_tx_buf_addr(id), HOSTILE_FRAME_LEN,
		 VRING_DESC_F_NEXT, id);
	virtq_raw_avail_put(&vn->tx, id);
}

static void post_avail(struct virtio_net *vn, uint16_t id)
{
	put_desc(&vn->tx, id, virtio_net_tx_buf_addr(id), HOSTILE_FRAME_LEN, 0, 0);
	virtq_raw_avail_put(&vn->tx, id);
	virtq_raw_avail_advance(&vn->tx, vn->tx.size);	/* size + 1 ahead in all */
}

static void post_index(struct virtio_net *vn, uint16_t id)
{
	(void)id;
	virtq_raw_avail_put(&vn->tx, vn->tx.size);
}

/* The device's own BAR: inside the MMIO hole, never guest RAM. */
static void post_other(struct virtio_net *vn, uint16_t id)
{
	put_desc(&vn->tx, id, vn->vp.common, HOSTILE_FRAME_LEN, 0, 0);
	virtq_raw_avail_put(&vn->tx, id);
}

static const struct hostile_kind kinds[] = {
	{ "oob", post_oob },
	{ "len", post_len },
	{ "loop", post_loop },
	{ "avail", post_avail },
	{ "index", post_index },
	{ "other", post_other },
};

static const struct hostile_kind *kind;

static int hostile_check(const struct boot_info *bi)
{
	const char *name = cmdline_get("kind");
	unsigned i;

	(void)bi;
	for (i = 0; name && i < ARRAY_SIZE(kinds); i++) {
		if (!strcmp(kinds[i].name, name)) {
			kind = &kinds[i];
			return 0;
		}
	}
	if (name)
		printf("hostile: bad value '%s' for kind (expected", name);
	else
		printf("hostile: missing kind=K (expected");
	for (i = 0; i < ARRAY_SIZE(kinds); i++)
		printf(" %s", kinds[i].name);
	printf(")\n");
	return 2;
}

static int hostile_main(const struct boot_info *bi)
{
	struct virtio_net *vn = net_device();
	uint64_t start, last = 0, now;
	struct net_txbuf tb;

	(void)bi;
	/* Let the gratuitous ARP go and be reclaimed, then take a free descriptor. */
	net_poll();
	if (!virtio_net_tx_alloc(vn, &tb.id)) {
		printf("hostile: no free TX descriptor\n");
		return 1;
	}
	kind->post(vn, tb.id);
	virtq_raw_kick(&vn->tx);
	printf("hostile: posted %s\n", kind->name);

	start = rdtsc();
	for (;;) {
		now = rdtsc();
		if (now - last >= HOSTILE_POLL_CYCLES) {
			last = now;
			switch (virtio_net_check(vn)) {
			case VNET_GONE:
				printf("virtio-net: device gone\n");
				return 1;
			case VNET_NEEDS_RESET:
				if (vn->needs_reset_reported)
					goto idle;
				break;
			case VNET_OK:
				break;
			}
		}
		if (now - start >= HOSTILE_WAIT_CYCLES) {
			printf("hostile: device did not report needs reset\n");
			break;
		}
		cpu_relax();
	}
idle:
	printf("hostile: idling\n");
	syscall1(SYS_IDLE, 0);
	return 1;	/* SYS_IDLE does not return */
}

static const struct app hostile_app = {
	.name = "hostile", .check = hostile_check, .net = true, .main = hostile_main,
};
APP_REGISTER(hostile_app);
