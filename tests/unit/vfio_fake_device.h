/* SPDX-License-Identifier: MIT */
/*
 * The device the fake vfio-user server (vfio_fake_server.h) models: one
 * handler per command (VERSION, region info, ioeventfds, IRQs, region
 * access, DMA maps, device features and migration), and the DMA the device
 * does through the client with DMA_READ/DMA_WRITE requests.  Included by
 * vfio_fake_server.h after its wire helpers; not on its own.
 */
#ifndef HDVM_TEST_VFIO_FAKE_DEVICE_H
#define HDVM_TEST_VFIO_FAKE_DEVICE_H

#ifndef HDVM_TEST_VFIO_FAKE_SERVER_H
#error "include vfio_fake_server.h"
#endif

static void h_version(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	struct vfio_user_version v;
	char buf[512];
	const char *json = NULL;
	size_t jlen = 0;

	memcpy(&v, p, sizeof(v));
	s->client_major = v.major;
	s->client_minor = v.minor;
	snprintf(s->client_json, sizeof(s->client_json), "%s", (const char *)p + sizeof(v));

	v.major = VFIO_USER_MAJOR;
	v.minor = VFIO_USER_MINOR;
	snprintf(buf, sizeof(buf),
		 "{\"capabilities\":{\"max_msg_fds\":%u,\"max_data_xfer_size\":%u,\"pgsizes\":4096}}",
		 s->max_msg_fds, s->max_xfer);
	json = buf;
	switch (s->version) {
	case V_GOOD: break;
	case V_BAD_MAJOR: v.major = VFIO_USER_MAJOR + 1; break;
	case V_HIGH_MINOR: v.minor = VFIO_USER_MINOR + 1; break;
	case V_EXTRA_KEYS:	/* keys we never offered: ignored */
		json = "{\"capabilities\":{\"max_msg_fds\":4,\"twin_socket\":{\"supported\":true},"
		       "\"vendor_x\":[1]},\"note\":\"hi\"}";
		break;
	case V_REFERENCE:	/* libvfio-user's reply, whatever the offer */
		json = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
		       "\"migration\":{\"pgsize\":4096}}}";
		break;
	case V_PGSIZES_NOT_SUBSET:
		json = "{\"capabilities\":{\"pgsizes\":2101248}}";
		break;
	case V_MALFORMED: json = "{\"capabilities\":{\"max_msg_fds\":4,"; break;
	case V_UNTERMINATED: json = NULL; jlen = 7; break;
	case V_NO_JSON: json = NULL; break;
	}
	{
		uint8_t out[600];

		memcpy(out, &v, sizeof(v));
		if (json) {
			jlen = strlen(json) + 1;
			memcpy(out + sizeof(v), json, jlen);
		} else if (jlen) {
			memcpy(out + sizeof(v), "{\"a\":1}", jlen);	/* no NUL */
		}
		srv_reply(s, h, out, sizeof(v) + jlen, NULL, 0);
	}
}

static void h_region_info(struct fake_srv *s, const struct vfio_user_header *h,
			  const uint8_t *p)
{
	struct vfio_region_info q, r = { 0 };
	uint8_t out[256] = { 0 };
	size_t need = sizeof(r) + sizeof(struct vfio_region_info_cap_sparse_mmap) +
		      sizeof(struct vfio_region_sparse_mmap_area);

	memcpy(&q, p, sizeof(q));
	if (s->region_info_calls < 4)
		s->region_info_argsz[s->region_info_calls] = q.argsz;
	s->region_info_calls++;
	r.index = q.index;
	r.argsz = sizeof(r);
	if (q.index == 0) {
		struct vfio_region_info_cap_sparse_mmap sm = {
			.header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1 },
			.nr_areas = 1,
		};
		struct vfio_region_sparse_mmap_area a = { .offset = 4096, .size = 4096 };

		r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			  VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
		r.size = BAR0_SIZE;
		r.argsz = need;
		if (q.argsz < need) {	/* like libvfio-user: no caps, no fd */
			memcpy(out, &r, sizeof(r));
			srv_reply(s, h, out, sizeof(r), NULL, 0);
			return;
		}
		r.cap_offset = sizeof(r);
		memcpy(out, &r, sizeof(r));
		memcpy(out + sizeof(r), &sm, sizeof(sm));
		memcpy(out + sizeof(r) + sizeof(sm), &a, sizeof(a));
		srv_reply(s, h, out, need, &s->bar0_fd, 1);
		return;
	}
	if (q.index == 1) {
		r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		r.size = BAR1_SIZE;
	} else if (q.index == VFIO_PCI_CONFIG_REGION_INDEX) {
		r.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		r.size = CFG_SIZE;
	}
	srv_reply(s, h, &r, sizeof(r), NULL, 0);
}

