// SPDX-License-Identifier: MIT
/*
 * The primary's protection as a job of the VM process: the control socket's
 * "checkpoint" starts the driver (vmm/checkpoint.c) on a thread of its own
 * and "checkpoint" with "stop" ends it; `hdvm status` shows its fields.
 */
#include "vmm/checkpoint_job.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "devices/device.h"
#include "devices/holdq.h"
#include "migration/transport.h"
#include "vmm/checkpoint.h"
#include "vmm/control.h"
#include "vmm/migrate_job.h"
#include "vmm/owner_helper.h"
#include "vmm/postcopy_vm.h"
#include "vmm/standby_run.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static struct {
	pthread_t thread;
	bool started;			/* joined by checkpoint_job_stop / the next start */
	atomic_bool running, stop;
	struct vm *vm;
	struct mig_uri uri;
	char uri_text[300];
	char tls_dir[1024];
	struct ckpt_opts opts;
	struct ckpt_stats st;
	bool st_ready;
	uint64_t next_epoch;		/* devices' epochs only go up, across protections */
	char etcd[512];			/* --etcd endpoints, or "" */
	struct ownerh_cfg ocfg;		/* etcd, lease TTL and renewal */
	struct owner_helper owner;	/* the owner key while it is held */
	bool owning;
	int (*pause)(struct vm *, char *, size_t);	/* tests */
	int (*resume)(struct vm *, char *, size_t);
} job;

void checkpoint_job_test_pause(int (*pause)(struct vm *, char *, size_t),
			       int (*resume)(struct vm *, char *, size_t))
{
	job.pause = pause;
	job.resume = resume;
}

bool checkpoint_job_running(void)
{
	return atomic_load(&job.running);
}

/*
 * etcd fenced a VM that runs unprotected (its standby lost with "continue",
 * or a standby that took over): it may no longer release anything, and
 * nothing holds its output, so it pauses.
 */
static void fence_unprotected(void)
{
	int (*pause)(struct vm *, char *, size_t) = job.pause ?: vm_pause;
	char why[160];

	pthread_mutex_lock(&job.st.lock);
	job.st.fenced = true;
	snprintf(job.st.why, sizeof(job.st.why), "fenced: %.200s", job.owner.why);
	pthread_mutex_unlock(&job.st.lock);
	if (pause(job.vm, why, sizeof(why)))
		pr_err("checkpoint: pausing: %s", why);
	pr_err("checkpoint: VM '%s' fenced by etcd (%s): paused; it must not run here again",
	       job.vm->cfg.name, job.owner.why);
	ownerh_kill(&job.owner);
	job.owning = false;
}

/* An owner without a standby: watch the helper until fenced or told to stop. */
static void watch_owner(void)
{
	while (!atomic_load(&job.stop)) {
		struct pollfd p = { .fd = job.owner.out_fd, .events = POLLIN };

		if (!ownerh_may_release(&job.owner))
			return fence_unprotected();
		poll(&p, 1, 50);
	}
}

static void *watch_main(void *arg)
{
	watch_owner();
	return NULL;
}

