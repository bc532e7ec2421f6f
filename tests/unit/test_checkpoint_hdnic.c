// SPDX-License-Identifier: MIT
/*
 * Remus output commit end to end at a REAL hdnic, without KVM (the pattern
 * of test_vfio_pci_hdnic.c): a primary process with hdvm's passthrough
 * device on VF 0 and a guest driver in plain code, the checkpoint driver
 * (vmm/checkpoint.c) pausing the function each epoch (RUNNING_P2P, STOP,
 * STOP_COPY state, RUNNING over vfio-user) and shipping checkpoints to a
 * standby on VF 1 of the same hdnic (vmm/standby.c), through a relay the
 * test can freeze.  What a client on the wire sees:
 *  - a frame the driver sends leaves the uplink once its epoch is acknowledged;
 *  - while the standby (the relay) is frozen, a frame is held in hdnic
 *    (egress_held) and leaves only after the standby answers again;
 *  - a frame of an epoch never acknowledged is thrown away when the primary
 *    is SIGKILLed (egress_discarded) and never reaches the wire;
 *  - the standby then takes over: VF 1 loads the last checkpoint's state
 *    (RESUMING -> RUNNING), carries VF 0's MAC and announces it;
 *  - host A's hdnic alone dying is host A failing: the primary stops its VM
 *    (paused, nothing released, hdvm asked to exit 1) and the standby takes over.
 *
 * Needs CAP_SYS_ADMIN (unshare), /dev/net/tun and build/hdnic; skipped otherwise.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"
#include "tests/unit/hdnic_harness.h"

#include "migration/stream.h"
#include "vmm/checkpoint.h"
#include "vmm/kvm_ops.h"
#include "vmm/machine_dev.h"
#include "vmm/irq.h"
#include "vmm/memory.h"
#include "vmm/migrate.h"
#include "vmm/standby.h"
#include "vmm/vcpu.h"

/* host A's NIC (the primary's VF 0) and host B's (the standby's VF 0) */
static char dir[2][64];
static pid_t nic_pid[2] = { -1, -1 };

static int kvm_accepts(int fd, unsigned long req, void *arg) { return 0; }

/*
 * memory slots, KVM's dirty log (empty: no vCPU writes here), the vCPU state
 * of the fake cur names (set per process here; slot_kvm switches per thread)
 */
static int slot_ioctl_cur(int fd, unsigned long req, void *arg)
{
	if (req == KVM_SET_USER_MEMORY_REGION || req == KVM_GET_DIRTY_LOG)
		return 0;
	return fake_ioctl(fd, req, arg);
}

static const struct kvm_ops accept_kvm = { .ioctl = slot_ioctl_cur };
static pid_t prim_pid = -1;

static void vm_up(struct vm *vm, int host)
{
	char sock[128];

	/* vCPUs on the fake KVM (tests/unit/fake_kvm.h): their state is its bytes */
	fake_vm_init(vm, &accept_kvm, 2 << 20, NR_VCPUS);
	vm->cfg.kernel = "none";
	vm->cfg.nr_vfio_user = 1;
	vm->mem.kvm = &accept_kvm;
	vm->mem.vm_fd = VM_FD;
	device_add(vm, machine_dev_create());	/* first, as in every VM */
	vm->pci = pci_bus_create(vm);
	snprintf(sock, sizeof(sock), "%s/vf0.sock", dir[host]);
	assert_int_equal(vfio_pci_add(vm, sock, false, "vfio0"), 0);
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_RUNNING;
}

/* Everything vm_up() made. */
static void vm_down(struct vm *vm)
{
	fake_vm_free(vm);
}

/* A field of VF 0 of host's hdnic in `hdnic ctl DIR list|stats --json`. */
static char *vf_query(const char *what, int host, const char *key)
{
	return hdnic_query(dir[host], what, "vf0", key);
}

static uint64_t vf_stat(int host, const char *key)
{
	return strtoull(vf_query("stats", host, key), NULL, 0);
}

/* ---- the guest driver (as in test_vfio_pci_hdnic.c): TX queue 1 only ---- */

