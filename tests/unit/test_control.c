// SPDX-License-Identifier: MIT
/*
 * The control socket server as hdvm runs it (vmm/control.c on vmm/loop.c's
 * io_uring loop, no VM: a stub "status" command), hammered from client
 * threads the way operators broke it: back-to-back connect/close, half
 * requests, parallel status loops, silent clients, a client that never
 * reads.  Afterwards status must still answer and every slot must be free.
 * Also: the client side (hdvm ps's parallel queries), console input drained
 * until EAGAIN, --metrics' atomic write and the run directory left
 * untouched by a refused run.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/control.h"
#include "vmm/loop.h"
#include "vmm/metrics.h"
#include "vmm/util.h"

struct fixture {
	char dir[64];
	char sock[128];
	struct event_loop *loop;
	struct control *ctl;
	atomic_int statuses;		/* handled by the stub */
	atomic_int clients_running;
};

static void stub_status(void *opaque, json_object *req, json_object *r)
{
	struct fixture *f = opaque;

	atomic_fetch_add(&f->statuses, 1);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "state", json_object_new_string("running"));
}

static const struct control_cmd stub_cmds[] = { { "status", stub_status } };

static int setup(void **state)
{
	struct fixture *f = xzalloc(sizeof(*f));

	strcpy(f->dir, "/tmp/hdvm-test-control-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/t.sock", f->dir);
	f->loop = loop_create(64);
	assert_non_null(f->loop);
	f->ctl = control_open(f->dir, "t");
	assert_non_null(f->ctl);
	assert_int_equal(control_start(f->ctl, f->loop, stub_cmds, 1, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char lock[128];

	control_close(f->ctl);
	loop_destroy(f->loop);
	snprintf(lock, sizeof(lock), "%s/t.lock", f->dir);
	assert_int_equal(access(f->sock, F_OK), -1);	/* nothing left behind */
	assert_int_equal(access(lock, F_OK), -1);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Run hdvm's loop as vmm_run does, for ms or until every client thread ended. */
static void serve(struct fixture *f, int ms, bool until_clients_done)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < end) {
		int t = control_timeout_ms(f->ctl);

		if (until_clients_done && !atomic_load(&f->clients_running))
			break;
		assert_true(loop_run_once(f->loop, t < 0 || t > 10 ? 10 : t) >= 0);
		control_tick(f->ctl);
	}
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One status request with the real client; 0 if it answered "ok" in time. */
static int status_ok(struct fixture *f, int timeout_ms)
{
	char reply[512];
	int ret = control_request(f->dir, "t", "{\"cmd\":\"status\"}", reply, sizeof(reply),
				  timeout_ms);

	if (ret)
		return ret;
	if (strstr(reply, "too many control connections"))
		return -EBUSY;		/* refused, and told why: allowed under a storm */
	return strstr(reply, "\"ok\":true") ? 0 : -EPROTO;
}

struct client_job {
	struct fixture *f;
	void (*fn)(struct client_job *j);
	int iterations;
	atomic_int ok, busy, failed;
	uint64_t worst_ns;
};

static void *client_thread(void *arg)
{
	struct client_job *j = arg;

	j->fn(j);
	atomic_fetch_sub(&j->f->clients_running, 1);
	return NULL;
}

static void run_clients(struct fixture *f, struct client_job *jobs, int n, int max_ms)
{
	pthread_t t[16];

	atomic_store(&f->clients_running, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, client_thread, &jobs[i]), 0);
	serve(f, max_ms, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&f->clients_running), 0);
}

static void connect_close(struct client_job *j)
{
	for (int i = 0; i < j->iterations; i++) {
		int fd = connect_to(j->f->sock);

		if (fd >= 0)
			close(fd);
	}
}

static void half_request(struct client_job *j)
{
	for (int i = 0; i < j->iterations; i++) {
		int fd = connect_to(j->f->sock);

		if (fd < 0)
			continue;
		if (send(fd, "{\"cmd\":\"sta", 11, MSG_NOSIGNAL) != 11)
			atomic_fetch_add(&j->failed, 1);
		close(fd);
	}
}

static void status_loop(struct client_job *j)
{
	for (int i = 0; i < j->iterations; i++) {
		uint64_t t0 = now_ns();

		int ret = status_ok(j->f, 5000);

		if (ret == 0)
			atomic_fetch_add(&j->ok, 1);
		else if (ret == -EBUSY)
			atomic_fetch_add(&j->busy, 1);
		else
			atomic_fetch_add(&j->failed, 1);
		j->worst_ns = MAX(j->worst_ns, now_ns() - t0);
	}
}

