// SPDX-License-Identifier: MIT
#include "vmm/migrate_job.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/transport.h"
#include "vmm/control.h"
#include "vmm/migrate.h"
#include "vmm/postcopy_vm.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static struct {
	pthread_mutex_t lock;
	pthread_t thread;
	bool started;			/* thread exists (joined by migrate_job_stop) */
	atomic_bool running, cancel, result_seen;
	struct vm *vm;
	struct mig_uri uri;
	char uri_text[300];
	char tls_dir[1024];
	char cancel_reason[96];		/* set before cancel, read by the job */
	int io_fd;			/* under lock: the stream's socket while it is open */
	struct migrate_opts opts;
	/* under lock */
	struct migrate_progress progress;
	bool have_progress, done;
	struct migrate_result res;
	int ret;
	char why[512];
} job = { .lock = PTHREAD_MUTEX_INITIALIZER, .io_fd = -1 };

bool migrate_job_running(void)
{
	return atomic_load(&job.running);
}

static void on_progress(const struct migrate_progress *p, void *opaque)
{
	pthread_mutex_lock(&job.lock);
	job.progress = *p;
	job.have_progress = true;
	pthread_mutex_unlock(&job.lock);
}

static void *job_main(void *arg)
{
	struct migrate_result res = { 0 };
	struct mig_io io;
	char why[512] = "";
	int ret;

	ret = mig_connect(&job.uri, job.tls_dir[0] ? job.tls_dir : NULL, &io, why, sizeof(why));
	if (!ret) {
		pthread_mutex_lock(&job.lock);
		job.io_fd = io.fd;
		pthread_mutex_unlock(&job.lock);
		ret = vm_migrate_send(job.vm, &io, &job.opts, &res, why, sizeof(why));
		pthread_mutex_lock(&job.lock);
		job.io_fd = -1;
		pthread_mutex_unlock(&job.lock);
		mig_io_close(&io);
	}
	pthread_mutex_lock(&job.lock);
	job.res = res;
	job.ret = ret;
	snprintf(job.why, sizeof(job.why), "%s", ret && !why[0] ? strerror(-ret) : why);
	job.done = true;
	pthread_mutex_unlock(&job.lock);
	if (!ret) {
		char reason[96];

		/* let `hdvm migrate` read the result before this process goes (3 s at most) */
		for (int i = 0; i < 300 && !atomic_load(&job.result_seen); i++)
			usleep(10000);

		snprintf(reason, sizeof(reason), "migrated to %.60s", job.uri_text);
		pr_info("%s: %llu ms, downtime %llu ms", reason,
			(unsigned long long)res.total_ms, (unsigned long long)res.downtime_ms);
		vm_request_shutdown(job.vm, 0, reason);
	} else if (res.vm_lost) {
		pr_err("post-copy migration to %s failed after the switchover: the VM is lost: %s",
		       job.uri_text, job.why);
		vm_request_shutdown(job.vm, 1, "VM lost during post-copy");
	} else {
		pr_err("migration to %s failed, the VM runs on: %s", job.uri_text, job.why);
	}
	atomic_store(&job.running, false);
	return NULL;
}

/*
 * A cancel is seen between pages; a stream blocked in a write to (or a read
 * from) a destination that stopped reading is not.  After CANCEL_GRACE_MS
 * the socket is shut, which fails that call: the job ends, the VM runs on.
 */
#define CANCEL_GRACE_MS	2000

static void *cancel_watchdog(void *arg)
{
	for (int i = 0; i < CANCEL_GRACE_MS / 10 && atomic_load(&job.running); i++)
		usleep(10000);
	pthread_mutex_lock(&job.lock);
	if (atomic_load(&job.running) && job.io_fd >= 0) {
		pr_info("migration: cancel not seen within %d ms (stream blocked); shutting "
			"its connection", CANCEL_GRACE_MS);
		shutdown(job.io_fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&job.lock);
	return NULL;
}

static void start_cancel_watchdog(void)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, cancel_watchdog, NULL))
		pr_err("migration: cannot watch the cancel; it waits for the stream");
	pthread_attr_destroy(&attr);
}

