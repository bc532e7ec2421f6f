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
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/transport.h"
#include "vmm/checkpoint_job.h"
#include "vmm/control.h"
#include "vmm/loop.h"
#include "vmm/owner_helper.h"
#include "vmm/run.h"
#include "vmm/standby.h"
#include "vmm/standby_run.h"
#include "vmm/unfiltered.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static struct {
	struct vm *vm;
	pthread_t thread, takeover;
	bool started, takeover_started;
	uint64_t t_activated;
	struct ownerh_cfg ocfg;
	struct owner_helper owner;	/* --etcd: the key, until the checkpoint job adopts it */
	/* etcd refused this standby: it stays, not running, until stopped or
	 * restarted deliberately (`hdvm takeover`); under lock */
	pthread_mutex_t lock;
	bool lost;
	int taking_over;		/* 1: a takeover runs, 2: one from a stale checkpoint */
	char lost_why[512];
} run = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The primary's lease may take this long to expire (a few of its TTLs). */
static int takeover_wait_ms(const struct vm_config *cfg)
{
	int ttl = cfg->etcd_ttl_s ?: 5;

	return ttl * 3000 > 30000 ? ttl * 3000 : 30000;
}

/* --etcd: the owner key first; a stale or behind checkpoint never runs. */
static int take_the_key(struct vm *vm, struct standby *sb, bool restart_from_stale, char *why,
			size_t len)
{
	int ret;

	if (!vm->cfg.etcd)
		return 0;
	run.ocfg = (struct ownerh_cfg){ vm->cfg.etcd, vm->cfg.etcd_ttl_s, vm->cfg.etcd_renew_ms };
	ret = ownerh_takeover(&run.owner, &run.ocfg, vm->cfg.name, sb->applied, restart_from_stale,
			      takeover_wait_ms(&vm->cfg));
	if (ret)
		snprintf(why, len, "etcd %s: %s", ret == -ESTALE ? "refused the takeover" :
			 "did not give the owner key", run.owner.why);
	else if (run.owner.timing[0])
		pr_info("standby: VM '%s' owns its etcd key: %s", vm->cfg.name, run.owner.timing);
	return ret;
}

struct start_req {
	struct vm *vm;
	int ret;
};

static void do_start_vcpus(void *arg)
{
	struct start_req *r = arg;

	r->ret = vm_start_vcpus(r->vm);
}

/* Take the key (--etcd), load the checkpoint, start the vCPUs; -errno, why. */
static int take_over(struct vm *vm, bool restart_from_stale, char *why, size_t len)
{
	struct standby *sb = vm->cfg.standby;
	int ret = take_the_key(vm, sb, restart_from_stale, why, len);

	if (ret)
		return ret;
	ret = standby_activate(sb, vm, why, len);
	if (!ret) {
		struct start_req r = { vm, 0 };

		/* from a takeover asked on the control socket: a filtered thread */
		unfiltered_run(do_start_vcpus, &r);
		ret = r.ret;
	}
	if (ret) {
		ownerh_kill(&run.owner);
		return ret;
	}
	run.t_activated = now_ns();
	if (vm->cfg.etcd)	/* fenced, it pauses; `hdvm checkpoint` reuses the key */
		checkpoint_job_adopt_owner(vm, &run.owner, &run.ocfg, sb->applied);
	pr_info("standby: VM '%s' took over from checkpoint %llu (%s)%s; it runs "
		"UNPROTECTED until 'hdvm checkpoint %s URI'", vm->cfg.name,
		(unsigned long long)sb->applied, sb->why,
		restart_from_stale ? " DELIBERATELY from a stale checkpoint" : "", vm->cfg.name);
	return 0;
}

/* etcd said no: the VM is lost here; the standby stays to say so. */
static void become_lost(struct vm *vm, const char *why)
{
	pthread_mutex_lock(&run.lock);
	run.lost = true;
	snprintf(run.lost_why, sizeof(run.lost_why), "%s", why);
	pthread_mutex_unlock(&run.lock);
	pr_err("standby: VM '%s' is LOST: %s; this standby does not run it ('hdvm takeover %s "
	       "--restart-from-stale' restarts it from checkpoint %llu deliberately)",
	       vm->cfg.name, why, vm->cfg.name,
	       (unsigned long long)vm->cfg.standby->applied);
}

static bool etcd_said_no(int ret)
{
	return ret == -ESTALE || ret == -EBUSY || ret == -EAGAIN;
}

