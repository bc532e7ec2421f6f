// SPDX-License-Identifier: MIT
/*
 * Post-copy on the real userfaultfd, without KVM: the destination's RAM is a
 * memfd mapping registered with uffd, the "guest" is threads touching it,
 * the source is postcopy_serve() (or a misbehaving fake) on the other end of
 * a unix socketpair or a loopback TCP connection.  What a user would see:
 * every page arrives with the source's content, pages a thread waits for
 * are answered before the background push gets there, a corrupt page is
 * refused (not installed) and both ends say the VM is lost, a source that
 * vanishes is reported as the VM lost, many threads faulting on one page
 * cost one request, and hdvm's own writes land on top of the source's page.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "migration/postcopy_proto.h"
#include "migration/stream.h"
#include "vmm/memory.h"
#include "vmm/postcopy_dst.h"
#include "vmm/postcopy_src.h"
#include "vmm/util.h"

#define PAGE	4096ull
#define NPAGES	2048ull			/* 8 MiB */

/* Page p of the source: not zero unless p % 7 == 3 (a hole: not needed). */
static uint8_t pattern(uint64_t p, size_t i)
{
	return (uint8_t)(p * 131 + i * 7 + 1) | 1;
}

static bool is_hole(uint64_t p)
{
	return p % 7 == 3;
}

struct rig {
	uint8_t *src_ram;
	uint64_t *src_needed;
	int memfd;
	uint8_t *dst_ram;
	int fds[2];			/* [0] source end, [1] destination end */
	struct mig_io src_io, dst_io;
	struct postcopy_src src;
	struct postcopy_dst dst;
	pthread_t src_thread;
	int src_ret;
	char src_why[320];
	int finished_calls, finished_err;
};

static void fill_source(struct rig *r, uint64_t npages)
{
	r->src_ram = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r->src_ram != MAP_FAILED);
	r->src_needed = calloc(pc_words(npages), 8);
	for (uint64_t p = 0; p < npages; p++) {
		if (is_hole(p))
			continue;
		for (size_t i = 0; i < PAGE; i++)
			r->src_ram[p * PAGE + i] = pattern(p, i);
		pc_set(r->src_needed, p);
	}
}

static void tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fds[1] = accept(l, NULL, NULL);
	assert_true(fds[1] >= 0);
	close(l);
}

static void rig_init(struct rig *r, uint64_t npages, bool tcp)
{
	memset(r, 0, sizeof(*r));
	fill_source(r, npages);
	r->memfd = memfd_create("pc-dst", MFD_CLOEXEC);
	assert_true(r->memfd >= 0);
	assert_int_equal(ftruncate(r->memfd, (off_t)(npages * PAGE)), 0);
	r->dst_ram = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	assert_true(r->dst_ram != MAP_FAILED);
	if (tcp)
		tcp_pair(r->fds);
	else
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->fds), 0);
	mig_io_fd(&r->src_io, r->fds[0]);
	mig_io_fd(&r->dst_io, r->fds[1]);
	r->src = (struct postcopy_src){ .io = &r->src_io, .ram = r->src_ram, .npages = npages,
					.needed = r->src_needed };
}

static void on_finished(struct postcopy_dst *pc, int err, const char *why, void *opaque)
{
	struct rig *r = opaque;

	r->finished_calls++;
	r->finished_err = err;
}

static void dst_start(struct rig *r, uint64_t npages, const uint64_t *needed)
{
	uint64_t *copy = calloc(pc_words(npages), 8);
	char why[320] = "";

	memcpy(copy, needed, pc_words(npages) * 8);
	assert_int_equal(postcopy_dst_start(&r->dst, &r->dst_io, r->memfd, r->dst_ram,
					    npages * PAGE, copy, on_finished, r, why,
					    sizeof(why)), 0);
}

static void *serve_main(void *arg)
{
	struct rig *r = arg;

	r->src_ret = postcopy_serve(&r->src, r->src_why, sizeof(r->src_why));
	return NULL;
}