/* The libvfio-user layout: shadow fd and offset before datamatch. */
static void h_io_fds48(struct fake_srv *s, const struct vfio_user_header *h,
		       const struct vfio_user_region_io_fds_request *q)
{
	struct vfio_user_region_io_fds_reply r = { .index = 0, .count = 4 };
	struct vfio_user_sub_region_ioeventfd_shadow e[4] = {
		{ .offset = 0x100, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
		  .flags = KVM_IOEVENTFD_FLAG_DATAMATCH, .shadow_offset = 0x40, .datamatch = 1 },
		{ .offset = 0x104, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD },
		{ .offset = 0x108, .size = 4, .fd_index = 0, .shadow_mem_fd_index = 1,
		  .shadow_offset = 0x1000, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW },
		{ .offset = 0x200, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOREGIONFD },
	};
	uint8_t out[sizeof(r) + sizeof(e)];
	int fds[2] = { s->doorbell_efd, s->shadow_fd };

	r.argsz = s->iofd_stride == 48 ? sizeof(out) : sizeof(out) - 16;	/* junk: 44 */
	if (q->argsz < r.argsz) {
		r.count = 0;
		srv_reply(s, h, &r, sizeof(r), NULL, 0);
		return;
	}
	memcpy(out, &r, sizeof(r));
	memcpy(out + sizeof(r), e, sizeof(e));
	srv_reply(s, h, out, r.argsz, fds, 2);
}

static void h_io_fds(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	struct vfio_user_region_io_fds_request q;
	struct vfio_user_region_io_fds_reply r = { .index = 0, .count = 3 };
	struct vfio_user_sub_region_ioeventfd e[3] = {
		{ .offset = 0x100, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
		  .flags = KVM_IOEVENTFD_FLAG_DATAMATCH, .datamatch = 1 },
		{ .offset = 0x104, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD },
		{ .offset = 0x200, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOREGIONFD },
	};
	uint8_t out[sizeof(r) + sizeof(e)];

	memcpy(&q, p, sizeof(q));
	if (s->iofd_stride && s->iofd_stride != 40) {
		h_io_fds48(s, h, &q);
		return;
	}
	r.argsz = sizeof(out);
	if (s->sabotage == S_BAD_IOFD_INDEX)
		e[1].fd_index = 5;
	if (q.argsz < sizeof(out) || q.index != 0) {
		r.index = q.index;	/* only BAR0 has doorbells */
		r.count = 0;
		if (q.index != 0)
			r.argsz = sizeof(r);
		srv_reply(s, h, &r, sizeof(r), NULL, 0);
		return;
	}
	memcpy(out, &r, sizeof(r));
	memcpy(out + sizeof(r), e, sizeof(e));
	srv_reply(s, h, out, sizeof(out), &s->doorbell_efd, 1);
}

