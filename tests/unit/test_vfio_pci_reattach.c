// SPDX-License-Identifier: MIT
/*
 * The passthrough device's re-attach without KVM (vfio_pci_harness.h): the
 * server dies and comes back on the same socket path, by hand, from the
 * main loop's hang-up watch and timer, and after a stall.
 */
#include "tests/unit/vfio_pci_harness.h"

static struct fake_srv *kill_server(void)
{
	struct fake_srv *dead = srv;

	shutdown(dead->sock, SHUT_RDWR);	/* kill -9: the connection drops */
	pthread_join(dead->thr, NULL);
	return dead;
}

static void free_server(struct fake_srv *s)
{
	srv_free(s);
}

/* An MSI-X capability: 4 vectors, table and PBA in BAR1 */
static void with_msix(struct fake_srv *s)
{
	uint16_t ctrl = 3;
	uint32_t table = 1, pba = 0x800 | 1;

	s->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	s->cfg[PCI_CAPABILITY_LIST] = 0x40;
	s->cfg[0x40] = PCI_CAP_ID_MSIX;
	s->cfg[0x41] = 0;
	memcpy(s->cfg + 0x40 + PCI_MSIX_FLAGS, &ctrl, 2);
	memcpy(s->cfg + 0x40 + PCI_MSIX_TABLE, &table, 4);
	memcpy(s->cfg + 0x40 + PCI_MSIX_PBA, &pba, 4);
}

static int setup_msix(void **st) { attach(with_msix); return 0; }

/* With the main loop, as hdvm runs: hang-ups and the re-attach timer are watched. */
static void with_msix_loop(struct fake_srv *s)
{
	with_msix(s);
	vm.loop = loop_create(16);
	assert_non_null(vm.loop);
}

static int setup_msix_loop(void **st) { attach(with_msix_loop); return 0; }

static int teardown_loop(void **st)
{
	struct event_loop *l = vm.loop;

	teardown(st);
	loop_destroy(l);
	return 0;
}

static struct fake_srv *restart_server(uint16_t vendor)
{
	struct fake_srv *s = srv_new();

	with_msix(s);
	put16(s->cfg + PCI_VENDOR_ID, vendor);
	put16(s->cfg + PCI_DEVICE_ID, 0x10ca);
	s->cfg[PCI_CLASS_DEVICE + 1] = 0x02;
	memcpy(s->bar1, "back", 4);
	srv_listen(s, sock_path);
	return s;
}

static void test_reattach_redoes_setup(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server();
	uint8_t buf[4] = { 0 };

	assert_int_equal(vp->nr_vectors, 4);
	/* the client notices (a guest access, or the main loop's hang-up watch) */
	vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
	assert_true(vfio_device_dead(vp->vdev));
	assert_false(vp_alive(vp));

	srv = restart_server(0x8086);
	assert_int_equal(vfio_pci_reattach(dev), 0);
	assert_true(vp_alive(vp));
	/* everything a VMM sets up, done again on the new server */
	assert_int_equal(srv->client_major, VFIO_USER_MAJOR);	/* VERSION */
	assert_int_equal(srv->nr_dmas, 1);			/* all guest RAM */
	assert_int_equal(srv->dmas[0].size, ram_size);
	assert_true(srv->dma_fd_is_memfd);
	assert_true(srv->nr_irq >= 1);				/* MSI-X eventfds */
	assert_int_equal(srv->irq[srv->nr_irq - 1].nfds, vp->nr_vectors);
	assert_true(srv->irq[srv->nr_irq - 1].all_eventfds);
	assert_int_equal(srv->resets, 1);			/* a function-level reset */
	/* and guest accesses reach the new server */
	assert_int_equal(vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4), 0);
	assert_memory_equal(buf, "back", 4);
	free_server(dead);
}

