// SPDX-License-Identifier: MIT
/*
 * The paravirtual NIC's data path with a real TAP and its I/O thread (under
 * its seccomp filter), in a network namespace of the test's own: frames the
 * driver queues leave through the TAP, frames sent into the TAP land in the
 * driver's buffers; every kind of broken ring puts the device into
 * NEEDS_RESET (config interrupt, counted) and a reset brings it back; pause
 * stops all processing; save/load carries the rings across; the TAP hdvm
 * created disappears with the device, a pre-existing one stays.
 *
 * Needs CAP_SYS_ADMIN (unshare) and /dev/net/tun; skipped otherwise.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "migration/state.h"
#include "vmm/kvm_ops.h"
#include "vmm/memory.h"
#include "vmm/seccomp.h"
#include "virtio_test_driver.h"

#define ETH_TEST	0x88b5
#define TAP		"hdvt0"

static bool have_netns;
static struct tdrv t;
static int psock = -1;
static const uint8_t peer[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };

static size_t make_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src, const char *tag,
			 size_t len)
{
	memset(f, 0, len);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	memcpy(f + 14, tag, strlen(tag));
	return len;
}

static void if_up(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

static int packet_socket(const char *name)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST) };
	struct timeval tv = { .tv_usec = 100000 };
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_TEST));

	assert_true(s >= 0);
	sll.sll_ifindex = if_nametoindex(name);
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

/* The next test frame on the TAP carrying tag, or 0 after ms. */
static ssize_t sniff(uint8_t *buf, size_t len, const char *tag, unsigned ms)
{
	uint64_t end = td_now_ms() + ms;

	while (td_now_ms() < end) {
		ssize_t n = recv(psock, buf, len, 0);

		if (n >= 14 + (ssize_t)strlen(tag) && !memcmp(buf + 14, tag, strlen(tag)))
			return n;
	}
	return 0;
}

static void inject(const uint8_t *f, size_t len)
{
	assert_int_equal(send(psock, f, len, 0), (ssize_t)len);
}

static struct virtio_net_stats stats(void)
{
	struct virtio_net_stats st;

	assert_int_equal(virtio_net_get_stats(t.dev, &st), 0);
	return st;
}

static int setup(void **state)
{
	if (!have_netns)
		return 0;
	td_create(&t, NULL);
	if (t.dev->ops->realize(t.dev, &t.vm) < 0)
		return -1;
	if_up(TAP);
	psock = packet_socket(TAP);
	td_enable_msix(&t);
	if (td_init(&t, TD_FEATURES) != (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	if (!have_netns)
		return 0;
	close(psock);
	td_destroy(&t);
	return 0;
}

#define NEED_NETNS() do { if (!have_netns) skip(); } while (0)

static void test_tx_frame_leaves_through_tap(void **st)
{
	uint8_t f[200], got[2048];

	NEED_NETNS();
	td_irqs(&t, 2);
	td_send(&t, f, make_frame(f, peer, t.n->mac, "tx-frame-1", 100), true);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 1, 2000));
	assert_int_equal(sniff(got, sizeof(got), "tx-frame-1", 2000), 100);
	assert_memory_equal(got, f, 100);
	assert_int_equal(td_wait_irqs(&t, 2, 2000), 1);
	assert_int_equal(stats().tx_packets, 1);
	assert_int_equal(stats().tx_bytes, 100);
	assert_true(stats().notify_exits >= 1);		/* no KVM: kicks reach hdvm */
}

