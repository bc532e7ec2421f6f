// SPDX-License-Identifier: MIT
/*
 * hdvm's passthrough device against the real hdnic, without KVM: a VM with
 * buses and guest RAM but no vCPUs realizes a vfio-pci device on an hdnic
 * VF (in a network namespace of the test's own), and what hdnic reports
 * (`hdnic ctl DIR list --json`: mig_state, mac) shows that pause stopped
 * the function and resume ran it again, and that a function's state saved
 * from one VF (STOP_COPY) is taken by another VF (RESUMING) once the source
 * gave up its MAC (refused with the reason while it has not), a corrupt one
 * refused with the arc named and the function running again.
 *
 * Needs CAP_SYS_ADMIN (unshare), /dev/net/tun and build/hdnic next to the
 * test binaries' directory; skipped otherwise.
 */
#include <errno.h>
#include <json-c/json.h>
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
#include "migration/state.h"
#include "vmm/irq.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static char hdnic[PATH_MAX], dir[64];
static pid_t nic_pid = -1;
static bool have_nic;

static struct vm vm_a, vm_b;
static bool a_up, b_up;

static int kvm_accepts(int fd, unsigned long req, void *arg) { return 0; }

static void vm_up(struct vm *vm, int vf)
{
	char sock[128];

	memset(vm, 0, sizeof(*vm));
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	assert_int_equal(guest_mem_init(&vm->mem, 2 << 20), 0);
	vm->pci = pci_bus_create(vm);
	snprintf(sock, sizeof(sock), "%s/vf%d.sock", dir, vf);
	/* the same id on both ends: it comes from the config, not the function */
	assert_int_equal(vfio_pci_add(vm, sock, false, "vfio0"), 0);
	*(vm == &vm_a ? &a_up : &b_up) = true;
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_RUNNING;
}

static void vm_down(struct vm *vm)
{
	bool *up = vm == &vm_a ? &a_up : &b_up;

	if (!*up)
		return;
	*up = false;
	devices_unrealize(vm);
	while (vm->devices) {
		struct device *d = vm->devices;

		vm->devices = d->next;
		free(d);
	}
	guest_mem_destroy(&vm->mem);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
}

/* A field of VF vf in `hdnic ctl DIR list --json`. */
static char *vf_field(int vf, const char *key)
{
	static char val[64];
	char cmd[PATH_MAX + 128], out[65536];
	json_object *root, *vfs, *e, *v;
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s ctl %s list --json", hdnic, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	root = json_tokener_parse(out);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "vfs", &vfs));
	e = json_object_array_get_idx(vfs, vf);
	assert_non_null(e);
	assert_true(json_object_object_get_ex(e, key, &v));
	snprintf(val, sizeof(val), "%s", json_object_get_string(v));
	json_object_put(root);
	return val;
}

static void nic_ctl(const char *args)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof(cmd), "%s ctl %s %s >/dev/null", hdnic, dir, args);
	assert_int_equal(system(cmd), 0);
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
	vm_down(a);

	vm_up(b, 1);
	/* VF 0 still owns that MAC on hdnic's switch: VF 1 cannot take it */
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(b, &rd, why, sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "device vfio0 (vfio-pci)"));
	assert_non_null(strstr(why, "the device refused RESUMING -> STOP: File exists"));
	assert_string_equal(vf_field(1, "mig_state"), "running");
	/* once the source function lets it go, the state moves */
	nic_ctl("set-mac 0 02:00:00:00:77:01");
	state_init_reader(&rd, sb.data, sb.len);
	assert_int_equal(devices_load(b, &rd, why, sizeof(why)), 0);
	assert_string_equal(vf_field(1, "mig_state"), "running");
	assert_string_equal(vf_field(1, "mac"), mac0);		/* VF 0's function state */

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

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pause_stops_the_function, teardown),
		cmocka_unit_test_teardown(test_state_moves_to_another_function, teardown),
	};
	char self[PATH_MAX];

	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(hdnic, sizeof(hdnic), "%s/../hdnic", dirname(self));
	have_nic = access(hdnic, X_OK) == 0 && unshare(CLONE_NEWNET) == 0 &&
		   access("/dev/net/tun", R_OK | W_OK) == 0;
	if (!have_nic)
		fprintf(stderr, "test_vfio_pci_hdnic: no hdnic binary, namespace or /dev/net/tun: "
			"skipped\n");
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
