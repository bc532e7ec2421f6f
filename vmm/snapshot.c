// SPDX-License-Identifier: MIT
#include "vmm/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "devices/device.h"
#include "migration/snapshot_file.h"
#include "migration/state.h"
#include "migration/stream.h"
#include "vmm/migrate.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define TAG_CONF	SNAP_TAG('C', 'O', 'N', 'F')
#define TAG_DEVS	SNAP_TAG('D', 'E', 'V', 'S')
#define CONF_VERSION	1
#define CONF_STR_MAX	4096

/* ---- version 1 files: CONF, what the VM was built from (read only) ---- */

static const char *get_str(struct state_buf *sb)
{
	uint16_t n = state_get_u16(sb);
	char *s;

	if (!state_ok(sb) || n > CONF_STR_MAX || n > sb->len - sb->pos) {
		sb->error = true;
		return NULL;
	}
	s = xzalloc(n + 1);
	state_get_bytes(sb, s, n);
	if (strlen(s) != n)
		sb->error = true;	/* a NUL inside */
	return s;
}

/* The restore's command line gave the devices; the snapshot says how many. */
static int conf_load(struct vm_config *c, const struct snap_section *s, uint64_t ram_size,
		     const char *path)
{
	struct state_buf sb;
	uint32_t version, ncpus, nr_user, nr_kernel, nr_net;
	uint64_t mem;

	state_init_reader(&sb, s->data, s->len);
	version = state_get_u32(&sb);
	if (!state_ok(&sb) || version != CONF_VERSION) {
		pr_err("--restore %s: configuration version %u, this hdvm reads %u", path,
		       version, CONF_VERSION);
		return -EINVAL;
	}
	mem = state_get_u64(&sb);
	ncpus = state_get_u32(&sb);
	nr_user = state_get_u32(&sb);
	nr_kernel = state_get_u32(&sb);
	nr_net = state_get_u32(&sb);
	if (!state_ok(&sb) || nr_net > ARRAY_SIZE(c->net) || ncpus < 1 || ncpus > 4096 ||
	    nr_user > ARRAY_SIZE(c->vfio_user) || nr_kernel > ARRAY_SIZE(c->vfio_kernel)) {
		pr_err("--restore %s: configuration section is corrupt", path);
		return -EINVAL;
	}
	if (mem != ram_size) {
		pr_err("--restore %s: %llu bytes of RAM configured but %llu saved", path,
		       (unsigned long long)mem, (unsigned long long)ram_size);
		return -EINVAL;
	}
	if ((uint32_t)c->nr_vfio_user != nr_user || (uint32_t)c->nr_vfio_kernel != nr_kernel) {
		pr_err("--restore %s: the snapshot has %u --vfio-user and %u --vfio devices; "
		       "give as many (got %d and %d)", path, nr_user, nr_kernel,
		       c->nr_vfio_user, c->nr_vfio_kernel);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < nr_net; i++)
		c->net[i] = get_str(&sb);
	c->kernel = get_str(&sb);
	c->cmdline = get_str(&sb);
	if (!state_ok(&sb) || !state_at_end(&sb)) {
		pr_err("--restore %s: configuration section is corrupt", path);
		return -EINVAL;
	}
	c->mem_size = mem;
	c->ncpus = (int)ncpus;
	c->nr_net = (int)nr_net;
	return 0;
}

/* ---- snapshot ---- */

/*
 * The snapshot is the migration stream (version 2) in a file: manifest, every
 * non-zero page once, device state, end marker -- what `hdvm run --restore`
 * (and `--incoming file:`) reads.  Written to PATH.tmp-PID, fsynced, renamed
 * over PATH: a crash leaves the old file or the new one.
 */
static int write_stream(struct vm *vm, const char *path, struct snapshot_result *res,
			char *why, size_t len)
{
	struct migrate_opts o = { .no_answer = true, .whole = true };
	struct migrate_result mr = { 0 };
	char tmp[PATH_MAX + 32];
	struct mig_io io;
	int fd, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		snprintf(why, len, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	mig_io_fd(&io, fd);
	io.one_way = true;
	ret = vm_migrate_send(vm, &io, &o, &mr, why, len);
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		snprintf(why, len, "writing %s: %s", path, strerror(-ret));
	}
	mig_io_close(&io);
	if (!ret && rename(tmp, path) < 0) {
		ret = -errno;
		snprintf(why, len, "%s: %s", path, strerror(-ret));
	}
	if (ret)
		unlink(tmp);
	res->bytes = mr.bytes;
	res->ram_pages = mr.pages;
	return ret;
}