static void test_long_chain_and_no_event_idx(void **st)
{
	uint64_t features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC;
	struct vring_desc *d = td_desc(&t, VIRTIO_NET_TXQ);
	uint8_t f[1000], got[2048];
	uint8_t *buf = test_gpa(&t.mem, TD_BUF(1, 0));

	NEED_NETNS();
	assert_true(td_init_sized(&t, features, 64) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(t.n->vp.vqs[VIRTIO_NET_TXQ].event_idx);
	/* header alone, then the frame in 50 pieces of 20 bytes: a heap iovec */
	make_frame(f, peer, t.n->mac, "long-chain", sizeof(f));
	memset(buf, 0, NET_TAP_HDR_LEN);
	memcpy(buf + NET_TAP_HDR_LEN, f, sizeof(f));
	d[0] = (struct vring_desc){ TD_BUF(1, 0), NET_TAP_HDR_LEN, VRING_DESC_F_NEXT, 1 };
	for (int i = 1; i <= 50; i++)
		d[i] = (struct vring_desc){ TD_BUF(1, 0) + NET_TAP_HDR_LEN + 20 * (i - 1), 20,
					    i < 50 ? VRING_DESC_F_NEXT : 0, i + 1 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
	td_kick(&t, VIRTIO_NET_TXQ);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 1, 2000));
	assert_int_equal(sniff(got, sizeof(got), "long-chain", 2000), sizeof(f));
	assert_memory_equal(got, f, sizeof(f));
	/* idle: the device asks for kicks with the flag, not avail_event */
	assert_int_equal(td_used(&t, VIRTIO_NET_TXQ)->flags, 0);
	/* receive without EVENT_IDX too */
	td_post_rx(&t, 2, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);
	inject(f, make_frame(f, t.n->mac, peer, "rx-plain", 90));
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));
	assert_int_equal(td_used(&t, VIRTIO_NET_RXQ)->ring[0].len, NET_TAP_HDR_LEN + 90);
	/* a frame too short to hold a header is dropped, its buffers returned */
	d[60] = (struct vring_desc){ TD_BUF(1, 60), 8, 0, 0 };
	td_offer(&t, VIRTIO_NET_TXQ, 60);
	td_kick(&t, VIRTIO_NET_TXQ);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 2, 2000));
	assert_int_equal(stats().tx_errors, 1);
}

/*
 * Frames leave in the order the driver queued them, burst after burst (the
 * TAP writes are not io_uring's: on Linux 6.1 its workers completed TAP
 * writes out of order -- run this binary in tools/kvmlab to see a 6.1 kernel).
 */
static void test_many_frames_in_order(void **st)
{
	enum { ROUNDS = 12, PER_ROUND = TD_QSIZE / 2, N = ROUNDS * PER_ROUND };
	uint8_t f[200], got[2048];
	int order[N], seen = 0;
	uint64_t end;
	char tag[32];

	NEED_NETNS();
	/* more frames than the ring holds, each burst on one kick */
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < PER_ROUND; i++) {
			snprintf(tag, sizeof(tag), "burst-%03d", round * PER_ROUND + i);
			td_send(&t, f, make_frame(f, peer, t.n->mac, tag, 60 + i), i == PER_ROUND - 1);
		}
		assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, (round + 1) * PER_ROUND, 2000));
	}
	/* every burst- frame in arrival order */
	for (end = td_now_ms() + 3000; seen < N && td_now_ms() < end; ) {
		ssize_t n = recv(psock, got, sizeof(got), 0);

		if (n >= 14 + 9 && !memcmp(got + 14, "burst-", 6))
			order[seen++] = atoi((char *)got + 20);
	}
	assert_int_equal(seen, N);
	for (int i = 0; i < N; i++)
		if (order[i] != i)
			fail_msg("frame %d left as number %d (frames reordered)", order[i], i);
	assert_int_equal(stats().tx_packets, N);
}

static struct virtio_net_output_stats out_stats(void)
{
	struct virtio_net_output_stats st;

	assert_int_equal(virtio_net_output_stats(t.dev, &st), 0);
	return st;
}

/*
 * Output commit (Remus, the same hold queue as hdnic's): held frames reach
 * the TAP only after their epoch commits, in order; a full queue leaves
 * frames in the ring with their completion withheld; nothing is lost.
 */
