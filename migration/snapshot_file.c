// SPDX-License-Identifier: MIT
#include "migration/snapshot_file.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SNAP_MAGIC	"HDVMSNAP"
#define HEADER_LEN	16
#define SECTION_HDR	16
#define PAGE		4096ULL
#define RUN_HDR		16
#define CHUNK		(1ULL << 20)	/* RAM read size */

struct section_hdr {
	uint32_t tag;
	uint32_t crc;
	uint64_t len;
};

static uint32_t crc_of(uint32_t crc, const void *p, uint64_t len)
{
	return (uint32_t)crc32_z(crc, p, len);
}

static void tag_name(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));

		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[4] = 0;
}

/* ---- writer ---- */

static int write_all(struct snap_writer *w, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (!w->err && len) {
		ssize_t n = write(w->fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->err = n < 0 ? -errno : -EIO;
			break;
		}
		b += n;
		len -= n;
		w->bytes += n;
	}
	return w->err;
}

static int pwrite_all(struct snap_writer *w, const void *p, size_t len, off_t off)
{
	ssize_t n = pwrite(w->fd, p, len, off);

	if (!w->err && n != (ssize_t)len)
		w->err = n < 0 ? -errno : -EIO;
	return w->err;
}

int snap_create(struct snap_writer *w, const char *path)
{
	uint8_t hdr[HEADER_LEN];
	uint32_t v = htole32(SNAP_VERSION), zero = 0;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (strlen(path) >= sizeof(w->path))
		return w->err = -ENAMETOOLONG;
	snprintf(w->path, sizeof(w->path), "%s", path);
	snprintf(w->tmp, sizeof(w->tmp), "%s.tmp-%d", path, getpid());
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return w->err = -errno;
	memcpy(hdr, SNAP_MAGIC, 8);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &zero, 4);
	return write_all(w, hdr, sizeof(hdr));
}

/* The crc covers the tag and the length too, so a flipped tag or length is caught. */
uint32_t snap_section_crc(uint32_t tag, uint64_t len, uint32_t body_crc)
{
	uint8_t tl[12];
	uint32_t t = htole32(tag);
	uint64_t l = htole64(len);

	memcpy(tl, &t, 4);
	memcpy(tl + 4, &l, 8);
	return (uint32_t)crc32_combine(crc_of(0, tl, sizeof(tl)), body_crc, (z_off_t)len);
}

static void hdr_encode(uint8_t out[SECTION_HDR], uint32_t tag, uint32_t body_crc, uint64_t len)
{
	uint32_t t = htole32(tag), c = htole32(snap_section_crc(tag, len, body_crc));
	uint64_t l = htole64(len);

	memcpy(out, &t, 4);
	memcpy(out + 4, &c, 4);
	memcpy(out + 8, &l, 8);
}

