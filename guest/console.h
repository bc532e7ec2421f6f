/* SPDX-License-Identifier: MIT */
/*
 * Console on COM1 and a small printf.  Conversions: %d %i %u %x %X %p %s %c %%
 * with flags '-' and '0', a width (digits or '*') and the length modifiers
 * l, ll and z.  Lines end in a bare '\n'.
 */
#ifndef HDGUEST_CONSOLE_H
#define HDGUEST_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

/* Turn the UART's transmit FIFO on if it has one (16550A). */
void console_init(void);
void console_putc(char c);
void console_write(const char *s, size_t len);

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* The formatter behind them: calls out(c, ctx) per character, returns the count. */
int vformat(void (*out)(char c, void *ctx), void *ctx, const char *fmt, va_list ap);

#endif
