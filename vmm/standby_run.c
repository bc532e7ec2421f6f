// SPDX-License-Identifier: MIT
/*
 * `hdvm run --standby URI --name NAME`: wait for the primary's checkpoint
 * stream, build the VM from its manifest (this host's own passthrough
 * devices, idle), receive checkpoints on a thread while the main loop serves
 * the control socket, and activate -- state loaded, vCPUs started -- when
 * the primary is gone (vmm/standby.h).
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/transport.h"
#include "vmm/run.h"
#include "vmm/standby.h"
#include "vmm/standby_run.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static struct {
	struct vm *vm;
	pthread_t thread;
	bool started;
	uint64_t t_activated;
} run;

static void *receiver_main(void *arg)
{
	struct vm *vm = arg;
	struct standby *sb = vm->cfg.standby;
	enum standby_outcome o = standby_receive(sb, vm);
	char why[512] = "";
	int ret;

	if (atomic_load(&vm->shutdown))
		return NULL;
	switch (o) {
	case STANDBY_ACTIVATE:
		ret = standby_activate(sb, vm, why, sizeof(why));
		if (!ret)
			ret = vm_start_vcpus(vm);
		if (ret) {
			pr_err("standby: VM '%s' cannot take over (%s): %s", vm->cfg.name, sb->why,
			       why[0] ? why : strerror(-ret));
			vm_request_shutdown(vm, 1, "the standby could not take over");
			break;
		}
		run.t_activated = now_ns();
		pr_info("standby: VM '%s' took over from checkpoint %llu (%s); it runs "
			"UNPROTECTED until 'hdvm checkpoint %s URI'", vm->cfg.name,
			(unsigned long long)sb->applied, sb->why, vm->cfg.name);
		break;
	case STANDBY_STOPPED:
		pr_info("standby: VM '%s': %s; this standby ends without running it",
			vm->cfg.name, sb->why);
		vm_request_shutdown(vm, 0, "protection ended by the primary");
		break;
	case STANDBY_BROKEN:
		pr_err("standby: VM '%s': %s; this standby ends without running it "
		       "(the primary may still run)", vm->cfg.name, sb->why);
		vm_request_shutdown(vm, 1, "the checkpoint stream broke");
		break;
	}
	return NULL;
}

int standby_start(struct vm *vm)
{
	run.vm = vm;
	if (pthread_create(&run.thread, NULL, receiver_main, vm)) {
		pr_err("standby: cannot start the receiver thread");
		return -EAGAIN;
	}
	run.started = true;
	return 0;
}

void standby_join(void)
{
	if (!run.started)
		return;
	pthread_join(run.thread, NULL);	/* it sees the shutdown within the failover time */
	run.started = false;
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

bool standby_status(json_object *r)
{
	struct standby *sb = run.vm ? run.vm->cfg.standby : NULL;

	if (!sb)
		return false;
	pthread_mutex_lock(&sb->lock);
	if (sb->active) {
		pthread_mutex_unlock(&sb->lock);
		return false;	/* a VM like any other now: the primary's fields, if protected */
	}
	json_object_object_add(r, "role", json_object_new_string("standby"));
	add_u64(r, "epoch", sb->applied);
	add_u64(r, "committed_epoch", sb->applied);
	add_u64(r, "refused_checkpoints", sb->refused);
	add_u64(r, "checkpoint_bytes_total", sb->bytes);
	add_u64(r, "primary_silent_ms", (now_ns() - sb->t_heard) / 1000000);
	add_u64(r, "failover_ms", sb->hello.failover_ms);
	pthread_mutex_unlock(&sb->lock);
	return true;
}

void standby_took_over(json_object *r)
{
	struct standby *sb = run.vm ? run.vm->cfg.standby : NULL;

	if (!sb || !run.t_activated)
		return;
	add_u64(r, "took_over_from_epoch", sb->applied);
	json_object_object_add(r, "took_over_because", json_object_new_string(sb->why));
}

/* Accept the primary, read its manifest, build the VM from it, run. */
int standby_run_cmd(struct vm_config *cfg)
{
	struct standby *sb = xzalloc(sizeof(*sb));
	struct mig_uri uri;
	struct mig_io io = { .fd = -1 };
	char why[512] = "";
	int lfd = -1, ret, status = 1;

	ret = mig_uri_parse(cfg->standby_uri, &uri, why, sizeof(why));
	if (!ret && uri.kind == MIG_FILE)
		ret = mig_refuse(-EINVAL, why, sizeof(why), "a standby listens on tcp: or unix:");
	if (!ret)
		ret = mig_tls_check(&uri, cfg->tls_creds, why, sizeof(why));
	if (!ret)
		ret = mig_listen(&uri, &lfd, why, sizeof(why));
	if (!ret) {
		pr_info("VM '%s': standby waiting for its primary on %s", cfg->name,
			cfg->standby_uri);
		ret = mig_accept(&uri, cfg->tls_creds, lfd, 0, &io, why, sizeof(why));
	}
	mig_listen_close(&uri, lfd);	/* one primary */
	if (!ret)
		ret = standby_begin(sb, &io, why, sizeof(why));
	if (!ret)
		ret = migrate_config_from_manifest(&sb->in.m, cfg, why, sizeof(why));
	if (ret) {
		pr_err("--standby %s: %s", cfg->standby_uri, why);
	} else {
		cfg->standby = sb;
		status = vmm_run(cfg);
	}
	standby_end(sb);
	if (io.ops)
		mig_io_close(&io);
	free(sb);
	return status;
}