int snap_put_section(struct snap_writer *w, uint32_t tag, const void *data, uint64_t len)
{
	uint8_t hdr[SECTION_HDR];

	if (w->err)
		return w->err;
	if (w->nr_sections + 1 >= SNAP_MAX_SECTIONS)
		return w->err = -E2BIG;
	hdr_encode(hdr, tag, crc_of(0, data, len), len);
	if (write_all(w, hdr, sizeof(hdr)) || write_all(w, data, len))
		return w->err;
	w->nr_sections++;
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* One run of non-zero pages; updates the body crc and length. */
static int put_run(struct snap_writer *w, uint32_t *crc, uint64_t *len,
		   uint64_t first, const uint8_t *pages, uint64_t count)
{
	uint64_t h[2] = { htole64(first), htole64(count) };

	*crc = crc_of(*crc, h, sizeof(h));
	*crc = crc_of(*crc, pages, count * PAGE);
	*len += sizeof(h) + count * PAGE;
	w->ram_pages += count;
	return write_all(w, h, sizeof(h)) ?: write_all(w, pages, count * PAGE);
}

int snap_put_ram(struct snap_writer *w, int memfd, uint64_t size)
{
	uint8_t hdr[SECTION_HDR];
	uint64_t le_size = htole64(size), body = 8, off = 0;
	uint32_t crc;
	uint8_t *buf;
	off_t start;

	if (w->err)
		return w->err;
	if (size % PAGE)
		return w->err = -EINVAL;
	start = lseek(w->fd, 0, SEEK_CUR);
	memset(hdr, 0, sizeof(hdr));	/* patched once length and crc are known */
	if (write_all(w, hdr, sizeof(hdr)) || write_all(w, &le_size, 8))
		return w->err;
	crc = crc_of(0, &le_size, 8);
	buf = malloc(CHUNK);
	if (!buf)
		return w->err = -ENOMEM;
	while (off < size && !w->err) {
		/* holes were never written: zero without reading them */
		off_t data = lseek(memfd, off, SEEK_DATA);
		uint64_t n, run = 0;
		ssize_t got;

		if (data < 0 && errno != ENXIO)
			w->err = -errno;
		if (data < 0 || (uint64_t)data >= size)
			break;
		off = (uint64_t)data & ~(PAGE - 1);
		n = size - off < CHUNK ? size - off : CHUNK;
		got = pread(memfd, buf, n, off);
		if (got != (ssize_t)n) {
			w->err = got < 0 ? -errno : -EIO;
			break;
		}
		for (uint64_t p = 0; p <= n / PAGE; p++) {
			if (p < n / PAGE && !page_is_zero(buf + p * PAGE)) {
				run++;
				continue;
			}
			if (run && put_run(w, &crc, &body, off / PAGE + p - run,
					   buf + (p - run) * PAGE, run))
				break;
			run = 0;
		}
		off += n;
	}
	free(buf);
	if (w->err)
		return w->err;
	hdr_encode(hdr, SNAP_TAG_RAM, crc, body);
	if (pwrite_all(w, hdr, sizeof(hdr), start))
		return w->err;
	w->nr_sections++;
	return 0;
}

int snap_commit(struct snap_writer *w)
{
	uint64_t count = htole64(w->nr_sections);
	char dir[sizeof(w->path)];
	int dfd;

	if (!w->err)
		snap_put_section(w, SNAP_TAG_END, &count, sizeof(count));
	if (!w->err && fsync(w->fd) < 0)
		w->err = -errno;
	if (!w->err && close(w->fd) < 0)
		w->err = -errno;
	else if (w->err)
		close(w->fd);
	w->fd = -1;
	if (!w->err && rename(w->tmp, w->path) < 0)
		w->err = -errno;
	if (w->err) {
		unlink(w->tmp);
		return w->err;
	}
	/* the rename itself reaches the disk */
	snprintf(dir, sizeof(dir), "%s", w->path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

void snap_abort(struct snap_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmp[0])
		unlink(w->tmp);
}

/* ---- reader ---- */

int mig_pwrite_all(int fd, const uint8_t *src, uint64_t len, uint64_t at)
{
	while (len) {
		ssize_t n = pwrite(fd, src, len, (off_t)at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		src += n;
		at += n;
		len -= n;
	}
	return 0;
}

int mig_refuse(int err, char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Runs ascend, stay inside RAM and fill the body exactly. */
static int check_ram(struct snap_reader *r, const struct snap_section *s, char *why, size_t len)
{
	uint64_t off = 8, next_page = 0, pages;

	if (s->len < 8)
		return mig_refuse(-EINVAL, why, len, "RAM section too short");
	r->ram_size = mig_le64(s->data);
	if (!r->ram_size || r->ram_size % PAGE)
		return mig_refuse(-EINVAL, why, len, "RAM size %llu is not a whole number of pages",
			      (unsigned long long)r->ram_size);
	pages = r->ram_size / PAGE;
	while (off < s->len) {
		uint64_t first, count;

		if (s->len - off < RUN_HDR)
			return mig_refuse(-EINVAL, why, len, "RAM section: truncated run header");
		first = mig_le64(s->data + off);
		count = mig_le64(s->data + off + 8);
		off += RUN_HDR;
		if (!count || first < next_page || first > pages || count > pages - first)
			return mig_refuse(-EINVAL, why, len, "RAM section: page run %llu+%llu is outside "
				      "RAM or out of order", (unsigned long long)first,
				      (unsigned long long)count);
		if ((s->len - off) / PAGE < count)
			return mig_refuse(-EINVAL, why, len, "RAM section: run at page %llu is truncated",
				      (unsigned long long)first);
		off += count * PAGE;
		next_page = first + count;
	}
	return 0;
}

int snap_parse(struct snap_reader *r, const uint8_t *data, size_t size, char *why, size_t len)
{
	uint64_t off = HEADER_LEN;
	uint32_t version;
	char name[5];

	r->map = data;
	r->map_len = size;
	r->nr_sections = 0;
	r->ram_size = 0;
	if (size < HEADER_LEN || memcmp(data, SNAP_MAGIC, 8))
		return mig_refuse(-EINVAL, why, len, "not an hdvm snapshot (bad magic)");
	version = mig_le32(data + 8);
	if (version != SNAP_VERSION || mig_le32(data + 12))
		return mig_refuse(-EINVAL, why, len, "snapshot format version %u; this hdvm reads version %u",
			      version, SNAP_VERSION);
	for (;;) {
		struct section_hdr h;
		struct snap_section *s;

		if (size - off < SECTION_HDR)
			return mig_refuse(-EINVAL, why, len, "truncated: no end marker after %u sections",
				      r->nr_sections);
		h.tag = mig_le32(data + off);
		h.crc = mig_le32(data + off + 4);
		h.len = mig_le64(data + off + 8);
		off += SECTION_HDR;
		tag_name(h.tag, name);
		if (h.len > size - off)
			return mig_refuse(-EINVAL, why, len, "truncated in section '%s'", name);
		if (snap_section_crc(h.tag, h.len, crc_of(0, data + off, h.len)) != h.crc)
			return mig_refuse(-EINVAL, why, len, "crc mismatch in section '%s' (corrupt file)", name);
		if (h.tag == SNAP_TAG_END) {
			if (h.len != 8 || mig_le64(data + off) != r->nr_sections)
				return mig_refuse(-EINVAL, why, len, "end marker does not match the %u sections",
					      r->nr_sections);
			off += h.len;
			break;
		}
		if (r->nr_sections == SNAP_MAX_SECTIONS)
			return mig_refuse(-EINVAL, why, len, "more than %d sections", SNAP_MAX_SECTIONS);
		if (snap_find(r, h.tag))
			return mig_refuse(-EINVAL, why, len, "section '%s' appears twice", name);
		s = &r->sections[r->nr_sections++];
		s->tag = h.tag;
		s->data = data + off;
		s->len = h.len;
		if (h.tag == SNAP_TAG_RAM && check_ram(r, s, why, len) < 0)
			return -EINVAL;
		off += h.len;
	}
	if (off != size)
		return mig_refuse(-EINVAL, why, len, "%llu bytes after the end marker",
			      (unsigned long long)(size - off));
	return 0;
}

int snap_open(struct snap_reader *r, const char *path, char *why, size_t len)
{
	struct stat st;
	void *map;
	int fd, ret;

	memset(r, 0, sizeof(*r));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "%s", strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, len, "not a regular file");
		return -EINVAL;
	}
	if (st.st_size == 0) {
		close(fd);
		return mig_refuse(-EINVAL, why, len, "empty file");
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	ret = -errno;
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(why, len, "mapping it: %s", strerror(-ret));
		return ret;
	}
	ret = snap_parse(r, map, st.st_size, why, len);
	r->mapped = true;
	if (ret < 0)
		snap_close(r);
	return ret;
}

const struct snap_section *snap_find(const struct snap_reader *r, uint32_t tag)
{
	for (unsigned i = 0; i < r->nr_sections; i++)
		if (r->sections[i].tag == tag)
			return &r->sections[i];
	return NULL;
}

int snap_load_ram(const struct snap_reader *r, int memfd, uint64_t size)
{
	const struct snap_section *s = snap_find(r, SNAP_TAG_RAM);
	uint64_t off = 8;

	if (!s || r->ram_size != size)
		return -EINVAL;
	/* bounds were checked by snap_parse() */
	while (off < s->len) {
		uint64_t first = mig_le64(s->data + off), count = mig_le64(s->data + off + 8);
		const uint8_t *src = s->data + off + RUN_HDR;
		uint64_t left = count * PAGE, at = first * PAGE;

		int err = mig_pwrite_all(memfd, src, left, at);

		if (err)
			return err;
		off += RUN_HDR + count * PAGE;
	}
	return 0;
}

void snap_close(struct snap_reader *r)
{
	if (r->mapped)
		munmap((void *)r->map, r->map_len);
	memset(r, 0, sizeof(*r));
}
