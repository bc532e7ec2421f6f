// SPDX-License-Identifier: MIT
/*
 * hdvm's passthrough device against the real hdnic, without KVM: a VM with
 * buses and guest RAM but no vCPUs realizes a vfio-pci device on an hdnic
 * VF (in a network namespace of the test's own), and what hdnic reports
 * (`hdnic ctl DIR list --json`: mig_state, mac) shows that pause stopped
 * the function and resume ran it again, and that a function's state saved
 * from one VF (STOP_COPY) is taken by another VF (RESUMING) once the source's
 * client detached (refused with the reason while it has not), a corrupt one
 * refused with the arc named and the function running again.  And the
 * issue's check for a VF and an ADI: with a driver's RX buffers in guest RAM, frames
 * sent for a paused VM change not one byte of it (hdnic counts them as
 * rx_stopped) and a frame the driver queues on TX does not leave; resumed,
 * the queued frame leaves and traffic flows again.  With pause broken (no STOP
 * sent) the RAM comparison fails on the RX used index, the bug issue 8
 * reports.  And issue 9's stall: hdnic SIGSTOPped past --vfio-timeout is
 * declared lost, and re-attached (same socket file, function reset) as soon
 * as SIGCONT lets it run.
 *
 * Needs CAP_SYS_ADMIN (unshare), /dev/net/tun and build/hdnic next to the
 * test binaries' directory; skipped otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/if_packet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_pci_int.h"
#include "devices/virtio/virtio_pci.h"
#include "migration/state.h"
#include "vmm/iobus.h"
#include "vmm/irq.h"
#include "vmm/loop.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static char hdnic[PATH_MAX], dir[64];
static pid_t nic_pid = -1;
static bool have_nic;

static struct vm vm_a, vm_b;
static bool a_up, b_up;
static int loop_timeout_ms;	/* vm_up: with a main loop and this --vfio-timeout */

static int kvm_accepts(int fd, unsigned long req, void *arg) { return 0; }

static void vm_up_sock(struct vm *vm, const char *name)
{
	char sock[128];

	memset(vm, 0, sizeof(*vm));
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	assert_int_equal(guest_mem_init(&vm->mem, 2 << 20), 0);
	vm->pci = pci_bus_create(vm);
	if (loop_timeout_ms) {
		vm->loop = loop_create(16);
		vm->cfg.vfio_timeout_ms = loop_timeout_ms;
	}
	snprintf(sock, sizeof(sock), "%s/%s.sock", dir, name);
	/* the same id on both ends: it comes from the config, not the function */
	assert_int_equal(vfio_pci_add(vm, sock, false, "vfio0"), 0);
	*(vm == &vm_a ? &a_up : &b_up) = true;
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_RUNNING;
}

static void vm_up(struct vm *vm, int vf)
{
	char name[16];

	snprintf(name, sizeof(name), "vf%d", vf);
	vm_up_sock(vm, name);
}

static void vm_down(struct vm *vm)
{
	bool *up = vm == &vm_a ? &a_up : &b_up;

	if (!*up)
		return;
	*up = false;
	devices_unrealize(vm);
	if (vm->loop)
		loop_destroy(vm->loop);
	vm->loop = NULL;
	while (vm->devices) {
		struct device *d = vm->devices;

		vm->devices = d->next;
		free(d);
	}
	guest_mem_destroy(&vm->mem);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
}

/* A field of device dev (vf0, adi-NAME) in `hdnic ctl DIR list|stats --json`. */
static char *dev_query(const char *what, const char *dev, const char *key)
{
	static char val[160];
	char cmd[PATH_MAX + 128], out[65536];
	json_object *root, *arr, *e, *v;
	const char *lists[] = { "vfs", "adis" };
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s ctl %s %s --json", hdnic, dir, what);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	root = json_tokener_parse(out);
	assert_non_null(root);
	val[0] = 0;
	for (unsigned l = 0; l < 2 && !val[0]; l++) {
		if (!json_object_object_get_ex(root, lists[l], &arr))
			continue;
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			e = json_object_array_get_idx(arr, i);
			if (json_object_object_get_ex(e, "dev", &v) &&
			    !strcmp(json_object_get_string(v), dev) &&
			    json_object_object_get_ex(e, key, &v))
				snprintf(val, sizeof(val), "%s", json_object_get_string(v));
		}
	}
	json_object_put(root);
	assert_true(val[0]);
	return val;
}

