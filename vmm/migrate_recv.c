// SPDX-License-Identifier: MIT
/* The destination side of a migration: stream, manifest, memfd, state, answer (migrate.h). */
#include "vmm/migrate.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/virtio/virtio_net.h"
#include "migration/state.h"
#include "vmm/memory.h"
#include "vmm/postcopy_vm.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define ANSWER_MAX	512
#define DRAIN_NS	(5ull * 1000000000)

/* ---- destination ---- */

int migrate_recv_begin(struct migrate_incoming *in, struct mig_io *io, char *why, size_t len)
{
	const uint8_t *body;
	uint64_t blen;
	uint32_t tag;
	char name[5];
	int ret;

	memset(in, 0, sizeof(*in));
	in->io = io;
	in->memfd = -1;
	in->t_start = now_ns();
	ret = mig_reader_init(&in->r, io, why, len);
	if (ret)
		return ret;
	if (in->r.flags & MIG_F_RAM_BY_FD) {
		if (!io->ops->recv_fd) {
			snprintf(why, len, "the stream passes RAM as a memfd, which only a unix: "
				 "socket can carry");
			return -EPROTO;
		}
		ret = io->ops->recv_fd(io, &in->memfd);
		if (ret) {
			snprintf(why, len, "receiving the RAM memfd: %s", strerror(-ret));
			return ret;
		}
	}
	ret = mig_read_section(&in->r, &tag, &body, &blen, why, len);
	if (ret)
		return ret;
	if (tag != MIG_TAG_MANIFEST) {
		mig_tag_name(tag, name);
		snprintf(why, len, "the stream starts with section '%s', not the manifest", name);
		return -EPROTO;
	}
	ret = manifest_parse(body, blen, &in->m, why, len);
	if (ret)
		return ret;
	for (uint32_t i = 0; (in->r.flags & MIG_F_NET_BY_FD) && i < in->m.nr_net; i++) {
		ret = io->ops->recv_fd ? io->ops->recv_fd(io, &in->net_fds[i]) : -EPROTO;
		if (ret) {
			snprintf(why, len, "receiving the source's TAP fd for --net %s: %s",
				 in->m.net[i], strerror(-ret));
			return ret;
		}
		in->nr_net_fds++;
	}
	if (in->memfd >= 0) {
		struct stat st;

		if (fstat(in->memfd, &st) < 0 || (uint64_t)st.st_size != in->m.mem_size) {
			snprintf(why, len, "the RAM memfd is not the manifest's %llu bytes",
				 (unsigned long long)in->m.mem_size);
			return -EPROTO;
		}
	}
	return 0;
}

int migrate_config_from_manifest(const struct manifest *m, struct vm_config *cfg,
				 char *why, size_t len)
{
	if ((uint32_t)cfg->nr_vfio_user != m->nr_vfio_user ||
	    (uint32_t)cfg->nr_vfio_kernel != m->nr_vfio_kernel) {
		snprintf(why, len, "manifest mismatch: the source VM has %u --vfio-user and %u "
			 "--vfio devices; give as many (got %d and %d)", m->nr_vfio_user,
			 m->nr_vfio_kernel, cfg->nr_vfio_user, cfg->nr_vfio_kernel);
		return -ENODEV;
	}
	cfg->mem_size = m->mem_size;
	cfg->ncpus = (int)m->ncpus;
	cfg->kernel = xstrdup(m->kernel);
	cfg->cmdline = xstrdup(m->cmdline);
	cfg->nr_net = (int)m->nr_net;
	for (uint32_t i = 0; i < m->nr_net; i++)
		cfg->net[i] = xstrdup(m->net[i]);
	return 0;
}

int migrate_recv_take_memfd(struct migrate_incoming *in)
{
	int fd = in->memfd;

	in->memfd = -1;
	return fd;
}

/*
 * Use the source's memfd as this VM's RAM: same mapping address, KVM's slots
 * stay.  Only for a VM built before the stream arrived (tests); hdvm run
 * --incoming builds its RAM on the memfd (migrate_recv_take_memfd), so that a
 * passthrough device's DMA map, made at realize, is of the source's RAM too.
 */
static int adopt_memfd(struct vm *vm, int fd, char *why, size_t len)
{
	int ret = guest_mem_adopt_fd(&vm->mem, fd);

	if (ret)
		snprintf(why, len, "mapping the source's RAM: %s", strerror(-ret));
	return ret;
}

