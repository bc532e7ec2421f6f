// SPDX-License-Identifier: MIT
/*
 * hdnic's switch on its own (switch.c, switch_fwd.c, arp_dir.c): the
 * forwarding decisions over a table of ports, with port ops that record
 * where frames went.  Unicast to the owner, no hairpin, flooding to live
 * ports only, unknown unicast, loops from the uplink, and the ARP
 * suppression rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/hdnic/switch.h"

#define NPORTS	4
#define NOW	1000000000ULL

static struct nic_switch sw;
static struct arp_dir arpd;
static unsigned got[NPORTS + 1];	/* frames delivered per port */
static unsigned uplinked;
static bool wants[NPORTS];		/* receive filters asking for unknown unicast */

static const uint8_t mac[NPORTS][6] = {
	{ 2, 0, 0, 0, 0, 0x10 }, { 2, 0, 0, 0, 0, 0x11 },
	{ 2, 0, 0, 0, 0, 0x12 }, { 2, 0, 0, 0, 0, 0x13 },
};
static const uint8_t host[6] = { 2, 0xaa, 0xbb, 0xcc, 0xdd, 1 };	/* behind the uplink */
static const uint8_t nobody[6] = { 2, 0xee, 0xee, 0xee, 0xee, 0xee };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void deliver(void *ctx, uint32_t port, const uint8_t *frame, uint32_t len)
{
	assert_true(port < NPORTS);
	got[port]++;
}

static bool wants_unknown(void *ctx, uint32_t port, const uint8_t *dst)
{
	return wants[port];
}

static void uplink_tx(void *ctx, const uint8_t *frame, uint32_t len)
{
	uplinked++;
}

static const struct sw_port_ops ops = {
	.deliver = deliver, .wants_unknown = wants_unknown, .uplink_tx = uplink_tx,
};

/* Ports 0..2 attached and live, port 3 attached but not live. */
static int setup(void **state)
{
	assert_int_equal(sw_init(&sw, 64), 0);
	assert_int_equal(arpd_init(&arpd, 64), 0);
	assert_int_equal(sw_ports_init(&sw, NPORTS, &arpd, &ops, NULL), 0);
	for (uint32_t p = 0; p < NPORTS; p++) {
		sw_port_attach(&sw, p);
		sw_port_set_live(&sw, p, p < 3);
		assert_int_equal(sw_set_static(&sw, mac[p], p), 0);
	}
	memset(got, 0, sizeof(got));
	memset(wants, 0, sizeof(wants));
	uplinked = 0;
	return 0;
}

static int teardown(void **state)
{
	sw_destroy(&sw);
	arpd_destroy(&arpd);
	return 0;
}

static uint32_t frame(uint8_t *f, const uint8_t *dst, const uint8_t *src)
{
	memset(f, 0, 60);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	return 60;
}

/* An Ethernet/IPv4 ARP frame; ips are the last octet of 10.0.0.x. */
static uint32_t arp(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t op,
		    uint8_t spa, uint8_t tpa)
{
	static const uint8_t hdr[8] = { 0, 1, 8, 0, 6, 4 };

	memset(f, 0, 60);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x06;
	memcpy(f + 14, hdr, 6);
	f[20] = (uint8_t)(op >> 8);
	f[21] = (uint8_t)op;
	memcpy(f + 22, src, 6);
	f[28] = 10, f[31] = spa;
	f[38] = 10, f[41] = tpa;
	return 60;
}

static uint32_t ip(uint8_t last)
{
	return 10u << 24 | last;
}

static void clear(void)
{
	memset(got, 0, sizeof(got));
	uplinked = 0;
}

static void test_unicast_goes_to_the_owner_only(void **state)
{
	uint8_t f[60];

	assert_int_equal(sw_forward_from_port(&sw, 0, f, frame(f, mac[1], mac[0]), NOW),
			 SW_FORWARDED);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[0] + got[2] + got[3] + uplinked, 0);
	assert_int_equal(sw_out_port(&sw, 0, f, NOW), SW_OUT_SWITCH);
	clear();
	assert_int_equal(sw_forward_from_uplink(&sw, f, frame(f, mac[2], host), NOW),
			 SW_FORWARDED);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[0] + got[1] + uplinked, 0);
	/* the uplink taught the switch where host is */
	assert_int_equal(sw_lookup(&sw, host, NOW), SW_PORT_UPLINK);
	clear();
	assert_int_equal(sw_forward_from_port(&sw, 1, f, frame(f, host, mac[1]), NOW),
			 SW_FORWARDED);
	assert_int_equal(uplinked, 1);
	assert_int_equal(got[0] + got[1] + got[2], 0);
	assert_int_equal(sw_out_port(&sw, 1, f, NOW), SW_OUT_UPLINK);
}

