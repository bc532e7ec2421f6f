/* SPDX-License-Identifier: MIT */
/*
 * A REAL hdnic for the unit tests that run hdvm's passthrough device against
 * it without KVM (test_vfio_pci_hdnic.c, test_checkpoint_hdnic.c,
 * test_migrate_hdnic.c): find the
 * binary next to the test's and a network namespace of the test's own
 * (hdnic_find), start and stop a NIC (hdnic_start, hdnic_stop), ask it
 * (`hdnic ctl DIR list|stats --json`: hdnic_query), watch its uplink TAP
 * (hdnic_uplink_socket, hdnic_tx_seen), and a guest driver in plain code
 * through the passthrough device's BAR0 (hdnic_virtio_begin,
 * hdnic_virtio_queue, hdnic_tx_queue).
 */
#ifndef HDVM_TEST_HDNIC_HARNESS_H
#define HDVM_TEST_HDNIC_HARNESS_H
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/device.h"
#include "devices/pci/pci.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vfio_pci_int.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/iobus.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static char hdnic[PATH_MAX];	/* the binary */
static bool have_nic;		/* and a namespace and /dev/net/tun to run it in */

/* The peer on the wire the tests' frames go to and come from. */
static const uint8_t hdnic_peer[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };

#define NET_HDR_LEN	12	/* virtio_net_hdr_v1 */
#define NEED_NIC() do { if (!have_nic) skip(); } while (0)

/*
 * build/hdnic next to build/tests/, a network namespace of the test's own
 * and /dev/net/tun: have_nic, or a line saying why test is skipped.
 */
static bool hdnic_find(const char *argv0, const char *test)
{
	char self[PATH_MAX];

	snprintf(self, sizeof(self), "%s", argv0);
	snprintf(hdnic, sizeof(hdnic), "%s/../hdnic", dirname(self));
	have_nic = access(hdnic, X_OK) == 0 && unshare(CLONE_NEWNET) == 0 &&
		   access("/dev/net/tun", R_OK | W_OK) == 0;
	if (!have_nic)
		fprintf(stderr, "%s: no hdnic binary, namespace or /dev/net/tun: skipped\n", test);
	return have_nic;
}

/*
 * The namespace's interfaces speak no IPv6: brought up, the uplink TAP
 * would send its own multicast (MLD reports, router solicitations, seconds
 * apart) into hdnic, which floods them to the VF, and one landing in the RX
 * ring between two of the test's frames took the test's buffer (a flake
 * under load, 1 in 50); on the wire a test watches it is noise.  The tests
 * count on their own frames only.
 */
static void hdnic_no_ipv6(void)
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

/*
 * An hdnic serving vfs VFs in dir (made here) on uplink ("tap:IFNAME"), with
 * HDNIC_FAILPOINT=failpoint if not NULL, its pid in *pid; 0 once its pf.sock
 * is there (5 s at most), else -ETIMEDOUT (test names the test in the message).
 */
static int hdnic_start(pid_t *pid, const char *dir, int vfs, const char *uplink,
		       const char *name, const char *failpoint, const char *test)
{
	char path[160], nvfs[16];

	snprintf(nvfs, sizeof(nvfs), "%d", vfs);
	mkdir(dir, 0700);
	*pid = fork();
	if (*pid == 0) {
		if (failpoint)
			setenv("HDNIC_FAILPOINT", failpoint, 1);
		execl(hdnic, hdnic, "--dir", dir, "--vfs", nvfs, "--uplink", uplink,
		      "--name", name, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/pf.sock", dir);
	for (int i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
	if (access(path, F_OK)) {
		fprintf(stderr, "%s: hdnic did not start\n", test);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Ends the hdnic (if it still runs) and removes its dir; its exit status, as waitpid gives it. */
static int hdnic_stop(pid_t *pid, char *dir)
{
	char cmd[160];
	int status = 0;

	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, &status, 0);
	}
	*pid = -1;
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", dir);
	}
	dir[0] = 0;
	return status;
}

/* A field of function dev (vf0, adi-NAME) in `hdnic ctl DIR list|stats --json`. */
static char *hdnic_query(const char *dir, const char *what, const char *dev, const char *key)
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

/* ---- the wire: the uplink TAP ---- */

/* The test's frames (ethertype 0x88b5) on ifname, brought up. */
static int hdnic_uplink_socket(const char *ifname)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5) };
	struct ifreq ifr = { 0 };
	int s = socket(AF_PACKET, SOCK_RAW, htons(0x88b5)), c = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(s >= 0 && c >= 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	assert_int_equal(ioctl(c, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(c, SIOCSIFFLAGS, &ifr), 0);
	close(c);
	sll.sll_ifindex = if_nametoindex(ifname);
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return s;
}

/* Did a frame from mac with this tag (byte 14) come out of the uplink within ms? */
static bool hdnic_tx_seen(int s, const uint8_t *mac, uint8_t tag, unsigned ms)
{
	struct timeval tv = { .tv_usec = 20000 };
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

/* ---- a guest driver for the function, through hdvm's passthrough device ---- */

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

/* As a guest would: memory decode and bus mastering on, reset, VERSION_1 + MAC, FEATURES_OK. */
static void hdnic_virtio_begin(struct vm *vm)
{
	struct vfio_pci *vp = container_of(device_find(vm, "vfio0"), struct vfio_pci, dev);
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
}

/* Queue q: size entries, its rings at these guest addresses, no vector, enabled. */
static void hdnic_virtio_queue(struct vm *vm, uint16_t q, uint16_t size, uint64_t desc,
			       uint64_t avail, uint64_t used)
{
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_DESCLO, desc, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_AVAILLO, avail, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_USEDLO, used, 8);
	bar_w(vm, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

/*
 * The driver queues one frame from mac to hdnic_peer (tag in byte 14) on the
 * TX queue of size entries at desc/avail, buffers at buf(i) = buf0 + i * 2048;
 * the device is not told (a notify of queue 1 does that).  The buffer's address.
 */
static uint64_t hdnic_tx_queue(struct vm *vm, uint64_t desc_gpa, uint64_t avail_gpa,
			       uint64_t buf0, uint16_t size, const uint8_t *mac, uint8_t tag)
{
	struct vring_desc *desc = gpa(vm, desc_gpa);
	struct vring_avail *avail = gpa(vm, avail_gpa);
	uint16_t i = avail->idx % size;
	uint64_t at = buf0 + i * 2048ull;
	uint8_t *buf = gpa(vm, at);

	memset(buf, 0, NET_HDR_LEN + 64);
	memcpy(buf + NET_HDR_LEN, hdnic_peer, 6);
	memcpy(buf + NET_HDR_LEN + 6, mac, 6);
	buf[NET_HDR_LEN + 12] = 0x88;
	buf[NET_HDR_LEN + 13] = 0xb5;
	buf[NET_HDR_LEN + 14] = tag;
	desc[i] = (struct vring_desc){ at, NET_HDR_LEN + 64, 0, 0 };
	avail->ring[i] = i;
	__atomic_store_n(&avail->idx, (uint16_t)(avail->idx + 1), __ATOMIC_RELEASE);
	return at;
}

#endif
