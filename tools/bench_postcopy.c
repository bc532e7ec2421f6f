// SPDX-License-Identifier: MIT
/*
 * bench-postcopy: what post-copy costs, measured on the real userfaultfd
 * without a guest (tests/unit/test_postcopy.c's rig, timed):
 *   - fault round trip: a thread touches a page absent from the registered
 *     destination RAM; the fault thread asks the source, the page comes
 *     back, UFFDIO_COPY wakes the thread -- over unix: and tcp: loopback,
 *     with the source answering requests only (idle link) and with the
 *     background push running (the reply waits behind pushed pages);
 *   - background push throughput: every page pushed, nobody faulting.
 * Median of --runs runs each; a table, and JSON with --json FILE.
 *
 * --guest: the guest-slowdown comparison (app=dirty under post-copy against
 * pre-copy with auto-converge) boots guests and needs /dev/kvm; without it
 * this refuses and says so; with it, it runs tools/bench_postcopy_guest.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/postcopy_proto.h"
#include "migration/stream.h"
#include "vmm/postcopy_dst.h"
#include "vmm/postcopy_src.h"
#include "vmm/util.h"

#define PAGE	4096ull

struct rig {
	uint64_t npages;
	uint8_t *src_ram, *dst_ram;
	uint64_t *needed;
	int memfd, fds[2];
	struct mig_io src_io, dst_io;
	struct postcopy_src src;
	struct postcopy_dst dst;
	pthread_t src_thread;
	int src_ret;
	char why[320];
};

static __attribute__((noreturn)) void die(const char *what, int err)
{
	fprintf(stderr, "bench-postcopy: %s: %s\n", what, strerror(err));
	exit(1);
}

static void tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &alen))
		die("loopback listen", errno);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fds[0], (struct sockaddr *)&a, sizeof(a)))
		die("loopback connect", errno);
	fds[1] = accept(l, NULL, NULL);
	if (fds[1] < 0)
		die("loopback accept", errno);
	close(l);
}

static void *serve_main(void *arg)
{
	struct rig *r = arg;

	r->src_ret = postcopy_serve(&r->src, r->why, sizeof(r->why));
	return NULL;
}

static void rig_start(struct rig *r, uint64_t npages, bool tcp, bool push)
{
	char why[320];
	int ret;

	memset(r, 0, sizeof(*r));
	r->npages = npages;
	r->src_ram = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (r->src_ram == MAP_FAILED)
		die("source RAM", errno);
	for (uint64_t p = 0; p < npages; p++)
		memset(r->src_ram + p * PAGE, (int)(p | 1), PAGE);
	r->needed = calloc(pc_words(npages), 8);
	for (uint64_t p = 0; p < npages; p++)
		pc_set(r->needed, p);
	r->memfd = memfd_create("bench-pc", MFD_CLOEXEC);
	if (r->memfd < 0 || ftruncate(r->memfd, (off_t)(npages * PAGE)))
		die("memfd", errno);
	r->dst_ram = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (r->dst_ram == MAP_FAILED)
		die("destination RAM", errno);
	if (tcp)
		tcp_pair(r->fds);
	else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->fds))
		die("socketpair", errno);
	mig_io_fd(&r->src_io, r->fds[0]);
	mig_io_fd(&r->dst_io, r->fds[1]);
	r->src = (struct postcopy_src){ .io = &r->src_io, .ram = r->src_ram, .npages = npages,
					.needed = calloc(pc_words(npages), 8), .no_push = !push };
	memcpy(r->src.needed, r->needed, pc_words(npages) * 8);
	ret = postcopy_dst_start(&r->dst, &r->dst_io, r->memfd, r->dst_ram, npages * PAGE,
				 r->needed, NULL, NULL, why, sizeof(why));
	if (ret) {
		fprintf(stderr, "bench-postcopy: %s\n", why);
		exit(1);
	}
	if (pthread_create(&r->src_thread, NULL, serve_main, r))
		die("thread", EAGAIN);
}

static void rig_stop(struct rig *r)
{
	char why[320];

	if (postcopy_dst_wait(&r->dst, why, sizeof(why))) {
		fprintf(stderr, "bench-postcopy: post-copy failed: %s\n", why);
		exit(1);
	}
	pthread_join(r->src_thread, NULL);
	postcopy_dst_destroy(&r->dst);
	close(r->fds[0]);
	close(r->fds[1]);
	munmap(r->src_ram, r->npages * PAGE);
	munmap(r->dst_ram, r->npages * PAGE);
	close(r->memfd);
	free(r->src.needed);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, unsigned p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(n - 1) * p / 100];
}

/*
 * One run: `touches` pages faulted one after another from the top of RAM
 * down (the push, when on, goes bottom up); each touch timed.  The rest of
 * RAM is then touched (no push) or pushed, so post-copy ends.
 */
