// SPDX-License-Identifier: MIT
#include "migration/manifest.h"

#include <errno.h>
#include <libfdt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "migration/stream.h"
#include "vmm/vm.h"

#define COMPATIBLE	"hdvm,migration"

static uint32_t dev_version(const struct device *d)
{
	return d->ops->mig ? d->ops->mig->version : 0;
}

int manifest_from_vm(struct vm *vm, struct manifest *m)
{
	const struct vm_config *c = &vm->cfg;

	memset(m, 0, sizeof(*m));
	m->mem_size = vm->mem.size;
	m->ncpus = (uint32_t)vm->ncpus;
	m->nr_vfio_user = (uint32_t)c->nr_vfio_user;
	m->nr_vfio_kernel = (uint32_t)c->nr_vfio_kernel;
	snprintf(m->kernel, sizeof(m->kernel), "%s", c->kernel ? c->kernel : "");
	snprintf(m->cmdline, sizeof(m->cmdline), "%s", c->cmdline ? c->cmdline : "");
	for (int i = 0; i < c->nr_net && i < MANIFEST_MAX_NET; i++) {
		if (strlen(c->net[i]) >= sizeof(m->net[0]))
			return -ENAMETOOLONG;
		snprintf(m->net[i], sizeof(m->net[i]), "%s", c->net[i]);
		m->nr_net++;
	}
	for (struct device *d = vm->devices; d; d = d->next) {
		struct manifest_device *md;

		if (m->nr_devs == MANIFEST_MAX_DEVICES)
			return -E2BIG;
		md = &m->dev[m->nr_devs++];
		snprintf(md->id, sizeof(md->id), "%s", d->id);
		snprintf(md->type, sizeof(md->type), "%s", d->ops->type);
		md->version = dev_version(d);
	}
	return 0;
}

/* fdt_* return 0 or a negative FDT_ERR_*; the first one sticks. */
#define FDT_DO(expr) do { if (!err) err = (expr); } while (0)

int manifest_build(const struct manifest *m, void **blob, size_t *len)
{
	size_t cap = 4096 + 2 * MANIFEST_STR_MAX + MANIFEST_MAX_NET * 256 +
		     MANIFEST_MAX_DEVICES * 160;
	char net[MANIFEST_MAX_NET * 256];
	size_t net_len = 0;
	void *fdt = calloc(1, cap);
	int err = 0;

	if (!fdt)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_net; i++) {
		size_t n = strlen(m->net[i]) + 1;

		memcpy(net + net_len, m->net[i], n);
		net_len += n;
	}
	FDT_DO(fdt_create(fdt, (int)cap));
	FDT_DO(fdt_finish_reservemap(fdt));
	FDT_DO(fdt_begin_node(fdt, ""));
	FDT_DO(fdt_property_string(fdt, "compatible", COMPATIBLE));
	FDT_DO(fdt_property_u32(fdt, "hdvm,stream-version", MIG_STREAM_VERSION));
	FDT_DO(fdt_property_u64(fdt, "memory-size", m->mem_size));
	FDT_DO(fdt_property_u32(fdt, "cpus", m->ncpus));
	FDT_DO(fdt_property_string(fdt, "kernel", m->kernel));
	FDT_DO(fdt_property_string(fdt, "bootargs", m->cmdline));
	FDT_DO(fdt_property(fdt, "net", net, (int)net_len));
	FDT_DO(fdt_property_u32(fdt, "vfio-user", m->nr_vfio_user));
	FDT_DO(fdt_property_u32(fdt, "vfio", m->nr_vfio_kernel));
	FDT_DO(fdt_begin_node(fdt, "devices"));
	for (uint32_t i = 0; i < m->nr_devs; i++) {
		char name[32];

		snprintf(name, sizeof(name), "device@%u", i);
		FDT_DO(fdt_begin_node(fdt, name));
		FDT_DO(fdt_property_string(fdt, "id", m->dev[i].id));
		FDT_DO(fdt_property_string(fdt, "type", m->dev[i].type));
		FDT_DO(fdt_property_u32(fdt, "state-version", m->dev[i].version));
		FDT_DO(fdt_end_node(fdt));
	}
	FDT_DO(fdt_end_node(fdt));
	FDT_DO(fdt_end_node(fdt));
	FDT_DO(fdt_finish(fdt));
	if (err) {
		free(fdt);
		return err == -FDT_ERR_NOSPACE ? -E2BIG : -EINVAL;
	}
	*blob = fdt;
	*len = fdt_totalsize(fdt);
	return 0;
}

