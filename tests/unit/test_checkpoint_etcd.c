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
#include <fcntl.h>

#include "tests/unit/checkpoint_harness.h"

/* ---- --etcd: the owner key through the helper (a fake hdvm-owner here) ---- */

static char fake_owner[64], fake_log[64], fake_busy[64];
static const struct ownerh_cfg fake_cfg = { .etcd = "http://127.0.0.1:1" };

static void make_fake_owner(void)
{
	static const char script[] =
		"#!/bin/sh\n"
		"if [ -e \"$FAKE_OWNER_BUSY\" ]; then echo \"busy 0 owner key held by B\"; exit 2; fi\n"
		"echo \"acquired 0 lease 1\"\n"
		"case \"$FAKE_OWNER\" in\n"
		"fence) echo \"fenced 0 lease lost\"; sleep 5;;\n"
		"fencelater) echo \"active 0 taken\"; sleep 0.3; echo \"fenced 0 etcd unreachable\";"
		" sleep 5;;\n"
		"die) exit 0;;\n"
		"refuse) echo \"refused 0 checkpoint 3 is stale\"; sleep 5;;\n"
		"active) echo \"active 0 taken\"; read x;;\n"
		"*) while read verb n; do echo \"$verb $n\" >> \"$FAKE_OWNER_LOG\"; case \"$verb\" in\n"
		"   current) echo \"current 0 $n\";;\n"
		"   stale) if [ \"$FAKE_OWNER\" = stalefail ]; then echo \"stale-failed 0 no etcd\";\n"
		"          else echo \"stale 0 $n\"; fi;;\n"
		"   release) echo \"released 0\"; exit 0;;\n"
		"   esac; done\n"
		"   echo abandoned >> \"$FAKE_OWNER_LOG\"; echo \"abandoned 0 the VMM is gone\";;\n"
		"esac\n";
	FILE *f;

	snprintf(fake_owner, sizeof(fake_owner), "/tmp/hdvm-fake-owner.%d", getpid());
	f = fopen(fake_owner, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	assert_int_equal(chmod(fake_owner, 0755), 0);
	setenv("HDVM_OWNER_HELPER", fake_owner, 1);
	/* what the helper was told, one verb a line; the file that makes "hold" busy */
	snprintf(fake_log, sizeof(fake_log), "/tmp/hdvm-fake-owner-log.%d", getpid());
	snprintf(fake_busy, sizeof(fake_busy), "/tmp/hdvm-fake-owner-busy.%d", getpid());
	unlink(fake_log);
	unlink(fake_busy);
	setenv("FAKE_OWNER_LOG", fake_log, 1);
	setenv("FAKE_OWNER_BUSY", fake_busy, 1);
}

static void drop_fake_owner(void)
{
	unlink(fake_owner);
	unlink(fake_log);
	unlink(fake_busy);
}

/* Was the helper told this line (a verb and its number, or "abandoned")? */
static bool helper_told(const char *line)
{
	char buf[4096] = "";
	FILE *f = fopen(fake_log, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return strstr(buf, line) != NULL;
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
	drop_fake_owner();
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
	drop_fake_owner();
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
	drop_fake_owner();
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

/* ---- --on-standby-loss pause with --etcd: the paused primary hands over ---- */

static unsigned frames_out;

static void count_frame(void *ctx, const uint8_t *frame, size_t len)
{
	frames_out++;
}

static const struct holdq_ops counting_output = { .output = count_frame };

/*
 * A paused owner behind a cut link would leave its live, current standby
 * waiting for a key that is renewed forever.  It gives the key up without a
 * stale mark, after dropping the frames of unacked epochs (the standby
 * resumes from its last checkpoint): the standby acked 1 and 2 and died
 * applying 3; the guest sent one frame after each checkpoint (tagged 2, 3, 4).
 */
static void test_pause_with_etcd_discards_unacked_and_gives_up_the_key(void **state)
{
	struct owner_helper h;
	struct holdq q;

	make_fake_owner();
	setenv("FAKE_OWNER", "hold", 1);
	holdq_init(&q, &counting_output, NULL);
	nic_q = &q;
	frames_out = 0;
	assert_int_equal(ownerh_hold(&h, &fake_cfg, "unit", 1, 5000), 0);
	loss_owner = &h;
	lose_standby(true);		/* --on-standby-loss pause: the VM stays paused */
	loss_owner = NULL;
	nic_q = NULL;
	/* the epoch-2 frame left after its ack; 3's and 4's were dropped */
	assert_int_equal(q.stats.held, 3);
	assert_int_equal(q.stats.released, 1);
	assert_int_equal(frames_out, 1);
	assert_int_equal(q.stats.discarded, 2);
	assert_int_equal(q.count, 0);
	/* the helper was told the standby is current at 2, then to abandon: no stale mark */
	assert_false(ownerh_alive(&h));
	assert_true(helper_told("current 2"));
	assert_true(helper_told("abandoned"));
	assert_false(helper_told("stale"));
	assert_true(loss_stats.gave_up_owner && loss_stats.paused_by_loss);
	assert_non_null(strstr(loss_stats.why, "gave up ownership so the standby can take over"));
	holdq_destroy(&q);
	drop_fake_owner();
}

/* The same through the control socket: status says why; --stop and resume refuse. */

static void lose_mute_standby(struct mute *m)
{
	char line[512];

	snprintf(m->uri, sizeof(m->uri), "unix:/tmp/hdvm-ckpt-mute.%d.sock", getpid());
	assert_int_equal(mig_uri_parse(m->uri, &m->u, line, sizeof(line)), 0);
	assert_int_equal(mig_listen(&m->u, &m->lfd, line, sizeof(line)), 0);
	assert_int_equal(pthread_create(&m->t, NULL, mute_main, m), 0);
	checkpoint_job_test_pause(test_pause, test_resume);
	snprintf(line, sizeof(line), "{\"cmd\":\"checkpoint\",\"uri\":\"%s\",\"epoch_ms\":5,"
		 "\"heartbeat_ms\":20,\"failover_ms\":300,\"on_standby_loss\":\"pause\","
		 "\"etcd\":\"http://127.0.0.1:1\"}", m->uri);
	expect_ctl(line, "\"started\":true");
	for (int i = 0; i < 500 && checkpoint_job_running(); i++)
		usleep(10000);
	assert_false(checkpoint_job_running());
}

static void end_mute_standby(struct mute *m)
{
	checkpoint_job_stop();
	checkpoint_job_test_pause(NULL, NULL);
	pthread_join(m->t, NULL);
	mig_listen_close(&m->u, m->lfd);
	drop_fake_owner();
}

static void test_paused_owner_that_gave_up_cannot_resume_while_the_standby_holds_the_key(
	void **state)
{
	struct mute m = { 0 };
	int n, resumes;

	make_fake_owner();
	setenv("FAKE_OWNER", "hold", 1);
	lose_mute_standby(&m);
	expect_ctl("{\"cmd\":\"status\"}", "gave up ownership so the standby can take over");
	expect_ctl("{\"cmd\":\"status\"}", "\"owner_key\":\"given up");
	expect_ctl("{\"cmd\":\"status\"}", "\"output_discarded\":true");
	assert_true(helper_told("abandoned"));
	assert_false(helper_told("stale"));
	assert_true(any_op(HOLDQ_OP_DISCARD));
	n = nr_ops;
	/* nothing to release: what it held is gone */
	expect_ctl("{\"cmd\":\"checkpoint\",\"stop\":true}", "nothing to release");
	/* the standby took the key: no resume, the VM stays paused */
	assert_int_equal(creat(fake_busy, 0600) >= 0, 1);
	resumes = nr_resumes;
	expect_ctl("{\"cmd\":\"resume\"}", "cannot take it back");
	expect_ctl("{\"cmd\":\"resume\"}", "held by B");
	assert_int_equal(nr_resumes, resumes);
	for (int i = n; i < nr_ops; i++)
		assert_int_not_equal(ops_log[i].op, HOLDQ_OP_STOP);
	expect_ctl("{\"cmd\":\"status\"}", "\"owner_key\":\"given up");
	end_mute_standby(&m);
}

/* Nobody took the key (the standby died too): resume takes it back, stale mark first. */
static void test_paused_owner_that_gave_up_resumes_only_after_taking_the_key_back(
	void **state)
{
	struct mute m = { 0 };
	char *reply;

	make_fake_owner();
	setenv("FAKE_OWNER", "hold", 1);
	lose_mute_standby(&m);
	unlink(fake_log);
	reply = request("{\"cmd\":\"resume\"}");
	if (strstr(reply, "owner key"))
		fail_msg("resume refused: %s", reply);
	free(reply);
	/* the new helper marked the old standby's checkpoint stale before the VM ran */
	if (!helper_told("stale "))
		fail_msg("no stale mark before resuming");
	expect_ctl("{\"cmd\":\"status\"}", "\"owner_key\":\"held\"");
	assert_int_equal(ops_log[nr_ops - 1].op, HOLDQ_OP_STOP);	/* back to pass */
	end_mute_standby(&m);
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
	drop_fake_owner();
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
		cmocka_unit_test_setup_teardown(
			test_pause_with_etcd_discards_unacked_and_gives_up_the_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paused_owner_that_gave_up_cannot_resume_while_the_standby_holds_the_key,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_paused_owner_that_gave_up_resumes_only_after_taking_the_key_back,
			setup, teardown),
		/* last: a fenced VM stays fenced */
		cmocka_unit_test_setup_teardown(test_unprotected_owner_is_paused_when_fenced,
						setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