static void h_set_irqs(struct fake_srv *s, const struct vfio_user_header *h,
		       const uint8_t *p, int *fds, unsigned nfds)
{
	struct vfio_irq_set q;
	struct irq_msg *m = &s->irq[s->nr_irq < MAX_REC ? s->nr_irq++ : MAX_REC - 1];

	memcpy(&q, p, sizeof(q));
	m->flags = q.flags;
	m->start = q.start;
	m->count = q.count;
	m->nfds = nfds;
	m->all_eventfds = true;
	for (unsigned i = 0; i < nfds; i++) {
		uint64_t one = 1;

		if (!fd_link_starts(fds[i], "anon_inode:[eventfd]"))
			m->all_eventfds = false;
		/* fire it, as a device raising the vector would */
		if (write(fds[i], &one, sizeof(one)) != sizeof(one))
			m->all_eventfds = false;
	}
	srv_reply(s, h, NULL, 0, NULL, 0);
}

static uint8_t *region_mem(struct fake_srv *s, uint32_t region, uint64_t off, uint32_t count)
{
	if (region == 0 && off + count <= 4096)
		return s->bar0_page0 + off;
	if (region == 1 && off + count <= BAR1_SIZE)
		return s->bar1 + off;
	if (region == VFIO_PCI_CONFIG_REGION_INDEX && off + count <= CFG_SIZE)
		return s->cfg + off;
	return NULL;
}

/* ---- DMA through the client ---- */

/* Send d as a request with id (from the server thread, or the test's while it is idle). */
static void fake_dma_request(struct fake_srv *s, struct fake_dma *d, uint16_t id)
{
	struct vfio_user_dma_rw rw = { .address = d->addr, .count = d->count };
	uint8_t buf[sizeof(rw) + sizeof(d->data)];
	struct vfio_user_header h = {
		.msg_id = id, .command = d->cmd, .flags = VFIO_USER_F_TYPE_COMMAND,
		.msg_size = sizeof(h) + sizeof(rw) + d->len,
	};

	memcpy(buf, &rw, sizeof(rw));
	memcpy(buf + sizeof(rw), d->data, d->len);
	d->answered = false;
	srv_send_raw(s, &h, buf, sizeof(rw) + d->len, NULL, 0);
}

static void fake_dma_store(struct fake_dma *d, const struct vfio_user_header *h, const uint8_t *p)
{
	d->id = h->msg_id;
	d->ans_cmd = h->command;
	d->flags = h->flags;
	d->error_no = h->error_no;
	d->ans_len = h->msg_size - sizeof(*h);
	memcpy(d->ans, p, MIN(d->ans_len, sizeof(d->ans)));
	d->answered = true;
}

/* The client's answer, read by the server thread right after its request. */
static void fake_dma_take_answer(struct fake_srv *s, struct fake_dma *d)
{
	struct vfio_user_header h;
	uint8_t *p = NULL;
	int fds[32];
	unsigned nfds;

	if (!srv_recv(s, &h, &p, fds, &nfds))
		fake_dma_store(d, &h, p);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	free(p);
}

/* A reply arrived in the main loop: the answer to a request the test sent (id 0x8000 + i). */
static void fake_dma_answer(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	unsigned i = h->msg_id - 0x8000u;

	if (i < FAKE_DMA_MAX) {
		fake_dma_store(&s->dma[i], h, p);
		atomic_fetch_add(&s->dma_answers, 1);
	}
}

/* The device does its scripted DMA, waiting for each answer (as libvfio-user does). */
static void fake_dma_run(struct fake_srv *s)
{
	for (unsigned i = 0; i < s->nr_dma; i++) {
		fake_dma_request(s, &s->dma[i], (uint16_t)(0x9000 + i));
		fake_dma_take_answer(s, &s->dma[i]);
	}
}

