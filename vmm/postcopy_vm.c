// SPDX-License-Identifier: MIT
#include "vmm/postcopy_vm.h"

#include <errno.h>
#include <stdatomic.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "devices/virtio/virtio_net.h"
#include "vmm/migrate.h"
#include "vmm/postcopy_dst.h"
#include "vmm/postcopy_src.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PAGE	GUEST_PAGE_SIZE

/* ---- source ---- */

static uint64_t *src_needed;	/* one migration per process (the migrate job) */
static atomic_bool src_serving;	/* past the switchover: the destination runs the VM */

bool postcopy_src_committed(void)
{
	return atomic_load(&src_serving);
}

int postcopy_src_check(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		       char *why, size_t len)
{
	if (!o->postcopy)
		return 0;
	if (atomic_load(&vm->remus_protected))
		return mig_refuse(-EBUSY, why, len, "post-copy refused: the VM is under Remus "
				  "protection (hdvm checkpoint), and during post-copy the death "
				  "of either host loses it; stop protection first or migrate "
				  "without --postcopy");
	if (vm->cfg.nr_vfio_kernel)
		return mig_refuse(-EOPNOTSUPP, why, len, "post-copy refused: a kernel VFIO "
				  "device pins guest RAM in the IOMMU when it is attached, "
				  "before post-copy's pages arrive (it would DMA into pages "
				  "post-copy replaces); migrate it without --postcopy");
	if (io && (io->one_way || o->no_answer || io->fd < 0))
		return mig_refuse(-EINVAL, why, len, "post-copy needs a destination that runs "
				  "the VM and asks for pages, not a file");
	if (o->ram_by_fd)
		return mig_refuse(-EINVAL, why, len, "post-copy sends pages: not with the RAM "
				  "memfd passed over unix:");
	return 0;
}

int postcopy_opts(struct json_object *req, uint64_t after, bool file, bool tls, struct vm *vm,
		  struct migrate_opts *o, char *why, size_t len)
{
	json_object *v;

	o->postcopy = after || (json_object_object_get_ex(req, "postcopy", &v) &&
				json_object_get_boolean(v));
	if (!o->postcopy)
		return 0;
	if (after > 1000000)
		return mig_refuse(-EINVAL, why, len, "'postcopy_after' is too large");
	o->postcopy_after = (uint32_t)after;
	if (file || tls)
		return mig_refuse(-EINVAL, why, len, "post-copy needs a live destination over "
				  "tcp: or unix: (not file:, and not with --tls-creds yet)");
	return postcopy_src_check(vm, NULL, o, why, len);
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void postcopy_result_json(struct json_object *p, const struct migrate_result *res)
{
	if (!res->postcopy)
		return;
	json_object_object_add(p, "postcopy", json_object_new_boolean(1));
	json_object_object_add(p, "vm_lost", json_object_new_boolean(res->vm_lost));
	add_u64(p, "postcopy_pages", res->pc_needed);
	add_u64(p, "postcopy_on_demand", res->pc_served);
	add_u64(p, "postcopy_pushed", res->pc_pushed);
	add_u64(p, "postcopy_ms", res->pc_ms);
}

int postcopy_src_switch(struct vm *vm, struct mig_writer *w, bool logging,
			struct migrate_result *res, char *why, size_t len)
{
	uint64_t npages = vm->mem.size / PAGE;
	int ret;

	free(src_needed);
	src_needed = xzalloc(pc_words(npages) * 8 ?: 8);
	ret = logging ? postcopy_needed_dirty(vm, src_needed) :
			postcopy_needed_all(&vm->mem, src_needed);
	if (ret)
		return mig_refuse(ret, why, len, "post-copy switchover: listing the pages "
				  "to send: %s", strerror(-ret));
	ret = mig_flush_ram(w) ?: postcopy_put_switch(w, src_needed, npages);
	if (ret)
		return mig_refuse(ret, why, len, "post-copy switchover: %s", strerror(-ret));
	res->postcopy = true;
	res->pc_needed = pc_count(src_needed, npages);
	return 0;
}

int postcopy_src_run(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		     struct migrate_result *res, char *why, size_t len)
{
	struct postcopy_src s = {
		.io = io, .ram = vm->mem.host, .npages = vm->mem.size / PAGE,
		.needed = src_needed, .max_bandwidth = o->max_bandwidth,
	};
	uint64_t t0 = now_ns();
	int ret;

	atomic_store(&src_serving, true);
	pr_info("post-copy: the destination runs the VM; %llu pages to send (until they "
		"are there, losing this process loses the VM)",
		(unsigned long long)res->pc_needed);
	ret = postcopy_serve(&s, why, len);
	res->pc_served = s.served;
	res->pc_pushed = s.pushed;
	res->pc_ms = ((s.t_done_ns ?: now_ns()) - t0) / 1000000;
	free(src_needed);
	src_needed = NULL;
	atomic_store(&src_serving, false);
	return ret;
}

/* ---- destination ---- */

int postcopy_recv_switch(struct migrate_incoming *in, const uint8_t *body, uint64_t blen,
			 uint64_t mem_size, char *why, size_t len)
{
	uint64_t n;

	return pc_switch_parse(body, blen, mem_size / PAGE, &in->pc_needed, &n, why, len);
}

static bool dmas_on_its_own(const struct device *d)
{
	return d->ops->mig && d->ops->mig->dirty_log_start;
}

int postcopy_hold_devices(struct vm *vm, char *why, size_t len)
{
	if (vm->cfg.nr_vfio_kernel)
		return mig_refuse(-EOPNOTSUPP, why, len, "post-copy: a kernel VFIO device "
				  "pins guest RAM at attach, before the pages arrive: refused");
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret = 0;

		if (!dmas_on_its_own(d))
			continue;
		pthread_mutex_lock(&d->lock);
		if (d->ops->pause_prepare)
			ret = d->ops->pause_prepare(d);
		if (!ret)
			ret = d->ops->pause(d);
		pthread_mutex_unlock(&d->lock);
		if (ret)
			return mig_refuse(ret, why, len, "post-copy: device %s (%s) cannot be held "
					  "until RAM is here: %s", d->id, d->ops->type,
					  d->error[0] ? d->error : strerror(-ret));
	}
	return 0;
}

