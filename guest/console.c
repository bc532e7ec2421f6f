// SPDX-License-Identifier: MIT
/* COM1 8250 output: poll LSR.THRE, write THR.  Works from ring 3 (IOPL=3). */
#include <stdint.h>
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/io.h"

#define UART_THR	0	/* transmit holding register */
#define UART_LSR	5	/* line status register */
#define UART_LSR_THRE	0x20	/* THR empty */

/* Bounded so a UART that never reports THRE cannot hang the guest. */
#define UART_POLL_MAX	100000

void console_putc(char c)
{
	int i;

	for (i = 0; i < UART_POLL_MAX; i++)
		if (inb(PLAT_COM1_PORT + UART_LSR) & UART_LSR_THRE)
			break;
	outb((uint8_t)c, PLAT_COM1_PORT + UART_THR);
}

void console_write(const char *s, size_t len)
{
	while (len--)
		console_putc(*s++);
}

static void console_out(char c, void *ctx)
{
	(void)ctx;
	console_putc(c);
}

int vprintf(const char *fmt, va_list ap)
{
	return vformat(console_out, NULL, fmt, ap);
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}
