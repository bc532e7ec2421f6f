// SPDX-License-Identifier: MIT
/*
 * A whole live migration (vmm/migrate.c: vm_migrate_send -> migrate_recv_*
 * over a socket, the fake KVM of fake_kvm.h) of a VM whose passthrough
 * function is VF 0 of host A's REAL hdnic, to a VM on VF 0 of host B's hdnic
 * (two hdnic processes in the test's own network namespace), and the
 * faults issue 10 names, as a user of `hdvm migrate` would see them: what
 * each side says, where each function ends (`hdnic ctl DIR list --json`).
 *  - it moves: B's function runs with the guest's MAC, PRE_COPY data went;
 *  - B's hdnic dies during RESUMING (HDNIC_FAILPOINT=resuming:N: at the
 *    pre-copy write or at the final state): the destination fails naming
 *    the device, the source is told why and runs on with its VF RUNNING;
 *  - the source vanishes mid-stream: the destination fails, its function
 *    leaves RESUMING and is free for the next VM;
 *  - a corrupt stream, a destination without the device (manifest
 *    mismatch), a destination function of another shape (incompatible
 *    state): refused with the reason, the source runs on, its VF RUNNING.
 * The same with a guest: tests/integration/test_migrate_vf.py (kvm).
 *
 * Needs CAP_SYS_ADMIN (unshare), /dev/net/tun and build/hdnic; skipped otherwise.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>

#include "tests/unit/fake_kvm.h"
#include "tests/unit/fake_vm.h"
#include "tests/unit/hdnic_harness.h"

#include "migration/transport.h"
#include "vmm/irq.h"
#include "vmm/machine_dev.h"
#include "vmm/memory.h"
#include "vmm/migrate.h"

static char dir[2][64];
static pid_t nic_pid[2] = { -1, -1 };
static struct vm a, b;

static int kvm_accepts(int fd, unsigned long req, void *arg) { return 0; }

/* A VM whose one passthrough device is function dev ("vf0", "adi-NAME") of host's hdnic. */
static void vm_up(struct vm *vm, int host, const char *dev, int nr_vfio)
{
	char sock[128];

	fake_vm_init(vm, &slot_kvm, 2 << 20, NR_VCPUS);
	vm->cfg.kernel = "none";
	vm->cfg.nr_vfio_user = nr_vfio;
	vm->mem.kvm = &slot_kvm;
	vm->mem.vm_fd = VM_FD;
	device_add(vm, machine_dev_create());
	vm->pci = pci_bus_create(vm);
	snprintf(sock, sizeof(sock), "%s/%s.sock", dir[host], dev);
	if (nr_vfio)
		assert_int_equal(vfio_pci_add(vm, sock, false, "vfio0"), 0);
	assert_int_equal(devices_realize(vm), 0);
}

/* ---- hdnic ---- */

static int start_nic(int host, const char *failpoint)
{
	char tap[16], name[16];

	snprintf(dir[host], sizeof(dir[host]), "/tmp/hdvm-test-mig%d.%d", host, getpid());
	snprintf(tap, sizeof(tap), "tap:hdg%d", host);
	snprintf(name, sizeof(name), "host%c", 'a' + host);
	return hdnic_start(&nic_pid[host], dir[host], 1, tap, name, failpoint,
			   "test_migrate_hdnic");
}

/* Ends host's hdnic (if it still runs); its exit status, as waitpid gives it. */
static int stop_nic(int host)
{
	return hdnic_stop(&nic_pid[host], dir[host]);
}

/* A field of function dev of host's hdnic in `hdnic ctl DIR list --json`. */
static char *dev_field(int host, const char *dev, const char *key)
{
	return hdnic_query(dir[host], "list", dev, key);
}

/* Until host's function dev has no client (its VM detached), at most 2 s. */
static void wait_detached(int host, const char *dev)
{
	for (int i = 0; i < 100 && strcmp(dev_field(host, dev, "client"), "false"); i++)
		usleep(20000);
	assert_string_equal(dev_field(host, dev, "client"), "false");
}

/* ---- a relay between source and destination that can cut or corrupt the stream ---- */

/* RELAY_NONE: no relay, unix: straight (fds pass), the RAM goes as its memfd */
enum relay_mode { RELAY_PASS, RELAY_CUT, RELAY_FLIP, RELAY_NONE };

