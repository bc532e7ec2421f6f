// SPDX-License-Identifier: MIT
#include "vmm/postcopy_dst.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migration/postcopy_proto.h"
#include "vmm/util.h"

#define PAGE	4096ull

int postcopy_uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), dev, err;

	/* without CAP_SYS_PTRACE (and vm.unprivileged_userfaultfd=0) the device node may do */
	if (fd < 0 && errno == EPERM) {
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* The outcome: `finished` first, so a waiter woken by wait() sees its effects. */
static void set_state(struct postcopy_dst *pc, enum postcopy_state st, int err, const char *why)
{
	if (pc->finished)
		pc->finished(pc, err, why, pc->opaque);
	pthread_mutex_lock(&pc->lock);
	pc->state = st;
	pc->err = err;
	snprintf(pc->why, sizeof(pc->why), "%s", why ? why : "");
	if (st == PC_DONE)
		pc->stats.t_done_ns = now_ns();
	pthread_cond_broadcast(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
}

static int uffd_range(struct postcopy_dst *pc, unsigned long req, uint64_t page, void *arg)
{
	for (;;) {
		if (ioctl(pc->uffd, req, arg) == 0)
			return 0;
		if (errno != EAGAIN)	/* EAGAIN: the mm changed under the copy, retry */
			return -errno;
	}
}

static int wake(struct postcopy_dst *pc, uint64_t page)
{
	struct uffdio_range r = { .start = (uintptr_t)pc->base + page * PAGE, .len = PAGE };

	return uffd_range(pc, UFFDIO_WAKE, page, &r);
}

static int zero_fill(struct postcopy_dst *pc, uint64_t page)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)pc->base + page * PAGE, .len = PAGE },
	};

	return uffd_range(pc, UFFDIO_ZEROPAGE, page, &z);
}

static int copy_in(struct postcopy_dst *pc, uint64_t page, const void *data)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)pc->base + page * PAGE, .src = (uintptr_t)data, .len = PAGE,
	};

	return uffd_range(pc, UFFDIO_COPY, page, &c);
}

/* A vCPU or thread waits for `page`. */
static int on_fault(struct postcopy_dst *pc, uint64_t page)
{
	int ret;

	pthread_mutex_lock(&pc->lock);
	pc->stats.faults++;
	pthread_mutex_unlock(&pc->lock);
	if (pc_test(pc->present, page))
		return wake(pc, page);		/* it arrived after the fault was raised */
	if (!pc_test(pc->needed, page)) {
		ret = zero_fill(pc, page);	/* a hole on the source as well */
		if (ret == -EEXIST)
			return wake(pc, page);
		if (!ret) {
			pc_set(pc->present, page);
			pthread_mutex_lock(&pc->lock);
			pc->stats.zero_local++;
			pthread_mutex_unlock(&pc->lock);
		}
		return ret;
	}
	pthread_mutex_lock(&pc->lock);
	if (pc_test(pc->requested, page))
		pc->stats.dup_faults++;
	else
		pc->stats.requests++;
	pthread_mutex_unlock(&pc->lock);
	if (pc_test(pc->requested, page))
		return 0;	/* asked already: the page's arrival wakes every waiter */
	pc_set(pc->requested, page);
	return pc_put(pc->io, PC_REC_REQ, 0, page, NULL, 0);
}

static int read_faults(struct postcopy_dst *pc, char *why, size_t len)
{
	struct uffd_msg msg[16];

	for (;;) {
		ssize_t n = read(pc->uffd, msg, sizeof(msg));

		if (n < 0)
			return errno == EAGAIN ? 0 : mig_refuse(-errno, why, len,
						     "reading userfaultfd: %s", strerror(errno));
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			uint64_t addr = msg[i].arg.pagefault.address;
			int ret;

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (addr < (uintptr_t)pc->base || addr >= (uintptr_t)pc->base + pc->size)
				continue;
			ret = on_fault(pc, (addr - (uintptr_t)pc->base) / PAGE);
			if (ret)
				return mig_refuse(ret, why, len, "serving a fault at RAM offset "
						  "%#llx: %s", (unsigned long long)(addr -
						  (uintptr_t)pc->base), strerror(-ret));
		}
	}
}