static void src_start(struct rig *r)
{
	assert_int_equal(pthread_create(&r->src_thread, NULL, serve_main, r), 0);
}

static void rig_free(struct rig *r, uint64_t npages)
{
	postcopy_dst_destroy(&r->dst);
	if (r->src_thread) {
		shutdown(r->fds[1], SHUT_RDWR);
		pthread_join(r->src_thread, NULL);
	}
	close(r->fds[0]);
	close(r->fds[1]);
	munmap(r->dst_ram, npages * PAGE);
	munmap(r->src_ram, npages * PAGE);
	close(r->memfd);
	free(r->src_needed);
}

/* ---- the guest: threads touching destination RAM ---- */

static __thread sigjmp_buf stop_jmp;
static __thread volatile sig_atomic_t stoppable;

/* The VMM stops a vCPU with a signal; a thread parked in a fault leaves the same way. */
static void on_stop(int sig)
{
	if (stoppable)
		siglongjmp(stop_jmp, 1);
}

static void install_stop_handler(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigaction(SIGUSR1, &sa, NULL);
}

struct toucher {
	struct rig *r;
	uint64_t first, count;		/* pages first-count+1 .. first, touched downwards */
	pthread_barrier_t *start;
	bool stopped;			/* left through the stop signal */
	uint64_t bad;			/* pages whose content was wrong */
	uint64_t done;			/* pages read */
	uint64_t pushed_when_done;	/* the push's progress when the last touch returned */
};

static bool page_ok(const uint8_t *p, uint64_t page)
{
	for (size_t i = 0; i < PAGE; i += 97)
		if (p[i] != (is_hole(page) ? 0 : pattern(page, i)))
			return false;
	return true;
}

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	if (t->start)
		pthread_barrier_wait(t->start);
	if (sigsetjmp(stop_jmp, 1)) {
		t->stopped = true;
		return NULL;
	}
	stoppable = 1;
	for (uint64_t k = 0; k < t->count; k++) {
		uint64_t page = t->first - k;

		if (!page_ok(t->r->dst_ram + page * PAGE, page))
			t->bad++;
		t->done++;
	}
	stoppable = 0;
	{
		struct postcopy_stats st;

		postcopy_dst_stats(&t->r->dst, &st);
		t->pushed_when_done = st.pushed;
	}
	return NULL;
}

/* ---- tests ---- */

static void every_page_arrives(bool tcp)
{
	struct rig r;
	struct toucher t;
	struct postcopy_stats st;
	pthread_t th;
	char why[320] = "";

	rig_init(&r, NPAGES, tcp);
	dst_start(&r, NPAGES, r.src_needed);
	/*
	 * The guest reads all of RAM from the top down while the push goes bottom
	 * up.  The source starts only once the guest waits in its first fault: an
	 * unthrottled push over loopback could otherwise bring every page before
	 * the guest's thread first ran, and nothing would be asked for.
	 */
	t = (struct toucher){ .r = &r, .first = NPAGES - 1, .count = NPAGES };
	assert_int_equal(pthread_create(&th, NULL, touch_main, &t), 0);
	for (int i = 0; i < 5000; i++) {
		postcopy_dst_stats(&r.dst, &st);
		if (st.requests)
			break;
		usleep(1000);
	}
	assert_true(st.requests > 0);		/* the top page was asked for */
	src_start(&r);
	pthread_join(th, NULL);
	assert_int_equal(t.bad, 0);
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), 0);
	pthread_join(r.src_thread, NULL);
	r.src_thread = 0;
	assert_int_equal(r.src_ret, 0);
	/* every byte, after the fact, is the source's */
	assert_memory_equal(r.dst_ram, r.src_ram, NPAGES * PAGE);
	postcopy_dst_stats(&r.dst, &st);
	assert_int_equal(st.needed, NPAGES - (NPAGES + 3) / 7);
	assert_int_equal(st.on_demand + st.pushed, st.needed);
	assert_int_equal(r.src.served + r.src.pushed, st.needed);
	assert_true(st.on_demand > 0);		/* the top pages were waited for */
	assert_true(st.zero_local > 0);		/* holes never crossed the wire */
	assert_int_equal(r.finished_calls, 1);
	assert_int_equal(r.finished_err, 0);
	assert_int_equal(postcopy_dst_state(&r.dst), PC_DONE);
	rig_free(&r, NPAGES);
}