static void test_output_commit_holds_tx_until_commit(void **st)
{
	uint8_t f[200], got[2048];
	char tag[32];

	NEED_NETNS();
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_START, 1, 3), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(tag, sizeof(tag), "oc-%d", i);
		td_send(&t, f, make_frame(f, peer, t.n->mac, tag, 80), i == 4);
	}
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 3, 2000));
	assert_false(td_wait_used(&t, VIRTIO_NET_TXQ, 4, 300));	/* the ring backed up */
	assert_int_equal(sniff(got, sizeof(got), "oc-", 300), 0);	/* nothing left */
	assert_int_equal(out_stats().held, 3);
	assert_true(out_stats().blocked);
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_COMMIT, 1, 0), -EINVAL);	/* open */
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_EPOCH, 2, 0), 0);
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_COMMIT, 1, 0), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(tag, sizeof(tag), "oc-%d", i);
		assert_int_equal(sniff(got, sizeof(got), tag, 2000), 80);
	}
	/* room again: the last two are taken, tagged epoch 2, and held */
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 5, 2000));
	assert_int_equal(sniff(got, sizeof(got), "oc-", 300), 0);
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_STOP, 0, 0), 0);
	assert_int_equal(sniff(got, sizeof(got), "oc-3", 2000), 80);
	assert_int_equal(sniff(got, sizeof(got), "oc-4", 2000), 80);
	assert_int_equal(out_stats().released, 5);
	assert_false(out_stats().holding);
	assert_int_equal(stats().tx_packets, 5);
	/* not holding: straight out again */
	td_send(&t, f, make_frame(f, peer, t.n->mac, "oc-after", 80), true);
	assert_int_equal(sniff(got, sizeof(got), "oc-after", 2000), 80);
}

static void test_output_discard_never_sends(void **st)
{
	uint8_t f[200], got[2048];

	NEED_NETNS();
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_START, 7, 0), 0);
	td_send(&t, f, make_frame(f, peer, t.n->mac, "oc-gone-0", 80), false);
	td_send(&t, f, make_frame(f, peer, t.n->mac, "oc-gone-1", 80), true);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 2, 2000));
	/* through the device op the checkpoint driver uses for every device */
	assert_int_equal(t.dev->ops->mig->output_commit(t.dev, HOLDQ_OP_DISCARD, 0, 0), 0);
	assert_int_equal(virtio_net_output(t.dev, HOLDQ_OP_STOP, 0, 0), 0);
	assert_int_equal(sniff(got, sizeof(got), "oc-gone", 500), 0);
	assert_int_equal(out_stats().discarded, 2);
	assert_int_equal(out_stats().released, 0);
}

static void test_frame_from_tap_lands_in_rx_buffer(void **st)
{
	struct vring_used *used = td_used(&t, VIRTIO_NET_RXQ);
	struct virtio_net_hdr_v1 *hdr;
	uint8_t f[300];

	NEED_NETNS();
	td_post_rx(&t, 4, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);
	td_irqs(&t, 1);
	inject(f, make_frame(f, t.n->mac, peer, "rx-frame-1", 300));
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));
	assert_int_equal(used->ring[0].len, NET_TAP_HDR_LEN + 300);
	hdr = test_gpa(&t.mem, TD_BUF(0, used->ring[0].id));
	assert_int_equal(hdr->num_buffers, 1);
	assert_int_equal(hdr->flags, 0);
	assert_int_equal(hdr->gso_type, 0);
	assert_memory_equal((uint8_t *)hdr + NET_TAP_HDR_LEN, f, 300);
	assert_int_equal(td_wait_irqs(&t, 1, 2000), 1);
	assert_int_equal(stats().rx_packets, 1);
	assert_int_equal(stats().rx_bytes, 300);
}

/*
 * Frames from the TAP reach the RX ring in the order they were sent, burst
 * after burst (several TAP reads are armed at once: on Linux 6.1 io_uring
 * runs them on worker threads, whose completions may come in any order --
 * run this binary in tools/kvmlab to see a 6.1 kernel).
 */
static void test_rx_frames_in_order(void **st)
{
	enum { ROUNDS = 8, PER_ROUND = TD_QSIZE, N = ROUNDS * PER_ROUND };
	struct vring_used *used = td_used(&t, VIRTIO_NET_RXQ);
	uint8_t f[200];
	char tag[32];

	NEED_NETNS();
	for (int round = 0; round < ROUNDS; round++) {
		td_post_rx(&t, PER_ROUND, 1526);
		td_kick(&t, VIRTIO_NET_RXQ);
		for (int i = 0; i < PER_ROUND; i++) {
			snprintf(tag, sizeof(tag), "rx-seq-%03d", round * PER_ROUND + i);
			inject(f, make_frame(f, t.n->mac, peer, tag, 100));
		}
		assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, (round + 1) * PER_ROUND, 2000));
		for (int i = 0; i < PER_ROUND; i++) {
			int k = round * PER_ROUND + i;
			uint8_t *b = test_gpa(&t.mem, TD_BUF(0, used->ring[k % TD_QSIZE].id));
			int got = atoi((char *)b + NET_TAP_HDR_LEN + 14 + 7);

			if (got != k)
				fail_msg("RX frame %d arrived as number %d (frames reordered)", got, k);
		}
	}
	assert_int_equal(stats().rx_packets, N);
}