struct relay {
	int src, dst;		/* the source's peer end, the destination's peer end */
	enum relay_mode mode;
	uint64_t fwd;		/* bytes forwarded source -> destination */
	bool dst_done;		/* the destination closed its sending side */
	pthread_t t;
};

/*
 * What the source sends goes on until the function's pre-copy section
 * ("HVP1": hdnic's PRE_COPY data) has passed; then RELAY_CUT ends both
 * directions there (the source killed mid-stream, as the destination sees
 * it) and RELAY_FLIP flips one byte inside that section.
 */
static void *relay_main(void *arg)
{
	struct relay *r = arg;
	uint8_t buf[65536];
	bool seen = false;

	for (;;) {
		struct pollfd p[2] = { { .fd = r->src, .events = POLLIN },
				       { .fd = r->dst_done ? -1 : r->dst, .events = POLLIN } };

		if (poll(p, 2, 10000) <= 0)
			break;
		if (p[1].revents) {		/* the destination's answer, or its end */
			ssize_t n = read(r->dst, buf, sizeof(buf));

			if (n <= 0) {		/* it may still drain what the source sends */
				shutdown(r->src, SHUT_WR);
				r->dst_done = true;
			} else if (write(r->src, buf, (size_t)n) != n) {
				break;
			}
		}
		if (p[0].revents) {
			ssize_t n = read(r->src, buf, sizeof(buf));
			uint8_t *hit;

			if (n <= 0)
				break;
			hit = seen ? NULL : memmem(buf, (size_t)n, "HVP1", 4);
			if (hit && r->mode == RELAY_CUT) {
				n = hit - buf + 8;		/* into the section: truncated */
				if (write(r->dst, buf, (size_t)n) != n)
					break;
				break;
			}
			if (hit && r->mode == RELAY_FLIP && hit + 6 < buf + n)
				hit[6] ^= 0x40;
			seen = seen || hit;
			if (write(r->dst, buf, (size_t)n) != n)
				break;		/* the destination closed: the source sees it */
			r->fwd += (uint64_t)n;
		}
	}
	shutdown(r->src, SHUT_RDWR);
	shutdown(r->dst, SHUT_RDWR);
	return NULL;
}

/* ---- the destination: what `hdvm run --incoming URI --vfio-user SOCK` does ---- */

struct dest {
	int fd;
	const char *dev;	/* its function on host B */
	int nr_vfio;		/* --vfio-user options given */
	int ret;
	char why[512];
};

static void *dest_main(void *arg)
{
	struct dest *d = arg;
	struct migrate_incoming in;
	struct vm_config cfg = { .nr_vfio_user = d->nr_vfio };
	struct mig_io io;

	mine = &dst;
	mig_io_unix(&io, d->fd);
	d->ret = migrate_recv_begin(&in, &io, d->why, sizeof(d->why));
	if (!d->ret)
		d->ret = migrate_config_from_manifest(&in.m, &cfg, d->why, sizeof(d->why));
	if (!d->ret) {
		vm_up(&b, 1, d->dev, d->nr_vfio);	/* built from the manifest */
		d->ret = migrate_recv_finish(&in, &b, d->why, sizeof(d->why));
	}
	migrate_recv_answer(&in, d->ret, d->why);
	migrate_recv_end(&in);
	mig_io_close(&io);
	free((char *)cfg.kernel);
	free((char *)cfg.cmdline);
	return NULL;
}

/* `hdvm migrate`: VM a (running) to the destination, through a relay in mode. */
static int migrate(struct dest *d, enum relay_mode mode, struct migrate_result *res,
		   char *why, size_t len)
{
	struct migrate_opts o = { .downtime_ms = 300, .timeout_ms = 20000,
				  .ram_by_fd = mode == RELAY_NONE };
	struct relay r = { .mode = mode };
	int s[2], t[2], ret;
	struct mig_io io;
	pthread_t dt;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	if (mode == RELAY_NONE) {
		d->fd = s[1];
	} else {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t), 0);
		r.src = s[1];
		r.dst = t[0];
		d->fd = t[1];
		assert_int_equal(pthread_create(&r.t, NULL, relay_main, &r), 0);
	}
	assert_int_equal(pthread_create(&dt, NULL, dest_main, d), 0);
	mig_io_unix(&io, s[0]);
	ret = vm_migrate_send(&a, &io, &o, res, why, len);
	mig_io_close(&io);
	pthread_join(dt, NULL);
	fprintf(stderr, "source: %d %s\ndestination: %d %s\n", ret, why, d->ret, d->why);
	if (mode != RELAY_NONE) {
		pthread_join(r.t, NULL);
		close(r.src);
		close(r.dst);
	}
	return ret;
}