static void test_every_page_arrives_with_the_source_content_over_unix(void **state)
{
	every_page_arrives(false);
}

static void test_every_page_arrives_with_the_source_content_over_tcp(void **state)
{
	every_page_arrives(true);
}

/*
 * The push is slowed to 4 MiB/s (8 MiB would take 2 s); the guest touches
 * the 32 highest pages, the last the push would reach: they must all be
 * served on demand long before it does.
 */
static void test_faulted_pages_are_served_before_the_push_reaches_them(void **state)
{
	struct rig r;
	struct toucher t;
	struct postcopy_stats st;
	pthread_t th;
	uint64_t served_by_request = 0;
	char why[320] = "";

	rig_init(&r, NPAGES, false);
	r.src.max_bandwidth = 4ull << 20;
	dst_start(&r, NPAGES, r.src_needed);
	src_start(&r);
	t = (struct toucher){ .r = &r, .first = NPAGES - 1, .count = 32 };
	assert_int_equal(pthread_create(&th, NULL, touch_main, &t), 0);
	pthread_join(th, NULL);
	assert_int_equal(t.bad, 0);
	assert_true(t.pushed_when_done < NPAGES - 64);	/* the push was far from there */
	postcopy_dst_stats(&r.dst, &st);
	for (uint64_t p = NPAGES - 32; p < NPAGES; p++)
		served_by_request += !is_hole(p);
	assert_int_equal(st.requests, served_by_request);
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), 0);
	postcopy_dst_stats(&r.dst, &st);	/* counted after the waker's copy returned */
	assert_true(st.on_demand >= served_by_request);
	assert_memory_equal(r.dst_ram, r.src_ram, NPAGES * PAGE);
	rig_free(&r, NPAGES);
}

/* A transport that flips one byte of every page it carries (a bad link, a bad NIC). */
static ssize_t flip_write(struct mig_io *io, const void *buf, size_t len)
{
	uint8_t tmp[PC_REC_HDR + PC_MAX_PAYLOAD];
	ssize_t n;

	if (len < sizeof(tmp))
		return write(io->fd, buf, len);
	memcpy(tmp, buf, sizeof(tmp));		/* the first record: a whole page */
	tmp[PC_REC_HDR + 1000] ^= 0x40;
	n = write(io->fd, tmp, sizeof(tmp));
	return n < 0 ? -errno : n;
}

static ssize_t plain_read(struct mig_io *io, void *buf, size_t len)
{
	ssize_t n = read(io->fd, buf, len);

	return n < 0 ? -errno : n;
}

static const struct mig_io_ops flip_ops = { .read = plain_read, .write = flip_write };

static void stop_toucher(pthread_t th, struct toucher *t)
{
	/* the VMM kicks a vCPU until it leaves; here the same with SIGUSR1 */
	for (int i = 0; i < 200 && !t->stopped; i++) {
		pthread_kill(th, SIGUSR1);
		usleep(5000);
	}
	pthread_join(th, NULL);
}