static int accept_kvm(int fd, unsigned long req, void *arg) { return 0; }
static const struct kvm_ops kvm_accepts = { .ioctl = accept_kvm };

static bool page_dirty(const uint64_t *bm, uint64_t gpa)
{
	return bm[gpa / 4096 / 64] >> (gpa / 4096 % 64) & 1;
}

/*
 * RX delivery goes through memory.c: with dirty logging on, a frame marks
 * exactly the pages hdvm wrote -- the buffer it filled and the used ring.
 */
static void test_rx_delivery_marks_its_pages_dirty(void **st)
{
	struct guest_mem *m = &t.vm.mem;
	struct vring_used *used = td_used(&t, VIRTIO_NET_RXQ);
	uint64_t bm[(32 << 20) / 4096 / 64];
	unsigned n = 0;
	uint8_t f[300];

	NEED_NETNS();
	assert_int_equal(guest_mem_register(m, &kvm_accepts, -1), 0);
	assert_int_equal(guest_mem_log_start(m, 0), 0);
	td_post_rx(&t, 4, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);
	usleep(100 * 1000);				/* the kick's own writes land first */
	assert_int_equal(guest_mem_log_sync(m, 0, bm), 0);
	inject(f, make_frame(f, t.n->mac, peer, "rx-dirty", 300));
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));
	assert_int_equal(guest_mem_log_sync(m, 0, bm), 0);
	assert_true(page_dirty(bm, TD_BUF(0, used->ring[0].id)));
	assert_true(page_dirty(bm, TD_RING(VIRTIO_NET_RXQ) + 0x2000));
	for (size_t i = 0; i < sizeof(bm) / sizeof(bm[0]); i++)
		n += __builtin_popcountll(bm[i]);
	assert_int_equal(n, 2);
	free(m->slots[0].dirty);			/* vm.mem is a copy of the test's */
	m->slots[0].dirty = NULL;
}

static void test_rx_waits_for_buffers(void **st)
{
	uint8_t f[100];

	NEED_NETNS();
	inject(f, make_frame(f, t.n->mac, peer, "rx-early", 100));
	usleep(100000);
	assert_int_equal(td_used(&t, VIRTIO_NET_RXQ)->idx, 0);
	td_post_rx(&t, 1, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);		/* the starved device asked for this one */
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));
	assert_memory_equal(test_gpa(&t.mem, TD_BUF(0, 0)) + NET_TAP_HDR_LEN, f, 100);
}

static void test_rx_buffer_too_small_keeps_buffer(void **st)
{
	uint8_t f[600];

	NEED_NETNS();
	td_post_rx(&t, 1, 200);
	td_kick(&t, VIRTIO_NET_RXQ);
	inject(f, make_frame(f, t.n->mac, peer, "rx-too-big", 600));
	inject(f, make_frame(f, t.n->mac, peer, "rx-fits", 150));
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));
	assert_int_equal(td_used(&t, VIRTIO_NET_RXQ)->ring[0].len, NET_TAP_HDR_LEN + 150);
	assert_memory_equal(test_gpa(&t.mem, TD_BUF(0, 0)) + NET_TAP_HDR_LEN + 14, "rx-fits", 7);
	assert_int_equal(stats().rx_dropped, 1);
}

/* ---- broken rings ---- */