static void fault_run(bool tcp, bool push, uint64_t npages, uint64_t touches,
		      uint64_t *p50, uint64_t *p99, uint64_t *on_demand)
{
	uint64_t *lat = calloc(touches, 8);
	struct rig r;

	rig_start(&r, npages, tcp, push);
	for (uint64_t k = 0; k < touches; k++) {
		uint64_t page = npages - 1 - k * 3, t = now_ns();

		if (*(volatile uint8_t *)(r.dst_ram + page * PAGE) != (uint8_t)(page | 1)) {
			fprintf(stderr, "bench-postcopy: page %llu has the wrong content\n",
				(unsigned long long)page);
			exit(1);
		}
		lat[k] = now_ns() - t;
	}
	if (!push)
		for (uint64_t p = 0; p < npages; p++)
			(void)*(volatile uint8_t *)(r.dst_ram + p * PAGE);
	{
		struct postcopy_stats st;

		postcopy_dst_wait(&r.dst, NULL, 0);
		postcopy_dst_stats(&r.dst, &st);
		/* the touches the push had not reached: the ones that measured a round trip */
		*on_demand = push ? st.on_demand : touches;
	}
	rig_stop(&r);
	*p50 = pct(lat, touches, 50);
	*p99 = pct(lat, touches, 99);
	free(lat);
}

static double push_run(bool tcp, uint64_t npages)
{
	struct rig r;
	uint64_t t = now_ns(), ns;

	rig_start(&r, npages, tcp, true);
	rig_stop(&r);
	ns = now_ns() - t;
	return (double)(npages * PAGE) / (1 << 20) / ((double)ns / 1e9);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'r' },
		{ "mib", required_argument, NULL, 'm' },
		{ "touches", required_argument, NULL, 't' },
		{ "json", required_argument, NULL, 'j' },
		{ "guest", no_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned runs = 5, mib = 128, touches = 200;
	const char *json = NULL;
	FILE *jf = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': runs = (unsigned)atoi(optarg); break;
		case 'm': mib = (unsigned)atoi(optarg); break;
		case 't': touches = (unsigned)atoi(optarg); break;
		case 'j': json = optarg; break;
		case 'g':
			if (access("/dev/kvm", R_OK | W_OK)) {
				fprintf(stderr, "bench-postcopy: --guest refused: the guest-slowdown "
					"comparison (app=dirty under post-copy against pre-copy with "
					"auto-converge) boots guests and needs /dev/kvm, which this "
					"host does not have (%s)\n", strerror(errno));
				return 2;
			}
			execl("/usr/bin/python3", "python3", "tools/bench_postcopy_guest.py",
			      (char *)NULL);
			die("tools/bench_postcopy_guest.py", errno);
		case 'h':
			printf("usage: bench-postcopy [--runs N] [--mib M] [--touches T] "
			       "[--json FILE] [--guest]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!runs || !mib || !touches || (uint64_t)touches * 3 >= (uint64_t)mib * 256) {
		fprintf(stderr, "bench-postcopy: --runs, --mib, --touches must be positive, "
			"touches*3 below the pages of --mib\n");
		return 2;
	}
	if (json && !(jf = fopen(json, "w")))
		die(json, errno);
	printf("post-copy on userfaultfd, %u MiB, median of %u runs (%u faults per run)\n\n",
	       mib, runs, touches);
	printf("%-6s %-22s %12s %12s %10s\n", "link", "measure", "p50", "p99", "on demand");
	if (jf)
		fprintf(jf, "{\"mib\": %u, \"runs\": %u, \"touches\": %u, \"results\": [", mib,
			runs, touches);
	for (int tcp = 0; tcp < 2; tcp++) {
		const char *link = tcp ? "tcp" : "unix";

		for (int push = 0; push < 2; push++) {
			uint64_t *a50 = calloc(runs, 8), *a99 = calloc(runs, 8), m50, m99;
			uint64_t *od = calloc(runs, 8), mod;

			for (unsigned i = 0; i < runs; i++)
				fault_run(tcp, push, (uint64_t)mib * 256, touches, &a50[i], &a99[i],
					  &od[i]);
			m50 = pct(a50, runs, 50);
			m99 = pct(a99, runs, 50);
			mod = pct(od, runs, 50);
			printf("%-6s %-22s %9.1f us %9.1f us %6llu/%u\n", link,
			       push ? "fault, push running" : "fault, idle link", m50 / 1e3,
			       m99 / 1e3, (unsigned long long)mod, touches);
			if (jf)
				fprintf(jf, "%s{\"link\": \"%s\", \"measure\": \"fault_rtt_%s\", "
					"\"p50_us\": %.1f, \"p99_us\": %.1f, \"on_demand\": %llu}",
					tcp || push ? ", " : "", link, push ? "push" : "idle",
					m50 / 1e3, m99 / 1e3, (unsigned long long)mod);
			free(od);
			free(a50);
			free(a99);
		}
		{
			double *mbs = calloc(runs, sizeof(double)), med;

			for (unsigned i = 0; i < runs; i++)
				mbs[i] = push_run(tcp, (uint64_t)mib * 256);
			qsort(mbs, runs, sizeof(double), cmp_dbl);
			med = mbs[(runs - 1) / 2];
			printf("%-6s %-22s %9.0f MiB/s\n", link, "background push", med);
			if (jf)
				fprintf(jf, ", {\"link\": \"%s\", \"measure\": \"push\", "
					"\"mib_per_s\": %.0f}", link, med);
			free(mbs);
		}
	}
	if (jf) {
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	return 0;
}
