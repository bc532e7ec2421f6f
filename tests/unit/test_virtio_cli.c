// SPDX-License-Identifier: MIT
/*
 * `--net tap=IFNAME[,mac=MAC]`: accepted forms, default MACs, and for every
 * malformed value an error that names the bad part.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio/net_cli.h"

static char errbuf[1024];

/* Run net_opts_parse with stderr captured into errbuf. */
static int parse_capture(const char *arg, struct net_opts *o)
{
	FILE *tmp = tmpfile();
	int saved, ret;
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	ret = net_opts_parse(arg, o);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(errbuf, 1, sizeof(errbuf) - 1, tmp);
	errbuf[n] = '\0';
	fclose(tmp);
	return ret;
}

static void test_valid_forms(void **st)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	struct net_opts o;

	assert_int_equal(parse_capture("tap=tap0", &o), 0);
	assert_string_equal(o.tap, "tap0");
	assert_false(o.mac_given);
	assert_int_equal(parse_capture("tap=hdvm-tap.1_x,mac=52:54:00:AB:cd:EF", &o), 0);
	assert_string_equal(o.tap, "hdvm-tap.1_x");
	assert_true(o.mac_given);
	assert_memory_equal(o.mac, mac, 6);
	assert_int_equal(parse_capture("mac=52:54:00:ab:cd:ef,tap=t", &o), 0);	/* any order */
	assert_string_equal(o.tap, "t");
	assert_int_equal(parse_capture("tap=123456789012345", &o), 0);		/* 15 chars */
	assert_string_equal(errbuf, "");
}

static void expect_error(const char *arg, const char *needle)
{
	struct net_opts o;

	assert_int_equal(parse_capture(arg, &o), -EINVAL);
	if (!strstr(errbuf, needle))
		fail_msg("--net '%s': message '%s' does not mention '%s'", arg, errbuf, needle);
	assert_non_null(strstr(errbuf, arg));		/* the whole value is quoted */
}

static void test_errors_name_the_problem(void **st)
{
	expect_error("", "tap=IFNAME is required");
	expect_error("mac=02:00:00:00:00:01", "tap=IFNAME is required");
	expect_error("tap0", "'tap0' is not key=value");
	expect_error("tap=a,tap=b", "tap= given twice");
	expect_error("tap=", "'' is not a usable interface name");
	expect_error("tap=1234567890123456", "'1234567890123456' is not a usable interface name");
	expect_error("tap=a/b", "'a/b' is not a usable interface name");
	expect_error("tap=a:b", "'a:b' is not a usable interface name");
	expect_error("tap=tap%d", "'tap%d' is not a usable interface name");
	expect_error("tap=a b", "'a b' is not a usable interface name");
	expect_error("tap=..", "'..' is not a usable interface name");
	expect_error("tap=x,speed=10", "unknown key 'speed'");
	expect_error("tap=x,", "trailing ','");
	expect_error("tap=x,mac=zz:00:00:00:00:01", "'zz:00:00:00:00:01' is not a MAC address");
	expect_error("tap=x,mac=02:00:00:00:00", "'02:00:00:00:00' is not a MAC address");
	expect_error("tap=x,mac=02:00:00:00:00:001", "'02:00:00:00:00:001' is not a MAC address");
	expect_error("tap=x,mac=02-00-00-00-00-01", "'02-00-00-00-00-01' is not a MAC address");
	expect_error("tap=x,mac=", "'' is not a MAC address");
	expect_error("tap=x,mac=01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast address");
	expect_error("tap=x,mac=ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is a multicast address");
	expect_error("tap=x,mac=00:00:00:00:00:00", "all-zero MAC");
	expect_error("tap=x,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02", "mac= given twice");
}

static void test_default_macs(void **st)
{
	uint8_t a[6], b[6], c[6];

	net_default_mac("vm-1234", 0, a);
	net_default_mac("vm-1234", 1, b);
	net_default_mac("vm-1235", 0, c);
	assert_int_equal(a[0], 0x02);			/* locally administered, unicast */
	assert_memory_equal(a, b, 5);
	assert_int_not_equal(a[5], b[5]);
	assert_memory_not_equal(a, c, 6);
	net_default_mac("vm-1234", 0, b);
	assert_memory_equal(a, b, 6);			/* stable for a name */
}

static void test_parse_all(void **st)
{
	const char *ok[] = { "tap=a", "tap=b,mac=02:00:00:00:00:07", "tap=c" };
	const char *dup_tap[] = { "tap=a", "tap=a" };
	const char *dup_mac[] = { "tap=a,mac=02:00:00:00:00:07", "tap=b,mac=02:00:00:00:00:07" };
	const char *many[17];
	struct net_opts o[17];
	uint8_t want[6];

	assert_int_equal(net_opts_parse_all(ok, 3, "vm", o), 0);
	net_default_mac("vm", 2, want);
	assert_memory_equal(o[2].mac, want, 6);
	assert_int_equal(o[1].mac[5], 7);
	assert_int_equal(net_opts_parse_all(dup_tap, 2, "vm", o), -EINVAL);
	assert_int_equal(net_opts_parse_all(dup_mac, 2, "vm", o), -EINVAL);
	for (int i = 0; i < 17; i++)
		many[i] = "tap=x";
	assert_int_equal(net_opts_parse_all(many, 17, "vm", o), -E2BIG);
	assert_int_equal(net_opts_parse_all(ok, 0, "vm", o), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_forms),
		cmocka_unit_test(test_errors_name_the_problem),
		cmocka_unit_test(test_default_macs),
		cmocka_unit_test(test_parse_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