static void break_head(void) { td_offer(&t, VIRTIO_NET_TXQ, TD_QSIZE + 3); }
static void break_next(void)
{
	td_desc(&t, VIRTIO_NET_TXQ)[0] = (struct vring_desc){ TD_BUF(1, 0), 64, VRING_DESC_F_NEXT, 999 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
}
static void break_loop(void)
{
	td_desc(&t, VIRTIO_NET_TXQ)[0] = (struct vring_desc){ TD_BUF(1, 0), 64, VRING_DESC_F_NEXT, 1 };
	td_desc(&t, VIRTIO_NET_TXQ)[1] = (struct vring_desc){ TD_BUF(1, 1), 64, VRING_DESC_F_NEXT, 0 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
}
static void break_address(void)
{
	td_desc(&t, VIRTIO_NET_TXQ)[0] = (struct vring_desc){ (32ull << 20) - 8, 64, 0, 0 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
}
static void break_avail_idx(void) { td_avail(&t, VIRTIO_NET_TXQ)->idx = TD_QSIZE + 5; }
static void break_direction(void)
{
	td_desc(&t, VIRTIO_NET_TXQ)[0] = (struct vring_desc){ TD_BUF(1, 0), 64, VRING_DESC_F_WRITE, 0 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
}
static void break_indirect(void)
{
	td_desc(&t, VIRTIO_NET_TXQ)[0] = (struct vring_desc){ TD_BUF(1, 0), 64, VRING_DESC_F_INDIRECT, 0 };
	td_offer(&t, VIRTIO_NET_TXQ, 0);
}
static void break_rx_readonly(void)
{
	td_desc(&t, VIRTIO_NET_RXQ)[0] = (struct vring_desc){ TD_BUF(0, 0), 1526, 0, 0 };
	td_offer(&t, VIRTIO_NET_RXQ, 0);
}
static void break_rx_address(void)
{
	td_desc(&t, VIRTIO_NET_RXQ)[0] = (struct vring_desc){ 0xfffffffffffff000ull, 0x2000,
							       VRING_DESC_F_WRITE, 0 };
	td_offer(&t, VIRTIO_NET_RXQ, 0);
}

static void test_broken_rings_need_reset(void **st)
{
	static const struct { const char *what; void (*apply)(void); bool rx; } cases[] = {
		{ "head index out of range", break_head, false },
		{ "next index out of range", break_next, false },
		{ "descriptor loop", break_loop, false },
		{ "buffer outside RAM", break_address, false },
		{ "avail index too far ahead", break_avail_idx, false },
		{ "device-writable TX buffer", break_direction, false },
		{ "indirect descriptor", break_indirect, false },
		{ "read-only RX buffer", break_rx_readonly, true },
		{ "RX buffer wrapping the address space", break_rx_address, true },
	};
	uint8_t f[100], got[2048];

	NEED_NETNS();
	td_write(&t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t end = td_now_ms() + 2000, irqs;
		char tag[32];

		print_message("  broken ring: %s\n", cases[i].what);
		assert_true(td_init(&t, TD_FEATURES) & VIRTIO_CONFIG_S_DRIVER_OK);
		td_irqs(&t, 0);
		td_read(&t, VIRTIO_PCI_ISR_OFF, 1);
		cases[i].apply();
		if (cases[i].rx) {
			td_kick(&t, VIRTIO_NET_RXQ);
			inject(f, make_frame(f, t.n->mac, peer, "rx-victim", 100));
		} else {
			td_kick(&t, VIRTIO_NET_TXQ);
		}
		/* the config interrupt follows the status bit: wait for the interrupt */
		irqs = 0;
		while (!(irqs += td_irqs(&t, 0)) && td_now_ms() < end)
			usleep(1000);
		usleep(1000);
		irqs += td_irqs(&t, 0);
		assert_int_equal(irqs, 1);
		assert_true(td_status(&t) & VIRTIO_STATUS_NEEDS_RESET);
		assert_int_equal(td_read(&t, VIRTIO_PCI_ISR_OFF, 1) & VIRTIO_ISR_CONFIG,
				 VIRTIO_ISR_CONFIG);
		assert_int_equal(stats().ring_errors, i + 1);
		assert_int_equal(td_used(&t, cases[i].rx)->idx, 0);
		/* the driver resets and the device works again */
		td_write(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
		assert_int_equal(td_status(&t), 0);
		assert_true(td_init(&t, TD_FEATURES) & VIRTIO_CONFIG_S_DRIVER_OK);
		snprintf(tag, sizeof(tag), "after-reset-%zu", i);
		td_send(&t, f, make_frame(f, peer, t.n->mac, tag, 80), true);
		assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 1, 2000));
		assert_int_equal(sniff(got, sizeof(got), tag, 2000), 80);
	}
}

/* ---- pause, state ---- */

/*
 * Pause under traffic, through the VM's own entry (devices_pause): guest RAM
 * is copied at pause and compared after a second of offered traffic (a TX
 * kick and more frames at the TAP than the device's bounce slots hold): not
 * a byte changed, no interrupt, no counter moved, nothing left through the
 * TAP.  Resumed, the TX frame leaves and every frame that arrived while
 * paused is delivered: they waited (bounce slots, then the TAP's kernel
 * queue), none was dropped.
 */
#define PAUSED_RX_FRAMES	(NET_RX_SLOTS + 12)

static void test_pause_stops_processing(void **st)
{
	uint8_t f[100], got[2048];
	char why[256] = "";
	struct virtio_net_stats before, after;
	const struct guest_mem *gm = &t.vm.mem;
	uint8_t *ram_copy;
	uint64_t end;

	NEED_NETNS();
	td_post_rx(&t, TD_QSIZE, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);
	inject(f, make_frame(f, t.n->mac, peer, "rx-running", 70));
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, 1, 2000));	/* it flows */

	assert_int_equal(devices_pause(&t.vm, why, sizeof(why)), 0);
	/* the driver queues a frame before looking away: that write is its own */
	td_send(&t, f, make_frame(f, peer, t.n->mac, "while-paused", 90), false);
	td_irqs(&t, 0);
	td_irqs(&t, 1);
	td_irqs(&t, 2);
	before = stats();
	ram_copy = malloc(gm->low_size);
	assert_non_null(ram_copy);
	memcpy(ram_copy, gm->host, gm->low_size);

	td_kick(&t, VIRTIO_NET_TXQ);
	for (unsigned i = 0; i < PAUSED_RX_FRAMES; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "rx-paused-%02u", i);
		inject(f, make_frame(f, t.n->mac, peer, tag, 70));
	}
	end = td_now_ms() + 1000;
	while (td_now_ms() < end)
		assert_int_equal(sniff(got, sizeof(got), "while-paused", 100), 0);

	assert_memory_equal(ram_copy, gm->host, gm->low_size);	/* no DMA at all */
	free(ram_copy);
	assert_int_equal(td_irqs(&t, 0) + td_irqs(&t, 1) + td_irqs(&t, 2), 0);
	after = stats();
	/* the data path's counters; the kick itself is counted as a notify exit */
	assert_memory_equal(&before, &after, offsetof(struct virtio_net_stats, notify_exits));

	assert_int_equal(devices_resume(&t.vm, why, sizeof(why)), 0);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 1, 2000));
	assert_int_equal(sniff(got, sizeof(got), "while-paused", 2000), 90);
	/* the ring had room for TD_QSIZE - 1 more; give buffers for the rest */
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, TD_QSIZE, 2000));
	td_post_rx(&t, PAUSED_RX_FRAMES + 1 - TD_QSIZE, 1526);
	td_kick(&t, VIRTIO_NET_RXQ);
	assert_true(td_wait_used(&t, VIRTIO_NET_RXQ, PAUSED_RX_FRAMES + 1, 2000));
	after = stats();
	assert_int_equal(after.rx_packets, before.rx_packets + PAUSED_RX_FRAMES);
	assert_int_equal(after.rx_dropped, 0);
}