static bool get_u64(json_object *req, const char *key, uint64_t *v, json_object *r)
{
	json_object *o;

	if (!json_object_object_get_ex(req, key, &o))
		return true;
	if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0) {
		control_reply_error(r, "migrate: '%s' must be a non-negative integer", key);
		return false;
	}
	*v = (uint64_t)json_object_get_int64(o);
	return true;
}

/*
 * {"cmd":"migrate","uri":"tcp:H:P","downtime_ms":N,"max_bandwidth":B,
 *  "timeout_ms":T,"auto_converge":false,"postcopy":true,"postcopy_after":N} or {"cmd":"migrate","cancel":true,
 *  "reason":"Ctrl-C"}
 */
void vm_migrate_cmd(void *opaque, json_object *req, json_object *r)
{
	struct vm *vm = opaque;
	json_object *uri, *cancel, *tls, *v;
	struct migrate_opts o = { 0 };
	uint64_t pc_after = 0;
	char why[256];

	if (json_object_object_get_ex(req, "cancel", &cancel) &&
	    json_object_get_boolean(cancel)) {
		if (!migrate_job_running())
			return control_reply_error(r, "migrate: no migration is running");
		if (postcopy_src_committed())
			return control_reply_error(r, "migrate: " POSTCOPY_NO_CANCEL_MSG);
		if (!atomic_load(&job.cancel))
			snprintf(job.cancel_reason, sizeof(job.cancel_reason), "%s",
				 json_object_object_get_ex(req, "reason", &v) &&
				 json_object_is_type(v, json_type_string) ?
				 json_object_get_string(v) : "the user (hdvm migrate --cancel)");
		if (!atomic_exchange(&job.cancel, true))
			start_cancel_watchdog();
		json_object_object_add(r, "ok", json_object_new_boolean(1));
		json_object_object_add(r, "cancelling", json_object_new_boolean(1));
		return;
	}
	if (!json_object_object_get_ex(req, "uri", &uri) ||
	    !json_object_is_type(uri, json_type_string))
		return control_reply_error(r, "migrate: expected {\"cmd\":\"migrate\",\"uri\":\"URI\"}");
	if (migrate_job_running())
		return control_reply_error(r, "migrate: a migration is already running");
	if (postcopy_vm_busy(vm))
		return control_reply_error(r, "migrate: " POSTCOPY_BUSY_MSG);
	if (vm->state != VM_RUNNING && vm->state != VM_PAUSED)
		return control_reply_error(r, "migrate: the VM is %s", vm_state_name(vm->state));
	o.no_auto_converge = json_object_object_get_ex(req, "auto_converge", &v) &&
			     !json_object_get_boolean(v);
	if (!get_u64(req, "downtime_ms", &o.downtime_ms, r) ||
	    !get_u64(req, "max_bandwidth", &o.max_bandwidth, r) ||
	    !get_u64(req, "timeout_ms", &o.timeout_ms, r) ||
	    !get_u64(req, "postcopy_after", &pc_after, r))
		return;
	if (job.started) {
		pthread_join(job.thread, NULL);
		job.started = false;
	}
	if (mig_uri_parse(json_object_get_string(uri), &job.uri, why, sizeof(why)))
		return control_reply_error(r, "migrate: %s", why);
	job.tls_dir[0] = 0;
	if (json_object_object_get_ex(req, "tls_creds", &tls)) {
		if (!json_object_is_type(tls, json_type_string) ||
		    json_object_get_string(tls)[0] != '/')
			return control_reply_error(r, "migrate: 'tls_creds' must be an absolute path");
		snprintf(job.tls_dir, sizeof(job.tls_dir), "%s", json_object_get_string(tls));
	}
	if (json_object_object_get_ex(req, "tls_hostname", &v)) {
		if (!json_object_is_type(v, json_type_string) || !job.tls_dir[0] ||
		    strlen(json_object_get_string(v)) >= sizeof(job.uri.tls_hostname))
			return control_reply_error(r, "migrate: 'tls_hostname' is a name and goes "
						   "with 'tls_creds'");
		snprintf(job.uri.tls_hostname, sizeof(job.uri.tls_hostname), "%s",
			 json_object_get_string(v));
	}
	if (mig_tls_check(&job.uri, job.tls_dir[0] ? job.tls_dir : NULL, why, sizeof(why)))
		return control_reply_error(r, "migrate: %s", why);
	snprintf(job.uri_text, sizeof(job.uri_text), "%s", json_object_get_string(uri));
	if (postcopy_opts(req, pc_after, job.uri.kind == MIG_FILE, job.tls_dir[0], vm, &o,
			  why, sizeof(why)))
		return control_reply_error(r, "migrate: %s", why);
	o.ram_by_fd = job.uri.kind == MIG_UNIX && !o.postcopy;	/* post-copy sends pages */
	o.net_by_fd = job.uri.kind == MIG_UNIX;		/* same host: the TAPs are in use */
	o.progress = on_progress;
	o.cancel = &job.cancel;
	o.cancel_reason = job.cancel_reason;
	job.cancel_reason[0] = 0;
	job.opts = o;
	job.vm = vm;
	pthread_mutex_lock(&job.lock);
	job.done = job.have_progress = false;
	job.ret = 0;
	job.why[0] = 0;
	memset(&job.res, 0, sizeof(job.res));
	pthread_mutex_unlock(&job.lock);
	atomic_store(&job.cancel, false);
	atomic_store(&job.result_seen, false);
	atomic_store(&job.running, true);
	if (pthread_create(&job.thread, NULL, job_main, NULL)) {
		atomic_store(&job.running, false);
		return control_reply_error(r, "migrate: cannot start a thread");
	}
	job.started = true;
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "started", json_object_new_boolean(1));
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void vm_migrate_status_cmd(void *opaque, json_object *req, json_object *r)
{
	json_object *p;

	pthread_mutex_lock(&job.lock);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "running", json_object_new_boolean(migrate_job_running()));
	json_object_object_add(r, "done", json_object_new_boolean(job.done));
	if (job.have_progress) {
		p = json_object_new_object();
		add_u64(p, "pass", job.progress.pass);
		add_u64(p, "sent_bytes", job.progress.sent_bytes);
		add_u64(p, "remaining_bytes", job.progress.remaining_bytes);
		add_u64(p, "dirty_rate", job.progress.dirty_rate);
		add_u64(p, "bandwidth", job.progress.bandwidth);
		add_u64(p, "expected_downtime_ms", job.progress.expected_downtime_ms);
		add_u64(p, "device_pending_bytes", job.progress.device_pending_bytes);
		add_u64(p, "throttle_pct", job.progress.throttle_pct);
		json_object_object_add(r, "progress", p);
	}
	if (job.done) {
		json_object_object_add(r, "success", json_object_new_boolean(!job.ret));
		if (job.ret)
			json_object_object_add(r, "error", json_object_new_string(job.why));
		p = json_object_new_object();
		add_u64(p, "total_ms", job.res.total_ms);
		add_u64(p, "downtime_ms", job.res.downtime_ms);
		add_u64(p, "passes", job.res.passes);
		add_u64(p, "bytes", job.res.bytes);
		add_u64(p, "pages", job.res.pages);
		add_u64(p, "zero_pages", job.res.zero_pages);
		add_u64(p, "device_bytes", job.res.device_bytes);
		postcopy_result_json(p, &job.res);
		add_u64(p, "device_precopy_bytes", job.res.device_precopy_bytes);
		add_u64(p, "throttle_pct", job.res.throttle_pct);
		json_object_object_add(r, "result", p);
		atomic_store(&job.result_seen, true);
	}
	pthread_mutex_unlock(&job.lock);
}

void migrate_job_stop(void)
{
	if (!job.started)
		return;
	if (postcopy_src_committed())	/* cutting it would lose the VM: let it finish */
		pr_info("migration: waiting for post-copy to finish before this VM stops");
	else if (!atomic_load(&job.cancel))
		snprintf(job.cancel_reason, sizeof(job.cancel_reason), "the VM stopping");
	if (!postcopy_src_committed() && !atomic_exchange(&job.cancel, true))
		start_cancel_watchdog();
	pthread_join(job.thread, NULL);
	job.started = false;
}