static void *job_main(void *arg)
{
	struct mig_io io;
	char why[512] = "";
	int ret;

	/* its CPU time is the primary's checkpointing cost (tools/bench_protect.py) */
	pthread_setname_np(pthread_self(), "checkpoint");
	ret = 0;
	if (job.etcd[0] && !job.owning) {
		ret = ownerh_hold(&job.owner, &job.ocfg, job.vm->cfg.name, job.next_epoch, 15000);
		if (ret)
			snprintf(why, sizeof(why), "etcd: %s", job.owner.why);
		else
			pr_info("checkpoint: VM '%s' owns its etcd key: %s", job.vm->cfg.name,
				job.owner.timing);
		job.owning = !ret;
	}
	job.opts.owner = job.owning ? &job.owner : NULL;
	if (!ret)
		ret = mig_connect(&job.uri, job.tls_dir[0] ? job.tls_dir : NULL, &io, why,
				  sizeof(why));
	if (!ret) {
		pr_info("checkpoint: protecting VM '%s' on %s (epoch %u ms, heartbeat %u ms, "
			"failover %u ms)", job.vm->cfg.name, job.uri_text, job.opts.epoch_ms,
			job.opts.heartbeat_ms, job.opts.failover_ms);
		ret = ckpt_primary_run(job.vm, &io, &job.opts, &job.st, why, sizeof(why));
		mig_io_close(&io);
	} else {
		pthread_mutex_lock(&job.st.lock);
		snprintf(job.st.why, sizeof(job.st.why), "%s", why);
		pthread_mutex_unlock(&job.st.lock);
	}
	/*
	 * The key: given up after a clean stop (the standby then never takes
	 * over), dropped when fenced; kept while running on without a standby.
	 */
	if (job.owning && !ownerh_alive(&job.owner))	/* given up for the standby */
		job.owning = false;
	if (job.owning && (!ret || job.owner.fenced)) {
		if (ret)
			ownerh_kill(&job.owner);
		else
			ownerh_release(&job.owner);
		job.owning = false;
	}
	pthread_mutex_lock(&job.st.lock);
	job.next_epoch = job.st.epoch + 2;	/* past the boundary the last pause announced */
	pthread_mutex_unlock(&job.st.lock);
	if (ret)
		pr_err("checkpoint: VM '%s' is unprotected: %s", job.vm->cfg.name, why);
	else
		pr_info("checkpoint: VM '%s' protection ended: %s", job.vm->cfg.name, why);
	atomic_store(&job.vm->remus_protected, false);
	atomic_store(&job.running, false);
	/* going on without a standby, the key still ours: a fence must pause it
	 * (and keep a VM paused by the loss from releasing what it holds) */
	if (job.owning)
		watch_owner();
	return NULL;
}

void checkpoint_job_adopt_owner(struct vm *vm, struct owner_helper *h,
				const struct ownerh_cfg *c, uint64_t epoch)
{
	job.vm = vm;
	job.owner = *h;
	h->pid = -1;		/* the job reaps it now */
	job.owning = true;
	snprintf(job.etcd, sizeof(job.etcd), "%s", c->etcd);
	job.ocfg = *c;
	job.ocfg.etcd = job.etcd;
	job.next_epoch = epoch + 2;	/* epochs only go up, across hosts too */
	if (!job.st_ready) {
		ckpt_stats_init(&job.st);
		job.st_ready = true;
	}
	atomic_store(&job.stop, false);
	if (pthread_create(&job.thread, NULL, watch_main, NULL)) {
		pr_err("checkpoint: cannot watch the owner key: releasing it");
		ownerh_kill(&job.owner);
		job.owning = false;
		return;
	}
	job.started = true;
}

bool checkpoint_job_fenced(char *why, size_t len)
{
	bool fenced;

	if (!job.st_ready)
		return false;
	pthread_mutex_lock(&job.st.lock);
	fenced = job.st.fenced;
	snprintf(why, len, "%s", job.st.why);
	pthread_mutex_unlock(&job.st.lock);
	return fenced;
}

static bool get_u32(json_object *req, const char *key, uint32_t *v, uint32_t max,
		    json_object *r)
{
	json_object *o;

	if (!json_object_object_get_ex(req, key, &o))
		return true;
	if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 1 ||
	    json_object_get_int64(o) > max) {
		control_reply_error(r, "checkpoint: '%s' must be an integer from 1 to %u", key, max);
		return false;
	}
	*v = (uint32_t)json_object_get_int64(o);
	return true;
}

/* The thread that watches the key reads the helper: stop it to talk to the helper. */
static void unwatch(void)
{
	if (!job.started)
		return;
	atomic_store(&job.stop, true);
	pthread_join(job.thread, NULL);
	job.started = false;
}

static void rewatch(void)
{
	atomic_store(&job.stop, false);
	if (job.owning)
		job.started = !pthread_create(&job.thread, NULL, watch_main, NULL);
}

/*
 * The key given up when the standby was lost: take it back (only if nobody
 * took it) and mark the standby's checkpoint stale before anything runs.
 */
