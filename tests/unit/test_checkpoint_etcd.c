// SPDX-License-Identifier: MIT
/*
 * Remus with an arbiter and from the control socket, without KVM (the
 * harness of test_checkpoint.c): --etcd through the hdvm-owner helper (a
 * fake helper script here; the real one is tested against etcd by
 * test_owner_etcd.py): a fenced primary releases nothing and pauses, a
 * helper that dies fences, a primary that owns the key commits and stops,
 * a standby takes over only with the key, a primary going on without its
 * standby releases only after etcd recorded the standby's checkpoint stale
 * (and pauses when it cannot); and `hdvm checkpoint` through the control
 * socket: refusals, a job polled through status, --stop.
 */
#include "tests/unit/checkpoint_harness.h"

/* ---- --etcd: the owner key through the helper (a fake hdvm-owner here) ---- */

static char fake_owner[64];
static const struct ownerh_cfg fake_cfg = { .etcd = "http://127.0.0.1:1" };

static void make_fake_owner(void)
{
	static const char script[] =
		"#!/bin/sh\n"
		"echo \"acquired 0 lease 1\"\n"
		"case \"$FAKE_OWNER\" in\n"
		"fence) echo \"fenced 0 lease lost\"; sleep 5;;\n"
		"fencelater) echo \"active 0 taken\"; sleep 0.3; echo \"fenced 0 etcd unreachable\";"
		" sleep 5;;\n"
		"die) exit 0;;\n"
		"refuse) echo \"refused 0 checkpoint 3 is stale\"; sleep 5;;\n"
		"active) echo \"active 0 taken\"; read x;;\n"
		"*) while read verb n; do case \"$verb\" in\n"
		"   current) echo \"current 0 $n\";;\n"
		"   stale) if [ \"$FAKE_OWNER\" = stalefail ]; then echo \"stale-failed 0 no etcd\";\n"
		"          else echo \"stale 0 $n\"; fi;;\n"
		"   release) echo \"released 0\"; exit 0;;\n"
		"   esac; done;;\n"
		"esac\n";
	FILE *f;

	snprintf(fake_owner, sizeof(fake_owner), "/tmp/hdvm-fake-owner.%d", getpid());
	f = fopen(fake_owner, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	assert_int_equal(chmod(fake_owner, 0755), 0);
	setenv("HDVM_OWNER_HELPER", fake_owner, 1);
}

/* A primary with the key whose helper says mode; the standby alive (thread). */
static int run_owned(const char *mode, struct ckpt_stats *st, char *why, size_t len)
{
	struct ckpt_opts o = base_opts;
	struct owner_helper h;
	struct stby s = { 0 };
	struct mig_io io;
	pthread_t t;
	int sv[2], ret;

	make_fake_owner();
	setenv("FAKE_OWNER", mode, 1);
	assert_int_equal(ownerh_hold(&h, &fake_cfg, "unit", 1, 5000), 0);
	stop_after = 6;
	o.stop = &stop_flag;
	o.owner = &h;
	ckpt_stats_init(st);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, standby_main, &s), 0);
	mig_io_unix(&io, sv[0]);
	ret = ckpt_primary_run(&a, &io, &o, st, why, len);
	mig_io_close(&io);
	pthread_join(t, NULL);
	standby_end(&s.sb);
	mig_io_close(&s.io);
	ownerh_kill(&h);
	unlink(fake_owner);
	return ret;
}

static bool any_op(uint32_t op)
{
	for (int i = 0; i < nr_ops; i++)
		if (ops_log[i].op == op)
			return true;
	return false;
}

static void test_fenced_primary_releases_nothing_and_pauses(void **state)
{
	struct ckpt_stats st;
	char why[256];

	assert_int_equal(run_owned("fence", &st, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "fenced: lease lost"));
	assert_true(st.fenced && st.paused_by_loss);
	assert_false(any_op(HOLDQ_OP_COMMIT));
	assert_false(any_op(HOLDQ_OP_STOP));		/* held, not released */
	assert_int_equal(nr_pauses, nr_resumes + 1);
}

