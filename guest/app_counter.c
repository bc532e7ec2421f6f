// SPDX-License-Identifier: MIT
/*
 * counter: UDP port 9000.  A request's first 8 bytes are its id; the reply
 * is that id followed by the counter (64-bit, network order), which goes up
 * by exactly one per request, so the first reply carries 1.  Requests
 * shorter than 8 bytes are ignored (and counted).
 *
 * `counter_value` is the state that continuous checkpointing must never
 * lose: after a failover, replies must continue from the last value any
 * client has seen.
 */
#include "guest/app.h"
#include "guest/console.h"
#include "guest/lib.h"
#include "guest/net/net.h"

#define COUNTER_PORT	9000
#define COUNTER_ID_LEN	8

static uint64_t counter_value;		/* requests answered: THE state */
static uint64_t counter_short;		/* requests too short to carry an id */

static void counter_rx(uint32_t src, uint16_t sport, const uint8_t *data, uint16_t len)
{
	uint8_t reply[COUNTER_ID_LEN + 8];

	if (len < COUNTER_ID_LEN) {
		counter_short++;
		return;
	}
	counter_value++;
	memcpy(reply, data, COUNTER_ID_LEN);
	put_be64(reply + COUNTER_ID_LEN, counter_value);
	udp_send(src, COUNTER_PORT, sport, reply, sizeof(reply));
}

static int counter_main(const struct boot_info *bi)
{
	(void)bi;
	udp_bind(COUNTER_PORT, counter_rx);
	printf("counter: listening on udp/%u\n", COUNTER_PORT);
	return net_run();
}

static const struct app counter_app = { .name = "counter", .net = true, .main = counter_main };
APP_REGISTER(counter_app);