static int reacquire_owner(char *why, size_t len)
{
	int err = ownerh_hold(&job.owner, &job.ocfg, job.vm->cfg.name, job.next_epoch, 10000);

	if (err) {
		snprintf(why, len, "this VM gave its owner key up when its standby was lost and "
			 "cannot take it back (%.150s): the standby may serve; this copy must "
			 "not run", job.owner.why);
		return -EPERM;
	}
	err = ownerh_mark_stale(&job.owner, job.st.committed, 10000);
	if (err) {
		snprintf(why, len, "took the owner key back, but etcd did not record the "
			 "standby's checkpoint stale (%.120s): not resuming", strerror(-err));
		ownerh_release(&job.owner);
		return -EPERM;
	}
	job.owning = true;
	devices_output_commit(job.vm, HOLDQ_OP_STOP, 0, 0);	/* held nothing: back to pass */
	pthread_mutex_lock(&job.st.lock);
	job.st.gave_up_owner = false;
	job.st.paused_by_loss = false;
	pthread_mutex_unlock(&job.st.lock);
	rewatch();		/* a fence from now on pauses it again */
	return 0;
}

int checkpoint_job_may_resume(char *why, size_t len)
{
	bool gave_up;

	if (checkpoint_job_fenced(why, len)) {
		size_t n = strlen(why);

		snprintf(why + n, len - n, ": this copy must not run again (its standby may serve)");
		return -EPERM;
	}
	if (!job.st_ready || checkpoint_job_running())
		return 0;
	pthread_mutex_lock(&job.st.lock);
	gave_up = job.st.gave_up_owner;
	pthread_mutex_unlock(&job.st.lock);
	if (!gave_up)
		return 0;
	unwatch();		/* the job thread is done: nothing else reads the helper */
	return reacquire_owner(why, len);
}

static void stop_cmd(json_object *r)
{
	char why[256];

	if (!checkpoint_job_running() && checkpoint_job_fenced(why, sizeof(why)))
		return control_reply_error(r, "checkpoint: %s: what this VM holds must never "
					   "leave (its standby may serve)", why);
	if (!checkpoint_job_running() && job.st_ready && job.st.gave_up_owner)
		return control_reply_error(r, "checkpoint: this VM gave its owner key up when its "
					   "standby was lost and discarded what it held (the "
					   "standby may serve): nothing to release");
	if (!checkpoint_job_running() && job.st_ready && job.st.paused_by_loss) {
		/* paused when its standby was lost, no arbiter: what it held leaves now */
		devices_output_commit(job.vm, HOLDQ_OP_STOP, 0, 0);
		pthread_mutex_lock(&job.st.lock);
		job.st.paused_by_loss = false;
		pthread_mutex_unlock(&job.st.lock);
		json_object_object_add(r, "ok", json_object_new_boolean(1));
		json_object_object_add(r, "released", json_object_new_boolean(1));
		return;
	}
	if (!checkpoint_job_running())
		return control_reply_error(r, "checkpoint: the VM is not protected");
	atomic_store(&job.stop, true);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "stopping", json_object_new_boolean(1));
}

static bool parse_opts(json_object *req, struct ckpt_opts *o, json_object *r)
{
	json_object *v;
	uint32_t budget = 0, ttl = 0, renew = 0;

	o->epoch_ms = CKPT_DEFAULT_EPOCH_MS;
	o->heartbeat_ms = CKPT_DEFAULT_HEARTBEAT_MS;
	o->failover_ms = CKPT_DEFAULT_FAILOVER_MS;
	if (!get_u32(req, "epoch_ms", &o->epoch_ms, 60000, r) ||
	    !get_u32(req, "heartbeat_ms", &o->heartbeat_ms, 60000, r) ||
	    !get_u32(req, "etcd_ttl_s", &ttl, 3600, r) ||
	    !get_u32(req, "etcd_renew_ms", &renew, 600000, r) ||
	    !get_u32(req, "failover_ms", &o->failover_ms, 600000, r) ||
	    !get_u32(req, "dirty_budget", &budget, 1u << 30, r))
		return false;
	o->dirty_budget = budget;
	if (!job.owning) {	/* an owner keeps the lease it has */
		job.ocfg.ttl_s = (int)ttl;
		job.ocfg.renew_ms = (int)renew;
	}
	if (json_object_object_get_ex(req, "epoch_phase_ms", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) >= o->epoch_ms) {
			control_reply_error(r, "checkpoint: 'epoch_phase_ms' must be an integer from "
					    "0 to the epoch (%u ms) - 1", o->epoch_ms);
			return false;
		}
		o->phased = true;
		o->epoch_phase_ms = (uint32_t)json_object_get_int64(v);
	}
	if (o->heartbeat_ms >= o->failover_ms) {
		control_reply_error(r, "checkpoint: the heartbeat (%u ms) must be shorter than "
				    "the failover time (%u ms)", o->heartbeat_ms, o->failover_ms);
		return false;
	}
	if (json_object_object_get_ex(req, "on_standby_loss", &v)) {
		const char *s = json_object_get_string(v);

		if (!strcmp(s, "pause")) {
			o->pause_on_loss = true;
		} else if (strcmp(s, "continue")) {
			control_reply_error(r, "checkpoint: on_standby_loss is continue or pause");
			return false;
		}
	}
	return true;
}