void postcopy_release_devices(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!dmas_on_its_own(d))
			continue;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->resume(d);
		pthread_mutex_unlock(&d->lock);
		if (ret)
			pr_err("post-copy done, but device %s (%s) did not resume: %s", d->id,
			       d->ops->type, d->error[0] ? d->error : strerror(-ret));
	}
	virtio_net_incoming_run(vm);	/* its rings are in RAM that is whole now */
}

static void finished(struct postcopy_dst *pc, int err, const char *why, void *opaque)
{
	struct vm *vm = opaque;
	struct postcopy_stats st = pc->stats;	/* the thread's own: no lock needed here */

	if (err) {
		pr_err("post-copy failed: %s", why);
		vm_request_shutdown(vm, 1, "VM lost during post-copy");
		return;
	}
	postcopy_release_devices(vm);
	pr_info("post-copy done: %llu pages in %llu ms (%llu on demand, %llu pushed), "
		"%llu faults", (unsigned long long)st.needed,
		(unsigned long long)((now_ns() - st.t_start_ns) / 1000000),
		(unsigned long long)st.on_demand, (unsigned long long)st.pushed,
		(unsigned long long)st.faults);
}

static int fault_in(void *opaque, uint64_t off, uint64_t len)
{
	return postcopy_dst_fault_in(opaque, off, len);
}

int postcopy_vm_start(struct vm *vm)
{
	struct migrate_incoming *in = vm->cfg.incoming;
	char why[320] = "";
	int ret;

	if (!in || !in->pc_needed)
		return 0;
	in->pc = xzalloc(sizeof(*in->pc));
	ret = postcopy_dst_prepare(in->pc, in->io, vm->mem.memfd, vm->mem.host, vm->mem.size,
				   in->pc_needed, finished, vm, why, sizeof(why));
	if (ret) {
		free(in->pc);
		in->pc = NULL;
		pr_err("--incoming %s: %s", vm->cfg.incoming_uri, why);
		migrate_recv_answer(in, ret, why);	/* the source resumes its VM */
		return ret;
	}
	in->pc_needed = NULL;	/* the post-copy state owns it */
	vm->mem.fault_in_opaque = in->pc;
	vm->mem.fault_in = fault_in;
	ret = migrate_recv_answer(in, 0, NULL);
	if (!ret)
		ret = postcopy_dst_run(in->pc, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "answering the source: %s", strerror(-ret));
	if (ret) {
		pr_err("--incoming %s: post-copy could not start after the switchover: %s; "
		       "the VM is lost", vm->cfg.incoming_uri, why);
		return ret;
	}
	pr_info("--incoming %s: post-copy: the VM runs, %llu pages to come (if the source "
		"dies before they are here, the VM is lost)", vm->cfg.incoming_uri,
		(unsigned long long)in->pc->stats.needed);
	return 0;
}

bool postcopy_vm_busy(struct vm *vm)
{
	struct migrate_incoming *in = vm->cfg.incoming;

	return in && in->pc && postcopy_dst_state(in->pc) == PC_RUNNING;
}

void postcopy_vm_stop(struct vm *vm)
{
	struct migrate_incoming *in = vm->cfg.incoming;

	if (!in || !in->pc)
		return;
	vm->mem.fault_in = NULL;
	postcopy_dst_destroy(in->pc);
	free(in->pc);
	in->pc = NULL;
}
