/* SPDX-License-Identifier: MIT */
/*
 * The migration manifest: what the machine is and which devices it has, as a
 * flattened device tree (built and checked with libfdt), the stream's first
 * section.  The destination builds its VM from it and checks its own device
 * list against it before it accepts a single page.
 *
 *   / {
 *       compatible = "hdvm,migration";
 *       hdvm,stream-version = <2>;
 *       memory-size = /bits/ 64 <bytes>;
 *       cpus = <n>;
 *       kernel = "..."; bootargs = "...";      (for status; the kernel is in RAM)
 *       net = "spec", ...;                      (--net specs, a string list)
 *       vfio-user = <n>; vfio = <n>;            (passthrough devices, by count)
 *       devices {
 *           device@0 { id = "machine"; type = "machine"; state-version = <v>; };
 *           ...                                 (list order = load order)
 *       };
 *   };
 */
#ifndef HDVM_MIG_MANIFEST_H
#define HDVM_MIG_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MANIFEST_MAX_DEVICES	64
#define MANIFEST_MAX_NET	16
#define MANIFEST_STR_MAX	4096

struct vm;

struct manifest_device {
	char id[32];
	char type[32];
	uint32_t version;	/* of its state format; 0: no state */
};

struct manifest {
	uint64_t mem_size;
	uint32_t ncpus;
	uint32_t nr_vfio_user, nr_vfio_kernel;
	char kernel[MANIFEST_STR_MAX];
	char cmdline[MANIFEST_STR_MAX];
	char net[MANIFEST_MAX_NET][256];
	uint32_t nr_net;
	struct manifest_device dev[MANIFEST_MAX_DEVICES];
	uint32_t nr_devs;
};

/* The VM's manifest (a malloc'ed FDT blob in *blob, its size in *len). */
int manifest_from_vm(struct vm *vm, struct manifest *m);
int manifest_build(const struct manifest *m, void **blob, size_t *len);
/* Check the blob with libfdt and read it; 0 or -EPROTO with why. */
int manifest_parse(const void *blob, size_t len, struct manifest *m, char *why, size_t wlen);
/*
 * The destination's own devices against the source's, in order: id, type
 * and state version; the first difference named in why.
 */
int manifest_check_devices(const struct manifest *m, struct vm *vm, char *why, size_t wlen);

#endif
