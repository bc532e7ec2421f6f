// SPDX-License-Identifier: MIT
/*
 * COM1 8250/16550 output, usable from ring 3 (port I/O is allowed there).
 * Each port access is a VM exit, so the transmitter is driven the way
 * Linux's 8250 driver does it: wait for THR empty (LSR.THRE), then write up
 * to a FIFO's worth of bytes (16 on a 16550A with its FIFO on, else 1).
 */
#include <stdint.h>
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/io.h"

#define UART_THR		0	/* transmit holding register */
#define UART_IIR		2	/* interrupt identification (read) */
#define UART_FCR		2	/* FIFO control (write) */
#define UART_LSR		5	/* line status register */
#define UART_FCR_ENABLE		0x01
#define UART_FCR_CLEAR_XMIT	0x04
#define UART_IIR_FIFO_MASK	0xc0	/* both set: 16550A FIFO enabled */
#define UART_LSR_THRE		0x20	/* THR (and FIFO) empty */
#define UART_FIFO_SIZE		16

/* Bounded so a UART that never reports THRE cannot hang the guest. */
#define UART_POLL_MAX		100000

static unsigned tx_load = 1;	/* bytes per THRE */
static unsigned tx_room;	/* bytes we may still write without polling */

void console_init(void)
{
	outb(UART_FCR_ENABLE | UART_FCR_CLEAR_XMIT, PLAT_COM1_PORT + UART_FCR);
	if ((inb(PLAT_COM1_PORT + UART_IIR) & UART_IIR_FIFO_MASK) == UART_IIR_FIFO_MASK)
		tx_load = UART_FIFO_SIZE;
	tx_room = 0;
}

void console_putc(char c)
{
	int i;

	if (!tx_room) {
		for (i = 0; i < UART_POLL_MAX; i++)
			if (inb(PLAT_COM1_PORT + UART_LSR) & UART_LSR_THRE)
				break;
		tx_room = tx_load;
	}
	outb((uint8_t)c, PLAT_COM1_PORT + UART_THR);
	tx_room--;
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