/* The reproduction and more: every kind of abuse at once, then status. */
static void test_hammer_then_status(void **state)
{
	struct fixture *f = *state;
	struct client_job jobs[8] = {
		{ .fn = connect_close, .iterations = 200 },
		{ .fn = connect_close, .iterations = 200 },
		{ .fn = half_request, .iterations = 100 },
		{ .fn = half_request, .iterations = 100 },
		{ .fn = status_loop, .iterations = 50 },
		{ .fn = status_loop, .iterations = 50 },
		{ .fn = status_loop, .iterations = 50 },
		{ .fn = status_loop, .iterations = 50 },
	};
	int answered = 0;

	for (int i = 0; i < 8; i++)
		jobs[i].f = f;
	run_clients(f, jobs, 8, 20000);
	/* every request answered: a reply, or a refusal naming the reason; none lost */
	for (int i = 4; i < 8; i++) {
		assert_int_equal(atomic_load(&jobs[i].failed), 0);
		assert_int_equal(atomic_load(&jobs[i].ok) + atomic_load(&jobs[i].busy), 50);
		answered += atomic_load(&jobs[i].ok);
	}
	assert_int_equal(atomic_load(&f->statuses), answered);
	assert_int_equal(answered, 200);	/* busy refusals are retried by the client */
	/* closed clients and half requests freed their slots: no idle timeout needed */
	serve(f, 100, false);
	assert_int_equal(control_nr_conns(f->ctl), 0);

	{
		struct client_job last = { .f = f, .fn = status_loop, .iterations = 1 };

		run_clients(f, &last, 1, 5000);
		assert_int_equal(atomic_load(&last.ok), 1);
	}
}

/* Five back-to-back connect/close, serving only afterwards (merged wake-ups). */
static void test_merged_wakeups(void **state)
{
	struct fixture *f = *state;
	struct client_job last = { .f = f, .fn = status_loop, .iterations = 1 };
	int fds[5];

	for (int i = 0; i < 5; i++)
		fds[i] = connect_to(f->sock);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	fds[0] = connect_to(f->sock);
	assert_int_equal(send(fds[0], "{\"cmd\":", 7, MSG_NOSIGNAL), 7);
	close(fds[0]);		/* half a request, then gone */
	serve(f, 100, false);
	assert_int_equal(control_nr_conns(f->ctl), 0);
	run_clients(f, &last, 1, 5000);
	assert_int_equal(atomic_load(&last.ok), 1);
}

/* 16 silent clients fill every slot: the 17th hears why, and idleness frees them. */
static void test_silent_clients_time_out(void **state)
{
	struct fixture *f = *state;
	struct client_job last = { .f = f, .fn = status_loop, .iterations = 1 };
	char buf[256] = "";
	int fds[CONTROL_MAX_CONNS], extra;
	ssize_t n;

	control_set_idle_timeout(f->ctl, 300);
	for (int i = 0; i < CONTROL_MAX_CONNS; i++)
		fds[i] = connect_to(f->sock);
	serve(f, 50, false);
	assert_int_equal(control_nr_conns(f->ctl), CONTROL_MAX_CONNS);
	extra = connect_to(f->sock);
	serve(f, 50, false);
	n = recv(extra, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	assert_non_null(strstr(buf, "too many control connections"));
	close(extra);

	serve(f, 500, false);	/* past the idle timeout */
	assert_int_equal(control_nr_conns(f->ctl), 0);
	for (int i = 0; i < CONTROL_MAX_CONNS; i++) {
		assert_int_equal(recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT), 0);	/* EOF */
		close(fds[i]);
	}
	run_clients(f, &last, 1, 5000);
	assert_int_equal(atomic_load(&last.ok), 1);
}

/* A client that pipelines requests and never reads must not stall anyone. */
static void flood_no_read(struct client_job *j)
{
	static const char req[] = "{\"cmd\":\"status\"}\n";
	int fd = connect_to(j->f->sock);
	uint64_t end = now_ns() + 3000000000ull;
	int sent = 0;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	/* until our send buffer stays full: hdvm stopped taking our requests */
	while (now_ns() < end) {
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) > 0) {
			sent++;
			continue;
		}
		if (errno != EAGAIN)
			break;
		usleep(50000);
		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 && errno == EAGAIN)
			break;
		sent++;
	}
	j->iterations = sent;
	j->ok = fd;		/* kept open and unread; closed by the test */
}