static void test_helper_gone_fences(void **state)
{
	struct ckpt_stats st;
	char why[256];

	assert_int_equal(run_owned("die", &st, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "helper is gone"));
	assert_false(any_op(HOLDQ_OP_STOP));
}

static void test_owned_primary_commits_and_stops(void **state)
{
	struct ckpt_stats st;
	char why[256];

	assert_int_equal(run_owned("hold", &st, why, sizeof(why)), 0);
	assert_int_equal(st.committed, 6);
	assert_false(st.fenced);
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
}

static void test_standby_takeover_needs_the_key(void **state)
{
	struct owner_helper h;

	make_fake_owner();
	setenv("FAKE_OWNER", "refuse", 1);
	assert_int_equal(ownerh_takeover(&h, &fake_cfg, "unit", 3, false, 5000), -ESTALE);
	assert_non_null(strstr(h.why, "stale"));
	setenv("FAKE_OWNER", "active", 1);
	assert_int_equal(ownerh_takeover(&h, &fake_cfg, "unit", 3, false, 5000), 0);
	ownerh_release(&h);
	unlink(fake_owner);
}

/* --etcd and --on-standby-loss continue: output leaves only once etcd has the stale mark. */
static void lose_owned_standby(const char *mode, bool released)
{
	struct owner_helper h;

	make_fake_owner();
	setenv("FAKE_OWNER", mode, 1);
	assert_int_equal(ownerh_hold(&h, &fake_cfg, "unit", 1, 5000), 0);
	loss_owner = &h;
	loss_expect_pause = !released;
	lose_standby(false);		/* --on-standby-loss continue */
	loss_owner = NULL;
	loss_expect_pause = false;
	ownerh_kill(&h);
	unlink(fake_owner);
}

static void test_continue_with_etcd_marks_stale_first(void **state)
{
	lose_owned_standby("hold", true);
}

static void test_continue_with_etcd_unreachable_pauses(void **state)
{
	lose_owned_standby("stalefail", false);
}

/* ---- the control socket: hdvm checkpoint, status, --stop ---- */

static char *request(const char *line);
static void expect_ctl(const char *line, const char *needle);

static char *request(const char *line)
{
	return control_handle_line(vm_control_cmds, vm_nr_control_cmds, &a, line);
}

static void expect_ctl(const char *line, const char *needle)
{
	char *reply = request(line);

	if (!strstr(reply, needle))
		fail_msg("reply '%s' to '%s' lacks '%s'", reply, line, needle);
	free(reply);
}

static long long status_field(const char *key)
{
	char *reply = request("{\"cmd\":\"status\"}"), pat[64], *p;
	long long v = -1;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(reply, pat);
	if (p)
		v = strtoll(p + strlen(pat), NULL, 10);
	free(reply);
	return v;
}

struct listener {
	char uri[128];
	struct mig_uri u;
	int lfd;		/* listening before the thread starts: no connect is refused */
	struct stby s;
	pthread_t t;
};

static void *listen_main(void *arg)
{
	struct listener *l = arg;
	char why[256];

	assert_int_equal(mig_accept(&l->u, NULL, l->lfd, 10000, &l->s.io, why, sizeof(why)), 0);
	mig_listen_close(&l->u, l->lfd);
	l->s.fd = l->s.io.fd;
	mine = &dst;
	l->s.ret = standby_begin(&l->s.sb, &l->s.io, l->s.why, sizeof(l->s.why));
	if (!l->s.ret) {
		vm_build(&b, RAM);
		b.state = VM_CREATED;
		l->s.outcome = standby_receive(&l->s.sb, &b);
	}
	return NULL;
}