static void test_no_hairpin(void **state)
{
	uint8_t f[60];

	frame(f, mac[0], mac[0]);
	assert_int_equal(sw_out_port(&sw, 0, f, NOW), -1);
	assert_int_equal(sw_forward_from_port(&sw, 0, f, 60, NOW), SW_DROP_HAIRPIN);
	assert_int_equal(got[0] + uplinked, 0);
	assert_int_equal(sw.stats.loop_drops, 1);
}

static void test_flood_reaches_live_ports_but_the_sender(void **state)
{
	uint8_t f[60];

	frame(f, bcast, mac[0]);
	assert_int_equal(sw_out_port(&sw, 0, f, NOW), SW_OUT_UPLINK);
	sw_forward_from_port(&sw, 0, f, 60, NOW);
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[3], 0);		/* not live */
	assert_int_equal(uplinked, 1);
	clear();
	sw_forward_from_uplink(&sw, f, frame(f, bcast, host), NOW);
	assert_int_equal(got[0] + got[1] + got[2], 3);
	assert_int_equal(got[3] + uplinked, 0);	/* never back out of the uplink */
	/* a detached port is gone from the flood */
	clear();
	sw_port_detach(&sw, 1);
	sw_forward_from_uplink(&sw, f, 60, NOW);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[0] + got[2], 2);
	assert_int_equal(sw.stats.flooded, 3);
}

static void test_unknown_unicast(void **state)
{
	uint8_t f[60];

	/* from a function: out of the uplink, and to whoever asks for it */
	wants[2] = true;
	sw_forward_from_port(&sw, 0, f, frame(f, nobody, mac[0]), NOW);
	assert_int_equal(uplinked, 1);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[1], 0);
	/* from the uplink: to whoever asks, else dropped and counted */
	clear();
	assert_int_equal(sw_forward_from_uplink(&sw, f, frame(f, nobody, host), NOW),
			 SW_FORWARDED);
	assert_int_equal(got[2], 1);
	wants[2] = false;
	assert_int_equal(sw_forward_from_uplink(&sw, f, 60, NOW), SW_DROP_UNKNOWN);
	assert_int_equal(sw.stats.unknown_unicast_drops, 1);
}

static void test_own_address_from_the_uplink_is_a_loop(void **state)
{
	uint8_t f[60];

	assert_int_equal(sw_forward_from_uplink(&sw, f, frame(f, bcast, mac[1]), NOW),
			 SW_DROP_LOOP);
	assert_int_equal(got[0] + got[1] + got[2], 0);
	assert_int_equal(sw_static_port(&sw, mac[1]), 1);	/* not learned behind the uplink */
}

static void test_arp_announcement_goes_to_the_uplink_only(void **state)
{
	uint8_t f[60];

	sw_forward_from_port(&sw, 1, f, arp(f, bcast, mac[1], ARP_OP_REQUEST, 11, 11), NOW);
	assert_int_equal(uplinked, 1);
	assert_int_equal(got[0] + got[2], 0);
	assert_int_equal(arpd_lookup(&arpd, ip(11), NOW), 1);
	assert_int_equal(arpd.stats.suppressed, 1);
}

static void test_arp_request_for_a_known_address_goes_to_its_owner(void **state)
{
	uint8_t f[60];

	sw_forward_from_port(&sw, 1, f, arp(f, bcast, mac[1], ARP_OP_REQUEST, 11, 11), NOW);
	clear();
	/* from the uplink and from a neighbour: the owner alone hears it */
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 11), NOW);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[0] + got[2] + uplinked, 0);
	clear();
	sw_forward_from_port(&sw, 0, f, arp(f, bcast, mac[0], ARP_OP_REQUEST, 10, 11), NOW);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2] + uplinked, 0);
	assert_int_equal(arpd.stats.directed, 2);
	/* the owner asking for its own address, or an owner that is not live: flooded */
	clear();
	sw_forward_from_port(&sw, 1, f, arp(f, bcast, mac[1], ARP_OP_REQUEST, 0, 11), NOW);
	assert_int_equal(got[0] + got[2], 2);
	assert_int_equal(uplinked, 1);
	clear();
	sw_port_set_live(&sw, 1, false);
	sw_forward_from_port(&sw, 0, f, arp(f, bcast, mac[0], ARP_OP_REQUEST, 10, 11), NOW);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[2], 1);
	assert_int_equal(uplinked, 1);
	assert_int_equal(arpd.stats.flooded, 2);
}