static void test_a_corrupt_page_is_refused_and_the_vm_stopped(void **state)
{
	struct rig r;
	struct toucher t;
	pthread_t th;
	char why[320] = "";
	uint64_t target = 100;

	install_stop_handler();
	rig_init(&r, NPAGES, false);
	r.src_io.ops = &flip_ops;
	dst_start(&r, NPAGES, r.src_needed);
	src_start(&r);
	t = (struct toucher){ .r = &r, .first = target, .count = 1 };
	assert_int_equal(pthread_create(&th, NULL, touch_main, &t), 0);
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "corrupt page"));
	assert_non_null(strstr(why, "cannot continue"));
	assert_int_equal(r.finished_calls, 1);
	assert_int_equal(r.finished_err, -EBADMSG);
	/* the guest never read it: it stays parked until the VMM stops it */
	stop_toucher(th, &t);
	assert_true(t.stopped);
	assert_int_equal(t.done, 0);
	/* nothing was installed: the memfd has no page with data at all */
	assert_int_equal(lseek(r.memfd, 0, SEEK_DATA), -1);
	/* and the source heard why */
	pthread_join(r.src_thread, NULL);
	r.src_thread = 0;
	assert_int_equal(r.src_ret, -ECONNABORTED);
	assert_non_null(strstr(r.src_why, "corrupt page"));
	assert_non_null(strstr(r.src_why, "the VM is lost"));
	/* hdvm's own writes fail instead of landing on a page that will never come */
	assert_int_equal(postcopy_dst_fault_in(&r.dst, target * PAGE, 8), -EHOSTDOWN);
	rig_free(&r, NPAGES);
}

/* A source that takes one request and dies. */
static void *vanish_main(void *arg)
{
	struct rig *r = arg;
	struct pc_rec rec;
	char why[128];

	r->src_ret = pc_get(&r->src_io, &rec, why, sizeof(why));
	if (!r->src_ret && rec.magic != PC_REC_REQ)
		r->src_ret = -EPROTO;
	shutdown(r->fds[0], SHUT_RDWR);
	return NULL;
}

static void test_the_source_vanishing_mid_postcopy_is_reported_as_vm_lost(void **state)
{
	struct rig r;
	struct toucher t;
	pthread_t th;
	char why[320] = "";

	install_stop_handler();
	rig_init(&r, NPAGES, false);
	dst_start(&r, NPAGES, r.src_needed);
	assert_int_equal(pthread_create(&r.src_thread, NULL, vanish_main, &r), 0);
	t = (struct toucher){ .r = &r, .first = 5, .count = 1 };
	assert_int_equal(pthread_create(&th, NULL, touch_main, &t), 0);
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), -EHOSTDOWN);
	assert_non_null(strstr(why, "the source went away during post-copy"));
	assert_non_null(strstr(why, "the VM is lost"));
	assert_int_equal(r.finished_err, -EHOSTDOWN);
	pthread_join(r.src_thread, NULL);
	r.src_thread = 0;
	assert_int_equal(r.src_ret, 0);		/* it did get the request */
	stop_toucher(th, &t);
	assert_true(t.stopped);
	assert_int_equal(t.done, 0);
	rig_free(&r, NPAGES);
}

/* A slow source that counts the requests for page 5 before answering. */
static int slow_reqs;

static void *slow_main(void *arg)
{
	struct rig *r = arg;
	struct pc_rec rec;
	char why[128];

	for (;;) {
		if (pc_get(&r->src_io, &rec, why, sizeof(why)))
			break;
		if (rec.magic == PC_REC_DONE)
			break;
		if (rec.magic != PC_REC_REQ)
			continue;
		if (slow_reqs++ == 0) {
			usleep(100000);		/* every thread is parked on it by now */
			pc_put(&r->src_io, PC_REC_PAGE, PC_F_REQUESTED, rec.arg,
			       r->src_ram + rec.arg * PAGE, PAGE);
		}
	}
	return NULL;
}