static void *receiver_main(void *arg)
{
	struct vm *vm = arg;
	struct standby *sb = vm->cfg.standby;
	enum standby_outcome o;

	pthread_setname_np(pthread_self(), "standby-rx");
	o = standby_receive(sb, vm);
	char why[512] = "";
	int ret;

	if (atomic_load(&vm->shutdown))
		return NULL;
	switch (o) {
	case STANDBY_ACTIVATE:
		ret = take_over(vm, false, why, sizeof(why));
		if (ret && vm->cfg.etcd && etcd_said_no(ret)) {
			become_lost(vm, why);
		} else if (ret) {
			pr_err("standby: VM '%s' cannot take over (%s): %s", vm->cfg.name, sb->why,
			       why[0] ? why : strerror(-ret));
			vm_request_shutdown(vm, 1, "the standby could not take over");
		}
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

static void *takeover_main(void *arg)
{
	struct vm *vm = arg;
	char why[512] = "";
	bool force;
	int ret;

	pthread_mutex_lock(&run.lock);
	force = run.taking_over == 2;
	pthread_mutex_unlock(&run.lock);
	ret = take_over(vm, force, why, sizeof(why));
	pthread_mutex_lock(&run.lock);
	run.taking_over = false;
	run.lost = ret != 0;
	if (ret)
		snprintf(run.lost_why, sizeof(run.lost_why), "%s", why[0] ? why : strerror(-ret));
	pthread_mutex_unlock(&run.lock);
	if (ret)
		pr_err("standby: VM '%s': the takeover failed: %s", vm->cfg.name, run.lost_why);
	return NULL;
}

/*
 * {"cmd":"takeover","restart_from_stale":true}: a lost standby (etcd refused
 * it) tries again; with restart_from_stale it runs from its checkpoint even
 * though etcd knows it is stale -- the operator's deliberate choice.
 */
void standby_takeover_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	json_object *v;
	bool force = json_object_object_get_ex(req, "restart_from_stale", &v) &&
		     json_object_get_boolean(v);

	pthread_mutex_lock(&run.lock);
	if (!run.lost || run.taking_over) {
		pthread_mutex_unlock(&run.lock);
		return control_reply_error(r, "takeover: %s", run.taking_over ?
					   "a takeover is under way" :
					   "only a standby that etcd refused (status 'lost') takes "
					   "over on request");
	}
	run.taking_over = force ? 2 : 1;
	pthread_mutex_unlock(&run.lock);
	if (run.takeover_started)
		pthread_join(run.takeover, NULL);
	run.takeover_started = !pthread_create(&run.takeover, NULL, takeover_main, vm);
	if (!run.takeover_started) {
		pthread_mutex_lock(&run.lock);
		run.taking_over = false;
		pthread_mutex_unlock(&run.lock);
		return control_reply_error(r, "takeover: cannot start a thread");
	}
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "started", json_object_new_boolean(1));
}

void standby_join(void)
{
	if (!run.started)
		return;
	pthread_join(run.thread, NULL);	/* it sees the shutdown within the failover time */
	run.started = false;
	if (run.takeover_started)
		pthread_join(run.takeover, NULL);
	run.takeover_started = false;
	ownerh_release(&run.owner);	/* the VM ends: so does a claim not handed on */
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
	pthread_mutex_lock(&run.lock);
	json_object_object_add(r, "role", json_object_new_string(run.lost ? "lost" : "standby"));
	if (run.lost)
		json_object_object_add(r, "lost", json_object_new_string(run.lost_why));
	if (run.taking_over)
		json_object_object_add(r, "taking_over", json_object_new_boolean(1));
	pthread_mutex_unlock(&run.lock);
	json_object_object_add(r, "failover_arbiter", json_object_new_string(run.vm->cfg.etcd ?
		"etcd (takes over only with the owner key, never from a stale checkpoint)" :
		CKPT_NO_ARBITER));
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

/*
 * Until the primary connects, the name is claimed and the control socket
 * answers (status: role standby, state waiting; stop), so `hdvm ps`,
 * `status` and `stop` work on a standby from its start.
 */
struct waiting {
	const struct vm_config *cfg;
	bool stop, ready;
};

static void waiting_status(void *opaque, json_object *req, json_object *r)
{
	struct waiting *w = opaque;

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "name", json_object_new_string(w->cfg->name));
	json_object_object_add(r, "pid", json_object_new_int(getpid()));
	json_object_object_add(r, "state", json_object_new_string("waiting"));
	json_object_object_add(r, "role", json_object_new_string("standby"));
	json_object_object_add(r, "epoch", json_object_new_int(0));
	json_object_object_add(r, "standby_uri", json_object_new_string(w->cfg->standby_uri));
}

static void waiting_stop(void *opaque, json_object *req, json_object *r)
{
	struct waiting *w = opaque;

	w->stop = true;
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string("shutdown"));
}

static const struct control_cmd waiting_cmds[] = {
	{ "status", waiting_status },
	{ "stop", waiting_stop },
};

static void on_primary(void *opaque, int fd, unsigned revents)
{
	((struct waiting *)opaque)->ready = true;
}

/* 0 once a primary knocks, -ECANCELED when stopped, other -errno. */
static int wait_for_primary(const struct vm_config *cfg, int lfd)
{
	struct waiting w = { .cfg = cfg };
	struct control *ctl = control_open(cfg->run_dir, cfg->name);
	struct event_loop *loop;
	int ret;

	if (!ctl)
		return -EBUSY;		/* it said why */
	loop = loop_create(16);
	ret = loop ? control_start(ctl, loop, waiting_cmds, ARRAY_SIZE(waiting_cmds), &w) : -ENOMEM;
	if (!ret && !loop_watch(loop, lfd, POLLIN, on_primary, &w))
		ret = -EBUSY;
	while (!ret && !w.ready && !w.stop) {
		ret = loop_run_once(loop, control_timeout_ms(ctl));
		ret = ret < 0 ? ret : 0;
		control_tick(ctl);
	}
	control_close(ctl);	/* the VM claims the name again in vmm_run() */
	if (loop)
		loop_destroy(loop);
	return ret ?: w.stop ? -ECANCELED : 0;
}

/* Accept the primary, read its manifest, build the VM from its manifest, run. */
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
		ret = wait_for_primary(cfg, lfd);
		if (ret == -ECANCELED || ret == -EBUSY) {
			mig_listen_close(&uri, lfd);
			if (ret == -ECANCELED)
				pr_info("VM '%s': standby stopped before its primary came", cfg->name);
			free(sb);
			return ret == -ECANCELED ? 0 : 1;
		}
	}
	if (ret && !why[0])
		snprintf(why, sizeof(why), "waiting for the primary: %s", strerror(-ret));
	if (!ret)
		ret = mig_accept(&uri, cfg->tls_creds, lfd, 0, &io, why, sizeof(why));
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