static void test_arp_for_unknown_or_uplink_addresses(void **state)
{
	uint8_t f[60];

	/* nobody claimed .50: flooded and sent out */
	sw_forward_from_port(&sw, 0, f, arp(f, bcast, mac[0], ARP_OP_REQUEST, 10, 50), NOW);
	assert_int_equal(got[1] + got[2], 2);
	assert_int_equal(uplinked, 1);
	/* the host behind the uplink (.1) speaks: its address lives behind the uplink */
	clear();
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 60), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(1), NOW), SW_PORT_UPLINK);
	clear();
	/* a function asking for it: the uplink alone; the uplink asking: nowhere */
	sw_forward_from_port(&sw, 2, f, arp(f, bcast, mac[2], ARP_OP_REQUEST, 12, 1), NOW);
	assert_int_equal(uplinked, 1);
	assert_int_equal(got[0] + got[1], 0);
	clear();
	sw_forward_from_uplink(&sw, f, arp(f, bcast, nobody, ARP_OP_REQUEST, 2, 1), NOW);
	assert_int_equal(got[0] + got[1] + got[2] + uplinked, 0);
}

static void test_arp_takeover_needs_trust(void **state)
{
	uint8_t f[60];

	sw_forward_from_port(&sw, 1, f, arp(f, bcast, mac[1], ARP_OP_REQUEST, 11, 11), NOW);
	/* an untrusted neighbour claiming a live function's address is refused */
	sw_forward_from_port(&sw, 2, f, arp(f, bcast, mac[2], ARP_OP_REQUEST, 11, 11), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(11), NOW), 1);
	assert_int_equal(arpd.stats.refused, 1);
	/* a trusted one takes it over */
	sw_port_set_trusted(&sw, 2, true);
	sw_forward_from_port(&sw, 2, f, arp(f, bcast, mac[2], ARP_OP_REQUEST, 11, 11), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(11), NOW), 2);
	/* from a function that is no longer live, anyone may */
	sw_port_set_live(&sw, 2, false);
	sw_forward_from_port(&sw, 0, f, arp(f, bcast, mac[0], ARP_OP_REQUEST, 11, 11), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(11), NOW), 0);
	/* a binding only comes from a station speaking for itself */
	arp(f, bcast, mac[1], ARP_OP_REQUEST, 30, 30);
	memcpy(f + 22, nobody, 6);
	sw_forward_from_port(&sw, 1, f, 60, NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(30), NOW), -1);
	/* a function that leaves takes its bindings with it */
	sw_port_detach(&sw, 0);
	assert_int_equal(arpd_lookup(&arpd, ip(11), NOW), -1);
}

/*
 * A guest served from another host (behind the uplink) is restored onto
 * function 2 (a standby's takeover): the client's broadcast ARP for it
 * must reach it, not be kept "on its own side" by what the directory
 * learned while the guest lived elsewhere.
 */
static void test_arp_for_a_guest_that_moved_here_reaches_it(void **state)
{
	static const uint8_t guest[6] = { 2, 0x47, 0, 0, 0, 0x20 };
	uint8_t f[60];

	sw_forward_from_uplink(&sw, f, arp(f, bcast, guest, ARP_OP_REQUEST, 20, 1), NOW);
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 60), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(20), NOW), SW_PORT_UPLINK);
	clear();
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 20), NOW);
	assert_int_equal(got[0] + got[1] + got[2] + uplinked, 0);	/* it is elsewhere */
	/* the guest's state is loaded into function 2: its MAC is function 2's now */
	sw_remove(&sw, mac[2]);
	assert_int_equal(sw_set_static(&sw, guest, 2), 0);
	assert_int_equal(arpd_lookup(&arpd, ip(20), NOW), -1);
	assert_int_equal(arpd_lookup(&arpd, ip(1), NOW), SW_PORT_UPLINK);	/* others stay */
	clear();
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 20), NOW);
	assert_int_equal(got[2], 1);
	/* its answer binds the address to it: the next request goes to it alone */
	sw_forward_from_port(&sw, 2, f, arp(f, host, guest, 2, 20, 1), NOW);
	assert_int_equal(arpd_lookup(&arpd, ip(20), NOW), 2);
	clear();
	sw_forward_from_uplink(&sw, f, arp(f, bcast, host, ARP_OP_REQUEST, 1, 20), NOW);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[0] + got[1], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unicast_goes_to_the_owner_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_hairpin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_reaches_live_ports_but_the_sender, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_unicast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_address_from_the_uplink_is_a_loop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_arp_announcement_goes_to_the_uplink_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_arp_request_for_a_known_address_goes_to_its_owner,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_for_unknown_or_uplink_addresses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_arp_takeover_needs_trust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_for_a_guest_that_moved_here_reaches_it,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
