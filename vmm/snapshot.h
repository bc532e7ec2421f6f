/* SPDX-License-Identifier: MIT */
/*
 * `hdvm snapshot` and `hdvm run --restore`: a VM's RAM, vCPU/VM state and
 * device state in one file (format: migration/snapshot_file.h).
 *
 * Sections: CONF (what the VM was built from: RAM size, vCPUs, devices),
 * RAM, DEVS (devices_save(): the manifest, then each device's state; the
 * first device, "machine", is the vCPU and VM state, vmm/machine_dev.c).
 *
 * Restoring is split so every refusal a file can earn happens before KVM is
 * opened: snapshot_restore_prepare() validates the whole file and fills the
 * VM config from CONF; the VM is then created as usual and vm_boot() calls
 * snapshot_restore_ram() instead of the kernel loader and
 * snapshot_restore_state() once its vCPUs exist, before they run.
 */
#ifndef HDVM_SNAPSHOT_H
#define HDVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct vm_config;

struct snapshot_result {
	uint64_t bytes;		/* size of the file */
	uint64_t ram_pages;	/* non-zero RAM pages in it */
	uint64_t paused_ms;	/* how long the guest did not run (to resume or stop) */
};

/* Pause (if running), write the file, then resume -- or stop the VM if `stop`. */
int vm_snapshot(struct vm *vm, const char *path, bool stop, struct snapshot_result *res,
		char *why, size_t len);

/*
 * A file in the migration stream's format (version 2, what vm_snapshot
 * writes): restored through the --incoming file: path.  Otherwise a
 * version 1 snapshot, read by snapshot_restore_prepare() below.
 */
bool snapshot_is_stream(const char *path);

/* Version 1: validate the file and fill cfg from it; cfg keeps the file open (cfg->restore). */
int snapshot_restore_prepare(struct vm_config *cfg, const char *path);
int snapshot_restore_ram(struct vm *vm);
int snapshot_restore_state(struct vm *vm);
void snapshot_restore_done(struct vm_config *cfg);

#endif