/* A page from the source: checked (crc by pc_parse, then place), then installed. */
static int take_page(struct postcopy_dst *pc, const struct pc_rec *rec, char *why, size_t len)
{
	uint64_t page = rec->arg;
	int ret;

	if (page >= pc->npages || !pc_test(pc->needed, page) || pc_test(pc->present, page))
		return mig_refuse(-EPROTO, why, len, "the source sent page %llu, which %s",
				  (unsigned long long)page, page >= pc->npages ? "is outside RAM" :
				  !pc_test(pc->needed, page) ? "was not on its own list" :
				  "had arrived already");
	ret = rec->flags & PC_F_ZERO ? zero_fill(pc, page) : copy_in(pc, page, rec->payload);
	if (ret == -EEXIST)
		return mig_refuse(-EEXIST, why, len, "page %llu was written on this host before "
				  "it arrived (DMA outside post-copy?): refused, the VM cannot "
				  "continue", (unsigned long long)page);
	if (ret)
		return mig_refuse(ret, why, len, "installing page %llu: %s",
				  (unsigned long long)page, strerror(-ret));
	pc_set(pc->present, page);
	pc->nr_present++;
	pthread_mutex_lock(&pc->lock);
	if (rec->flags & PC_F_REQUESTED)
		pc->stats.on_demand++;
	else
		pc->stats.pushed++;
	pthread_mutex_unlock(&pc->lock);
	return 0;
}

static int all_present(struct postcopy_dst *pc, char *why, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)pc->base, .len = pc->size };
	int ret = pc_put(pc->io, PC_REC_DONE, 0, pc->nr_present, NULL, 0);

	/* from here a fault is an ordinary one: the absent pages are zero pages */
	if (ioctl(pc->uffd, UFFDIO_UNREGISTER, &r) < 0 && !ret)
		ret = mig_refuse(-errno, why, len, "unregistering guest RAM: %s", strerror(errno));
	else if (ret)
		mig_refuse(ret, why, len, "telling the source post-copy is done: %s",
			   strerror(-ret));
	return ret ?: 1;
}

#define RX_BUF	(256 * 1024)

/* One record: 0 go on, 1 every page present, else -errno with why. */
static int take_record(struct postcopy_dst *pc, const struct pc_rec *rec, char *why,
		       size_t len)
{
	int ret;

	switch (rec->magic) {
	case PC_REC_PAGE:
		ret = take_page(pc, rec, why, len);
		if (!ret && pc->nr_present == pc->stats.needed)
			return all_present(pc, why, len);
		return ret;
	case PC_REC_END:
		if (pc->nr_present == pc->stats.needed)
			return 0;
		return mig_refuse(-EPROTO, why, len, "the source sent all %llu pages, %llu "
				  "arrived", (unsigned long long)rec->arg,
				  (unsigned long long)pc->nr_present);
	case PC_REC_ERR:
		return mig_refuse(-ECONNABORTED, why, len, "the source stopped post-copy: %s; "
				  "the VM is lost", (const char *)rec->payload);
	}
	return mig_refuse(-EPROTO, why, len, "unexpected post-copy record %#x from the source",
			  rec->magic);
}

/*
 * The connection is readable: one read of whatever is there (many pages per
 * system call), then every whole record in the buffer, each checked before
 * it is installed.  A partial record waits for the next read.
 */
static int take_records(struct postcopy_dst *pc, char *why, size_t len)
{
	static __thread struct pc_rec rec;
	ssize_t n = pc->io->ops->read(pc->io, pc->rx + pc->rx_tail, RX_BUF - pc->rx_tail);
	char msg[256];
	int ret = 0;

	if (n == -EINTR || n == -EAGAIN)
		return 0;
	if (n <= 0)
		return mig_refuse(-EHOSTDOWN, why, len, "the source went away during post-copy "
				  "with %llu of %llu pages not yet here: the VM is lost (its "
				  "memory exists nowhere else)",
				  (unsigned long long)(pc->stats.needed - pc->nr_present),
				  (unsigned long long)pc->stats.needed);
	pc->io->bytes_in += (uint64_t)n;
	pc->rx_tail += (size_t)n;
	while (!ret) {
		size_t used = 0;

		ret = pc_parse(pc->rx + pc->rx_head, pc->rx_tail - pc->rx_head, &rec, &used,
			       msg, sizeof(msg));
		if (ret == -EAGAIN)
			break;
		if (ret == -EBADMSG)
			return mig_refuse(ret, why, len, "refused a corrupt page from the source "
					  "(%s); it was not installed and the VM cannot continue",
					  msg);
		if (ret)
			return mig_refuse(ret, why, len, "%s", msg);
		pc->rx_head += used;
		ret = take_record(pc, &rec, why, len);
	}
	if (ret == -EAGAIN)
		ret = 0;
	/* keep the partial record at the front for the next read */
	memmove(pc->rx, pc->rx + pc->rx_head, pc->rx_tail - pc->rx_head);
	pc->rx_tail -= pc->rx_head;
	pc->rx_head = 0;
	return ret;
}

