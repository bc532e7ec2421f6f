/* SPDX-License-Identifier: MIT */
/*
 * One microVM: the KVM VM, its memory, vCPUs, buses and devices.  hdvm runs one
 * VM per process; the main thread runs the event loop (control socket, console
 * input, signals), each vCPU has its own thread.
 */
#ifndef HDVM_VM_H
#define HDVM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/boot/boot.h"
#include "vmm/iobus.h"
#include "vmm/irq.h"
#include "vmm/memory.h"
#include "vmm/throttle.h"

struct device;
struct vcpu;
struct event_loop;
struct irq_routing;
struct kvm_ops;
struct pci_bus;
struct snap_reader;
struct standby;

enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

#define VM_NAME_MAX	64

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	enum boot_proto boot;
	uint64_t mem_size;
	int ncpus;
	char name[VM_NAME_MAX];
	enum console_kind console;
	const char *console_path;
	bool seccomp;
	const char *run_dir;
	const char *metrics_path;
	/* passthrough and paravirtual devices, added by later layers */
	const char *vfio_user[16];
	int nr_vfio_user;
	const char *vfio_kernel[16];
	int nr_vfio_kernel;
	int vfio_timeout_ms;	/* a vfio-user server silent this long is lost; 0: default */
	const char *net[16];
	int nr_net;
	/* hdvm run --restore: the validated snapshot (vmm/snapshot.h), else NULL */
	struct snap_reader *restore;
	const char *restore_path;
	/* hdvm run --incoming: the stream after its manifest (vmm/migrate.h), else NULL */
	const char *incoming_uri;
	const char *tls_creds;		/* --tls-creds DIR for a tcp: stream */
	const char *tls_hostname;	/* --tls-hostname: the peer's certificate names it */
	struct migrate_incoming *incoming;
	/* unix: the source's TAP fds, one per --net in order (devices/virtio/virtio_net.h) */
	const int *net_fds;
	int nr_net_fds;
	/* hdvm run --standby: checkpoints arrive, vCPUs start on activation (vmm/standby.h) */
	const char *standby_uri;
	struct standby *standby;
	const char *etcd;		/* --etcd: the standby takes the owner key first */
	int etcd_ttl_s, etcd_renew_ms;	/* --etcd-ttl, --etcd-renew-ms (0: defaults) */
};

enum vm_state { VM_CREATED, VM_RUNNING, VM_PAUSED, VM_SHUTDOWN };

struct vm_metrics {
	uint64_t t_start;		/* process start (ns, CLOCK_MONOTONIC) */
	/* start-up phases, each when it ended (ns, CLOCK_MONOTONIC) */
	uint64_t t_kvm;			/* VM and irqchip created */
	uint64_t t_devices;		/* devices created, passthrough ones attached */
	uint64_t t_loaded;		/* kernel, initrd and boot tables in guest RAM */
	uint64_t t_realized;		/* devices realized (BARs, MSI-X, DMA maps) */
	uint64_t t_mem;			/* guest RAM registered with KVM */
	uint64_t t_first_run;		/* first KVM_RUN entered */
	uint64_t t_marker;		/* guest wrote the workload boot marker */
	uint64_t t_exit;
};

struct vm {
	struct vm_config cfg;
	const struct kvm_ops *kvm;	/* KVM's ioctls (a fake in unit tests) */
	int kvm_fd, vm_fd;
	int vcpu_mmap_size;
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
	struct guest_mem mem;
	pthread_t mem_thread;		/* registers RAM with KVM during set-up */
	int mem_thread_ret;
	bool mem_thread_started;
	struct boot_entry boot;
	struct iobus pio, mmio;
	struct device *devices;

	struct vcpu **vcpus;
	int ncpus;

	/* run state, changed only by the main thread, under state_lock */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	enum vm_state state;
	int paused_vcpus;		/* vCPUs parked after a pause request */

	/* set once from any thread; the main loop reacts through exit_efd */
	atomic_bool shutdown;
	struct vcpu_throttle throttle;	/* auto-converge (vmm/throttle.h) */
	int exit_code;
	char exit_reason[96];
	int exit_efd;

	int console_out_fd;		/* -1 for none */
	int console_in_fd;		/* -1 unless stdio */
	struct vm_metrics metrics;
	struct event_loop *loop;
	struct irq_routing *irq;	/* GSI routing table (vmm/irq.c) */
	struct pci_bus *pci;		/* bus 0, created with the VM */
	/* vCPU pause handshake */
	atomic_bool pause_requested;
	/*
	 * A standby protects this VM (vmm/checkpoint_job.c sets it while its
	 * job runs): post-copy migration is refused for it.
	 */
	atomic_bool remus_protected;
};

/* The single VM of this process (signal handlers and seccomp need it). */
extern struct vm *the_vm;

/* Both return 0 or -errno, having said why. */
int vm_create(struct vm *vm, const struct vm_config *cfg);
/* Load the kernel (or a snapshot's RAM and state), realize devices, start vCPUs. */
int vm_boot(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Thread-safe: record why and with which status the VM stops, wake the main loop. */
void vm_request_shutdown(struct vm *vm, int code, const char *reason);
/*
 * Main thread only.  Pause waits until every vCPU has left KVM_RUN, then
 * pauses the devices; if one refuses, everything runs again and why says
 * which device and why.  Resume always lets the vCPUs run; why names a
 * device that failed to resume.  0 or -errno.
 */
int vm_pause(struct vm *vm, char *why, size_t len);
/* Start every vCPU (vm_boot does; a standby does when it activates). */
int vm_start_vcpus(struct vm *vm);
int vm_resume(struct vm *vm, char *why, size_t len);
const char *vm_state_name(enum vm_state s);
int kvm_max_vcpus(int kvm_fd);



#endif