static void nic_ctl(const char *args)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof(cmd), "%s ctl %s %s >/dev/null", hdnic, dir, args);
	assert_int_equal(system(cmd), 0);
}

static char *vf_query(const char *what, int vf, const char *key)
{
	char dev[16];

	snprintf(dev, sizeof(dev), "vf%d", vf);
	return dev_query(what, dev, key);
}

static char *vf_field(int vf, const char *key) { return vf_query("list", vf, key); }

/* ---- a guest driver for the VF, through hdvm's passthrough device ---- */

#define RXQ_DESC	0x10000ull
#define RXQ_AVAIL	0x11000ull
#define RXQ_USED	0x12000ull
#define RX_BUF(i)	(0x100000ull + (i) * 2048)
#define RX_QSIZE	16
#define TXQ_DESC	0x20000ull
#define TXQ_AVAIL	0x21000ull
#define TXQ_USED	0x22000ull
#define TX_BUF(i)	(0x180000ull + (i) * 2048)
#define NET_HDR_LEN	12	/* virtio_net_hdr_v1 */

static uint64_t bar0;

static void bar_w(struct vm *vm, uint32_t off, uint64_t v, unsigned len)
{
	assert_true(iobus_access(&vm->mmio, bar0 + off, &v, len, true));
}

static uint64_t bar_r(struct vm *vm, uint32_t off, unsigned len)
{
	uint64_t v = 0;

	assert_true(iobus_access(&vm->mmio, bar0 + off, &v, len, false));
	return v;
}

static void *gpa(struct vm *vm, uint64_t a) { return vm->mem.host + a; }

/* As a guest would: decode on, features, the RX queue with RX_QSIZE buffers, DRIVER_OK. */
static void driver_up(struct vm *vm)
{
	struct vfio_pci *vp = container_of(device_find(vm, "vfio0"), struct vfio_pci, dev);
	struct vring_desc *desc = gpa(vm, RXQ_DESC);
	struct vring_avail *avail = gpa(vm, RXQ_AVAIL);
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	uint64_t feats = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC;

	bar0 = pci_bar_address(&vp->pd, 0);
	pci_bus_cfg_access(vm->pci, vp->pd.devfn, PCI_COMMAND, &cmd, 2, true);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	bar_w(vm, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	bar_w(vm, VIRTIO_PCI_COMMON_GF, (uint32_t)feats, 4);
	bar_w(vm, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	bar_w(vm, VIRTIO_PCI_COMMON_GF, feats >> 32, 4);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	      VIRTIO_CONFIG_S_FEATURES_OK, 1);
	assert_true(bar_r(vm, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned i = 0; i < RX_QSIZE; i++) {
		desc[i] = (struct vring_desc){ RX_BUF(i), 2048, VRING_DESC_F_WRITE, 0 };
		avail->ring[i] = i;
	}
	avail->idx = RX_QSIZE;
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SIZE, RX_QSIZE, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_DESCLO, RXQ_DESC, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_AVAILLO, RXQ_AVAIL, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_USEDLO, RXQ_USED, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	memset(gpa(vm, TXQ_DESC), 0, 0x3000);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SIZE, RX_QSIZE, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_DESCLO, TXQ_DESC, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_AVAILLO, TXQ_AVAIL, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_USEDLO, TXQ_USED, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
	bar_w(vm, VIRTIO_PCI_NOTIFY_OFF, 0, 2);		/* queue 0: buffers are there */
}

static int uplink_socket(void)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5) };
	struct ifreq ifr = { 0 };
	int s = socket(AF_PACKET, SOCK_RAW, htons(0x88b5)), c = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(s >= 0 && c >= 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "hdm0");
	assert_int_equal(ioctl(c, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(c, SIOCSIFFLAGS, &ifr), 0);
	close(c);
	sll.sll_ifindex = if_nametoindex("hdm0");
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return s;
}