/* A string property: present, NUL-terminated, no NUL inside, fits out. */
static int get_string(const void *fdt, int node, const char *prop, char *out, size_t cap,
		      char *why, size_t wlen)
{
	int len;
	const char *s = fdt_getprop(fdt, node, prop, &len);

	if (!s)
		return mig_refuse(-EPROTO, why, wlen, "manifest: property '%s' is missing", prop);
	if (len < 1 || s[len - 1] || strlen(s) != (size_t)len - 1 || (size_t)len > cap)
		return mig_refuse(-EPROTO, why, wlen, "manifest: property '%s' is not a string of at most "
			      "%zu bytes", prop, cap - 1);
	memcpy(out, s, (size_t)len);
	return 0;
}

static int get_u32(const void *fdt, int node, const char *prop, uint32_t *v,
		   char *why, size_t wlen)
{
	int len;
	const fdt32_t *p = fdt_getprop(fdt, node, prop, &len);

	if (!p || len != 4)
		return mig_refuse(-EPROTO, why, wlen, "manifest: property '%s' is missing or not a u32", prop);
	*v = fdt32_ld(p);
	return 0;
}

int manifest_parse(const void *blob, size_t size, struct manifest *m, char *why, size_t wlen)
{
	const fdt64_t *mem;
	const char *net;
	uint32_t version;
	int len, root = 0, devs, node, ret;

	memset(m, 0, sizeof(*m));
	if (size < FDT_V17_SIZE || size > INT32_MAX)
		return mig_refuse(-EPROTO, why, wlen, "manifest: %zu bytes is not a device tree", size);
	ret = fdt_check_full(blob, size);
	if (ret)
		return mig_refuse(-EPROTO, why, wlen, "manifest: not a valid device tree (%s)",
			      fdt_strerror(ret));
	if (fdt_node_check_compatible(blob, root, COMPATIBLE))
		return mig_refuse(-EPROTO, why, wlen, "manifest: not compatible with \"%s\"", COMPATIBLE);
	if ((ret = get_u32(blob, root, "hdvm,stream-version", &version, why, wlen)))
		return ret;
	if (version != MIG_STREAM_VERSION)
		return mig_refuse(-EPROTO, why, wlen, "manifest: stream version %u, this hdvm reads %u",
			      version, MIG_STREAM_VERSION);
	mem = fdt_getprop(blob, root, "memory-size", &len);
	if (!mem || len != 8)
		return mig_refuse(-EPROTO, why, wlen, "manifest: property 'memory-size' is missing or not a u64");
	m->mem_size = fdt64_ld(mem);
	if (!m->mem_size || m->mem_size % MIG_PAGE || m->mem_size > (1ull << 46))
		return mig_refuse(-EPROTO, why, wlen, "manifest: memory size %llu is not a usable RAM size",
			      (unsigned long long)m->mem_size);
	if ((ret = get_u32(blob, root, "cpus", &m->ncpus, why, wlen)) ||
	    (ret = get_u32(blob, root, "vfio-user", &m->nr_vfio_user, why, wlen)) ||
	    (ret = get_u32(blob, root, "vfio", &m->nr_vfio_kernel, why, wlen)) ||
	    (ret = get_string(blob, root, "kernel", m->kernel, sizeof(m->kernel), why, wlen)) ||
	    (ret = get_string(blob, root, "bootargs", m->cmdline, sizeof(m->cmdline), why, wlen)))
		return ret;
	if (m->ncpus < 1 || m->ncpus > 4096)
		return mig_refuse(-EPROTO, why, wlen, "manifest: %u vCPUs", m->ncpus);
	if (m->nr_vfio_user > 16 || m->nr_vfio_kernel > 16)
		return mig_refuse(-EPROTO, why, wlen, "manifest: %u vfio-user and %u vfio devices (at most 16)",
			      m->nr_vfio_user, m->nr_vfio_kernel);
	net = fdt_getprop(blob, root, "net", &len);
	if (!net || (len && net[len - 1]))
		return mig_refuse(-EPROTO, why, wlen, "manifest: property 'net' is missing or not a string list");
	for (int off = 0; off < len; m->nr_net++) {
		size_t n = strlen(net + off);

		if (m->nr_net == MANIFEST_MAX_NET || n >= sizeof(m->net[0]))
			return mig_refuse(-EPROTO, why, wlen, "manifest: too many or too long 'net' entries");
		memcpy(m->net[m->nr_net], net + off, n + 1);
		off += (int)n + 1;
	}
	devs = fdt_subnode_offset(blob, root, "devices");
	if (devs < 0)
		return mig_refuse(-EPROTO, why, wlen, "manifest: node 'devices' is missing");
	fdt_for_each_subnode(node, blob, devs) {
		struct manifest_device *d;
		char expect[32];
		const char *name = fdt_get_name(blob, node, NULL);

		if (m->nr_devs == MANIFEST_MAX_DEVICES)
			return mig_refuse(-EPROTO, why, wlen, "manifest: more than %d devices",
				      MANIFEST_MAX_DEVICES);
		snprintf(expect, sizeof(expect), "device@%u", m->nr_devs);
		if (!name || strcmp(name, expect))
			return mig_refuse(-EPROTO, why, wlen, "manifest: device node '%s' where '%s' belongs",
				      name ? name : "?", expect);
		d = &m->dev[m->nr_devs++];
		if ((ret = get_string(blob, node, "id", d->id, sizeof(d->id), why, wlen)) ||
		    (ret = get_string(blob, node, "type", d->type, sizeof(d->type), why, wlen)) ||
		    (ret = get_u32(blob, node, "state-version", &d->version, why, wlen)))
			return ret;
	}
	if (!m->nr_devs || strcmp(m->dev[0].id, "machine"))
		return mig_refuse(-EPROTO, why, wlen, "manifest: the first device must be 'machine'");
	return 0;
}

int manifest_check_devices(const struct manifest *m, struct vm *vm, char *why, size_t wlen)
{
	struct device *d = vm->devices;
	uint32_t i = 0;

	for (; i < m->nr_devs; i++, d = d->next) {
		const struct manifest_device *s = &m->dev[i];

		if (!d)
			return mig_refuse(-EPROTO, why, wlen, "manifest mismatch: the source has device %s (%s) "
				      "which this VM lacks", s->id, s->type);
		if (strcmp(s->id, d->id) || strcmp(s->type, d->ops->type))
			return mig_refuse(-EPROTO, why, wlen, "manifest mismatch: device %u is %s (%s) on the "
				      "source but %s (%s) here", i, s->id, s->type, d->id,
				      d->ops->type);
		if (s->version != dev_version(d))
			return mig_refuse(-EPROTO, why, wlen, "manifest mismatch: device %s (%s) has state "
				      "version %u on the source, this hdvm reads version %u",
				      s->id, s->type, s->version, dev_version(d));
	}
	if (d)
		return mig_refuse(-EPROTO, why, wlen, "manifest mismatch: this VM has device %s (%s) which "
			      "the source lacks", d->id, d->ops->type);
	return 0;
}
