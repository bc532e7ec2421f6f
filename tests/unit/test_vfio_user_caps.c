// SPDX-License-Identifier: MIT
/*
 * The vfio-user capability parser hdvm's client and hdnic's server share
 * (devices/vfio/vfio_user_caps.c): defaults, unknown keys, migration.pgsize,
 * the one set of bounds, framing of the JSON text, and format round trips.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "devices/vfio/vfio_user_caps.h"

static int parse(const char *json, struct vfio_user_caps *c)
{
	char why[160] = "";

	return vfio_user_caps_parse(json, strlen(json) + 1, c, why, sizeof(why));
}

static void assert_defaults(const struct vfio_user_caps *c)
{
	assert_int_equal(c->max_msg_fds, 1);
	assert_int_equal(c->max_data_xfer_size, 1u << 20);
	assert_int_equal(c->pgsizes, 4096);
	assert_int_equal(c->max_dma_maps, 65535);
	assert_int_equal(c->migration_pgsize, 0);
	assert_false(c->write_multiple);
	assert_int_equal(c->present, 0);
}

static void test_absent_means_defaults(void **state)
{
	struct vfio_user_caps c;

	assert_int_equal(vfio_user_caps_parse(NULL, 0, &c, NULL, 0), 0);
	assert_defaults(&c);
	assert_int_equal(parse("", &c), 0);
	assert_defaults(&c);
	assert_int_equal(parse("{}", &c), 0);
	assert_defaults(&c);
	assert_int_equal(parse("{\"capabilities\":{}}", &c), 0);
	assert_defaults(&c);
}

/* The reference server's reply, whatever the client offered. */
static void test_reference_reply_with_migration(void **state)
{
	struct vfio_user_caps c;

	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":"
			       "1048576,\"migration\":{\"pgsize\":4096}}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 8);
	assert_int_equal(c.max_data_xfer_size, 1048576);
	assert_int_equal(c.migration_pgsize, 4096);
	assert_int_equal(c.present, VFIO_USER_CAP_MAX_MSG_FDS | VFIO_USER_CAP_MAX_DATA_XFER |
			 VFIO_USER_CAP_MIGRATION);
}

static void test_unknown_keys_ignored(void **state)
{
	struct vfio_user_caps c;

	assert_int_equal(parse("{\"vendor\":[1,2],\"capabilities\":{\"twin_socket\":"
			       "{\"supported\":true,\"fd_index\":0},\"future\":\"x\","
			       "\"migration\":{\"pgsize\":8192,\"max_bitmap_size\":256},"
			       "\"write_multiple\":true,\"max_dma_maps\":7}}", &c), 0);
	assert_int_equal(c.migration_pgsize, 8192);
	assert_true(c.write_multiple);
	assert_int_equal(c.max_dma_maps, 7);
	assert_int_equal(c.max_msg_fds, 1);	/* untouched default */
}

static void test_bounds(void **state)
{
	struct vfio_user_caps c;

	/* one 64-bit access must fit: 8 is the smallest transfer either side takes */
	assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":8}}", &c), 0);
	assert_int_equal(c.max_data_xfer_size, 8);
	assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":7}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_data_xfer_size\":4294967296}}", &c),
			 -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":0}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 0);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":253}}", &c), 0);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":254}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":-1}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_dma_maps\":0}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":\"8\"}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":8.5}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"write_multiple\":1}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":0}}", &c), -EINVAL);
	/* no 4 KiB pages: neither side can map guest memory */
	assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":2097152}}", &c), -ENOTSUP);
	assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":2101248}}", &c), 0);
}

static void test_migration_object(void **state)
{
	struct vfio_user_caps c;

	assert_int_equal(parse("{\"capabilities\":{\"migration\":4096}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{}}}", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":6144}}}", &c),
			 -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":2048}}}", &c),
			 -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":65536}}}", &c), 0);
	assert_int_equal(c.migration_pgsize, 65536);
}

static void test_framing(void **state)
{
	struct vfio_user_caps c;
	char why[160] = "";
	const char two[] = "{}\0{}";
	char deep[64 * 5 + 8];
	size_t n = 0;

	assert_int_equal(vfio_user_caps_parse("{}", 2, &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "version data is not NUL-terminated");
	assert_int_equal(vfio_user_caps_parse(two, sizeof(two), &c, NULL, 0), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":4,", &c), -EINVAL);
	assert_int_equal(parse("{} {}", &c), -EINVAL);
	assert_int_equal(parse("[]", &c), -EINVAL);
	assert_int_equal(parse("{\"capabilities\":[]}", &c), -EINVAL);
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
	assert_int_equal(parse(deep, &c), -EINVAL);	/* nesting bomb */
}

static void test_format_round_trip(void **state)
{
	struct vfio_user_caps in = {
		.max_msg_fds = 16, .max_data_xfer_size = 65536, .pgsizes = 4096 | 2097152,
		.max_dma_maps = 1024, .migration_pgsize = 4096, .write_multiple = true,
	}, out;
	char buf[256];
	int n = vfio_user_caps_format(&in, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf) + 1);
	assert_int_equal(vfio_user_caps_parse(buf, (size_t)n, &out, NULL, 0), 0);
	assert_int_equal(out.max_msg_fds, 16);
	assert_int_equal(out.max_data_xfer_size, 65536);
	assert_int_equal(out.pgsizes, 4096 | 2097152);
	assert_int_equal(out.max_dma_maps, 1024);
	assert_int_equal(out.migration_pgsize, 4096);
	assert_true(out.write_multiple);
	/* without migration or write_multiple the keys are left out */
	in.migration_pgsize = 0;
	in.write_multiple = false;
	assert_true(vfio_user_caps_format(&in, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "migration"));
	assert_null(strstr(buf, "write_multiple"));
	assert_int_equal(vfio_user_caps_format(&in, buf, 10), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_means_defaults),
		cmocka_unit_test(test_reference_reply_with_migration),
		cmocka_unit_test(test_unknown_keys_ignored),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_migration_object),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_format_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