bool snapshot_is_stream(const char *path)
{
	uint8_t hdr[12];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false;
	yes = read(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) && !memcmp(hdr, "HDVMSNAP", 8) &&
	      mig_le32(hdr + 8) == MIG_STREAM_VERSION;
	close(fd);
	return yes;
}

int vm_snapshot(struct vm *vm, const char *path, bool stop, struct snapshot_result *res,
		char *why, size_t len)
{
	bool was_running = vm->state == VM_RUNNING;
	struct snapshot_result r = { 0 };
	uint64_t t0 = now_ns();
	int ret;

	why[0] = 0;
	if (was_running) {
		ret = vm_pause(vm, why, len);
		if (ret)
			return ret;
	} else if (vm->state != VM_PAUSED) {
		snprintf(why, len, "cannot snapshot a VM that is %s", vm_state_name(vm->state));
		return -EINVAL;
	}
	ret = write_stream(vm, path, &r, why, len);
	if (!ret && stop) {
		vm_request_shutdown(vm, 0, "stopped after a snapshot");
	} else if (was_running) {
		char rwhy[128] = "";
		int rr = vm_resume(vm, rwhy, sizeof(rwhy));

		if (rr && !ret) {
			snprintf(why, len, "snapshot written, but resuming failed: %s", rwhy);
			ret = rr;
		}
	}
	r.paused_ms = (now_ns() - t0) / 1000000;
	if (!ret)
		pr_debug("snapshot %s: %llu bytes, %llu RAM pages, guest paused %llu ms", path,
			 (unsigned long long)r.bytes, (unsigned long long)r.ram_pages,
			 (unsigned long long)r.paused_ms);
	if (res)
		*res = r;
	return ret;
}

/* ---- restore ---- */

int snapshot_restore_prepare(struct vm_config *cfg, const char *path)
{
	struct snap_reader *r = xzalloc(sizeof(*r));
	const struct snap_section *conf;
	char why[256] = "";
	int ret;

	ret = snap_open(r, path, why, sizeof(why));
	if (ret < 0) {
		pr_err("--restore %s: %s", path, why);
		free(r);
		return ret;
	}
	conf = snap_find(r, TAG_CONF);
	if (!conf || !snap_find(r, SNAP_TAG_RAM) || !snap_find(r, TAG_DEVS)) {
		pr_err("--restore %s: incomplete snapshot (a section is missing)", path);
		ret = -EINVAL;
	} else {
		ret = conf_load(cfg, conf, r->ram_size, path);
	}
	if (ret < 0) {
		snap_close(r);
		free(r);
		return ret;
	}
	cfg->restore = r;
	cfg->restore_path = path;
	return 0;
}

int snapshot_restore_ram(struct vm *vm)
{
	int ret = snap_load_ram(vm->cfg.restore, vm->mem.memfd, vm->mem.size);

	if (ret < 0)
		pr_err("--restore %s: RAM does not fit this VM", vm->cfg.restore_path);
	return ret;
}

/*
 * vCPU/VM state and device state: one device list, its manifest checked before
 * anything is loaded; "machine" comes first (vmm/machine_dev.c).
 */
int snapshot_restore_state(struct vm *vm)
{
	const struct snap_section *s = snap_find(vm->cfg.restore, TAG_DEVS);
	struct state_buf sb;
	char why[256] = "";
	int ret;

	state_init_reader(&sb, s->data, s->len);
	ret = devices_load(vm, &sb, why, sizeof(why));
	if (!ret && !state_at_end(&sb)) {
		snprintf(why, sizeof(why), "device state has trailing bytes");
		ret = -EINVAL;
	}
	if (ret)
		pr_err("--restore %s: %s", vm->cfg.restore_path, why[0] ? why : strerror(-ret));
	return ret;
}

void snapshot_restore_done(struct vm_config *cfg)
{
	if (!cfg->restore)
		return;
	snap_close(cfg->restore);
	free(cfg->restore);
	cfg->restore = NULL;
}