static void test_control_checkpoint_job(void **state)
{
	struct listener l = { 0 };
	char line[256];

	a.cfg.kernel = "hdguest.elf";
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"unprotected\"");
	expect_ctl("{\"cmd\":\"checkpoint\"}", "expected");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"file:/tmp/x\"}", "not a file");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"unix:/tmp/x\",\"heartbeat_ms\":50,"
		     "\"failover_ms\":40}", "must be shorter");
	expect_ctl("{\"cmd\":\"checkpoint\",\"uri\":\"unix:/tmp/x\",\"on_standby_loss\":"
		     "\"panic\"}", "continue or pause");
	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "not protected");

	snprintf(l.uri, sizeof(l.uri), "unix:/tmp/hdvm-ckpt-test.%d.sock", getpid());
	assert_int_equal(mig_uri_parse(l.uri, &l.u, line, sizeof(line)), 0);
	assert_int_equal(mig_listen(&l.u, &l.lfd, line, sizeof(line)), 0);
	assert_int_equal(pthread_create(&l.t, NULL, listen_main, &l), 0);
	stop_after = ~0ull;
	checkpoint_job_test_pause(test_pause, test_resume);
	snprintf(line, sizeof(line), "{\"cmd\":\"checkpoint\",\"uri\":\"%s\",\"epoch_ms\":5,"
		 "\"heartbeat_ms\":20,\"failover_ms\":3000}", l.uri);
	expect_ctl(line, "\"started\":true");
	for (int i = 0; i < 500 && status_field("committed_epoch") < 3; i++)
		usleep(10000);
	assert_true(status_field("committed_epoch") >= 3);
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"primary\"");
	assert_true(status_field("pause_p99_us") >= status_field("pause_p50_us"));
	assert_true(status_field("checkpoint_bytes_total") > 0);
	assert_int_equal(status_field("frames_held"), 3);
	/* while protected: no second protection, no pause, no snapshot */
	expect_ctl(line, "protected already");
	expect_ctl("{\"cmd\":\"pause\"}", "protected");

	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "\"stopping\":true");
	for (int i = 0; i < 500 && checkpoint_job_running(); i++)
		usleep(10000);
	assert_false(checkpoint_job_running());
	expect_ctl("{\"cmd\":\"status\"}", "\"role\":\"unprotected\"");
	expect_ctl("{\"cmd\":\"status\"}", "stopped on request");
	pthread_join(l.t, NULL);
	assert_int_equal(l.s.ret, 0);
	assert_int_equal(l.s.outcome, STANDBY_STOPPED);
	assert_int_equal(l.s.sb.applied, (uint64_t)status_field("committed_epoch"));
	/* the held output left: the devices' last op was STOP */
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
	checkpoint_job_stop();
	checkpoint_job_test_pause(NULL, NULL);
	standby_end(&l.s.sb);
	mig_io_close(&l.s.io);
}

/* A standby that reads everything and never answers: the primary loses it. */
struct mute {
	struct mig_uri u;
	int lfd;
	pthread_t t;
	char uri[128];
};

static void *mute_main(void *arg)
{
	struct mute *m = arg;
	struct mig_io io;
	char buf[65536], why[256];

	assert_int_equal(mig_accept(&m->u, NULL, m->lfd, 10000, &io, why, sizeof(why)), 0);
	while (io.ops->read(&io, buf, sizeof(buf)) > 0)
		;
	mig_io_close(&io);
	return NULL;
}

/*
 * --on-standby-loss pause with --etcd: '--stop' releases what the VM holds
 * only once etcd recorded the standby's checkpoint stale (the standby may be
 * alive behind a cut link and must then never take over from it).
 */
