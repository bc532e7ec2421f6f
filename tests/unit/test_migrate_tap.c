// SPDX-License-Identifier: MIT
/*
 * Migrating a VM with a paravirtual NIC on a TAP to a destination on the
 * same host (the fake KVM of fake_vm.h, a real TAP in a network namespace of
 * the test's own).  Over unix: the source hands its TAP fd over: the
 * destination's device ends up on the same TAP (TUNGETIFF) without opening
 * it (the source still holds it: a second TUNSETIFF would be EBUSY), a
 * frame sent into the TAP while the source is paused is not taken by the
 * source and lands in the guest's RX buffer on the destination, one sent
 * after the switchover too, and the source keeps its own fd.  Over a stream
 * that cannot pass fds (tcp:), the destination's EBUSY says to use unix:.
 *
 * Needs CAP_SYS_ADMIN (unshare) and /dev/net/tun; skipped otherwise.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"
#include "tests/unit/migrate_thread.h"
#include "virtio_test_driver.h"

#include "migration/stream.h"
#include "vmm/migrate.h"

#define RAM		(16ull << 20)
#define TAP		"hdmt0"
#define ETH_TEST	0x88b5

static bool have_netns;
static struct tdrv ta, tb;		/* source and destination, each a VM with net0 */
static const uint8_t peer[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };

/* A fake VM (legacy devices, realized) plus the PCI bus and virtio-net net0 on TAP. */
static int build(struct tdrv *t, struct vm_config *incoming)
{
	struct device *last;
	int ret;

	fake_vm_build(&t->vm, &slot_kvm, RAM, NR_VCPUS, true);
	t->vm.mem.kvm = &slot_kvm;
	t->vm.mem.vm_fd = VM_FD;
	t->vm.cfg.net[0] = "tap=" TAP;
	t->vm.cfg.nr_net = 1;
	if (incoming) {
		t->vm.cfg.incoming = incoming->incoming;
		t->vm.cfg.net_fds = incoming->net_fds;
		t->vm.cfg.nr_net_fds = incoming->nr_net_fds;
	}
	for (last = t->vm.devices; last->next; last = last->next)
		;
	t->vm.pci = pci_bus_create(&t->vm);
	ret = virtio_net_create_all(&t->vm);
	if (ret)
		return ret;
	for (struct device *d = last->next; d; d = d->next)
		if (d->ops->realize && (ret = d->ops->realize(d, &t->vm)) < 0)
			return ret;
	t->dev = device_find(&t->vm, "net0");
	t->n = container_of(t->dev, struct virtio_net, dev);
	t->mem.gm = t->vm.mem;		/* the driver's view of guest RAM */
	t->devfn = t->n->vp.pd.devfn;
	t->bar = td_cfg_read(t, PCI_BASE_ADDRESS_0, 4) & ~0xfull;
	t->msix_cap = td_find_cap(t, PCI_CAP_ID_MSIX, 0);
	return 0;
}

static void unbuild(struct tdrv *t)
{
	fake_vm_free(&t->vm);
	memset(t, 0, sizeof(*t));
}

static int packet_socket(void)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST) };
	struct ifreq ifr = { 0 };
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_TEST)), u = socket(AF_INET, SOCK_DGRAM, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP);
	assert_int_equal(ioctl(u, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(u, SIOCSIFFLAGS, &ifr), 0);
	close(u);
	sll.sll_ifindex = if_nametoindex(TAP);
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return s;
}

/* A frame from the host side into the TAP, towards the guest; tag in its payload. */
static void inject(int s, const uint8_t *mac, const char *tag)
{
	uint8_t f[100] = { 0 };

	memcpy(f, mac, 6);
	memcpy(f + 6, peer, 6);
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	memcpy(f + 14, tag, strlen(tag));
	assert_int_equal(send(s, f, sizeof(f), 0), (ssize_t)sizeof(f));
}

/* The payload tag of RX used entry i. */
static const char *rx_tag(struct tdrv *t, unsigned i)
{
	struct vring_used *used = td_used(t, VIRTIO_NET_RXQ);

	return (const char *)test_gpa(&t->mem, TD_BUF(0, used->ring[i].id)) + NET_TAP_HDR_LEN + 14;
}

