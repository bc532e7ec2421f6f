// SPDX-License-Identifier: MIT
/*
 * Boot and exit timings plus hdvm's own memory overhead: peak RSS minus the
 * guest RAM pages that are resident (the guest's memory is not overhead).
 */
#include "vmm/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/util.h"
#include "vmm/vm.h"

static uint64_t status_kib(const char *key)
{
	char line[256];
	uint64_t v = 0;
	size_t klen = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoull(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

void metrics_sample_memory(struct vm *vm, struct mem_usage *mu)
{
	const size_t chunk = 64 << 20;
	unsigned char *vec = malloc(chunk / 4096);
	uint64_t pages = 0;

	mu->peak_rss_kib = status_kib("VmHWM");
	mu->guest_resident_kib = 0;
	if (!vec || !vm->mem.host)
		goto out;
	for (uint64_t off = 0; off < vm->mem.size; off += chunk) {
		size_t len = MIN(chunk, vm->mem.size - off);

		if (mincore(vm->mem.host + off, len, vec) < 0)
			break;
		for (size_t i = 0; i < len / 4096; i++)
			pages += vec[i] & 1;
	}
	mu->guest_resident_kib = pages * 4;
out:
	free(vec);
}

static void add_us(json_object *o, const char *key, uint64_t t, uint64_t start)
{
	json_object_object_add(o, key, t ? json_object_new_int64((t - start) / 1000) : NULL);
}

int metrics_open(struct metrics_file *mf, const char *path)
{
	mf->fd = -1;
	if (snprintf(mf->path, sizeof(mf->path), "%s", path) >= (int)sizeof(mf->path) ||
	    snprintf(mf->tmp, sizeof(mf->tmp), "%s.tmp.%d", path, getpid()) >=
	    (int)sizeof(mf->tmp)) {
		pr_err("--metrics %s: path too long", path);
		return -ENAMETOOLONG;
	}
	mf->fd = open(mf->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (mf->fd < 0) {
		int err = -errno;

		pr_err("--metrics %s: cannot write there: %s", path, strerror(errno));
		return err;
	}
	return 0;
}

void metrics_abandon(struct metrics_file *mf)
{
	if (mf->fd < 0)
		return;
	close(mf->fd);
	unlink(mf->tmp);
	mf->fd = -1;
}

int metrics_commit(struct metrics_file *mf, const char *text)
{
	size_t len = strlen(text), off = 0;
	int err = 0;

	while (off < len && !err) {
		ssize_t n = write(mf->fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n ? -errno : -EIO;
		else
			off += n;
	}
	if (!err && fsync(mf->fd) < 0 && errno != EINVAL)
		err = -errno;
	if (!err && rename(mf->tmp, mf->path) < 0)
		err = -errno;
	if (err) {
		pr_err("--metrics %s: cannot write: %s (the file is left as it was)", mf->path,
		       strerror(-err));
		metrics_abandon(mf);
		return err;
	}
	close(mf->fd);
	mf->fd = -1;
	return 0;
}

int metrics_write(struct metrics_file *mf, struct vm *vm, const struct mem_usage *mu)
{
	json_object *o = json_object_new_object(), *phases = json_object_new_object();
	const struct vm_metrics *m = &vm->metrics;
	uint64_t overhead = mu->peak_rss_kib > mu->guest_resident_kib ?
			    mu->peak_rss_kib - mu->guest_resident_kib : 0;
	int ret;

	json_object_object_add(o, "name", json_object_new_string(vm->cfg.name));
	json_object_object_add(o, "exit_code", json_object_new_int(vm->exit_code));
	json_object_object_add(o, "exit_reason", json_object_new_string(vm->exit_reason));
	add_us(o, "start_to_first_run_us", m->t_first_run, m->t_start);
	add_us(phases, "kvm_us", m->t_kvm, m->t_start);
	add_us(phases, "devices_us", m->t_devices, m->t_start);
	add_us(phases, "kernel_loaded_us", m->t_loaded, m->t_start);
	add_us(phases, "devices_realized_us", m->t_realized, m->t_start);
	add_us(phases, "memory_registered_us", m->t_mem, m->t_start);
	add_us(phases, "first_run_us", m->t_first_run, m->t_start);
	json_object_object_add(o, "start_phases_us", phases);
	add_us(o, "start_to_marker_us", m->t_marker, m->t_start);
	add_us(o, "start_to_exit_us", m->t_exit, m->t_start);
	json_object_object_add(o, "peak_rss_kib", json_object_new_int64(mu->peak_rss_kib));
	json_object_object_add(o, "guest_resident_kib", json_object_new_int64(mu->guest_resident_kib));
	json_object_object_add(o, "overhead_kib", json_object_new_int64(overhead));
	ret = metrics_commit(mf, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return ret;
}