static void h_region_rw(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	struct vfio_user_region_access a;
	uint8_t *mem, *out;

	memcpy(&a, p, sizeof(a));
	if (h->command == VFIO_USER_REGION_WRITE && a.region == 1 && a.offset == FAKE_DMA_DOORBELL)
		fake_dma_run(s);	/* before the reply: the client waits for it meanwhile */
	s->rw_msgs++;
	s->rw_max_count = MAX(s->rw_max_count, a.count);
	mem = region_mem(s, a.region, a.offset, a.count);
	if (!mem || a.count > s->max_xfer) {
		srv_error(s, h, EINVAL);
		return;
	}
	if (h->command == VFIO_USER_REGION_WRITE) {
		memcpy(mem, p + sizeof(a), a.count);
		srv_reply(s, h, &a, sizeof(a), NULL, 0);
		return;
	}
	out = malloc(sizeof(a) + a.count);
	memcpy(out, &a, sizeof(a));
	memcpy(out + sizeof(a), mem, a.count);
	srv_reply(s, h, out, sizeof(a) + a.count, NULL, 0);
	free(out);
}

static void h_dma_map(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p,
		      int *fds, unsigned nfds)
{
	struct vfio_user_dma_map m;
	void *mem;

	memcpy(&m, p, sizeof(m));
	s->dma_flags = m.flags;
	s->dma_addr = m.address;
	s->dma_size = m.size;
	s->dma_offset = m.offset;
	if (s->nr_dmas < MAX_REC) {
		s->dmas[s->nr_dmas].addr = m.address;
		s->dmas[s->nr_dmas].size = m.size;
		s->dmas[s->nr_dmas++].offset = m.offset;
	}
	if (nfds != 1) {
		srv_error(s, h, EINVAL);
		return;
	}
	s->dma_fd_is_memfd = fd_link_starts(fds[0], "/memfd:");
	mem = mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], m.offset);
	if (mem != MAP_FAILED) {
		memcpy(&s->dma_magic, mem, sizeof(s->dma_magic));
		munmap(mem, m.size);
	}
	srv_reply(s, h, NULL, 0, NULL, 0);
}