static void test_save_load_round_trip(void **st)
{
	uint8_t f[100], got[2048];
	struct state_buf sb, rd;

	NEED_NETNS();
	td_send(&t, f, make_frame(f, peer, t.n->mac, "before-save", 64), true);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 1, 2000));
	t.dev->ops->pause(t.dev);
	state_init_writer(&sb);
	assert_int_equal(t.dev->ops->mig->save_final(t.dev, &sb), 0);

	/* wipe the device, then bring the saved one back */
	t.dev->ops->reset(t.dev);
	assert_int_equal(td_status(&t), 0);
	memset(t.n->mac, 0, 6);
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(t.dev->ops->mig->load(t.dev, &rd), 0);
	assert_true(state_at_end(&rd));
	assert_int_equal(td_status(&t), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	td_write(&t, VIRTIO_PCI_COMMON_Q_SELECT, VIRTIO_NET_TXQ, 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_DESCLO, 8), TD_RING(1));
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), TD_QSIZE);
	td_write(&t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	assert_int_equal(td_read(&t, VIRTIO_PCI_COMMON_GF, 4), 1);
	assert_int_equal(td_read(&t, VIRTIO_PCI_DEVCFG_OFF, 1), 0x02);	/* the MAC came back */
	t.dev->ops->resume(t.dev);

	/* the ring carries on where it was */
	td_send(&t, f, make_frame(f, peer, t.n->mac, "after-load", 64), true);
	assert_true(td_wait_used(&t, VIRTIO_NET_TXQ, 2, 2000));
	assert_int_equal(sniff(got, sizeof(got), "after-load", 2000), 64);
	assert_int_equal(t.n->vp.vqs[VIRTIO_NET_TXQ].last_avail, 2);

	/* corrupt streams are refused and leave the device as it was */
	sb.data[0] ^= 1;				/* magic */
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(t.dev->ops->mig->load(t.dev, &rd), -EINVAL);
	sb.data[0] ^= 1;
	state_init_reader(&rd, sb.data, sb.len - 3);	/* truncated */
	assert_true(t.dev->ops->mig->load(t.dev, &rd) < 0);
	assert_true(td_status(&t) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(t.n->vp.vqs[VIRTIO_NET_TXQ].last_avail, 2);
	state_free(&sb);
}

/* ---- TAP ownership, seccomp role ---- */

static int tun_persist(const char *name, int on)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), ret;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ret = ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, on) < 0 ? -1 : 0;
	close(fd);
	return ret;
}

