// SPDX-License-Identifier: MIT
#include "devices/hdnic/dma_space.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

__thread sigjmp_buf *dma_fault_jmp;

void dma_space_init(struct dma_space *ds, unsigned max_regions)
{
	memset(ds, 0, sizeof(*ds));
	ds->max = max_regions;
}

static void region_release(struct dma_region *r)
{
	if (r->owned)
		munmap(r->host, r->size);
}

void dma_space_unmap_all(struct dma_space *ds)
{
	for (unsigned i = 0; i < ds->nr; i++)
		region_release(&ds->regions[i]);
	ds->nr = 0;
	ds->mapped_bytes = 0;
	ds->last = NULL;
	ds->gen++;
}

void dma_space_destroy(struct dma_space *ds)
{
	dma_space_unmap_all(ds);
	free(ds->regions);
	ds->regions = NULL;
	ds->cap = 0;
}

/* Index of the first region whose end is above iova (binary search). */
static unsigned first_above(const struct dma_space *ds, uint64_t iova)
{
	unsigned lo = 0, hi = ds->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct dma_region *r = &ds->regions[mid];

		if (r->iova + r->size <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int check_range(uint64_t iova, uint64_t size)
{
	if (!size || iova % DMA_PAGE_SIZE || size % DMA_PAGE_SIZE)
		return -EINVAL;
	if (iova + size < iova)
		return -EOVERFLOW;
	return 0;
}

static int insert_region(struct dma_space *ds, const struct dma_region *nr)
{
	unsigned pos;

	if (ds->nr >= ds->max)
		return -ENOSPC;
	pos = first_above(ds, nr->iova);
	if (pos < ds->nr && ds->regions[pos].iova < nr->iova + nr->size)
		return -EEXIST;
	if (ds->nr == ds->cap) {
		unsigned cap = ds->cap ? ds->cap * 2 : 4;
		struct dma_region *r = realloc(ds->regions, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		ds->regions = r;
		ds->cap = cap;
	}
	memmove(&ds->regions[pos + 1], &ds->regions[pos],
		(ds->nr - pos) * sizeof(*ds->regions));
	ds->regions[pos] = *nr;
	ds->nr++;
	ds->mapped_bytes += nr->size;
	ds->last = NULL;
	ds->gen++;
	return 0;
}

/* What every map is checked for: range, access, no overlap (before an mmap is paid for). */
static int map_check(const struct dma_space *ds, uint64_t iova, uint64_t size, uint32_t prot)
{
	unsigned pos;
	int err = check_range(iova, size);

	if (err)
		return err;
	if (!prot || (prot & ~(DMA_PROT_READ | DMA_PROT_WRITE)))
		return -EINVAL;
	if (size > SIZE_MAX)
		return -EOVERFLOW;
	pos = first_above(ds, iova);
	if (pos < ds->nr && ds->regions[pos].iova < iova + size)
		return -EEXIST;
	return 0;
}

/* Insert r backed by p, an mmap of ours (MAP_FAILED: why from errno); unmapped on failure. */
static int insert_mapped(struct dma_space *ds, struct dma_region *r, void *p)
{
	int err;

	if (p == MAP_FAILED)
		return -errno;
	r->host = p;
	err = insert_region(ds, r);
	if (err)
		munmap(p, r->size);
	return err;
}

int dma_space_map_host(struct dma_space *ds, uint64_t iova, uint64_t size,
		       void *host, uint32_t prot)
{
	struct dma_region r = {
		.iova = iova, .size = size, .host = host, .prot = prot,
	};
	int err = check_range(iova, size);

	if (err)
		return err;
	if (!prot || (prot & ~(DMA_PROT_READ | DMA_PROT_WRITE)))
		return -EINVAL;
	return insert_region(ds, &r);
}

int dma_space_map_nofd(struct dma_space *ds, uint64_t iova, uint64_t size, uint32_t prot)
{
	struct dma_region r = { .iova = iova, .size = size, .prot = prot, .owned = true,
				.nofd = true };
	int err = map_check(ds, iova, size, prot);

	if (err)
		return err;
	/* The shadow: pages exist only where the device touched client memory. */
	return insert_mapped(ds, &r, mmap(NULL, size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
}

int dma_space_map_fd(struct dma_space *ds, uint64_t iova, uint64_t size,
		     int fd, uint64_t offset, uint32_t prot)
{
	struct dma_region r = { .iova = iova, .size = size, .prot = prot, .owned = true };
	struct stat st;
	int mprot = 0, err;

	err = map_check(ds, iova, size, prot);
	if (err)
		return err;
	if (offset % DMA_PAGE_SIZE || offset + size < offset)
		return -EINVAL;
	/* Mapping past the end of the file would fault on first touch. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset + size)
		return -EINVAL;
	if (prot & DMA_PROT_READ)
		mprot |= PROT_READ;
	if (prot & DMA_PROT_WRITE)
		mprot |= PROT_READ | PROT_WRITE;
	return insert_mapped(ds, &r, mmap(NULL, size, mprot, MAP_SHARED, fd, (off_t)offset));
}

int dma_space_unmap(struct dma_space *ds, uint64_t iova, uint64_t size)
{
	unsigned pos = first_above(ds, iova);
	struct dma_region *r;

	if (pos >= ds->nr)
		return -ENOENT;
	r = &ds->regions[pos];
	if (r->iova != iova || r->size != size)
		return -ENOENT;
	region_release(r);
	ds->mapped_bytes -= r->size;
	memmove(r, r + 1, (ds->nr - pos - 1) * sizeof(*r));
	ds->nr--;
	ds->last = NULL;
	ds->gen++;
	return 0;
}

void *dma_translate(struct dma_space *ds, uint64_t iova, uint64_t len, uint32_t prot)
{
	const struct dma_region *r;
	uint64_t off;

	if (!ds || iova + len < iova)
		return NULL;	/* no address space bound: every access faults */
	r = ds->last;
	if (!r || iova < r->iova || iova - r->iova >= r->size) {
		unsigned pos = first_above(ds, iova);

		if (pos >= ds->nr)
			return NULL;
		r = &ds->regions[pos];
		if (iova < r->iova)
			return NULL;
		ds->last = r;
	}
	off = iova - r->iova;
	if (len > r->size - off || (r->prot & prot) != prot)
		return NULL;
	return r->host + off;
}

const struct dma_region *dma_space_region(struct dma_space *ds, uint64_t iova, uint64_t len)
{
	unsigned pos;
	const struct dma_region *r;

	if (!ds || iova + len < iova)
		return NULL;
	pos = first_above(ds, iova);
	if (pos >= ds->nr)
		return NULL;
	r = &ds->regions[pos];
	if (iova < r->iova || len > r->size - (iova - r->iova))
		return NULL;
	return r;
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = dma_fault_jmp;

	if (jb) {
		dma_fault_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	/* A fault outside device DMA is a real bug: die with the signal. */
	signal(sig, SIG_DFL);
	raise(sig);
}

int dma_fault_guard_install(void)
{
	struct sigaction sa = {
		.sa_sigaction = sigbus_handler,
		/* NODEFER: we leave with siglongjmp and never unblock by hand. */
		.sa_flags = SA_SIGINFO | SA_NODEFER,
	};

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}
