// SPDX-License-Identifier: MIT
/*
 * `hdvm vfio-probe SOCKET`: attach to any vfio-user server the way a VM's
 * passthrough device would (devices/vfio/), print what it offers, detach.
 * Needs no KVM: a quick check that hdvm and a server understand each other.
 * With --output-commit N it also times N epochs of hdnic's output commit
 * feature (new epoch + commit of the previous one, two round trips) on the
 * device's own connection: the per-epoch, per-device cost a checkpoint pays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_output.h"
#include "vmm/cli.h"
#include "vmm/util.h"

#define PROBE_DMA_SIZE	(64u << 10)
#define PROBE_DMA_IOVA	0x100000ull

static const char *const irq_names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

static void print_caps(struct vfio_device *dev)
{
	struct vfio_user_caps caps;
	uint16_t minor;

	vfio_user_get_caps(dev, &caps, &minor);
	printf("protocol 0.%u: max_msg_fds %u, max_data_xfer_size %u, pgsizes %#llx, "
	       "max_dma_maps %u, migration.pgsize %u%s\n", minor, caps.max_msg_fds,
	       caps.max_data_xfer_size, (unsigned long long)caps.pgsizes, caps.max_dma_maps,
	       caps.migration_pgsize, caps.write_multiple ? ", write_multiple" : "");
	printf("device: flags %#x, %u regions, %u irq indexes\n", dev->info.flags,
	       dev->info.num_regions, dev->info.num_irqs);
}

static void print_region(struct vfio_device *dev, uint32_t index)
{
	struct vfio_region r;
	struct vfio_ioeventfd *evs = NULL;
	unsigned nr = 0;
	int err = dev->ops->get_region_info(dev, index, &r);

	if (err) {
		printf("region %u: %s\n", index, strerror(-err));
		return;
	}
	if (!r.size) {
		vfio_region_release(&r);
		return;
	}
	printf("region %u: size %#llx flags %#x%s%s\n", index, (unsigned long long)r.size,
	       r.flags, r.mmap_fd >= 0 ? " mmap" : "", r.msix_mappable ? " msix-mappable" : "");
	for (unsigned i = 0; i < r.nr_sparse; i++)
		printf("  sparse mmap area %#llx+%#llx\n", (unsigned long long)r.sparse[i].offset,
		       (unsigned long long)r.sparse[i].size);
	err = dev->ops->get_io_fds(dev, index, &evs, &nr);
	if (err && err != -ENOSYS && err != -EINVAL && err != -ENOTSUP)
		printf("  ioeventfds: %s\n", strerror(-err));
	for (unsigned i = 0; i < nr; i++) {
		printf("  ioeventfd at %#llx width %llu", (unsigned long long)evs[i].offset,
		       (unsigned long long)evs[i].size);
		if (evs[i].flags & KVM_IOEVENTFD_FLAG_DATAMATCH)
			printf(" datamatch %#llx", (unsigned long long)evs[i].datamatch);
		printf("\n");
	}
	vfio_ioeventfds_free(evs, nr);
	vfio_region_release(&r);
}

/* A DMA window on a memfd, as guest RAM would be, and back. */
static int probe_dma(struct vfio_device *dev)
{
	int fd = memfd_create("vfio-probe", MFD_CLOEXEC);
	struct vfio_dma_map m = {
		.iova = PROBE_DMA_IOVA, .size = PROBE_DMA_SIZE, .fd = fd,
		.prot = VFIO_DMA_PROT_READ | VFIO_DMA_PROT_WRITE,
	};
	int err;

	if (fd < 0 || ftruncate(fd, PROBE_DMA_SIZE) < 0) {
		err = -errno;
		goto out;
	}
	m.vaddr = mmap(NULL, PROBE_DMA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m.vaddr == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	err = dev->ops->dma_map(dev, &m);
	if (!err)
		err = dev->ops->dma_unmap(dev, m.iova, m.size);
	munmap(m.vaddr, PROBE_DMA_SIZE);
out:
	if (fd >= 0)
		close(fd);
	printf("dma: map+unmap of %u KiB at %#llx: %s\n", PROBE_DMA_SIZE >> 10,
	       PROBE_DMA_IOVA, err ? strerror(-err) : "ok");
	return err;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Time n epochs of output commit: EPOCH e+1 then COMMIT e, as a checkpoint does. */
static int probe_output_commit(struct vfio_device *dev, uint64_t n)
{
	uint64_t *ns = xzalloc(n * sizeof(*ns)), sum = 0;
	int err = vfio_output_commit_probe(dev);

	if (!err)
		err = vfio_output_commit_start(dev, 1, 0);
	for (uint64_t e = 1; !err && e <= n; e++) {
		uint64_t t0 = now_ns();

		err = vfio_output_commit_epoch(dev, e + 1);
		if (!err)
			err = vfio_output_commit_commit(dev, e);
		ns[e - 1] = now_ns() - t0;
		sum += ns[e - 1];
	}
	if (!err)
		err = vfio_output_commit_stop(dev);
	if (err) {
		printf("output commit: %s\n", strerror(-err));
	} else {
		qsort(ns, n, sizeof(*ns), cmp_u64);
		printf("output commit: %llu epochs, per epoch (EPOCH + COMMIT): mean %.1f us, "
		       "p50 %.1f us, p99 %.1f us\n", (unsigned long long)n, sum / 1e3 / n,
		       ns[n / 2] / 1e3, ns[n * 99 / 100] / 1e3);
	}
	free(ns);
	return err;
}

int cmd_vfio_probe(int argc, char **argv)
{
	struct vfio_device *dev = NULL;
	uint64_t epochs = 0;
	uint16_t ids[2];
	int err;

	if (argc == 4 && !strcmp(argv[2], "--output-commit") &&
	    parse_u64(argv[3], 1, 1000000, &epochs)) {
		pr_err("--output-commit: a number of epochs from 1 to 1000000");
		return EXIT_USAGE;
	}
	if ((argc != 2 && !epochs) || argv[1][0] == '-') {
		fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
			"usage: hdvm vfio-probe SOCKET [--output-commit EPOCHS]\n\n"
			"Attach to the vfio-user server at SOCKET as a VM would, print its\n"
			"capabilities, regions, ioeventfds and interrupts, DMA-map a small\n"
			"window and unmap it, and detach.  No VM is started.  With\n"
			"--output-commit, time EPOCHS epochs of hdnic's output commit feature.\n");
		return argc == 2 && !strcmp(argv[1], "--help") ? 0 : EXIT_USAGE;
	}
	err = vfio_user_open(argv[1], &dev);
	if (err) {
		pr_err("%s: %s", argv[1], strerror(-err));
		return 1;
	}
	print_caps(dev);
	for (uint32_t i = 0; i < dev->info.num_regions; i++)
		print_region(dev, i);
	for (uint32_t i = 0; i < dev->info.num_irqs; i++) {
		struct vfio_irq irq;

		if (dev->ops->get_irq_info(dev, i, &irq) || !irq.count)
			continue;
		printf("irq %s: %u vector(s), flags %#x\n",
		       i < ARRAY_SIZE(irq_names) ? irq_names[i] : "?", irq.count, irq.flags);
	}
	if (dev->info.flags & VFIO_DEVICE_FLAGS_PCI &&
	    !dev->ops->region_read(dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, ids, sizeof(ids)))
		printf("pci: vendor %04x device %04x\n", ids[0], ids[1]);
	err = probe_dma(dev);
	if (!err && epochs)
		err = probe_output_commit(dev, epochs);
	vfio_device_close(dev);
	return err ? 1 : 0;
}
