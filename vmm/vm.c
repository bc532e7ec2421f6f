// SPDX-License-Identifier: MIT
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/pci/pci.h"
#include "devices/virtio/virtio_net.h"
#include "devices/vfio/vfio_pci.h"
#include "vmm/cpu_setup.h"
#include "vmm/kvm_ops.h"
#include "vmm/machine_dev.h"
#include "vmm/migrate.h"
#include "vmm/postcopy_vm.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"

/* Below the 4 GiB boundary, above the IOAPIC/LAPIC, as other VMMs place them. */
#define KVM_TSS_ADDR		0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR	0xfffbc000ULL

struct vm *the_vm;

const char *vm_state_name(enum vm_state s)
{
	static const char *const names[] = {
		[VM_CREATED] = "created", [VM_RUNNING] = "running",
		[VM_PAUSED] = "paused", [VM_SHUTDOWN] = "shutdown",
	};
	return s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static int kvm_open(struct vm *vm)
{
	int ver, ret;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		pr_err("/dev/kvm: %s", strerror(-ret));
		return ret;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		pr_err("/dev/kvm: API version %d, need %d", ver, KVM_API_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* The vCPU limit KVM reports; `--cpus` above it is refused up front. */
int kvm_max_vcpus(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (n <= 0)
		n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	return n > 0 ? n : 1;
}

static int vm_setup_kvm(struct vm *vm)
{
	static const struct { int cap; const char *name; } required[] = {
		{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
		{ KVM_CAP_IRQ_ROUTING, "IRQ routing" },
		{ KVM_CAP_IRQFD, "irqfd" },
		{ KVM_CAP_IOEVENTFD, "ioeventfd" },
		{ KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
		{ KVM_CAP_USER_MEMORY, "user memory" },
	};
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0) {
			pr_err("KVM lacks %s", required[i].name);
			return -EOPNOTSUPP;
		}
	}
	/* a signal can interrupt it (seen on a standby's takeover); QEMU retries too */
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_VM: %s", strerror(-ret));
		return ret;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0) {
		ret = vm->vcpu_mmap_size < 0 ? -errno : -EINVAL;
		pr_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		pr_debug("KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		pr_debug("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_PIT2: %s", strerror(-ret));
		return ret;
	}
	return irq_routing_init(vm);
}

/*
 * The VM's first KVM_SET_USER_MEMORY_REGION costs ~5 ms here whatever the
 * size (it waits for the kernel, it does not compute), so it runs in a thread
 * while the kernel loads and the vCPUs are created.
 */
static void *mem_register_thread(void *arg)
{
	struct vm *vm = arg;

	vm->mem_thread_ret = guest_mem_register(&vm->mem, vm->kvm, vm->vm_fd);
	return NULL;
}

static int mem_register_wait(struct vm *vm)
{
	if (!vm->mem_thread_started)
		return 0;
	pthread_join(vm->mem_thread, NULL);
	vm->mem_thread_started = false;
	return vm->mem_thread_ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	int max, ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm = &kvm_host_ops;
	vm->kvm_fd = vm->vm_fd = vm->exit_efd = -1;
	vm->console_out_fd = vm->console_in_fd = -1;
	vm->ncpus = cfg->ncpus;
	vm->metrics.t_start = process_start_ns;
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	the_vm = vm;

	ret = kvm_open(vm);
	if (ret < 0)
		return ret;
	max = kvm_max_vcpus(vm->kvm_fd);
	if (cfg->ncpus < 1 || cfg->ncpus > max) {
		pr_err("--cpus %d: must be between 1 and %d (KVM's limit)", cfg->ncpus, max);
		return -EINVAL;
	}
	ret = vm_setup_kvm(vm);
	if (ret < 0)
		return ret;
	vm->metrics.t_kvm = now_ns();
	ret = guest_mem_init_fd(&vm->mem, cfg->mem_size,
				cfg->incoming ? migrate_recv_take_memfd(cfg->incoming) : -1);
	if (ret < 0)
		return ret;
	if (pthread_create(&vm->mem_thread, NULL, mem_register_thread, vm) == 0)
		vm->mem_thread_started = true;
	else if ((ret = guest_mem_register(&vm->mem, vm->kvm, vm->vm_fd)) < 0)
		return ret;
	vm->cpuid = cpuid_get_supported(vm->kvm_fd);
	if (!vm->cpuid)
		return -EINVAL;		/* it said why */
	vm->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_efd < 0) {
		ret = -errno;
		pr_err("eventfd: %s", strerror(-ret));
		return ret;
	}
	vm->vcpus = xzalloc(sizeof(*vm->vcpus) * vm->ncpus);

	device_add(vm, machine_dev_create());	/* first: loaded before the others */
	device_add(vm, serial_create());
	device_add(vm, i8042_create());
	device_add(vm, exit_dev_create());
	device_add(vm, boot_marker_create());
	vm->pci = pci_bus_create(vm);
	if (!vm->pci)
		return -ENOMEM;
	/* paravirtual NICs (--net) */
	if (virtio_net_create_all(vm) < 0)
		return -EINVAL;		/* it named the bad --net */
	/* passthrough devices */
	for (int i = 0; i < cfg->nr_vfio_user + cfg->nr_vfio_kernel; i++) {
		bool kernel = i >= cfg->nr_vfio_user;
		char id[32];

		/* ids by place in the config: the same on a restore or migration target */
		snprintf(id, sizeof(id), "vfio%d", i);
		vfio_pci_add(vm, kernel ? cfg->vfio_kernel[i - cfg->nr_vfio_user]
					: cfg->vfio_user[i], kernel, id);
	}
	vm->metrics.t_devices = now_ns();
	return 0;
}

static int load_guest(struct vm *vm)
{
	struct boot_request req = {
		.kernel_path = vm->cfg.kernel,
		.initrd_path = vm->cfg.initrd,
		.cmdline = vm->cfg.cmdline,
		.proto = vm->cfg.boot,
		.ncpus = vm->ncpus,
	};

	if (vm->cfg.restore)
		return snapshot_restore_ram(vm);
	if (vm->cfg.incoming || vm->cfg.standby)
		return 0;	/* RAM arrives in migrate_recv_finish() / checkpoints */
	return boot_load(&vm->mem, &req, &vm->boot);	/* 0 or -errno, the problem printed */
}

/* The rest of a migration stream: RAM, then vCPU/VM and device state, all checked first. */
static int incoming_finish(struct vm *vm)
{
	struct migrate_incoming *in = vm->cfg.incoming;
	char why[512] = "";
	int ret = migrate_recv_finish(in, vm, why, sizeof(why));

	if (ret < 0) {
		pr_err("--incoming %s: %s", vm->cfg.incoming_uri, why);
		migrate_recv_answer(in, ret, why);
		return ret;
	}
	pr_debug("--incoming %s: %llu pages, %llu zero pages, %llu ms", vm->cfg.incoming_uri,
		 (unsigned long long)in->r.pages, (unsigned long long)in->r.zero_pages,
		 (unsigned long long)((now_ns() - in->t_start) / 1000000));
	return 0;
}

int vm_boot(struct vm *vm)
{
	int ret;

	ret = load_guest(vm);
	if (ret < 0)
		return ret;
	vm->metrics.t_loaded = now_ns();
	ret = devices_realize(vm);
	if (ret < 0)
		return ret;
	vm->metrics.t_realized = now_ns();
	for (int i = 0; i < vm->ncpus; i++) {
		ret = vcpu_create(vm, i, &vm->vcpus[i]);
		if (ret < 0)
			return ret;
	}
	ret = mem_register_wait(vm);
	if (ret < 0)
		return ret;
	vm->metrics.t_mem = now_ns();
	if (vm->cfg.restore) {
		ret = snapshot_restore_state(vm);
		snapshot_restore_done(&vm->cfg);	/* the file's pages are no longer needed */
		if (ret < 0)
			return ret;
	}
	if (vm->cfg.incoming) {
		ret = incoming_finish(vm);
		if (ret < 0)
			return ret;
		ret = postcopy_vm_start(vm);	/* answers the source itself */
		if (ret < 0)
			return ret;
	}
	vcpu_signals_init();
	if (vm->cfg.standby)
		return 0;	/* the vCPUs start if it activates (vmm/standby_run.c) */
	ret = vm_start_vcpus(vm);
	if (ret < 0)
		return ret;
	if (vm->cfg.incoming)	/* the source may go: the VM runs here */
		migrate_recv_answer(vm->cfg.incoming, 0, NULL);
	return 0;
}

int vm_start_vcpus(struct vm *vm)
{
	vm->state = VM_RUNNING;
	for (int i = 0; i < vm->ncpus; i++) {
		int ret = vcpu_start(vm->vcpus[i]);

		if (ret < 0)
			return ret;
	}
	return 0;
}

void vm_request_shutdown(struct vm *vm, int code, const char *reason)
{
	bool expected = false;
	uint64_t one = 1;

	/* The first reason wins: later ones are consequences of it. */
	if (!atomic_compare_exchange_strong(&vm->shutdown, &expected, true))
		return;
	vm->exit_code = code;
	snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason);
	vm->metrics.t_exit = now_ns();
	if (write(vm->exit_efd, &one, sizeof(one)) < 0)
		pr_debug("exit eventfd: %s", strerror(errno));
	/* Wake parked vCPUs; the main loop kicks the running ones. */
	pthread_mutex_lock(&vm->state_lock);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

static void release_vcpus(struct vm *vm)
{
	pthread_mutex_lock(&vm->state_lock);
	atomic_store(&vm->pause_requested, false);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

int vm_pause(struct vm *vm, char *why, size_t len)
{
	int ret;

	if (vm->state != VM_RUNNING) {
		snprintf(why, len, "cannot pause a VM that is %s", vm_state_name(vm->state));
		return vm->state == VM_PAUSED ? 0 : -EINVAL;
	}
	/* what needs the guest running to let go (CompSC's lock) comes first */
	ret = devices_pause_early(vm, why, len);
	if (ret)
		return ret;
	atomic_store(&vm->pause_requested, true);
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_kick(vm->vcpus[i]);
	pthread_mutex_lock(&vm->state_lock);
	while (vm->paused_vcpus < vm->ncpus && !atomic_load(&vm->shutdown))
		pthread_cond_wait(&vm->state_cond, &vm->state_lock);
	pthread_mutex_unlock(&vm->state_lock);
	if (atomic_load(&vm->shutdown)) {
		devices_pause_early_undo(vm);
		snprintf(why, len, "the VM is shutting down");
		return -ESHUTDOWN;
	}
	/* vCPUs first (nothing new reaches the devices), then the devices */
	ret = devices_pause(vm, why, len);
	if (ret) {
		devices_pause_early_undo(vm);
		release_vcpus(vm);	/* a device refused: the VM keeps running */
		return ret;
	}
	vm->state = VM_PAUSED;
	return 0;
}

int vm_resume(struct vm *vm, char *why, size_t len)
{
	int ret;

	if (vm->state != VM_PAUSED) {
		snprintf(why, len, "cannot resume a VM that is %s", vm_state_name(vm->state));
		return vm->state == VM_RUNNING ? 0 : -EINVAL;
	}
	/*
	 * A device that fails to resume is reported, but the vCPUs run: a guest
	 * with one broken device beats a VM stuck in pause.
	 */
	ret = devices_resume(vm, why, len);
	release_vcpus(vm);
	vm->state = VM_RUNNING;
	return ret;
}

void vm_destroy(struct vm *vm)
{
	mem_register_wait(vm);
	atomic_store(&vm->shutdown, true);
	pthread_mutex_lock(&vm->state_lock);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
	for (int i = 0; vm->vcpus && i < vm->ncpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
	for (int i = 0; vm->vcpus && i < vm->ncpus; i++)
		if (vm->vcpus[i])
			vcpu_join_and_destroy(vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	postcopy_vm_stop(vm);
	devices_unrealize(vm);
	while (vm->devices) {
		struct device *d = vm->devices;

		vm->devices = d->next;
		free(d);	/* every device embeds struct device first */
	}
	irq_routing_destroy(vm);
	guest_mem_destroy(&vm->mem);
	free(vm->cpuid);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
	if (vm->exit_efd >= 0)
		close(vm->exit_efd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}