static void h_feature(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p,
		      size_t len)
{
	struct vfio_user_device_feature f;
	uint8_t out[128];

	memcpy(&f, p, sizeof(f));
	switch (f.flags & VFIO_DEVICE_FEATURE_MASK) {
	case HDNIC_FEATURE_PRECOPY_INFO: {
		struct hdnic_precopy_info pi = { 0 };

		if (!(s->mig_flags & VFIO_MIGRATION_PRE_COPY) ||
		    (s->mig_state != VFIO_DEVICE_STATE_PRE_COPY &&
		     s->mig_state != VFIO_DEVICE_STATE_PRE_COPY_P2P)) {
			srv_error(s, h, s->mig_flags & VFIO_MIGRATION_PRE_COPY ? EINVAL : ENOTSUP);
			return;
		}
		s->precopy_infos++;
		pi.initial_bytes = s->pre_bytes > s->mig_out_pos ? s->pre_bytes - s->mig_out_pos : 0;
		f.argsz = sizeof(f) + sizeof(pi);
		memcpy(out, &f, sizeof(f));
		memcpy(out + sizeof(f), &pi, sizeof(pi));
		srv_reply(s, h, out, sizeof(f) + sizeof(pi), NULL, 0);
		return;
	}
	case HDNIC_FEATURE_OUTPUT_COMMIT: {
		struct hdnic_output_commit oc;
		struct hdnic_output_status st = { .holding = s->oc_holding, .epoch = s->oc_epoch,
						  .committed = s->oc_committed };
		bool ok;

		if (s->no_output_commit) {
			srv_error(s, h, ENOTSUP);
			return;
		}
		if (f.flags & VFIO_DEVICE_FEATURE_PROBE) {
			srv_reply(s, h, p, len, NULL, 0);
			return;
		}
		if (f.flags & VFIO_DEVICE_FEATURE_GET) {
			f.argsz = sizeof(f) + sizeof(st);
			memcpy(out, &f, sizeof(f));
			memcpy(out + sizeof(f), &st, sizeof(st));
			srv_reply(s, h, out, sizeof(f) + sizeof(st), NULL, 0);
			return;
		}
		if (len < sizeof(f) + sizeof(oc)) {
			srv_error(s, h, EINVAL);
			return;
		}
		memcpy(&oc, p + sizeof(f), sizeof(oc));
		if (s->nr_oc < MAX_REC)
			s->oc[s->nr_oc++] = oc;
		/* hdnic's rules (hdnic_vf_abi.h): epochs move forward, the open one is not committed */
		ok = oc.op == HDNIC_OUTPUT_START ||
		     (s->oc_holding && oc.op == HDNIC_OUTPUT_EPOCH && oc.epoch > s->oc_epoch) ||
		     (s->oc_holding && oc.op == HDNIC_OUTPUT_COMMIT && oc.epoch < s->oc_epoch) ||
		     oc.op == HDNIC_OUTPUT_STOP || oc.op == HDNIC_OUTPUT_DISCARD;
		if (!ok) {
			srv_error(s, h, EINVAL);
			return;
		}
		if (oc.op == HDNIC_OUTPUT_START || oc.op == HDNIC_OUTPUT_EPOCH)
			s->oc_epoch = oc.epoch;
		if (oc.op == HDNIC_OUTPUT_COMMIT)
			s->oc_committed = oc.epoch;
		if (oc.op == HDNIC_OUTPUT_START || oc.op == HDNIC_OUTPUT_STOP)
			s->oc_holding = oc.op == HDNIC_OUTPUT_START;
		srv_reply(s, h, p, len, NULL, 0);
		return;
	}
	case VFIO_DEVICE_FEATURE_MIGRATION: {
		uint64_t fl = s->mig_flags;

		if (s->no_migration) {
			srv_error(s, h, ENOTSUP);
			return;
		}
		f.argsz = sizeof(f) + sizeof(fl);
		memcpy(out, &f, sizeof(f));
		memcpy(out + sizeof(f), &fl, sizeof(fl));
		srv_reply(s, h, out, sizeof(f) + sizeof(fl), NULL, 0);
		return;
	}
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
		struct vfio_device_feature_mig_state st;

		if (f.flags & VFIO_DEVICE_FEATURE_GET) {
			s->mig_gets++;
			st.device_state = s->mig_state;
			st.data_fd = -1;
			f.argsz = sizeof(f) + sizeof(st);
			memcpy(out, &f, sizeof(f));
			memcpy(out + sizeof(f), &st, sizeof(st));
			srv_reply(s, h, out, sizeof(f) + sizeof(st), NULL, 0);
			return;
		}
		memcpy(&st, p + sizeof(f), sizeof(st));
		if (s->nr_mig_seq < MAX_REC) {
			s->mig_when[s->nr_mig_seq] = atomic_fetch_add(&fake_clock, 1);
			s->mig_seq[s->nr_mig_seq++] = st.device_state;
		}
		if (s->mig_refuse && st.device_state == s->mig_refuse &&
		    (!s->mig_refuse_from || s->mig_state == s->mig_refuse_from)) {
			if (s->mig_refuse_to_error)
				s->mig_state = VFIO_DEVICE_STATE_ERROR;
			srv_error(s, h, s->mig_refuse_errno ? s->mig_refuse_errno : EIO);
			return;
		}
		/* the pre-copy session goes on through P2P and into STOP_COPY */
		if (!((s->mig_state == VFIO_DEVICE_STATE_PRE_COPY ||
		       s->mig_state == VFIO_DEVICE_STATE_PRE_COPY_P2P) &&
		      (st.device_state == VFIO_DEVICE_STATE_PRE_COPY ||
		       st.device_state == VFIO_DEVICE_STATE_PRE_COPY_P2P ||
		       st.device_state == VFIO_DEVICE_STATE_STOP_COPY)))
			s->mig_out_pos = 0;
		if (st.device_state == VFIO_DEVICE_STATE_RESUMING)
			s->mig_in_len = 0;
		s->mig_state = st.device_state;
		st.data_fd = 77;	/* junk the client must hide */
		memcpy(out, &f, sizeof(f));
		memcpy(out + sizeof(f), &st, sizeof(st));
		srv_reply(s, h, out, MIN(len, sizeof(f) + sizeof(st)), NULL, 0);
		return;
	}
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: {
		uint32_t nr;

		memcpy(&s->log_page_size, p + sizeof(f), 8);
		memcpy(&nr, p + sizeof(f) + 8, 4);
		if (s->logging || nr > 8 || len < sizeof(f) + 16 + 16 * nr) {
			srv_error(s, h, EINVAL);
			return;
		}
		memcpy(s->log_ranges, p + sizeof(f) + 16, 16 * nr);
		s->nr_log_ranges = nr;
		s->logging = true;
		srv_reply(s, h, p, len, NULL, 0);
		return;
	}
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		s->logging = false;
		srv_reply(s, h, p, len, NULL, 0);
		return;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: {
		uint64_t q[3];
		size_t bytes;
		uint8_t *rep;

		memcpy(q, p + sizeof(f), sizeof(q));
		if (!s->logging || !q[2] || q[1] % q[2]) {
			srv_error(s, h, EINVAL);
			return;
		}
		s->log_reports++;
		bytes = (q[1] / q[2] + 63) / 64 * 8;	/* u64 words, like libvfio-user */
		rep = calloc(1, sizeof(f) + sizeof(q) + bytes);
		f.argsz = sizeof(f) + sizeof(q) + bytes;
		memcpy(rep, &f, sizeof(f));
		memcpy(rep + sizeof(f), q, sizeof(q));
		for (unsigned i = 0; i < s->nr_dirty; i++) {
			uint64_t pg;

			if (s->dirty[i] < q[0] || s->dirty[i] >= q[0] + q[1])
				continue;
			pg = (s->dirty[i] - q[0]) / q[2];
			rep[sizeof(f) + sizeof(q) + pg / 8] |= 1u << (pg % 8);
			s->dirty[i--] = s->dirty[--s->nr_dirty];	/* reported: clear */
		}
		srv_reply(s, h, rep, sizeof(f) + sizeof(q) + bytes, NULL, 0);
		free(rep);
		return;
	}
	default:
		srv_error(s, h, ENOTSUP);
	}
}