#define TXQ_DESC	0x20000ull
#define TXQ_AVAIL	0x21000ull
#define TXQ_USED	0x22000ull
#define TX_BUF(i)	(0x180000ull + (i) * 2048)
#define QSIZE		16

static void driver_up(struct vm *vm)
{
	const uint8_t ok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			   VIRTIO_CONFIG_S_FEATURES_OK;

	hdnic_virtio_begin(vm);
	memset(gpa(vm, TXQ_DESC), 0, 0x3000);
	hdnic_virtio_queue(vm, 1, QSIZE, TXQ_DESC, TXQ_AVAIL, TXQ_USED);
	bar_w(vm, VIRTIO_PCI_COMMON_STATUS, ok | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

/* The driver sends one frame to the peer (hdnic_peer), tag in byte 14. */
static void tx_send(struct vm *vm, const uint8_t *mac, uint8_t tag)
{
	uint64_t buf = hdnic_tx_queue(vm, TXQ_DESC, TXQ_AVAIL, TX_BUF(0), QSIZE, mac, tag);

	/* what KVM's dirty log would say of a vCPU's writes (the fake's log is empty) */
	guest_mem_mark_dirty(&vm->mem, TXQ_DESC, 0x2000);
	guest_mem_mark_dirty(&vm->mem, buf, NET_HDR_LEN + 64);
	bar_w(vm, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
}

/* Every frame on ifname (brought up by hdnic_uplink_socket() first). */
static int raw_all(const char *ifname)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex(ifname) };
	struct timeval tv = { .tv_usec = 20000 };
	int raw = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	assert_true(raw >= 0);
	assert_int_equal(bind(raw, (struct sockaddr *)&sll, sizeof(sll)), 0);
	setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return raw;
}

/* Host B's hdnic sent something from mac on its wire (the announcement) within ms. */
static bool announced(int raw, const uint8_t *mac, unsigned ms)
{
	uint64_t end = now_ns() + ms * 1000000ull;
	uint8_t f[2048];

	while (now_ns() < end) {
		ssize_t n = recv(raw, f, sizeof(f), 0);

		if (n >= 14 && !memcmp(f + 6, mac, 6))
			return true;
	}
	return false;
}

/* ---- the primary: a process of its own, so it can be SIGKILLed ---- */

static struct vm prim;
#define PRIM_STOPPED	42	/* the primary's exit status: it stopped itself */

static bool prim_paused;	/* between dev_pause and dev_resume */

static int dev_pause(struct vm *vm, char *why, size_t len)
{
	prim_paused = true;
	return devices_pause(vm, why, len);
}

static int dev_resume(struct vm *vm, char *why, size_t len)
{
	prim_paused = false;
	return devices_resume(vm, why, len);
}

struct prim_run {
	int fd;
	atomic_bool stop;
	int ret;		/* ckpt_primary_run's */
};

static void *prim_driver(void *arg)
{
	struct prim_run *pr = arg;
	struct ckpt_opts o = {
		.epoch_ms = 200, .heartbeat_ms = 10, .failover_ms = 8000,
		.pause = dev_pause, .resume = dev_resume, .stop = &pr->stop,
	};
	struct ckpt_stats st;
	struct mig_io io;
	char why[256];

	ckpt_stats_init(&st);
	mig_io_unix(&io, pr->fd);
	pr->ret = ckpt_primary_run(&prim, &io, &o, &st, why, sizeof(why));
	if (pr->ret)
		fprintf(stderr, "primary: %s\n", why);
	return NULL;
}

/* Commands on cmd_fd: a byte n > 0 sends the frame tagged n; 0 ends. */
static void primary_main(int fd, int cmd_fd, int ack_fd)
{
	struct prim_run pr = { .fd = fd };
	pthread_t t;
	uint8_t c;

	alarm(60);
	cur = &src;
	vm_up(&prim, 0);
	driver_up(&prim);
	assert_int_equal(pthread_create(&t, NULL, prim_driver, &pr), 0);
	while (read(cmd_fd, &c, 1) == 1 && c) {
		uint8_t m[6];
		unsigned v[6];

		assert_int_equal(sscanf(vf_query("list", 0, "mac"), "%x:%x:%x:%x:%x:%x",
					&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 6);
		for (int i = 0; i < 6; i++)
			m[i] = (uint8_t)v[i];
		tx_send(&prim, m, c);
		assert_int_equal(write(ack_fd, &c, 1), 1);
	}
	atomic_store(&pr.stop, true);
	pthread_join(t, NULL);
	/* PRIM_STOPPED: its device died, so it stopped the VM and asked hdvm to exit */
	_exit(pr.ret == -ENODEV && atomic_load(&prim.shutdown) && prim.exit_code == 1 &&
	      prim_paused ? PRIM_STOPPED : 0);
}

/* ---- a relay between primary and standby the test can freeze ---- */

struct relay {
	int a, b;		/* primary side, standby side */
	atomic_bool frozen, quit;
	atomic_bool acks_frozen;	/* only the standby's replies wait */
	pthread_t t;
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	uint8_t buf[65536];

	while (!atomic_load(&r->quit)) {
		struct pollfd p[2] = { { .fd = r->a, .events = POLLIN }, { .fd = r->b, .events = POLLIN } };

		if (atomic_load(&r->acks_frozen))
			p[1].fd = -1;		/* poll ignores it: replies stay in the socket */

		if (atomic_load(&r->frozen)) {
			usleep(1000);
			continue;
		}
		if (poll(p, 2, 10) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {	/* one side gone: the other sees its end */
				shutdown(i ? r->a : r->b, SHUT_WR);
				if (i == 0)
					return NULL;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(i ? r->a : r->b, buf + off, (size_t)(n - off));

				if (w <= 0)
					return NULL;
				off += w;
			}
		}
	}
	return NULL;
}

/* ---- the standby, on a thread of the test ---- */

struct stby {
	int fd;
	struct vm vm;
	struct mig_io io;
	struct standby sb;
	pthread_t t;
	enum standby_outcome outcome;
	int ret;
	char why[256];
};

static void *standby_main(void *arg)
{
	struct stby *s = arg;

	mig_io_unix(&s->io, s->fd);
	s->ret = standby_begin(&s->sb, &s->io, s->why, sizeof(s->why));
	if (s->ret) {
		fprintf(stderr, "standby: %s\n", s->why);
		return NULL;
	}
	vm_up(&s->vm, 1);	/* its own function, attached and idle */
	s->vm.state = VM_CREATED;
	s->outcome = standby_receive(&s->sb, &s->vm);
	return NULL;
}

static uint64_t applied(struct stby *s)
{
	uint64_t v;

	pthread_mutex_lock(&s->sb.lock);
	v = s->sb.applied;
	pthread_mutex_unlock(&s->sb.lock);
	return v;
}

static void wait_applied(struct stby *s, uint64_t n)
{
	for (int i = 0; i < 1000 && applied(s) < n; i++)
		usleep(10000);
	assert_true(applied(s) >= n);
}

static void send_cmd(int cmd_fd, int ack_fd, uint8_t tag)
{
	uint8_t c;

	assert_int_equal(write(cmd_fd, &tag, 1), 1);
	assert_int_equal(read(ack_fd, &c, 1), 1);
	assert_int_equal(c, tag);
}

static void test_output_held_until_ack_and_discarded_when_primary_dies(void **st)
{
	struct stby s = { 0 };
	struct relay r = { 0 };
	int ps[2], ss[2], cmd[2], ack[2], up = -1, up_b = -1, status;
	uint8_t mac[6];
	unsigned v[6];
	char why[256], mac_text[32];
	pid_t pid;

	if (!have_nic)
		skip();
	fake_reset(&src);
	fake_reset(&dst);
	make_source();		/* the primary's vCPUs (its fork's copy) */
	cur = &dst;		/* the standby's, in this process */
	up = hdnic_uplink_socket("hdc0");
	up_b = hdnic_uplink_socket("hdc1");
	close(up_b);
	up_b = raw_all("hdc1");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ps), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ss), 0);
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	pid = prim_pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(ps[1]);
		primary_main(ps[0], cmd[0], ack[1]);
	}
	close(ps[0]);
	r.a = ps[1];
	r.b = ss[0];
	assert_int_equal(pthread_create(&r.t, NULL, relay_main, &r), 0);
	s.fd = ss[1];
	assert_int_equal(pthread_create(&s.t, NULL, standby_main, &s), 0);
	wait_applied(&s, 2);
	snprintf(mac_text, sizeof(mac_text), "%s", vf_query("list", 0, "mac"));
	assert_int_equal(sscanf(mac_text, "%x:%x:%x:%x:%x:%x",
				&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 6);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	assert_string_not_equal(vf_query("list", 1, "mac"), mac_text);
	assert_string_equal(vf_query("stats", 0, "egress_holding"), "true");

	/* 1: a frame leaves once its epoch is acknowledged */
	send_cmd(cmd[1], ack[0], 1);
	assert_true(hdnic_tx_seen(up, mac, 1, 3000));

	/* 2: the standby frozen -- the frame is held in hdnic, then leaves */
	atomic_store(&r.frozen, true);
	usleep(100000);		/* an ack already on its way lands first */
	send_cmd(cmd[1], ack[0], 2);
	assert_false(hdnic_tx_seen(up, mac, 2, 600));
	assert_true(vf_stat(0, "egress_held") >= 1);
	atomic_store(&r.frozen, false);
	assert_true(hdnic_tx_seen(up, mac, 2, 3000));

	/*
	 * 2b: only the acks held back: the pause that ends the frame's epoch
	 * comes and the checkpoint leaves, but without its ack the frame stays
	 * (a driver that released at the pause, before the ack, fails here)
	 */
	atomic_store(&r.acks_frozen, true);
	send_cmd(cmd[1], ack[0], 5);
	assert_false(hdnic_tx_seen(up, mac, 5, 700));		/* > 3 epochs */
	assert_true(vf_stat(0, "egress_held") >= 1);
	atomic_store(&r.acks_frozen, false);
	assert_true(hdnic_tx_seen(up, mac, 5, 3000));

	/* 3: frozen again, the primary killed before the ack: never on the wire */
	atomic_store(&r.frozen, true);
	usleep(100000);
	send_cmd(cmd[1], ack[0], 3);
	assert_false(hdnic_tx_seen(up, mac, 3, 300));
	assert_true(vf_stat(0, "egress_held") >= 1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	prim_pid = -1;
	atomic_store(&r.frozen, false);
	assert_false(hdnic_tx_seen(up, mac, 3, 800));
	assert_true(vf_stat(0, "egress_discarded") >= 1);

	/* the standby takes over from its last checkpoint, on its own function */
	pthread_join(s.t, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.outcome, STANDBY_ACTIVATE);
	assert_int_equal(standby_activate(&s.sb, &s.vm, why, sizeof(why)), 0);
	assert_string_equal(vf_query("list", 1, "mig_state"), "running");
	assert_string_equal(vf_query("list", 1, "mac"), mac_text);
	/* host B's hdnic announced the guest's MAC on its wire (the switch and peers move) */
	assert_true(announced(up_b, mac, 2000));
	assert_string_not_equal(vf_query("list", 1, "mig_announces"), "0");
	/* the guest goes on where the checkpoint left it: its next frame leaves host B */
	bar0 = pci_bar_address(&container_of(device_find(&s.vm, "vfio0"), struct vfio_pci,
					     dev)->pd, 0);
	tx_send(&s.vm, mac, 4);
	assert_true(hdnic_tx_seen(up_b, mac, 4, 2000));
	assert_false(hdnic_tx_seen(up, mac, 4, 100));
	atomic_store(&r.quit, true);
	pthread_join(r.t, NULL);
	vm_down(&s.vm);		/* the standby's VM, whole (LSan under SANITIZE=1) */
	standby_end(&s.sb);
	close(up);
	close(up_b);
}

/*
 * Issue 11: host A's hdnic alone dies (SIGKILL) while the VM is protected.
 * That is host A failing: the primary's checkpoint driver finds its device
 * gone at the next epoch, keeps the VM paused with nothing released and asks
 * hdvm to exit (status 1); its stream ends without a stop, so the standby
 * takes over on its own function with the guest's MAC.
 */
static int start_nic(int host, const char *failpoint);

/* failpoint NULL: the test SIGKILLs host A's hdnic; else hdnic does, at that point */
static void primary_nic_dies(const char *failpoint)
{
	struct stby s = { 0 };
	int ps[2], cmd[2], ack[2], status;
	char why[256], mac_text[32];
	uint8_t c = 0;
	pid_t pid;

	if (!have_nic)
		skip();
	if (failpoint) {		/* host A's hdnic again, armed */
		hdnic_stop(&nic_pid[0], dir[0]);
		assert_int_equal(start_nic(0, failpoint), 0);
	}
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	cur = &dst;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ps), 0);
	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	pid = prim_pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(ps[1]);
		primary_main(ps[0], cmd[0], ack[1]);
	}
	close(ps[0]);
	s.fd = ps[1];
	assert_int_equal(pthread_create(&s.t, NULL, standby_main, &s), 0);
	wait_applied(&s, 2);
	snprintf(mac_text, sizeof(mac_text), "%s", vf_query("list", 0, "mac"));

	if (!failpoint)
		kill(nic_pid[0], SIGKILL);		/* host A's NIC, alone */
	assert_int_equal(waitpid(nic_pid[0], &status, 0), nic_pid[0]);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	nic_pid[0] = -1;
	pthread_join(s.t, NULL);			/* the stream ended without a stop */
	assert_int_equal(s.ret, 0);
	assert_int_equal(s.outcome, STANDBY_ACTIVATE);
	assert_int_equal(write(cmd[1], &c, 1), 1);	/* the primary's test driver ends */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	prim_pid = -1;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), PRIM_STOPPED);
	assert_int_equal(standby_activate(&s.sb, &s.vm, why, sizeof(why)), 0);
	assert_string_equal(vf_query("list", 1, "mig_state"), "running");
	assert_string_equal(vf_query("list", 1, "mac"), mac_text);
	vm_down(&s.vm);
	standby_end(&s.sb);
	close(cmd[1]);
	close(ack[0]);
}