/* ---- setup ---- */

static int setup_with(const char *b_failpoint)
{
	if (!have_nic)
		return 0;
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	mine = NULL;
	if (start_nic(0, NULL) || start_nic(1, b_failpoint))
		return -1;
	vm_up(&a, 0, "vf0", 1);
	a.paused_vcpus = NR_VCPUS;	/* no vCPU threads: pause finds them parked */
	a.state = VM_RUNNING;
	return 0;
}

static int setup(void **st) { return setup_with(NULL); }
static int setup_dies_at_precopy(void **st) { return setup_with("resuming:1"); }
static int setup_dies_at_final(void **st) { return setup_with("resuming:2"); }

static int teardown(void **st)
{
	fake_vm_free(&b);
	memset(&b, 0, sizeof(b));
	fake_vm_free(&a);
	memset(&a, 0, sizeof(a));
	stop_nic(0);
	stop_nic(1);
	return 0;
}

/* The source after a failed migration: running, its VF RUNNING and attached. */
static void assert_source_runs_on(void)
{
	struct vfio_pci *vp = container_of(device_find(&a, "vfio0"), struct vfio_pci, dev);

	assert_int_equal(a.state, VM_RUNNING);
	assert_true(vp_alive(vp));
	assert_string_equal(dev_field(0, "vf0", "mig_state"), "running");
	assert_string_equal(dev_field(0, "vf0", "client"), "true");
}

/*
 * The function goes along, its PRE_COPY data ahead of its final state:
 * relayed as over tcp:, or over unix: with the RAM's memfd (no page sent).
 */
static void function_moves(enum relay_mode mode)
{
	struct dest d = { .dev = "vf0", .nr_vfio = 1 };
	struct migrate_result res;
	char why[512] = "", mac[32];
	int ret;

	NEED_NIC();
	snprintf(mac, sizeof(mac), "%s", dev_field(0, "vf0", "mac"));
	assert_string_not_equal(mac, dev_field(1, "vf0", "mac"));
	ret = migrate(&d, mode, &res, why, sizeof(why));
	if (ret || d.ret)
		fail_msg("source: %d %s / destination: %d %s", ret, why, d.ret, d.why);
	if (mode == RELAY_NONE)
		assert_int_equal(res.pages, 0);
	assert_true(res.device_precopy_bytes > 0);
	assert_string_equal(dev_field(1, "vf0", "mig_state"), "running");
	assert_string_equal(dev_field(1, "vf0", "mac"), mac);
	assert_string_equal(dev_field(0, "vf0", "mig_state"), "stop");	/* handed away */
}

static void test_function_moves_with_the_vm(void **st) { function_moves(RELAY_PASS); }

static void test_function_moves_over_unix_with_its_precopy(void **st)
{
	function_moves(RELAY_NONE);
}

/* B's hdnic SIGKILLs itself at its Nth MIG_DATA_WRITE in RESUMING. */
static void destination_nic_dies_while_resuming(void)
{
	struct dest d = { .dev = "vf0", .nr_vfio = 1 };
	struct migrate_result res;
	char why[512] = "";
	int ret, status;

	NEED_NIC();
	ret = migrate(&d, RELAY_PASS, &res, why, sizeof(why));
	assert_int_not_equal(ret, 0);
	assert_int_not_equal(d.ret, 0);
	/* the destination names its device; the source says the destination refused, why */
	assert_non_null(strstr(d.why, "device vfio0 (vfio-pci)"));
	assert_non_null(strstr(d.why, "vf0.sock is gone (its server disconnected while its "
			       "state was being written)"));
	assert_non_null(strstr(why, "the destination refused: device vfio0 (vfio-pci)"));
	assert_non_null(strstr(why, "is gone"));
	assert_source_runs_on();
	assert_int_equal(waitpid(nic_pid[1], &status, 0), nic_pid[1]);
	nic_pid[1] = -1;
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);	/* the fail point */
}

/* ... at the pre-copy write, while the source still runs */
static void test_destination_nic_dies_at_the_precopy_write(void **st)
{
	destination_nic_dies_while_resuming();
}

