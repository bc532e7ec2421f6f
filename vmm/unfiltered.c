// SPDX-License-Identifier: MIT
/* A thread without the main seccomp filter, running requests one at a time (unfiltered.h). */
#include "vmm/unfiltered.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct unfiltered_req {
	void (*fn)(void *arg);
	void *arg;
	bool done;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started;
	struct unfiltered_req *req;
} uf = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *unfiltered_main(void *unused)
{
	pthread_mutex_lock(&uf.lock);
	for (;;) {
		struct unfiltered_req *r;

		while (!uf.req)
			pthread_cond_wait(&uf.cond, &uf.lock);
		r = uf.req;
		pthread_mutex_unlock(&uf.lock);
		r->fn(r->arg);
		pthread_mutex_lock(&uf.lock);
		r->done = true;
		uf.req = NULL;
		pthread_cond_broadcast(&uf.cond);
	}
	return NULL;
}

int unfiltered_start(void)
{
	pthread_t t;

	if (uf.started)
		return 0;
	if (pthread_create(&t, NULL, unfiltered_main, NULL))
		return -EAGAIN;
	pthread_detach(t);
	uf.started = true;
	return 0;
}

void unfiltered_run(void (*fn)(void *), void *arg)
{
	struct unfiltered_req r = { fn, arg, false };

	if (!uf.started)
		return fn(arg);
	pthread_mutex_lock(&uf.lock);
	while (uf.req)
		pthread_cond_wait(&uf.cond, &uf.lock);
	uf.req = &r;
	pthread_cond_broadcast(&uf.cond);
	while (!r.done)
		pthread_cond_wait(&uf.cond, &uf.lock);
	pthread_mutex_unlock(&uf.lock);
}