static void *pc_thread(void *arg)
{
	struct postcopy_dst *pc = arg;
	struct pollfd p[3] = {
		{ .fd = pc->uffd, .events = POLLIN },
		{ .fd = pc->io->fd, .events = POLLIN },
		{ .fd = pc->stop_efd, .events = POLLIN },
	};
	char why[320] = "";
	int ret = pc->stats.needed ? 0 : all_present(pc, why, sizeof(why));

	while (!ret) {
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = mig_refuse(-errno, why, sizeof(why), "poll: %s", strerror(errno));
			break;
		}
		if (p[2].revents)
			return NULL;	/* destroy: not an outcome */
		if (p[0].revents & POLLIN)
			ret = read_faults(pc, why, sizeof(why));
		if (!ret && p[1].revents)
			ret = take_records(pc, why, sizeof(why));
	}
	if (ret == 1) {
		set_state(pc, PC_DONE, 0, NULL);
		return NULL;
	}
	/* tell the source why, if it still listens (a corrupt page: it does) */
	pc_put(pc->io, PC_REC_ERR, 0, 0, why, (uint32_t)strlen(why));
	set_state(pc, PC_FAILED, ret, why);
	return NULL;
}

/* Stale pre-copy copies of the needed pages must fault, not be read. */
static int punch_needed(struct postcopy_dst *pc)
{
	uint64_t p = 0;

	while (p < pc->npages) {
		uint64_t end;

		if (!pc_test(pc->needed, p)) {
			p++;
			continue;
		}
		for (end = p; end < pc->npages && pc_test(pc->needed, end); end++)
			;
		if (fallocate(pc->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(p * PAGE), (off_t)((end - p) * PAGE)) < 0)
			return -errno;
		p = end;
	}
	return 0;
}

int postcopy_dst_prepare(struct postcopy_dst *pc, struct mig_io *io, int memfd, uint8_t *base,
			 uint64_t size, uint64_t *needed, postcopy_finished_fn *finished,
			 void *opaque, char *why, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)base, .len = size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	uint64_t want = 1ull << _UFFDIO_COPY | 1ull << _UFFDIO_ZEROPAGE | 1ull << _UFFDIO_WAKE;
	int ret;

	memset(pc, 0, sizeof(*pc));
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	pc->io = io;
	pc->memfd = memfd;
	pc->base = base;
	pc->size = size;
	pc->npages = size / PAGE;
	pc->needed = needed;
	pc->uffd = pc->stop_efd = -1;
	pc->finished = finished;
	pc->opaque = opaque;
	pc->present = xzalloc(pc_words(pc->npages) * 8 ?: 8);
	pc->requested = xzalloc(pc_words(pc->npages) * 8 ?: 8);
	pc->rx = xzalloc(RX_BUF);
	pc->stats.needed = pc_count(needed, pc->npages);
	pc->stats.t_start_ns = now_ns();
	ret = punch_needed(pc);
	if (ret) {
		mig_refuse(ret, why, len, "dropping the stale copies of the pages post-copy "
			   "brings: %s", strerror(-ret));
		goto err;
	}
	pc->uffd = postcopy_uffd_open();
	if (pc->uffd < 0) {
		ret = mig_refuse(pc->uffd, why, len, "userfaultfd: %s (post-copy needs it: "
				 "CAP_SYS_PTRACE or /dev/userfaultfd)", strerror(-pc->uffd));
		goto err;
	}
	if (ioctl(pc->uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = mig_refuse(-errno, why, len, "registering guest RAM with userfaultfd: %s",
				 strerror(errno));
		goto err;
	}
	if ((reg.ioctls & want) != want) {
		ret = mig_refuse(-EOPNOTSUPP, why, len, "userfaultfd cannot copy or zero-fill "
				 "pages of this RAM (ioctls %#llx)", (unsigned long long)reg.ioctls);
		goto err;
	}
	pc->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (pc->stop_efd < 0) {
		ret = mig_refuse(-errno, why, len, "eventfd: %s", strerror(errno));
		goto err;
	}
	return 0;
err:
	pc->needed = NULL;	/* the caller keeps it on failure */
	postcopy_dst_destroy(pc);
	return ret;
}

