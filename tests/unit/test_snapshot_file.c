// SPDX-License-Identifier: MIT
/*
 * The snapshot file format (migration/snapshot_file.c): a round trip keeps
 * every section and every RAM byte while zero pages take no room; the file
 * appears only at commit; every truncation and any flipped byte is refused
 * with a message naming the problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "migration/snapshot_file.h"

#define RAM_SIZE	(4ull << 20)
#define PAGE		4096ull
#define TAG_CONF	SNAP_TAG('C', 'O', 'N', 'F')
#define TAG_MACH	SNAP_TAG('M', 'A', 'C', 'H')

static char dir[64];
static char path[256];
static int memfd;
static uint8_t *ram;
static uint8_t *file;
static size_t file_len;

/* Guest RAM with a few non-zero pages, some adjacent, one at the very end. */
static const uint64_t dirty_pages[] = { 0, 1, 2, 17, 300, 301, RAM_SIZE / PAGE - 1 };

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/hdvm-snapfile-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.snap", dir);
	memfd = memfd_create("ram", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(ram != MAP_FAILED);
	for (size_t i = 0; i < sizeof(dirty_pages) / sizeof(dirty_pages[0]); i++)
		for (uint64_t b = 0; b < PAGE; b += 61)
			ram[dirty_pages[i] * PAGE + b] = (uint8_t)(i * 31 + b + 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	munmap(ram, RAM_SIZE);
	close(memfd);
	free(file);
	file = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void write_snapshot(void)
{
	struct snap_writer w;
	struct stat st;
	bool existed = stat(path, &st) == 0;

	assert_int_equal(snap_create(&w, path), 0);
	assert_int_equal(snap_put_section(&w, TAG_CONF, "config", 6), 0);
	assert_int_equal(snap_put_ram(&w, memfd, RAM_SIZE), 0);
	assert_int_equal(snap_put_section(&w, TAG_MACH, "machine-state", 13), 0);
	/* nothing new at PATH until the commit */
	if (!existed)
		assert_int_equal(stat(path, &st), -1);
	assert_int_equal(snap_commit(&w), 0);
	assert_int_equal(stat(path, &st), 0);
}

static void read_back(void)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	file_len = st.st_size;
	file = malloc(file_len + 64);
	assert_int_equal(read(fd, file, file_len), (ssize_t)file_len);
	close(fd);
}

static void test_round_trip(void **state)
{
	struct snap_reader r;
	const struct snap_section *s;
	int dst_fd = memfd_create("dst", MFD_CLOEXEC);
	uint8_t *dst;
	char why[256] = "";

	write_snapshot();
	assert_int_equal(snap_open(&r, path, why, sizeof(why)), 0);
	s = snap_find(&r, TAG_CONF);
	assert_non_null(s);
	assert_int_equal(s->len, 6);
	assert_memory_equal(s->data, "config", 6);
	s = snap_find(&r, TAG_MACH);
	assert_non_null(s);
	assert_memory_equal(s->data, "machine-state", 13);
	assert_int_equal(r.ram_size, RAM_SIZE);
	assert_int_equal(ftruncate(dst_fd, RAM_SIZE), 0);
	assert_int_equal(snap_load_ram(&r, dst_fd, RAM_SIZE), 0);
	dst = mmap(NULL, RAM_SIZE, PROT_READ, MAP_SHARED, dst_fd, 0);
	assert_true(dst != MAP_FAILED);
	assert_memory_equal(dst, ram, RAM_SIZE);
	/* a VM of another size is not loaded */
	assert_int_equal(snap_load_ram(&r, dst_fd, RAM_SIZE / 2), -EINVAL);
	snap_close(&r);
	munmap(dst, RAM_SIZE);
	close(dst_fd);
}

static void test_zero_pages_take_no_room(void **state)
{
	struct stat st;

	write_snapshot();
	assert_int_equal(stat(path, &st), 0);
	/* 7 non-zero pages in 4 runs plus headers: far below 4 MiB */
	assert_true((uint64_t)st.st_size < 8 * PAGE);
	assert_true((uint64_t)st.st_size >= 7 * PAGE);
}

static void test_existing_file_replaced_atomically(void **state)
{
	struct snap_writer w;
	struct snap_reader r;
	char why[256], cmd[300];
	FILE *f = fopen(path, "w");

	fputs("old", f);
	fclose(f);
	/* an aborted snapshot leaves the old file and no temporary */
	assert_int_equal(snap_create(&w, path), 0);
	assert_int_equal(snap_put_section(&w, TAG_CONF, "x", 1), 0);
	snap_abort(&w);
	read_back();
	assert_int_equal(file_len, 3);
	snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);	/* no temporary left behind */
	write_snapshot();
	assert_int_equal(snap_open(&r, path, why, sizeof(why)), 0);
	snap_close(&r);
}

static void expect_refused(const uint8_t *data, size_t len, const char *needle)
{
	struct snap_reader r;
	char why[256] = "";

	assert_int_equal(snap_parse(&r, data, len, why, sizeof(why)), -EINVAL);
	if (needle && !strstr(why, needle))
		fail_msg("refusal '%s' does not mention '%s'", why, needle);
}

static void test_every_truncation_refused(void **state)
{
	write_snapshot();
	read_back();
	for (size_t len = 0; len < file_len; len++)
		expect_refused(file, len, NULL);
	expect_refused(file, 10, "bad magic");
	expect_refused(file, file_len - 1, "truncated");
	expect_refused(file, 16 + 16 + 3, "truncated in section 'CONF'");
}

static void test_flipped_bytes_refused(void **state)
{
	write_snapshot();
	read_back();
	/* a flipped bit anywhere is caught (crc32, or a header check) */
	for (size_t off = 0; off < file_len; off += (off < 256 ? 1 : 509)) {
		file[off] ^= 0x10;
		expect_refused(file, file_len, NULL);
		file[off] ^= 0x10;
	}
	file[200] ^= 1;		/* inside the RAM section's first page */
	expect_refused(file, file_len, "crc mismatch in section 'RAM '");
	file[200] ^= 1;
	file[8] = 2;
	expect_refused(file, file_len, "version 2");
}

static void test_trailing_bytes_refused(void **state)
{
	write_snapshot();
	read_back();
	memset(file + file_len, 0, 4);
	expect_refused(file, file_len + 4, "after the end marker");
}

static void test_bad_ram_runs_refused(void **state)
{
	struct snap_writer w;
	uint8_t body[8 + 16 + PAGE];
	uint64_t v;

	memset(body, 0, sizeof(body));
	v = 8 * PAGE;				/* 8 pages of RAM */
	memcpy(body, &v, 8);
	v = 8;					/* a run starting past the end */
	memcpy(body + 8, &v, 8);
	v = 1;
	memcpy(body + 16, &v, 8);
	assert_int_equal(snap_create(&w, path), 0);
	assert_int_equal(snap_put_section(&w, SNAP_TAG_RAM, body, sizeof(body)), 0);
	assert_int_equal(snap_commit(&w), 0);
	read_back();
	expect_refused(file, file_len, "outside RAM");
}

static void test_missing_file_named(void **state)
{
	struct snap_reader r;
	char why[256] = "";

	assert_int_equal(snap_open(&r, "/nonexistent/x.snap", why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_pages_take_no_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_file_replaced_atomically, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_truncation_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bytes_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailing_bytes_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ram_runs_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_named, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