/* Wait for the frame carrying tag in t's RX used ring; its entry, or -1 after ms. */
static int rx_wait_tag(struct tdrv *t, const char *tag, unsigned ms)
{
	uint64_t end = td_now_ms() + ms;

	do {
		uint16_t idx = __atomic_load_n(&td_used(t, VIRTIO_NET_RXQ)->idx, __ATOMIC_ACQUIRE);

		for (unsigned i = 0; i < idx; i++)
			if (!strcmp(rx_tag(t, i), tag))
				return (int)i;
		usleep(1000);
	} while (td_now_ms() < end);
	return -1;
}

static void tap_name_of(int fd, char *name)
{
	struct ifreq ifr = { 0 };

	assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
}

static int setup(void **state)
{
	if (!have_netns)
		return 0;
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	mine = &src;
	assert_int_equal(build(&ta, NULL), 0);
	td_enable_msix(&ta);
	assert_true(td_init(&ta, TD_FEATURES) & VIRTIO_CONFIG_S_DRIVER_OK);
	return 0;
}

static int teardown(void **state)
{
	unbuild(&tb);
	unbuild(&ta);
	fake_reset(&src);
	fake_reset(&dst);
	return 0;
}

#define NEED_NETNS() do { if (!have_netns) skip(); } while (0)

/* ---- the destination: what `hdvm run --incoming` does, on its own thread ---- */

struct dest {
	int fd;
	bool unix_fds;
	int ret, build_ret;
	char why[512];
	int nr_net_fds;
	char log[1024];			/* what it printed */
};

/* stderr into d->log while fn runs */
static int logged(struct dest *d, int (*fn)(struct dest *d, struct migrate_incoming *in),
		  struct migrate_incoming *in)
{
	FILE *f = tmpfile();
	int saved = dup(2), ret;
	size_t n;

	fflush(stderr);
	dup2(fileno(f), 2);
	ret = fn(d, in);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(d->log, 1, sizeof(d->log) - 1, f);
	d->log[n] = 0;
	fclose(f);
	return ret;
}

static int build_dest(struct dest *d, struct migrate_incoming *in)
{
	struct vm_config inc = {
		.incoming = in, .net_fds = in->net_fds, .nr_net_fds = in->nr_net_fds,
	};

	return build(&tb, &inc);
}

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct migrate_incoming in;
	struct mig_io io;

	mine = &dst;
	if (d->unix_fds)
		mig_io_unix(&io, d->fd);
	else
		mig_io_fd(&io, d->fd);
	d->ret = migrate_recv_begin(&in, &io, d->why, sizeof(d->why));
	d->nr_net_fds = in.nr_net_fds;
	if (!d->ret) {
		d->ret = d->build_ret = logged(d, build_dest, &in);
		if (d->ret)
			snprintf(d->why, sizeof(d->why), "the destination VM could not start");
	}
	if (!d->ret)
		d->ret = migrate_recv_finish(&in, &tb.vm, d->why, sizeof(d->why));
	migrate_recv_answer(&in, d->ret, d->why);
	migrate_recv_end(&in);
	mig_io_close(&io);
	return NULL;
}

static int migrate(struct dest *d, bool over_unix, char *why, size_t len)
{
	struct migrate_opts o = {
		.downtime_ms = 300, .timeout_ms = 10000,
		.ram_by_fd = over_unix, .net_by_fd = over_unix,
	};
	struct migrate_result res;

	d->unix_fds = over_unix;
	/* !over_unix: a tcp: stream, no fd passing */
	return migrate_to_thread(&ta.vm, AF_UNIX, over_unix, dest_main, d, &d->fd, &o, &res,
				 why, len);
}