int postcopy_dst_run(struct postcopy_dst *pc, char *why, size_t len)
{
	int rcvbuf = PC_SOCKET_BUFFER, ret;

	/* pushed pages queued here delay a requested one as much as the source's queue */
	if (setsockopt(pc->io->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		pr_debug("post-copy: SO_RCVBUF: %s", strerror(errno));
	ret = pthread_create(&pc->thread, NULL, pc_thread, pc);

	if (ret)
		return mig_refuse(-ret, why, len, "cannot start the post-copy thread: %s",
				  strerror(ret));
	pc->started = true;
	return 0;
}

int postcopy_dst_start(struct postcopy_dst *pc, struct mig_io *io, int memfd, uint8_t *base,
		       uint64_t size, uint64_t *needed, postcopy_finished_fn *finished,
		       void *opaque, char *why, size_t len)
{
	int ret = postcopy_dst_prepare(pc, io, memfd, base, size, needed, finished, opaque,
				       why, len);

	if (!ret) {
		ret = postcopy_dst_run(pc, why, len);
		if (ret)
			postcopy_dst_destroy(pc);
	}
	return ret;
}

int postcopy_dst_wait(struct postcopy_dst *pc, char *why, size_t len)
{
	int ret;

	pthread_mutex_lock(&pc->lock);
	while (pc->state == PC_RUNNING)
		pthread_cond_wait(&pc->cond, &pc->lock);
	ret = pc->err;
	if (why && len)
		snprintf(why, len, "%s", pc->why);
	pthread_mutex_unlock(&pc->lock);
	return ret;
}

enum postcopy_state postcopy_dst_state(struct postcopy_dst *pc)
{
	enum postcopy_state st;

	pthread_mutex_lock(&pc->lock);
	st = pc->state;
	pthread_mutex_unlock(&pc->lock);
	return st;
}

int postcopy_dst_fault_in(struct postcopy_dst *pc, uint64_t off, uint64_t len)
{
	enum postcopy_state st = postcopy_dst_state(pc);

	if (st == PC_FAILED)
		return -EHOSTDOWN;
	if (st == PC_DONE || !len || off >= pc->size)
		return 0;
	if (len > pc->size - off)
		len = pc->size - off;
	for (uint64_t p = off / PAGE; p <= (off + len - 1) / PAGE; p++)
		(void)*(volatile uint8_t *)(pc->base + p * PAGE);
	return postcopy_dst_state(pc) == PC_FAILED ? -EHOSTDOWN : 0;
}

void postcopy_dst_stats(struct postcopy_dst *pc, struct postcopy_stats *out)
{
	pthread_mutex_lock(&pc->lock);
	*out = pc->stats;
	pthread_mutex_unlock(&pc->lock);
}

void postcopy_dst_destroy(struct postcopy_dst *pc)
{
	uint64_t one = 1;

	if (pc->started) {
		if (write(pc->stop_efd, &one, sizeof(one)) < 0)
			pr_debug("post-copy stop: %s", strerror(errno));
		pthread_join(pc->thread, NULL);
		pc->started = false;
	}
	if (pc->uffd >= 0)
		close(pc->uffd);	/* unregisters: waiters still parked are released */
	if (pc->stop_efd >= 0)
		close(pc->stop_efd);
	pc->uffd = pc->stop_efd = -1;
	free(pc->needed);
	free(pc->present);
	free(pc->requested);
	free(pc->rx);
	pc->rx = NULL;
	pc->needed = pc->present = pc->requested = NULL;
}