int migrate_recv_finish(struct migrate_incoming *in, struct vm *vm, char *why, size_t len)
{
	const uint8_t *body;
	uint64_t blen, dp, zp;
	uint32_t tag;
	bool have_devs = false;
	struct state_buf sb;
	uint8_t *devs = NULL;
	size_t devs_len = 0;
	char name[5];
	int ret;

	if (vm->mem.size != in->m.mem_size) {
		snprintf(why, len, "manifest mismatch: %llu bytes of RAM on the source, %llu here",
			 (unsigned long long)in->m.mem_size, (unsigned long long)vm->mem.size);
		return -EINVAL;
	}
	ret = manifest_check_devices(&in->m, vm, why, len);
	if (ret)
		return ret;
	if (in->memfd >= 0) {
		ret = adopt_memfd(vm, in->memfd, why, len);
		if (ret)
			return ret;
		in->memfd = -1;
	}
	if (in->r.flags & MIG_F_POSTCOPY) {	/* before any device state arrives */
		ret = postcopy_hold_devices(vm, why, len);
		if (ret)
			return ret;
	}
	for (;;) {
		ret = mig_read_section(&in->r, &tag, &body, &blen, why, len);
		if (ret)
			goto out;
		if (tag == MIG_TAG_END)
			break;
		mig_tag_name(tag, name);
		if (tag == MIG_TAG_RAM_BATCH && !(in->r.flags & MIG_F_RAM_BY_FD) && !have_devs) {
			ret = mig_check_ram_batch(body, blen, vm->mem.size, &dp, &zp, why, len);
			if (!ret)
				ret = mig_apply_ram_batch(body, blen, vm->mem.memfd);
			if (ret) {
				if (!why[0] || ret != -EPROTO)
					snprintf(why, len, "writing RAM: %s", strerror(-ret));
				goto out;
			}
			in->r.pages += dp;
			in->r.zero_pages += zp;
		} else if (tag == MIG_TAG_DEV_PRECOPY && !have_devs) {
			/* devices checked against the manifest above: RESUMING takes it now */
			state_init_reader(&sb, body, blen);
			ret = devices_load_iterate(vm, &sb, why, len);
			if (ret)
				goto out;
			in->device_precopy_bytes += blen;
		} else if (tag == MIG_TAG_CANCEL) {
			snprintf(why, len, "the source stopped the migration: %.*s",
				 (int)(blen > 300 ? 300 : blen), (const char *)body);
			for (char *c = why; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';	/* its text, not its control bytes */
			ret = -ECANCELED;
			goto out;
		} else if (tag == MIG_TAG_POSTCOPY && (in->r.flags & MIG_F_POSTCOPY) &&
			   !have_devs && !in->pc_needed) {
			ret = postcopy_recv_switch(in, body, blen, vm->mem.size, why, len);
			if (ret)
				goto out;
		} else if (tag == MIG_TAG_DEVS && !have_devs) {
			devs = xzalloc(blen ?: 1);
			memcpy(devs, body, blen);
			devs_len = blen;
			have_devs = true;
		} else {
			snprintf(why, len, "unexpected section '%s' in the stream", name);
			ret = -EPROTO;
			goto out;
		}
	}
	if (!have_devs) {
		snprintf(why, len, "the stream has no device state (section DEVS)");
		ret = -EPROTO;
		goto out;
	}
	/* the whole stream arrived intact: only now does any state reach KVM or a device */
	state_init_reader(&sb, devs, devs_len);
	ret = devices_load(vm, &sb, why, len);
	if (!ret && !state_at_end(&sb)) {
		snprintf(why, len, "device state has trailing bytes");
		ret = -EPROTO;
	}
	if (!ret && (in->r.flags & MIG_F_POSTCOPY) && !in->pc_needed)
		postcopy_release_devices(vm);	/* pre-copy converged before the switch */
	if (!ret && !in->pc_needed)		/* post-copy: once RAM is whole */
		virtio_net_incoming_run(vm);	/* the source stopped reading its TAPs */
out:
	if (ret)
		devices_load_abort(vm);	/* a device still in RESUMING drops what arrived */
	free(devs);
	return ret;
}

/*
 * After a refusal the source may still be sending: read and drop its bytes
 * (a while at most) so closing does not reset the connection before the
 * source has read why.
 */
static void drain(struct mig_io *io)
{
	uint64_t until = now_ns() + DRAIN_NS;
	char buf[65536];

	shutdown(io->fd, SHUT_WR);
	while (now_ns() < until) {
		struct pollfd p = { .fd = io->fd, .events = POLLIN };

		if (poll(&p, 1, 100) == 1 && io->ops->read(io, buf, sizeof(buf)) <= 0)
			break;
	}
}

int migrate_recv_answer(struct migrate_incoming *in, int ret, const char *why)
{
	char line[ANSWER_MAX];
	int n;

	if (!ret)
		n = snprintf(line, sizeof(line), "OK\n");
	else
		n = snprintf(line, sizeof(line), "ERR %.400s\n", why && *why ? why : strerror(-ret));
	if (in->answered)
		return 0;
	in->answered = true;
	if (in->io->fd < 0 || in->io->one_way)
		return 0;
	ret = mig_write_all(in->io, line, (size_t)n);
	if (!ret && line[0] == 'E')
		drain(in->io);
	return ret;
}

void migrate_recv_end(struct migrate_incoming *in)
{
	mig_reader_free(&in->r);
	free(in->pc_needed);
	in->pc_needed = NULL;
	if (in->memfd >= 0)
		close(in->memfd);
	in->memfd = -1;
	for (int i = 0; i < in->nr_net_fds; i++)
		close(in->net_fds[i]);	/* the devices took copies */
	in->nr_net_fds = 0;
}
