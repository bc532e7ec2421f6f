// SPDX-License-Identifier: MIT
/* echo: UDP echo on port 7 (RFC 862): each datagram goes back to its sender. */
#include "guest/app.h"
#include "guest/console.h"
#include "guest/net/net.h"

#define ECHO_PORT	7

static void echo_rx(uint32_t src, uint16_t sport, const uint8_t *data, uint16_t len)
{
	udp_send(src, ECHO_PORT, sport, data, len);
}

static int echo_main(const struct boot_info *bi)
{
	(void)bi;
	udp_bind(ECHO_PORT, echo_rx);
	printf("echo: listening on udp/%u\n", ECHO_PORT);
	return net_run();
}

static const struct app echo_app = { .name = "echo", .net = true, .main = echo_main };
APP_REGISTER(echo_app);
