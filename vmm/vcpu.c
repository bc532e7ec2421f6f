// SPDX-License-Identifier: MIT
/*
 * vCPU threads.  Each runs KVM_RUN and dispatches port I/O and MMIO exits to
 * the buses.  HLT is handled in the kernel (in-kernel LAPIC), so an idle guest
 * blocks its thread in KVM_RUN and costs no host CPU.
 *
 * Kicking: the main thread sets kvm_run.immediate_exit and signals the thread;
 * the signal interrupts a running KVM_RUN, immediate_exit covers the window
 * before the thread re-enters it, so no request is ever lost.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/cpu_setup.h"
#include "vmm/kvm_ops.h"
#include "vmm/seccomp.h"
#include "vmm/throttle.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define VCPU_STACK_SIZE	(256 * 1024)

static void kick_handler(int sig) { (void)sig; }

void vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

int vcpu_create(struct vm *vm, int id, struct vcpu **out)
{
	struct vcpu *v = xzalloc(sizeof(*v));
	int ret;

	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_VCPU %d: %s", id, strerror(-ret));
		goto err;
	}
	v->run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		pr_err("mmap of vCPU %d state: %s", id, strerror(-ret));
		goto err;
	}
	/* both name what KVM refused */
	ret = -EINVAL;
	if (cpuid_setup(v->fd, vm->cpuid, id, vm->ncpus) < 0 || msrs_setup(v->fd) < 0)
		goto err;
	/*
	 * APs wait for INIT/SIPI from the guest (in-kernel LAPIC); the BSP boots,
	 * unless a snapshot's state replaces all of this before the first run.
	 */
	if (id == 0 && !vm->cfg.restore && !vm->cfg.incoming && !vm->cfg.standby &&
	    boot_setup_bsp(v->fd, &vm->mem, &vm->boot) < 0)
		goto err;
	*out = v;
	return 0;
err:
	if (v->run)
		munmap(v->run, vm->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
	return ret;
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		if (!iobus_access(&v->vm->pio, run->io.port, data, run->io.size, is_write))
			pr_debug("vcpu%d: unhandled %s port %#x", v->id,
				 is_write ? "write to" : "read from", run->io.port);
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	if (run->mmio.len > 8)
		return;
	if (!iobus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			  run->mmio.len, run->mmio.is_write))
		pr_debug("vcpu%d: unhandled MMIO %s %#llx", v->id,
			 run->mmio.is_write ? "write" : "read", run->mmio.phys_addr);
}

static void vcpu_fail(struct vcpu *v, const char *what)
{
	struct kvm_regs regs;
	char why[160];

	memset(&regs, 0, sizeof(regs));
	ioctl(v->fd, KVM_GET_REGS, &regs);
	snprintf(why, sizeof(why), "vcpu%d: %s (rip=%#llx rsp=%#llx)", v->id, what,
		 regs.rip, regs.rsp);
	vm_request_shutdown(v->vm, 1, why);
}

/* Returns false when the vCPU must stop running. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[96];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(v);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		vm_request_shutdown(v->vm, 0, "guest halted");
		return false;
	case KVM_EXIT_SHUTDOWN:
		vcpu_fail(v, "guest triple fault");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_shutdown(v->vm, 0, "guest requested a reset");
		else
			vm_request_shutdown(v->vm, 0, "guest powered off");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "KVM entry failed (reason %#llx)",
			 run->fail_entry.hardware_entry_failure_reason);
		vcpu_fail(v, what);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
			 run->internal.suberror);
		vcpu_fail(v, what);
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected KVM exit %u", run->exit_reason);
		vcpu_fail(v, what);
		return false;
	}
}

/*
 * An I/O or MMIO exit is complete only once KVM_RUN is entered again (KVM API,
 * KVM_RUN): enter with immediate_exit set, which finishes it without running
 * guest code, so state read while parked is consistent.  A rep string
 * instruction can exit again on the way; those exits are served too.
 */
static bool vcpu_settle(struct vcpu *v)
{
	for (;;) {
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			char what[64];

			v->run->immediate_exit = 0;
			if (errno == EINTR || errno == EAGAIN)
				return true;
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			vcpu_fail(v, what);
			return false;
		}
		if (!vcpu_handle_exit(v))
			return false;	/* it asked for the shutdown */
	}
}

/* Pause handshake: park until the main thread clears pause_requested. */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->state_lock);
	v->parked = true;
	vm->paused_vcpus++;
	pthread_cond_broadcast(&vm->state_cond);
	while (atomic_load(&vm->pause_requested) && !atomic_load(&vm->shutdown))
		pthread_cond_wait(&vm->state_cond, &vm->state_lock);
	vm->paused_vcpus--;
	v->parked = false;
	pthread_mutex_unlock(&vm->state_lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "vcpu%d", v->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (vm->cfg.seccomp && seccomp_install(SECCOMP_ROLE_VCPU) < 0) {
		vm_request_shutdown(vm, 1, "installing the vCPU seccomp filter failed");
		return NULL;
	}

	while (!atomic_load(&vm->shutdown)) {
		if (atomic_load(&vm->pause_requested)) {
			if (!vcpu_settle(v))
				break;
			vcpu_park(v);
			continue;
		}
		if (v->id == 0 && !vm->metrics.t_first_run)
			vm->metrics.t_first_run = now_ns();
		ret = vm->kvm->ioctl(v->fd, KVM_RUN, NULL);
		if (ret < 0) {
			if (ret == -EINTR || ret == -EAGAIN) {
				v->run->immediate_exit = 0;
				vcpu_throttle_point(v);
				continue;
			}
			char what[64];

			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(-ret));
			vcpu_fail(v, what);
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
		vcpu_throttle_point(v);
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	pthread_attr_t attr;
	sigset_t set, old;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, VCPU_STACK_SIZE);
	/* Start with the kick signal blocked; the thread unblocks it itself. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = pthread_create(&v->thread, &attr, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret) {
		pr_err("starting vCPU %d: %s", v->id, strerror(ret));
		return -ret;
	}
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join_and_destroy(struct vcpu *v)
{
	if (v->started)
		pthread_join(v->thread, NULL);
	if (v->run)
		munmap(v->run, v->vm->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}