/* found dead at the next pause or harvest */
static void test_primary_nic_dies_primary_stops_standby_takes_over(void **st)
{
	primary_nic_dies(NULL);
}

/* dead under the COMMIT that releases an acknowledged epoch's output */
static void test_primary_nic_dies_at_a_commit_primary_stops(void **st)
{
	primary_nic_dies("after-commit:5");
}

static int start_nic(int host, const char *failpoint)
{
	char tap[16], name[16];

	snprintf(dir[host], sizeof(dir[host]), "/tmp/hdvm-test-ckpt%d.%d", host, getpid());
	snprintf(tap, sizeof(tap), "tap:hdc%d", host);
	snprintf(name, sizeof(name), "host%c", 'a' + host);
	return hdnic_start(&nic_pid[host], dir[host], 1, tap, name, failpoint,
			   "test_checkpoint_hdnic");
}

static int group_setup(void **st)
{
	if (!have_nic)
		return 0;
	if (start_nic(0, NULL) || start_nic(1, NULL))
		return -1;
	irq_set_ioctl(kvm_accepts);
	return 0;
}

static int group_teardown(void **st)
{
	if (prim_pid > 0) {	/* a failed test leaves its primary */
		kill(prim_pid, SIGKILL);
		waitpid(prim_pid, NULL, 0);
	}
	for (int h = 0; h < 2; h++)
		hdnic_stop(&nic_pid[h], dir[h]);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_held_until_ack_and_discarded_when_primary_dies),
		cmocka_unit_test(test_primary_nic_dies_primary_stops_standby_takes_over),
		cmocka_unit_test(test_primary_nic_dies_at_a_commit_primary_stops),
	};

	/* a busy host is not a stalled server: the stall tests set their own */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	/* the uplink's own IPv6 chatter stays off the wire the test watches */
	if (hdnic_find(argv[0], "test_checkpoint_hdnic"))
		hdnic_no_ipv6();
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