static void stop_after_loss(const char *mode, bool released)
{
	struct mute m = { 0 };
	char line[512];
	int n;

	make_fake_owner();
	setenv("FAKE_OWNER", mode, 1);
	snprintf(m.uri, sizeof(m.uri), "unix:/tmp/hdvm-ckpt-mute.%d.sock", getpid());
	assert_int_equal(mig_uri_parse(m.uri, &m.u, line, sizeof(line)), 0);
	assert_int_equal(mig_listen(&m.u, &m.lfd, line, sizeof(line)), 0);
	assert_int_equal(pthread_create(&m.t, NULL, mute_main, &m), 0);
	checkpoint_job_test_pause(test_pause, test_resume);
	snprintf(line, sizeof(line), "{\"cmd\":\"checkpoint\",\"uri\":\"%s\",\"epoch_ms\":5,"
		 "\"heartbeat_ms\":20,\"failover_ms\":300,\"on_standby_loss\":\"pause\","
		 "\"etcd\":\"http://127.0.0.1:1\"}", m.uri);
	expect_ctl(line, "\"started\":true");
	for (int i = 0; i < 500 && checkpoint_job_running(); i++)
		usleep(10000);
	assert_false(checkpoint_job_running());
	expect_ctl("{\"cmd\":\"status\"}", "\"output_held\":true");
	n = nr_ops;
	if (released) {
		expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "\"released\":true");
		assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);
	} else {
		expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "stays held");
		for (int i = n; i < nr_ops; i++)
			assert_int_not_equal(ops_log[i].op, HOLDQ_OP_STOP);
		expect_ctl("{\"cmd\":\"status\"}", "\"output_held\":true");
	}
	checkpoint_job_stop();
	checkpoint_job_test_pause(NULL, NULL);
	pthread_join(m.t, NULL);
	mig_listen_close(&m.u, m.lfd);
	unlink(fake_owner);
}

static void test_stop_after_loss_marks_stale_then_releases(void **state)
{
	stop_after_loss("hold", true);
}

static void test_stop_after_loss_keeps_output_when_etcd_says_no(void **state)
{
	stop_after_loss("stalefail", false);
}

/*
 * A standby that took over runs unprotected with the key: the checkpoint job
 * watches it, and a fence pauses the VM for good (no resume, no --stop).
 */
static void test_unprotected_owner_is_paused_when_fenced(void **state)
{
	struct owner_helper h;

	make_fake_owner();
	setenv("FAKE_OWNER", "fencelater", 1);
	assert_int_equal(ownerh_takeover(&h, &fake_cfg, "unit", 3, false, 5000), 0);
	checkpoint_job_test_pause(test_pause, test_resume);
	checkpoint_job_adopt_owner(&a, &h, &fake_cfg, 3);
	assert_true(h.pid < 0);				/* the job reaps it now */
	expect_ctl("{\"cmd\":\"status\"}", "\"owner_key\":\"held\"");
	for (int i = 0; i < 300 && !nr_pauses; i++)
		usleep(10000);
	assert_int_equal(nr_pauses, 1);
	expect_ctl("{\"cmd\":\"status\"}", "\"fenced\":true");
	expect_ctl("{\"cmd\":\"status\"}", "fenced: etcd unreachable");
	expect_ctl("{\"cmd\":\"resume\"}", "must not run again");
	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "must never leave");
	assert_int_equal(nr_resumes, 0);
	checkpoint_job_stop();
	checkpoint_job_test_pause(NULL, NULL);
	unlink(fake_owner);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fenced_primary_releases_nothing_and_pauses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_gone_fences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owned_primary_commits_and_stops, setup, teardown),
		cmocka_unit_test(test_standby_takeover_needs_the_key),
		cmocka_unit_test_setup_teardown(test_continue_with_etcd_marks_stale_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_continue_with_etcd_unreachable_pauses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_checkpoint_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_after_loss_marks_stale_then_releases,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_after_loss_keeps_output_when_etcd_says_no,
						setup, teardown),
		/* last: a fenced VM stays fenced */
		cmocka_unit_test_setup_teardown(test_unprotected_owner_is_paused_when_fenced,
						setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