/*
 * {"cmd":"checkpoint","uri":"tcp:H:P","epoch_ms":20,"heartbeat_ms":10,
 *  "failover_ms":100,"on_standby_loss":"continue","dirty_budget":N,
 *  "epoch_phase_ms":P,
 *  "tls_creds":"/DIR"} or {"cmd":"checkpoint","stop":true}
 */
void vm_checkpoint_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	struct ckpt_opts o = { 0 };
	json_object *uri, *stop, *tls;
	char why[256];

	if (json_object_object_get_ex(req, "stop", &stop) && json_object_get_boolean(stop))
		return stop_cmd(r);
	if (!json_object_object_get_ex(req, "uri", &uri) ||
	    !json_object_is_type(uri, json_type_string))
		return control_reply_error(r, "checkpoint: expected {\"cmd\":\"checkpoint\","
					   "\"uri\":\"URI\"}");
	if (checkpoint_job_running())
		return control_reply_error(r, "checkpoint: the VM is protected already "
					   "(hdvm checkpoint NAME --stop first)");
	if (migrate_job_running())
		return control_reply_error(r, "checkpoint: a migration is running");
	if (postcopy_vm_busy(vm))
		return control_reply_error(r, "checkpoint: " POSTCOPY_BUSY_MSG);
	if (vm->state != VM_RUNNING)
		return control_reply_error(r, "checkpoint: the VM is %s%s", vm_state_name(vm->state),
					   vm->cfg.standby ? " (a standby not activated)" : "");
	if (!parse_opts(req, &o, r))
		return;
	if (mig_uri_parse(json_object_get_string(uri), &job.uri, why, sizeof(why)))
		return control_reply_error(r, "checkpoint: %s", why);
	if (job.uri.kind == MIG_FILE)
		return control_reply_error(r, "checkpoint: a standby listens on tcp: or unix:, "
					   "not a file");
	if (json_object_object_get_ex(req, "etcd", &tls)) {
		if (!json_object_is_type(tls, json_type_string) || !json_object_get_string(tls)[0])
			return control_reply_error(r, "checkpoint: 'etcd' must be URL[,URL...]");
		snprintf(job.etcd, sizeof(job.etcd), "%s", json_object_get_string(tls));
	} else if (!job.owning) {
		job.etcd[0] = 0;
	}
	job.ocfg.etcd = job.etcd;
	job.tls_dir[0] = 0;
	if (json_object_object_get_ex(req, "tls_creds", &tls)) {
		if (!json_object_is_type(tls, json_type_string) ||
		    json_object_get_string(tls)[0] != '/')
			return control_reply_error(r, "checkpoint: 'tls_creds' must be an absolute path");
		snprintf(job.tls_dir, sizeof(job.tls_dir), "%s", json_object_get_string(tls));
	}
	if (mig_tls_check(&job.uri, job.tls_dir[0] ? job.tls_dir : NULL, why, sizeof(why)))
		return control_reply_error(r, "checkpoint: %s", why);
	if (job.started) {	/* done, or watching the owner key: it goes on to the new job */
		atomic_store(&job.stop, true);
		pthread_join(job.thread, NULL);
		job.started = false;
	}
	if (!job.st_ready) {
		ckpt_stats_init(&job.st);
		job.st_ready = true;
	}
	snprintf(job.uri_text, sizeof(job.uri_text), "%s", json_object_get_string(uri));
	atomic_store(&job.stop, false);
	o.stop = &job.stop;
	o.first_epoch = job.next_epoch;
	o.pause = job.pause;
	o.resume = job.resume;
	job.opts = o;
	job.vm = vm;
	pthread_mutex_lock(&job.st.lock);
	job.st.role = CKPT_PRIMARY;	/* until the driver says otherwise */
	job.st.why[0] = 0;
	pthread_mutex_unlock(&job.st.lock);
	atomic_store(&job.running, true);
	atomic_store(&vm->remus_protected, true);	/* post-copy refuses it (postcopy_vm.h) */
	if (pthread_create(&job.thread, NULL, job_main, NULL)) {
		atomic_store(&vm->remus_protected, false);
		atomic_store(&job.running, false);
		return control_reply_error(r, "checkpoint: cannot start a thread");
	}
	job.started = true;
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "started", json_object_new_boolean(1));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void checkpoint_status(json_object *r)
{
	struct ckpt_stats *st = &job.st;
	bool running = checkpoint_job_running();

	if (standby_status(r))
		return;
	standby_took_over(r);
	if (!job.st_ready) {
		json_object_object_add(r, "role", json_object_new_string("unprotected"));
		return;
	}
	pthread_mutex_lock(&st->lock);
	json_object_object_add(r, "role", json_object_new_string(
		running && st->role == CKPT_PRIMARY ? "primary" : "unprotected"));
	add_u64(r, "epoch", st->epoch);
	add_u64(r, "epoch_ms", job.opts.epoch_ms);
	if (job.opts.phased)
		add_u64(r, "epoch_phase_ms", job.opts.epoch_phase_ms);
	add_u64(r, "committed_epoch", st->committed);
	add_u64(r, "refused_checkpoints", st->refused);
	add_u64(r, "checkpoint_bytes", st->last_bytes);
	add_u64(r, "checkpoint_pages", st->last_pages);
	add_u64(r, "checkpoint_bytes_total", st->total_bytes);
	if (running)
		add_u64(r, "standby_lag_ms", st->t_last_ack ? (now_ns() - st->t_last_ack) / 1000000 : 0);
	add_u64(r, "epochs_unacknowledged", st->epoch - st->committed);
	if (running)
		json_object_object_add(r, "standby", json_object_new_string(job.uri_text));
	json_object_object_add(r, "failover_arbiter", json_object_new_string(job.etcd[0] ?
		"etcd (the owner key decides who releases output)" : CKPT_NO_ARBITER));
	if (job.owner.timing[0])
		json_object_object_add(r, "failover_timing", json_object_new_string(job.owner.timing));
	if (job.etcd[0])
		json_object_object_add(r, "owner_key", json_object_new_string(
			job.owning ? "held" : st->fenced ? "lost (fenced)" :
			st->gave_up_owner ? "given up (standby lost; the standby may take over)" :
			"not held"));
	if (st->fenced) {
		json_object_object_add(r, "fenced", json_object_new_boolean(1));
		json_object_object_add(r, "lost", json_object_new_string(st->why));
	}
	if (st->gave_up_owner)
		json_object_object_add(r, "output_discarded", json_object_new_boolean(1));
	else if (st->paused_by_loss)
		json_object_object_add(r, "output_held", json_object_new_boolean(1));
	if (!running && st->why[0])
		json_object_object_add(r, "protection_ended", json_object_new_string(st->why));
	pthread_mutex_unlock(&st->lock);
	if (running || st->paused_by_loss) {
		uint64_t held = 0;

		if (!devices_output_held(job.vm, &held))
			add_u64(r, "frames_held", held);
	}
	add_u64(r, "pause_p50_us", ckpt_pause_pct(st, 50));
	add_u64(r, "pause_p99_us", ckpt_pause_pct(st, 99));
}

void checkpoint_job_stop(void)
{
	if (job.started) {
		atomic_store(&job.stop, true);
		pthread_join(job.thread, NULL);
		job.started = false;
	}
	if (job.owning) {
		ownerh_release(&job.owner);
		job.owning = false;
	}
}
