// SPDX-License-Identifier: MIT
/* Core helpers: size parsing, the I/O bus, the state buffer (devices: test_device.c). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/device.h"
#include "migration/state.h"
#include "vmm/iobus.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static void test_parse_size(void **st)
{
	uint64_t v;

	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("2G", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("64k", &v), 0);
	assert_int_equal(v, 64ULL << 10);
	assert_int_equal(parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("12Q", &v), -EINVAL);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("M", &v), -EINVAL);
	assert_int_equal(parse_size("-1M", &v), -EINVAL);
	assert_int_equal(parse_size("1MM", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size("17179869184T", &v), -ERANGE);	/* overflows 64 bits */
}

static void test_read_file_errors_carry_the_reason(void **st)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(read_file("/nonexistent/kernel", 4096, &buf, &len), -ENOENT);
	assert_int_equal(read_file("/", 4096, &buf, &len), -EINVAL);	/* not a regular file */
	assert_int_equal(read_file("/proc/self/exe", 16, &buf, &len), -EFBIG);
	assert_int_equal(read_file("/proc/self/exe", 64 << 20, &buf, &len), 0);
	assert_true(len > 16 && buf[0] == 0x7f);
	free(buf);
}

static void test_parse_u64(void **st)
{
	uint64_t v;

	assert_int_equal(parse_u64("4", 1, 8, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_u64("0", 1, 8, &v), -ERANGE);
	assert_int_equal(parse_u64("9", 1, 8, &v), -ERANGE);
	assert_int_equal(parse_u64("3x", 1, 8, &v), -EINVAL);
	assert_int_equal(parse_u64("-3", 0, 8, &v), -EINVAL);
	assert_int_equal(parse_u64(" 3", 0, 8, &v), -EINVAL);
}

struct fake_dev {
	uint8_t regs[16];
	int reads, writes;
};

static void fake_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct fake_dev *f = opaque;

	f->reads++;
	memcpy(data, f->regs + off, len);
}

static void fake_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct fake_dev *f = opaque;

	f->writes++;
	memcpy(f->regs + off, data, len);
}

static const struct io_ops fake_ops = { .read = fake_read, .write = fake_write };

static void test_iobus(void **st)
{
	struct iobus bus;
	struct fake_dev a = { 0 }, b = { 0 };
	uint32_t v = 0x12345678, r = 0;

	iobus_init(&bus, "test");
	assert_int_equal(iobus_register(&bus, 0x100, 16, &fake_ops, &a), 0);
	assert_int_equal(iobus_register(&bus, 0x10, 16, &fake_ops, &b), 0);
	/* overlaps at either end and inside are refused */
	assert_int_not_equal(iobus_register(&bus, 0x108, 16, &fake_ops, &b), 0);
	assert_int_not_equal(iobus_register(&bus, 0xf8, 16, &fake_ops, &b), 0);
	assert_int_not_equal(iobus_register(&bus, 0x104, 1, &fake_ops, &b), 0);
	assert_int_not_equal(iobus_register(&bus, 0, 0, &fake_ops, &b), 0);
	assert_true(iobus_access(&bus, 0x104, &v, 4, true));
	assert_memory_equal(a.regs + 4, &v, 4);
	assert_true(iobus_access(&bus, 0x104, &r, 4, false));
	assert_int_equal(r, 0x12345678);
	assert_int_equal(b.writes, 0);
	/* unmapped: reads float high, nothing is called */
	assert_false(iobus_access(&bus, 0x200, &r, 4, false));
	assert_int_equal(r, 0xffffffff);
	/* an access straddling the end of a range is not dispatched */
	assert_false(iobus_access(&bus, 0x10e, &r, 4, false));
	assert_int_equal(iobus_unregister(&bus, 0x100), 0);
	assert_false(iobus_access(&bus, 0x104, &r, 4, false));
	assert_int_equal(iobus_unregister(&bus, 0x100), -2);
	assert_true(iobus_access(&bus, 0x10, &v, 4, true));
	assert_int_equal(b.writes, 1);
	iobus_destroy(&bus);
}

static void test_state_roundtrip(void **st)
{
	struct state_buf w, r;
	uint8_t blob[300], back[300];
	size_t mark;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7);
	state_init_writer(&w);
	state_put_u8(&w, 0xab);
	state_put_u16(&w, 0xbeef);
	state_put_u32(&w, 0xdeadbeef);
	state_put_u64(&w, 0x0123456789abcdefULL);
	mark = state_begin_section(&w, 42);
	state_put_bytes(&w, blob, sizeof(blob));
	state_end_section(&w, mark);
	assert_true(state_ok(&w));
	/* little-endian on the wire */
	assert_int_equal(w.data[1], 0xef);
	assert_int_equal(w.data[2], 0xbe);

	state_init_reader(&r, w.data, w.len);
	assert_int_equal(state_get_u8(&r), 0xab);
	assert_int_equal(state_get_u16(&r), 0xbeef);
	assert_int_equal(state_get_u32(&r), 0xdeadbeef);
	assert_true(state_get_u64(&r) == 0x0123456789abcdefULL);
	assert_int_equal(state_get_u32(&r), 42);
	assert_int_equal(state_get_u32(&r), sizeof(blob));
	state_get_bytes(&r, back, sizeof(back));
	assert_memory_equal(blob, back, sizeof(blob));
	assert_true(state_ok(&r));
	assert_true(state_at_end(&r));

	/* reading past the end fails, sticks, and returns zeros */
	assert_int_equal(state_get_u32(&r), 0);
	assert_false(state_ok(&r));
	assert_int_equal(state_get_u8(&r), 0);
	assert_false(state_ok(&r));
	state_free(&w);
}

static void test_state_truncated(void **st)
{
	struct state_buf w, r;

	state_init_writer(&w);
	state_put_u64(&w, 1);
	for (size_t cut = 0; cut < w.len; cut++) {
		state_init_reader(&r, w.data, cut);
		state_get_u64(&r);
		assert_false(state_ok(&r));
	}
	state_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_read_file_errors_carry_the_reason),
		cmocka_unit_test(test_iobus),
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_state_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