static void test_unix_hands_the_tap_over_and_no_frame_is_lost(void **state)
{
	struct dest d = { 0 };
	char why[512] = "", name[IFNAMSIZ];
	struct virtio_net_stats st;
	uint64_t rx_source;
	int s;

	NEED_NETNS();
	s = packet_socket();
	td_post_rx(&ta, 8, 1526);
	td_kick(&ta, VIRTIO_NET_RXQ);
	inject(s, ta.n->mac, "on-source");
	assert_true(rx_wait_tag(&ta, "on-source", 2000) >= 0);

	/* the source stops (vm_pause's device half): from now on it leaves the TAP alone */
	assert_int_equal(devices_pause(&ta.vm, why, sizeof(why)), 0);
	inject(s, ta.n->mac, "in-the-gap");
	assert_int_equal(rx_wait_tag(&ta, "in-the-gap", 100), -1);

	assert_int_equal(migrate(&d, true, why, sizeof(why)), 0);
	if (d.ret)
		fail_msg("destination: %d %s (%s)", d.ret, d.why, d.log);
	assert_int_equal(d.nr_net_fds, 1);
	/* the destination's device is on the same TAP, through the source's fd */
	assert_false(tb.n->tap.created);
	tap_name_of(tb.n->tap.fd, name);
	assert_string_equal(name, TAP);
	/* the RX ring went with the state; the frame of the gap is the destination's */
	assert_int_equal(virtio_net_get_stats(ta.dev, &st), 0);
	rx_source = st.rx_packets;
	assert_true(rx_wait_tag(&tb, "in-the-gap", 2000) >= 1);
	inject(s, tb.n->mac, "on-destination");
	assert_true(rx_wait_tag(&tb, "on-destination", 2000) > rx_wait_tag(&tb, "in-the-gap", 0));
	assert_int_equal(virtio_net_get_stats(tb.dev, &st), 0);
	assert_true(st.rx_packets >= 2);
	assert_int_equal(st.rx_dropped, 0);
	/* the source took none of them after it stopped, and its own fd is still the TAP's */
	usleep(100 * 1000);
	assert_int_equal(virtio_net_get_stats(ta.dev, &st), 0);
	assert_int_equal(st.rx_packets, rx_source);
	tap_name_of(ta.n->tap.fd, name);
	assert_string_equal(name, TAP);
	close(s);
}

/* A failed migration after the hand-over: the source resumes on its own fd. */
static void test_refused_after_hand_over_source_keeps_its_tap(void **state)
{
	struct dest d = { 0 };
	char why[512] = "";
	int s;

	NEED_NETNS();
	s = packet_socket();
	td_post_rx(&ta, 8, 1526);
	td_kick(&ta, VIRTIO_NET_RXQ);
	assert_int_equal(devices_pause(&ta.vm, why, sizeof(why)), 0);
	ta.vm.mem.size += 4096;	/* the destination refuses: not the memfd's size */
	assert_true(migrate(&d, true, why, sizeof(why)) < 0);
	ta.vm.mem.size -= 4096;
	assert_non_null(strstr(why, "memfd"));
	assert_int_equal(devices_resume(&ta.vm, why, sizeof(why)), 0);
	inject(s, ta.n->mac, "after-failure");
	assert_true(rx_wait_tag(&ta, "after-failure", 2000) >= 0);
	close(s);
}

static void test_tcp_same_host_says_use_unix(void **state)
{
	struct dest d = { 0 };
	char why[512] = "";

	NEED_NETNS();
	assert_int_equal(devices_pause(&ta.vm, why, sizeof(why)), 0);
	assert_true(migrate(&d, false, why, sizeof(why)) < 0);
	assert_int_equal(d.nr_net_fds, 0);
	assert_int_equal(d.build_ret, -EBUSY);
	assert_non_null(strstr(d.log, "tap=" TAP ": it is already in use by another process"));
	assert_non_null(strstr(d.log, "migrate over unix:"));
	assert_non_null(strstr(why, "the destination refused"));
}

/* A handed-over fd that is not the TAP the manifest names is refused. */
static void test_adopt_checks_the_tap(void **state)
{
	struct net_tap t;
	int fd;

	NEED_NETNS();
	assert_int_equal(net_tap_adopt(&t, TAP, ta.n->tap.fd), 0);
	net_tap_close(&t);
	assert_int_equal(net_tap_adopt(&t, "other0", ta.n->tap.fd), -EINVAL);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_int_equal(net_tap_adopt(&t, TAP, fd), -EINVAL);
	close(fd);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);	/* attached to nothing */
	assert_int_equal(net_tap_adopt(&t, TAP, fd), -EINVAL);
	close(fd);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_unix_hands_the_tap_over_and_no_frame_is_lost),
		T(test_refused_after_hand_over_source_keeps_its_tap),
		T(test_tcp_same_host_says_use_unix),
		T(test_adopt_checks_the_tap),
	};

	srand(7);
	have_netns = unshare(CLONE_NEWNET) == 0 && access("/dev/net/tun", R_OK | W_OK) == 0;
	if (have_netns) {	/* no IPv6 chatter of the kernel's own into the TAP */
		FILE *f = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");

		if (f) {
			fputs("1", f);
			fclose(f);
		}
	}
	if (!have_netns)
		fprintf(stderr, "no network namespace or /dev/net/tun: TAP tests skipped\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