static void test_slow_reader_does_not_block(void **state)
{
	struct fixture *f = *state;
	struct client_job flood = { .f = f, .fn = flood_no_read };
	struct client_job st = { .f = f, .fn = status_loop, .iterations = 20 };
	char buf[64];

	control_set_idle_timeout(f->ctl, 1000);
	run_clients(f, &flood, 1, 5000);
	assert_true(flood.iterations > 100);
	/* the loop stays responsive while a reply waits for the flooder */
	run_clients(f, &st, 1, 5000);
	assert_int_equal(atomic_load(&st.ok), 20);
	assert_true(st.worst_ns < 300000000ull);
	serve(f, 1500, false);	/* the flooder never takes its replies: dropped */
	assert_int_equal(control_nr_conns(f->ctl), 0);
	while (recv(flood.ok, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	close(flood.ok);
}

static void test_bad_requests_answered(void **state)
{
	char *r = control_handle_line(stub_cmds, 1, *state, "{\"cmd\":\"nope\"}");

	assert_non_null(strstr(r, "unknown command 'nope'"));
	free(r);
	r = control_handle_line(stub_cmds, 1, *state, "[1,2");
	assert_non_null(strstr(r, "malformed request"));
	free(r);
	r = control_handle_line(stub_cmds, 1, *state, "{\"cmd\":7}");
	assert_non_null(strstr(r, "expected {\\\"cmd\\\""));
	free(r);
}

/* ---- hdvm ps: many VMs at once, one that never answers ---- */

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

struct query_job {
	struct fixture *f;
	struct control_query *q;
};

static void *query_thread(void *arg)
{
	struct query_job *j = arg;

	control_request_many(j->f->dir, "{\"cmd\":\"status\"}", j->q, 4, 500);
	atomic_fetch_sub(&j->f->clients_running, 1);
	return NULL;
}

static void test_query_many_unresponsive(void **state)
{
	struct fixture *f = *state;
	char p1[128], p2[128], p3[128];
	struct control_query q[4] = {
		{ .name = "t" }, { .name = "stopped1" }, { .name = "stopped2" }, { .name = "gone" },
	};
	int s1, s2, dead;
	uint64_t t0;

	snprintf(p1, sizeof(p1), "%s/stopped1.sock", f->dir);
	snprintf(p2, sizeof(p2), "%s/stopped2.sock", f->dir);
	snprintf(p3, sizeof(p3), "%s/gone.sock", f->dir);
	s1 = listen_at(p1);	/* accepts in the kernel, never answers: SIGSTOPped */
	s2 = listen_at(p2);
	dead = listen_at(p3);
	close(dead);		/* a stale socket file: nobody listens */

	t0 = now_ns();
	{
		struct query_job j = { .f = f, .q = q };
		pthread_t t;

		/* "t" is served from this thread while the query runs in another */
		atomic_store(&f->clients_running, 1);
		assert_int_equal(pthread_create(&t, NULL, query_thread, &j), 0);
		serve(f, 5000, true);
		pthread_join(t, NULL);
	}
	/* one deadline for all, not one per VM */
	assert_true(now_ns() - t0 < 1500000000ull);
	assert_int_equal(q[0].result, 0);
	assert_non_null(strstr(q[0].reply, "\"ok\":true"));
	assert_int_equal(q[1].result, -ETIMEDOUT);
	assert_int_equal(q[2].result, -ETIMEDOUT);
	assert_int_equal(q[3].result, -ECONNREFUSED);
	close(s1);
	close(s2);
	unlink(p1);
	unlink(p2);
	unlink(p3);
}

/* ---- console input: everything written before one wake-up is taken ---- */

static void count_bytes(void *opaque, const uint8_t *buf, size_t len)
{
	*(size_t *)opaque += len;
}

static void test_console_input_drained(void **state)
{
	char chunk[700];
	size_t got = 0;
	int p[2];

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	for (int i = 0; i < 5; i++)	/* five writes, one merged wake-up */
		assert_int_equal(write(p[1], chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	assert_int_equal(fd_drain(p[0], count_bytes, &got), 0);
	assert_int_equal(got, 5 * sizeof(chunk));
	assert_int_equal(write(p[1], chunk, 10), 10);
	close(p[1]);
	assert_int_equal(fd_drain(p[0], count_bytes, &got), 1);	/* the rest, then EOF */
	assert_int_equal(got, 5 * sizeof(chunk) + 10);
	close(p[0]);
}

/* ---- a refused run leaves nothing; --metrics is all or nothing ---- */

static void test_long_run_dir_creates_nothing(void **state)
{
	char dir[200];

	snprintf(dir, sizeof(dir), "/tmp/hdvm-test-control-long-%0120d", 0);
	assert_null(control_open(dir, "vm"));
	assert_int_equal(access(dir, F_OK), -1);	/* refused before mkdir */
}

static void test_metrics_atomic(void **state)
{
	struct fixture *f = *state;
	struct metrics_file mf;
	char path[128], buf[64] = "";
	int fd, full;

	snprintf(path, sizeof(path), "%s/m.json", f->dir);
	assert_int_equal(metrics_open(&mf, path), 0);
	assert_int_equal(metrics_commit(&mf, "{\"good\":1}\n"), 0);
	/* a full disk: the earlier good file stays, no temporary is left */
	assert_int_equal(metrics_open(&mf, path), 0);
	full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	assert_true(full >= 0);
	dup2(full, mf.fd);
	close(full);
	assert_int_equal(metrics_commit(&mf, "{\"new\":2}\n"), -ENOSPC);
	fd = open(path, O_RDONLY);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_string_equal(buf, "{\"good\":1}\n");
	assert_int_equal(access(mf.tmp, F_OK), -1);
	/* an unwritable place is refused at open */
	assert_int_equal(metrics_open(&mf, "/nonexistent-dir/m.json"), -ENOENT);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merged_wakeups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hammer_then_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_clients_time_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_many_unresponsive, setup, teardown),
		cmocka_unit_test(test_long_run_dir_creates_nothing),
		cmocka_unit_test(test_console_input_drained),
		cmocka_unit_test_setup_teardown(test_metrics_atomic, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