/* A frame from the wire (the uplink TAP) for VF 0's MAC. */
static void send_to_vf(int s, const uint8_t *mac, int n)
{
	uint8_t f[64] = { 0 };

	memcpy(f, mac, 6);
	memcpy(f + 6, "\x02\xaa\xbb\xcc\xdd\x01", 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	f[14] = (uint8_t)n;
	assert_int_equal(send(s, f, sizeof(f), 0), (ssize_t)sizeof(f));
}

/* The driver queues one frame (tag in byte 14) on TX; tx_notify tells the device. */
static void tx_queue(struct vm *vm, const uint8_t *mac, uint8_t tag)
{
	struct vring_desc *desc = gpa(vm, TXQ_DESC);
	struct vring_avail *avail = gpa(vm, TXQ_AVAIL);
	uint16_t i = avail->idx % RX_QSIZE;
	uint8_t *buf = gpa(vm, TX_BUF(i));

	memset(buf, 0, NET_HDR_LEN + 64);
	memcpy(buf + NET_HDR_LEN, "\x02\xaa\xbb\xcc\xdd\x01", 6);
	memcpy(buf + NET_HDR_LEN + 6, mac, 6);
	buf[NET_HDR_LEN + 12] = 0x88;
	buf[NET_HDR_LEN + 13] = 0xb5;
	buf[NET_HDR_LEN + 14] = tag;
	desc[i] = (struct vring_desc){ TX_BUF(i), NET_HDR_LEN + 64, 0, 0 };
	avail->ring[i] = i;
	__atomic_store_n(&avail->idx, (uint16_t)(avail->idx + 1), __ATOMIC_RELEASE);
}

static void tx_notify(struct vm *vm)
{
	bar_w(vm, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
}

/* Did a frame from mac with this tag come out of the uplink within ms? */
static bool tx_seen(int s, const uint8_t *mac, uint8_t tag, unsigned ms)
{
	struct timeval tv = { .tv_usec = 50000 };
	uint64_t end = now_ns() + ms * 1000000ull;
	uint8_t f[2048];

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (now_ns() < end) {
		ssize_t n = recv(s, f, sizeof(f), 0);

		if (n >= 15 && !memcmp(f + 6, mac, 6) && f[14] == tag)
			return true;
	}
	return false;
}

/*
 * The namespace's interfaces speak no IPv6: brought up, the uplink TAP
 * would send its own multicast (MLD reports, router solicitations, seconds
 * apart) into hdnic, which floods them to the VF, and one landing in the RX
 * ring between two of the test's frames took the test's buffer (a flake
 * under load, 1 in 50).  The tests count on their own frames only.
 */
static void no_ipv6(void)
{
	const char *knobs[] = { "/proc/sys/net/ipv6/conf/all/disable_ipv6",
				"/proc/sys/net/ipv6/conf/default/disable_ipv6" };

	for (unsigned i = 0; i < ARRAY_SIZE(knobs); i++) {
		FILE *f = fopen(knobs[i], "w");

		if (f) {	/* no IPv6 in the kernel: nothing to quiet */
			fputs("1", f);
			fclose(f);
		}
	}
}

/* hdnic has counted at least want frames as rx_stopped within ms (polled via ctl). */
static bool rx_stopped_reaches(const char *devname, uint64_t want, unsigned ms)
{
	uint64_t end = now_ns() + ms * 1000000ull;

	do {
		if (strtoull(dev_query("stats", devname, "rx_stopped"), NULL, 0) >= want)
			return true;
		usleep(20000);
	} while (now_ns() < end);
	return false;
}

/*
 * Did a frame for mac with this tag reach the RX used ring within ms?  By
 * content, not by ring index: the frame is the test's, whatever else came.
 */
static bool rx_got(struct vm *vm, const uint8_t *mac, uint8_t tag, unsigned ms)
{
	struct vring_used *used = gpa(vm, RXQ_USED);

	for (unsigned t = 0; t < ms; t++) {
		uint16_t n = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);

		for (uint16_t i = 0; i < n && i < RX_QSIZE; i++) {
			uint32_t id = used->ring[i].id;
			const uint8_t *f = id < RX_QSIZE ? gpa(vm, RX_BUF(id)) + NET_HDR_LEN : NULL;

			if (f && !memcmp(f, mac, 6) && f[14] == tag)
				return true;
		}
		usleep(1000);
	}
	return false;
}

static int group_setup(void **st)
{
	char path[128];

	if (!have_nic)
		return 0;
	snprintf(dir, sizeof(dir), "/tmp/hdvm-test-nic.%d", getpid());
	mkdir(dir, 0700);
	nic_pid = fork();
	if (nic_pid == 0) {
		execl(hdnic, hdnic, "--dir", dir, "--vfs", "2", "--uplink", "tap:hdm0",
		      "--name", "mignic", (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/pf.sock", dir);
	for (int i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
	if (access(path, F_OK)) {
		fprintf(stderr, "test_vfio_pci_hdnic: hdnic did not start\n");
		return -1;
	}
	irq_set_ioctl(kvm_accepts);
	return 0;
}

static int group_teardown(void **st)
{
	char cmd[128];

	if (nic_pid > 0) {
		kill(nic_pid, SIGTERM);
		waitpid(nic_pid, NULL, 0);
	}
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return 0;
}

/* a failed test leaves its VMs up: detach them, or the next test finds the VF busy */
static int teardown(void **st)
{
	if (nic_pid > 0)
		kill(nic_pid, SIGCONT);
	loop_timeout_ms = 0;
	vm_down(&vm_a);
	vm_down(&vm_b);
	return 0;
}

#define NEED_NIC() do { if (!have_nic) skip(); } while (0)

static void test_pause_stops_the_function(void **st)
{
	struct vm *vm = &vm_a;
	char why[256] = "";

	NEED_NIC();
	vm_up(vm, 0);
	assert_string_equal(vf_field(0, "mig_state"), "running");
	assert_int_equal(vm_pause(vm, why, sizeof(why)), 0);
	assert_string_equal(vf_field(0, "mig_state"), "stop");
	assert_int_equal(vm_resume(vm, why, sizeof(why)), 0);
	assert_string_equal(vf_field(0, "mig_state"), "running");
	vm_down(vm);
}

static void test_state_moves_to_another_function(void **st)
{
	struct vm *a = &vm_a, *b = &vm_b;
	struct state_buf sb, rd, dev_sb, bad;
	char why[256] = "", mac0[32];
	struct device *d;

	NEED_NIC();
	snprintf(mac0, sizeof(mac0), "%s", vf_field(0, "mac"));
	assert_string_not_equal(mac0, vf_field(1, "mac"));

	vm_up(a, 0);
	assert_int_equal(vm_pause(a, why, sizeof(why)), 0);
	state_init_writer(&sb);
	assert_int_equal(devices_save(a, &sb), 0);
	assert_string_equal(vf_field(0, "mig_state"), "stop");	/* saved, still paused */
	/* the device's blob alone, for the corruption below */
	d = device_find(a, "vfio0");
	state_init_writer(&dev_sb);
	assert_int_equal(d->ops->mig->save_final(d, &dev_sb), 0);
	assert_true(dev_sb.len > 16);

	vm_up(b, 1);
	/* VM a is still attached to VF 0, which owns that MAC: VF 1 cannot take it */
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(b, &rd, why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci)"));
	assert_non_null(strstr(why, "the device refused RESUMING -> STOP: File exists"));
	assert_non_null(strstr(vf_field(1, "mig_error"), "is vf0's (its client has not detached "
			       "yet): vf1 cannot take it"));
	assert_string_equal(vf_field(1, "mig_state"), "running");
	/* VM a goes: VF 0 handed its state away, so the MAC goes with the guest */
	vm_down(a);
	for (int i = 0; i < 100 && strcmp(vf_field(0, "client"), "false"); i++)
		usleep(20000);
	assert_string_equal(vf_field(0, "mac_bound"), "false");
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(b, &rd, why, sizeof(why)), 0);
	assert_string_equal(vf_field(1, "mig_state"), "running");
	assert_string_equal(vf_field(1, "mac"), mac0);		/* VF 0's function state */
	assert_string_equal(vf_field(1, "mac_bound"), "true");

	/* a blob hdnic cannot take: refused when RESUMING ends, the function runs again */
	dev_sb.data[8 + 8] ^= 0x55;	/* u64 length, section tag and length, then its version */
	d = device_find(b, "vfio0");
	state_init_reader(&bad, dev_sb.data, dev_sb.len);
	d->error[0] = 0;
	assert_true(d->ops->mig->load(d, &bad) < 0);
	assert_non_null(strstr(d->error, "the device refused RESUMING -> STOP"));
	assert_string_equal(vf_field(1, "mig_state"), "running");
	vm_down(b);
	state_free(&sb);
	state_free(&dev_sb);
}

/*
 * The check, for a VF, without KVM: traffic arrives for a function
 * whose driver has RX buffers in guest RAM; after vm_pause, a second of
 * frames changes not one byte of guest RAM and hdnic delivers none (it
 * counts them as rx_stopped); after vm_resume the traffic flows again.
 */
static void paused_function_writes_no_guest_ram(const char *devname)
{
	struct vm *vm = &vm_a;
	uint8_t mac[6], *copy;
	uint64_t delivered, stopped;
	char why[256] = "";
	int s;

	vm_up_sock(vm, devname);
	driver_up(vm);
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)bar_r(vm, VIRTIO_PCI_DEVCFG_OFF + i, 1);
	s = uplink_socket();
	send_to_vf(s, mac, 1);
	assert_true(rx_got(vm, mac, 1, 10000));			/* it flows */

	assert_int_equal(vm_pause(vm, why, sizeof(why)), 0);
	tx_queue(vm, mac, 0x77);	/* the driver's own write, before the copy */
	delivered = strtoull(dev_query("stats", devname, "rx_packets"), NULL, 0);
	stopped = strtoull(dev_query("stats", devname, "rx_stopped"), NULL, 0);
	copy = malloc(vm->mem.size);
	memcpy(copy, vm->mem.host, vm->mem.size);
	tx_notify(vm);					/* a kick while paused */
	for (int i = 0; i < 20; i++) {
		send_to_vf(s, mac, 2 + i);
		usleep(50000);
	}
	/*
	 * hdnic reads the uplink on io_uring: on a loaded host the ctl query can
	 * be answered before the last frames' reads complete.  Wait until it has
	 * seen all 20 (dropped, and counted) before judging RAM: a frame still in
	 * the TAP queue proves nothing yet, and one read after resume would land
	 * in RX_BUF(1) where tag 99 is expected.
	 */
	assert_true(rx_stopped_reaches(devname, stopped + 20, 10000));
	assert_false(tx_seen(s, mac, 0x77, 200));		/* nothing sent */
	assert_memory_equal(copy, vm->mem.host, vm->mem.size);	/* no DMA at all */
	assert_int_equal(strtoull(dev_query("stats", devname, "rx_packets"), NULL, 0), delivered);
	free(copy);

	assert_int_equal(vm_resume(vm, why, sizeof(why)), 0);
	assert_true(tx_seen(s, mac, 0x77, 10000));		/* it waited in the ring */
	send_to_vf(s, mac, 99);
	assert_true(rx_got(vm, mac, 99, 10000));		/* flows again */
	close(s);
	vm_down(vm);
}

static void test_paused_vf_writes_no_guest_ram(void **st)
{
	NEED_NIC();
	paused_function_writes_no_guest_ram("vf0");
}

/* The same for an HD-IOV ADI composed on demand. */
static void test_paused_adi_writes_no_guest_ram(void **st)
{
	NEED_NIC();
	nic_ctl("adi-add pz --mac 02:00:00:00:88:01");
	paused_function_writes_no_guest_ram("adi-pz");
}

/*
 * Issue 9: hdnic SIGSTOPped longer than --vfio-timeout, then SIGCONT.  The
 * device is declared lost; once hdnic runs again the same server (same socket
 * file) is re-attached: the function is reset and answers guest accesses.
 */
static void test_stopped_hdnic_is_reattached_when_it_runs_again(void **st)
{
	struct vm *vm = &vm_a;
	struct vfio_pci *vp;
	struct stat before, after;
	uint16_t vendor = 0;
	uint64_t t0;
	long connects;
	int ret;

	NEED_NIC();
	loop_timeout_ms = 300;
	vm_up(vm, 0);
	vp = container_of(device_find(vm, "vfio0"), struct vfio_pci, dev);
	assert_int_equal(stat(vp->spec, &before), 0);
	connects = atol(vf_query("stats", 0, "connects"));
	vfio_user_set_stall(vp->vdev, 20);	/* the guest reads all-ones while it waits */

	assert_int_equal(kill(nic_pid, SIGSTOP), 0);
	t0 = now_ns();
	do {				/* the guest keeps reading its device */
		ret = vp->vdev->ops->region_read(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, 0,
						  &vendor, 2);
		loop_run_once(vm->loop, 20);
	} while (ret == -EAGAIN && now_ns() - t0 < 3000000000ull);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_false(vp_alive(vp));
	usleep(500 * 1000);		/* stopped well past the timeout */
	loop_run_once(vm->loop, 100);
	assert_false(vp_alive(vp));	/* nothing happens while it is stopped */
	assert_int_equal(kill(nic_pid, SIGCONT), 0);

	t0 = now_ns();
	while (!vp_alive(vp) && now_ns() - t0 < 5000000000ull)
		loop_run_once(vm->loop, 100);
	assert_true(vp_alive(vp));
	assert_int_equal(stat(vp->spec, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);		/* the same hdnic */
	assert_int_equal(atol(vf_query("stats", 0, "connects")), connects + 1);	/* reconnected */
	assert_int_equal(vp->vdev->ops->region_read(vp->vdev, VFIO_PCI_CONFIG_REGION_INDEX, 0,
						    &vendor, 2), 0);
	assert_int_equal(vendor, 0x1af4);			/* a virtio-net function */
	vm_down(vm);
}

/*
 * Device pre-copy as `hdvm migrate` drives it, against the real hdnic: the
 * function goes RUNNING -> PRE_COPY while the guest runs, hdnic's
 * PRECOPY_INFO says what it has ahead (its 30-byte HVP1 section) and the
 * read gives exactly that; the switchover is PRE_COPY_P2P -> STOP_COPY and
 * the final state is the rest of the same session.  On another VF the
 * pre-copy part opens RESUMING (hdnic checks it at once), the rest completes
 * it: the function runs with the guest's MAC.
 */
static void test_precopy_moves_to_another_function(void **st)
{
	struct vm *a = &vm_a, *b = &vm_b;
	struct state_buf pre, fin, rd;
	uint64_t pending = 0, bytes = 0;
	char why[256] = "", mac0[32];

	NEED_NIC();
	snprintf(mac0, sizeof(mac0), "%s", vf_field(0, "mac"));
	vm_up(a, 0);
	assert_int_equal(devices_save_setup(a, why, sizeof(why)), 0);
	assert_string_equal(vf_field(0, "mig_state"), "pre-copy");	/* the guest's NIC runs */
	assert_int_equal(devices_pending_bytes(a, &pending), 0);
	assert_int_equal(pending, 30);				/* HVP1, PRECOPY_INFO */
	state_init_writer(&pre);
	assert_int_equal(devices_save_iterate(a, &pre, &bytes), 0);
	assert_int_equal(bytes, 8 + 30);
	assert_memory_equal(pre.data + 8, "HVP1", 4);
	assert_int_equal(devices_pending_bytes(a, &pending), 0);
	assert_int_equal(pending, 0);
	assert_int_equal(vm_pause(a, why, sizeof(why)), 0);
	assert_string_equal(vf_field(0, "mig_state"), "stop-copy");
	state_init_writer(&fin);
	assert_int_equal(devices_save(a, &fin), 0);
	assert_string_equal(vf_field(0, "mig_state"), "stop");
	devices_save_cleanup(a);
	vm_down(a);						/* the source goes */
	for (int i = 0; i < 100 && strcmp(vf_field(0, "client"), "false"); i++)
		usleep(20000);

	vm_up(b, 1);
	state_init_reader(&rd, pre.data, pre.len);
	if (devices_load_iterate(b, &rd, why, sizeof(why)))
		fail_msg("pre-copy part: %s", why);
	assert_string_equal(vf_field(1, "mig_state"), "resuming");
	state_init_reader(&rd, fin.data, fin.len);
	if (devices_load(b, &rd, why, sizeof(why)))
		fail_msg("final part: %s", why);
	assert_string_equal(vf_field(1, "mig_state"), "running");
	assert_string_equal(vf_field(1, "mac"), mac0);
	vm_down(b);
	state_free(&pre);
	state_free(&fin);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pause_stops_the_function, teardown),
		cmocka_unit_test_teardown(test_state_moves_to_another_function, teardown),
		cmocka_unit_test_teardown(test_precopy_moves_to_another_function, teardown),
		cmocka_unit_test_teardown(test_paused_vf_writes_no_guest_ram, teardown),
		cmocka_unit_test_teardown(test_paused_adi_writes_no_guest_ram, teardown),
		cmocka_unit_test_teardown(test_stopped_hdnic_is_reattached_when_it_runs_again,
					  teardown),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	char self[PATH_MAX];

	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(hdnic, sizeof(hdnic), "%s/../hdnic", dirname(self));
	have_nic = access(hdnic, X_OK) == 0 && unshare(CLONE_NEWNET) == 0 &&
		   access("/dev/net/tun", R_OK | W_OK) == 0;
	if (have_nic)
		no_ipv6();
	if (!have_nic)
		fprintf(stderr, "test_vfio_pci_hdnic: no hdnic binary, namespace or /dev/net/tun: "
			"skipped\n");
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
