/* SPDX-License-Identifier: MIT */
/*
 * Post-copy in a VM's migration (vmm/migrate.c calls these; the mechanism is
 * vmm/postcopy_src.c and vmm/postcopy_dst.c).
 *
 * Source: the switchover sends, instead of the last dirty pages, the list of
 * pages the destination must fetch (every page with data when nothing was
 * pre-copied, else the pages dirtied since they were sent), then device
 * state and the end marker; once the destination answers OK its VM runs and
 * this VM stays paused, serving pages until the destination has them all.
 * From that answer on there is no way back: if either end dies, the VM is
 * lost (half its memory is on each side).  A VM under Remus protection
 * (vm->remus_protected) is refused: protection exists so that one host's
 * death does not lose the VM, post-copy makes two hosts' deaths fatal.
 *
 * Destination: device DMA into a page not yet arrived would corrupt it: a
 * passthrough device (vfio-user, kernel VFIO: those with their own DMA log)
 * writes guest RAM through its own mapping of the memfd or the IOMMU, which
 * userfaultfd does not see -- the write would land on an empty page that
 * UFFDIO_COPY then refuses (-EEXIST).  Every page a NIC may receive into is
 * any page the guest posts, so "fetch before the device maps it" means
 * "fetch all of RAM": such devices are HELD instead -- paused before their
 * state is loaded (so the load leaves them stopped, with no window in which
 * they run) and resumed once every page is present.  hdvm's own devices
 * (virtio-net, legacy) run: they touch guest RAM through hdvm's registered
 * mapping, so a missing page stops the touching thread until it arrives,
 * and guest_mem_write() faults its pages in first (-EHOSTDOWN once lost).
 * A kernel VFIO device is refused: its IOMMU mapping pins guest RAM at
 * attach, so it would keep DMAing into the pages post-copy punches out.
 */
#ifndef HDVM_POSTCOPY_VM_H
#define HDVM_POSTCOPY_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/postcopy_proto.h"

struct vm;
struct mig_io;
struct mig_writer;
struct migrate_opts;
struct migrate_result;
struct migrate_incoming;

/* ---- source ---- */
/* Refuse what post-copy cannot do (a file, the memfd passing, a protected VM); io may be NULL. */
int postcopy_src_check(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		       char *why, size_t len);
/*
 * The control socket's "postcopy": true and "postcopy_after": N (passes,
 * already read) into o; refuses file:, --tls-creds (the one-thread poll
 * loops cannot see records OpenSSL has buffered) and a protected VM.
 */
struct json_object;
int postcopy_opts(struct json_object *req, uint64_t after, bool file, bool tls, struct vm *vm,
		  struct migrate_opts *o, char *why, size_t len);
/* The result's post-copy fields, when it switched. */
void postcopy_result_json(struct json_object *p, const struct migrate_result *res);
/* Paused: the list of pages the destination needs, as the PCSW section. */
int postcopy_src_switch(struct vm *vm, struct mig_writer *w, bool logging,
			struct migrate_result *res, char *why, size_t len);
/*
 * Past the switchover (serving pages): a cancel or the source VM stopping
 * must not cut the connection -- that would lose the VM; the job waits.
 */
bool postcopy_src_committed(void);
#define POSTCOPY_NO_CANCEL_MSG "post-copy is past its switchover (the destination runs " \
	"the VM): cancelling now would lose it; it ends when every page is there"
/* The destination runs: serve it until it has every page (else the VM is lost). */
int postcopy_src_run(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		     struct migrate_result *res, char *why, size_t len);

/* ---- destination ---- */
int postcopy_recv_switch(struct migrate_incoming *in, const uint8_t *body, uint64_t blen,
			 uint64_t mem_size, char *why, size_t len);
/*
 * A stream that may switch to post-copy (MIG_F_POSTCOPY): before any device
 * state arrives (pre-copy DEVP included), stop the devices that DMA on their
 * own, so loading their state leaves them stopped; release them when RAM is
 * complete, or after the load if the source never switched.
 */
int postcopy_hold_devices(struct vm *vm, char *why, size_t len);
void postcopy_release_devices(struct vm *vm);
/*
 * Before the vCPUs start: register RAM (a failure is answered ERR, the
 * source keeps its VM), answer OK, start serving faults.
 */
int postcopy_vm_start(struct vm *vm);
/*
 * Pages are still coming into this VM: pause/resume (would release held
 * devices), snapshot, migrate and checkpoint (would read RAM that is not
 * there: SEEK_DATA skips the holes) must wait.
 */
bool postcopy_vm_busy(struct vm *vm);
#define POSTCOPY_BUSY_MSG "post-copy into this VM is still running: wait until its RAM is complete"
/* Teardown (vCPUs gone): stop the fault thread, release RAM from userfaultfd. */
void postcopy_vm_stop(struct vm *vm);

#endif