/* ... at the final state's write, the source stopped */
static void test_destination_nic_dies_at_the_final_write(void **st)
{
	destination_nic_dies_while_resuming();
}

static void test_source_vanishes_destination_frees_its_function(void **st)
{
	struct dest d = { .dev = "vf0", .nr_vfio = 1 };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	NEED_NIC();
	ret = migrate(&d, RELAY_CUT, &res, why, sizeof(why));
	assert_int_not_equal(ret, 0);
	assert_int_not_equal(d.ret, 0);
	assert_non_null(strstr(d.why, "truncated"));
	/* its function left RESUMING: running, its own MAC, for the next VM */
	assert_string_equal(dev_field(1, "vf0", "mig_state"), "running");
	fake_vm_free(&b);
	memset(&b, 0, sizeof(b));
	wait_detached(1, "vf0");
	vm_up(&b, 1, "vf0", 1);
	assert_string_equal(dev_field(1, "vf0", "client"), "true");
	assert_string_equal(dev_field(1, "vf0", "mig_state"), "running");
	assert_source_runs_on();
}

static void test_corrupt_stream_refused_source_runs_on(void **st)
{
	struct dest d = { .dev = "vf0", .nr_vfio = 1 };
	struct migrate_result res;
	char why[512] = "", mac[32];
	int ret;

	NEED_NIC();
	snprintf(mac, sizeof(mac), "%s", dev_field(1, "vf0", "mac"));
	ret = migrate(&d, RELAY_FLIP, &res, why, sizeof(why));
	assert_int_equal(ret, -EPROTO);
	assert_non_null(strstr(d.why, "crc mismatch in section 'DEVP'"));
	assert_non_null(strstr(why, "the destination refused: crc mismatch in section 'DEVP'"));
	/* refused before anything reached B's function */
	assert_string_equal(dev_field(1, "vf0", "mig_state"), "running");
	assert_string_equal(dev_field(1, "vf0", "mac"), mac);
	assert_source_runs_on();
}

static void test_destination_without_the_device_refused(void **st)
{
	struct dest d = { .dev = "vf0", .nr_vfio = 0 };
	struct migrate_result res;
	char why[512] = "";
	int ret;

	NEED_NIC();
	ret = migrate(&d, RELAY_PASS, &res, why, sizeof(why));
	assert_int_not_equal(ret, 0);
	assert_non_null(strstr(d.why, "manifest mismatch"));
	assert_non_null(strstr(why, "manifest mismatch: the source VM has 1 --vfio-user"));
	assert_source_runs_on();
}

static void test_function_of_another_shape_refused(void **st)
{
	struct dest d = { .dev = "adi-wide", .nr_vfio = 1 };
	struct migrate_result res;
	char why[512] = "", cmd[PATH_MAX + 128];
	int ret;

	NEED_NIC();
	snprintf(cmd, sizeof(cmd), "%s ctl %s adi-add wide --queues 2 >/dev/null", hdnic, dir[1]);
	assert_int_equal(system(cmd), 0);
	ret = migrate(&d, RELAY_PASS, &res, why, sizeof(why));
	assert_int_not_equal(ret, 0);
	/*
	 * checked on what PRE_COPY sent ahead; hdvm hears only the errno (vfio-user
	 * replies carry no text), hdnic's reason is in its log and `ctl list`
	 */
	assert_non_null(strstr(why, "the destination refused: device vfio0 (vfio-pci): its "
			       "pre-copy data"));
	assert_non_null(strstr(why, "Invalid argument"));
	assert_non_null(strstr(dev_field(1, "adi-wide", "mig_error"), "queue pairs"));
	assert_source_runs_on();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_function_moves_with_the_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_function_moves_over_unix_with_its_precopy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_destination_nic_dies_at_the_precopy_write,
						setup_dies_at_precopy, teardown),
		cmocka_unit_test_setup_teardown(test_destination_nic_dies_at_the_final_write,
						setup_dies_at_final, teardown),
		cmocka_unit_test_setup_teardown(test_source_vanishes_destination_frees_its_function,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_stream_refused_source_runs_on,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_without_the_device_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_function_of_another_shape_refused,
						setup, teardown),
	};
	/* a busy host is not a stalled server */
	setenv("HDVM_VFIO_STALL_MS", "5000", 1);
	hdnic_find(argv[0], "test_migrate_hdnic");
	signal(SIGPIPE, SIG_IGN);
	irq_set_ioctl(kvm_accepts);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