static void test_concurrent_faults_on_one_page_cost_one_request(void **state)
{
	enum { THREADS = 8 };
	struct rig r;
	struct toucher t[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t go;
	struct postcopy_stats st;
	uint64_t *needed = calloc(pc_words(NPAGES), 8);
	char why[320] = "";

	rig_init(&r, NPAGES, false);
	pc_set(needed, 5);		/* only page 5 must come from the source */
	dst_start(&r, NPAGES, needed);
	slow_reqs = 0;
	assert_int_equal(pthread_create(&r.src_thread, NULL, slow_main, &r), 0);
	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct toucher){ .r = &r, .first = 5, .count = 1, .start = &go };
		assert_int_equal(pthread_create(&th[i], NULL, touch_main, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].bad, 0);
		assert_int_equal(t[i].done, 1);
	}
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), 0);
	pthread_join(r.src_thread, NULL);
	r.src_thread = 0;
	postcopy_dst_stats(&r.dst, &st);
	assert_int_equal(slow_reqs, 1);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.on_demand, 1);
	assert_true(st.faults >= 2);	/* more than one thread did wait on it */
	assert_int_equal(st.faults, st.requests + st.dup_faults);
	free(needed);
	rig_free(&r, NPAGES);
}

/* hdvm's one guest-write path, with post-copy's hook, on a page not yet here. */
static int hook(void *opaque, uint64_t off, uint64_t len)
{
	return postcopy_dst_fault_in(opaque, off, len);
}

static void test_hdvm_writes_land_on_top_of_the_source_page(void **state)
{
	struct rig r;
	struct guest_mem m;
	const char msg[] = "written by hdvm";
	uint64_t page = 700, off = page * PAGE + 123;
	char why[320] = "";

	rig_init(&r, NPAGES, false);
	r.src.max_bandwidth = 1ull << 20;	/* the push will not get there first */
	dst_start(&r, NPAGES, r.src_needed);
	src_start(&r);
	memset(&m, 0, sizeof(m));
	m.memfd = r.memfd;
	guest_mem_layout(&m, r.dst_ram, NPAGES * PAGE, 0);
	m.fault_in = hook;
	m.fault_in_opaque = &r.dst;
	assert_int_equal(guest_mem_write(&m, off, msg, sizeof(msg)), 0);
	/* the rest of the page is the source's, the write is on top */
	assert_memory_equal(r.dst_ram + off, msg, sizeof(msg));
	for (size_t i = 0; i < PAGE; i++) {
		if (i >= 123 && i < 123 + sizeof(msg))
			continue;
		assert_int_equal(r.dst_ram[page * PAGE + i], pattern(page, i));
	}
	r.src.max_bandwidth = 0;
	assert_int_equal(postcopy_dst_wait(&r.dst, why, sizeof(why)), 0);
	rig_free(&r, NPAGES);
}

/* The switchover list: checked against RAM and its own count. */
static void test_switchover_list_is_checked(void **state)
{
	uint64_t bm[2] = { 0x5, 0x1 }, *out = NULL, n = 0;
	uint8_t *body;
	uint64_t len;
	char why[200];

	assert_int_equal(pc_switch_encode(bm, 100, &body, &len), 0);
	assert_int_equal(pc_switch_parse(body, len, 100, &out, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[0], 0x5);
	free(out);
	assert_int_equal(pc_switch_parse(body, len, 200, &out, &n, why, sizeof(why)), -EPROTO);
	body[8] = 9;	/* the announced count no longer matches */
	assert_int_equal(pc_switch_parse(body, len, 100, &out, &n, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "does not hold"));
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_page_arrives_with_the_source_content_over_unix),
		cmocka_unit_test(test_every_page_arrives_with_the_source_content_over_tcp),
		cmocka_unit_test(test_faulted_pages_are_served_before_the_push_reaches_them),
		cmocka_unit_test(test_a_corrupt_page_is_refused_and_the_vm_stopped),
		cmocka_unit_test(test_the_source_vanishing_mid_postcopy_is_reported_as_vm_lost),
		cmocka_unit_test(test_concurrent_faults_on_one_page_cost_one_request),
		cmocka_unit_test(test_hdvm_writes_land_on_top_of_the_source_page),
		cmocka_unit_test(test_switchover_list_is_checked),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