static void test_reattach_refuses_another_device(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server(), *other;
	uint8_t buf[4];

	vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
	other = restart_server(0x1af4);		/* some other vendor's device */
	assert_int_equal(vfio_pci_reattach(dev), -ENODEV);
	assert_false(vp_alive(vp));		/* still removed */
	pthread_join(other->thr, NULL);		/* we hung up on it */
	free_server(other);
	srv = restart_server(0x8086);		/* the right one comes back */
	assert_int_equal(vfio_pci_reattach(dev), 0);
	assert_true(vp_alive(vp));
	free_server(dead);
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		pr_debug("connect: %s", strerror(errno));
	return fd;
}

/* Nobody calls anything: the hang-up is seen, and the new server found, by the loop. */
static void test_reattach_automatic(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct fake_srv *dead = kill_server();
	uint64_t t0 = now_ns();

	while (vp_alive(vp) && now_ns() - t0 < 2000000000ull)
		loop_run_once(vm.loop, 50);
	assert_false(vp_alive(vp));
	unlink(sock_path);		/* the dead server's file goes, a new one comes */
	loop_run_once(vm.loop, VFIO_REATTACH_MS + 100);	/* no server yet: nothing */
	assert_false(vp_alive(vp));
	srv = restart_server(0x8086);
	t0 = now_ns();
	while (!vp_alive(vp) && now_ns() - t0 < 3000000000ull)
		loop_run_once(vm.loop, 100);
	if (!vp_alive(vp))
		close(connect_to(sock_path));	/* let the waiting server thread end */
	assert_true(vp_alive(vp));
	assert_int_equal(srv->resets, 1);
	free_server(dead);
}

/*
 * A server stopped for longer than --vfio-timeout (SIGSTOP) is declared lost;
 * when it runs again it answers on the same connection and hangs up, and the
 * device is re-attached as after a restart -- with no new socket file.
 */
static void with_msix_loop_stall(struct fake_srv *s)
{
	with_msix_loop(s);
	memcpy(s->bar1, "live", 4);
	s->serve = 2;				/* the same listening socket, again */
	vm.cfg.vfio_timeout_ms = 300;
}

/* realize arms the default stall for the guest's accesses: 20 ms, as hdvm runs */
static int setup_msix_loop_stall(void **st)
{
	setenv("HDVM_VFIO_STALL_MS", "20", 1);
	attach(with_msix_loop_stall);
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);	/* the re-attached device's */
	return 0;
}

static void test_reattach_after_stall(void **st)
{
	struct device *dev = device_find(&vm, "vfio0");
	struct vfio_pci *vp = container_of(dev, struct vfio_pci, dev);
	struct stat before, after;
	uint64_t t0;
	uint8_t buf[4];
	int ret;

	assert_int_equal(stat(sock_path, &before), 0);

	srv->sabotage_cmd = VFIO_USER_REGION_READ;
	srv->sabotage = S_DELAY;		/* stopped for 1.2 s */
	srv->delay_ms = 1200;
	t0 = now_ns();
	do {					/* the guest keeps looking */
		ret = vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4);
		loop_run_once(vm.loop, 20);
	} while (ret == -EAGAIN && now_ns() - t0 < 1000000000ull);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_false(vp_alive(vp));		/* lost after the timeout */

	t0 = now_ns();
	while (!vp_alive(vp) && now_ns() - t0 < 3000000000ull)
		loop_run_once(vm.loop, 100);
	if (!vp_alive(vp))
		close(connect_to(sock_path));	/* let the waiting server thread end */
	assert_true(vp_alive(vp));
	assert_int_equal(stat(sock_path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);	/* no new socket file */
	assert_int_equal(srv->resets, 1);		/* a function reset */
	assert_int_equal(srv->nr_dmas, 2);		/* setup redone */
	assert_true(srv->nr_irq >= 2);
	assert_int_equal(vp->vdev->ops->region_read(vp->vdev, 1, 0, buf, 4), 0);
	assert_memory_equal(buf, "live", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reattach_redoes_setup, setup_msix, teardown),
		cmocka_unit_test_setup_teardown(test_reattach_refuses_another_device, setup_msix,
						teardown),
		cmocka_unit_test_setup_teardown(test_reattach_automatic, setup_msix_loop,
						teardown_loop),
		cmocka_unit_test_setup_teardown(test_reattach_after_stall, setup_msix_loop_stall,
						teardown_loop),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