static void test_tap_ownership(void **st)
{
	NEED_NETNS();
	/* created by the device: gone with it */
	assert_true(t.n->tap.created);
	assert_true(if_nametoindex(TAP) > 0);
	teardown(NULL);
	assert_int_equal(if_nametoindex(TAP), 0);
	/* pre-existing: left alone */
	assert_int_equal(tun_persist(TAP, 1), 0);
	assert_int_equal(setup(NULL), 0);
	assert_false(t.n->tap.created);
	teardown(NULL);
	assert_true(if_nametoindex(TAP) > 0);
	assert_int_equal(tun_persist(TAP, 0), 0);
	assert_int_equal(if_nametoindex(TAP), 0);
	assert_int_equal(setup(NULL), 0);		/* for the teardown */
}

static void test_io_role_seccomp(void **st)
{
	pid_t pid = fork();
	int status;

	if (!pid) {
		struct io_uring ring;
		struct io_uring_cqe *cqe;

		if (io_uring_queue_init(4, &ring, 0) < 0 || seccomp_install(SECCOMP_ROLE_IO) < 0)
			_exit(100);
		io_uring_prep_nop(io_uring_get_sqe(&ring));
		if (io_uring_submit_and_wait(&ring, 1) != 1 || io_uring_peek_cqe(&ring, &cqe))
			_exit(101);
		socket(AF_INET, SOCK_STREAM, 0);	/* not the I/O thread's business */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), HDVM_EXIT_SECCOMP);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_tx_frame_leaves_through_tap),
		T(test_many_frames_in_order),
		T(test_long_chain_and_no_event_idx),
		T(test_output_commit_holds_tx_until_commit),
		T(test_output_discard_never_sends),
		T(test_frame_from_tap_lands_in_rx_buffer),
		T(test_rx_delivery_marks_its_pages_dirty),
		T(test_rx_frames_in_order),
		T(test_rx_waits_for_buffers),
		T(test_rx_buffer_too_small_keeps_buffer),
		T(test_broken_rings_need_reset),
		T(test_pause_stops_processing),
		T(test_save_load_round_trip),
		T(test_tap_ownership),
		cmocka_unit_test(test_io_role_seccomp),
	};
	int fd;

	/* a namespace of our own: the TAP and its traffic never meet the host */
	have_netns = unshare(CLONE_NEWNET) == 0 && access("/dev/net/tun", R_OK | W_OK) == 0;
	if (!have_netns)
		fprintf(stderr, "test_virtio_net: no network namespace or /dev/net/tun: "
			"data path tests skipped\n");
	fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY);
	if (fd >= 0) {
		/* no IPv6 chatter on the TAP */
		if (write(fd, "1", 1) < 0)
			perror("disable_ipv6");
		close(fd);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