static void h_mig_read(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	struct vfio_user_mig_data q;
	uint32_t n;
	uint8_t *out;

	uint32_t asked;

	memcpy(&q, p, sizeof(q));
	asked = q.size;
	n = MIN(q.size, MIG_BLOB - s->mig_out_pos);
	if (s->mig_state == VFIO_DEVICE_STATE_PRE_COPY ||
	    s->mig_state == VFIO_DEVICE_STATE_PRE_COPY_P2P)
		n = MIN(n, s->pre_bytes > s->mig_out_pos ? s->pre_bytes - s->mig_out_pos : 0);
	out = calloc(1, sizeof(q) + asked);
	q.size = n;
	q.argsz = sizeof(q) + n;
	memcpy(out, &q, sizeof(q));
	memcpy(out + sizeof(q), s->mig_out + s->mig_out_pos, n);
	s->mig_out_pos += n;
	srv_reply(s, h, out, sizeof(q) + (s->mig_pad ? asked : n), NULL, 0);
	free(out);
}

static void h_mig_write(struct fake_srv *s, const struct vfio_user_header *h, const uint8_t *p)
{
	struct vfio_user_mig_data q;

	memcpy(&q, p, sizeof(q));
	if (s->mig_in_len + q.size > sizeof(s->mig_in)) {
		srv_error(s, h, ENOSPC);
		return;
	}
	memcpy(s->mig_in + s->mig_in_len, p + sizeof(q), q.size);
	s->mig_in_len += q.size;
	srv_reply(s, h, NULL, 0, NULL, 0);
}

#endif
