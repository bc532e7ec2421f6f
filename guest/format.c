// SPDX-License-Identifier: MIT
/* printf-style formatting for the console and for buffers. */
#include <stdbool.h>
#include <stdint.h>
#include "guest/console.h"

struct spec {
	bool left;		/* '-' */
	bool zero;		/* '0' */
	int width;
	int longs;		/* 0, 1 (l, z) or 2 (ll) */
};

struct sink {
	void (*out)(char c, void *ctx);
	void *ctx;
	int count;
};

static void emit(struct sink *s, char c)
{
	s->out(c, s->ctx);
	s->count++;
}

static void emit_padding(struct sink *s, char c, int n)
{
	while (n-- > 0)
		emit(s, c);
}

/* Emit prefix+digits padded to the spec's width. */
static void emit_field(struct sink *s, const struct spec *sp, const char *prefix,
		       const char *body, int body_len)
{
	int prefix_len = 0, pad;

	while (prefix[prefix_len])
		prefix_len++;
	pad = sp->width - prefix_len - body_len;
	if (!sp->left && !sp->zero)
		emit_padding(s, ' ', pad);
	while (*prefix)
		emit(s, *prefix++);
	if (!sp->left && sp->zero)
		emit_padding(s, '0', pad);
	while (body_len--)
		emit(s, *body++);
	if (sp->left)
		emit_padding(s, ' ', pad);
}

static void emit_number(struct sink *s, const struct spec *sp, uint64_t v, unsigned base,
			bool upper, const char *prefix)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char buf[24];
	int i = sizeof(buf);

	do {
		buf[--i] = digits[v % base];
		v /= base;
	} while (v);
	emit_field(s, sp, prefix, buf + i, sizeof(buf) - i);
}

static uint64_t arg_unsigned(const struct spec *sp, va_list *ap)
{
	if (sp->longs)
		return va_arg(*ap, unsigned long);	/* long and long long are 64-bit */
	return va_arg(*ap, unsigned int);
}

static int64_t arg_signed(const struct spec *sp, va_list *ap)
{
	if (sp->longs)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

static const char *parse_spec(const char *f, struct spec *sp, va_list *ap)
{
	*sp = (struct spec){ 0 };
	for (;; f++) {
		if (*f == '-')
			sp->left = true;
		else if (*f == '0')
			sp->zero = true;
		else
			break;
	}
	if (*f == '*') {
		sp->width = va_arg(*ap, int);
		if (sp->width < 0) {
			sp->left = true;
			sp->width = -sp->width;
		}
		f++;
	}
	while (*f >= '0' && *f <= '9')
		sp->width = sp->width * 10 + (*f++ - '0');
	while (*f == 'l' || *f == 'z') {
		sp->longs++;
		f++;
	}
	return f;
}

int vformat(void (*out)(char c, void *ctx), void *ctx, const char *fmt, va_list ap)
{
	struct sink s = { .out = out, .ctx = ctx };
	struct spec sp;
	va_list args;

	va_copy(args, ap);
	while (*fmt) {
		if (*fmt != '%') {
			emit(&s, *fmt++);
			continue;
		}
		fmt = parse_spec(fmt + 1, &sp, &args);
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = arg_signed(&sp, &args);

			emit_number(&s, &sp, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false,
				    v < 0 ? "-" : "");
			break;
		}
		case 'u':
			emit_number(&s, &sp, arg_unsigned(&sp, &args), 10, false, "");
			break;
		case 'x':
		case 'X':
			emit_number(&s, &sp, arg_unsigned(&sp, &args), 16, *fmt == 'X', "");
			break;
		case 'p':
			emit_number(&s, &sp, (uintptr_t)va_arg(args, void *), 16, false, "0x");
			break;
		case 'c': {
			char c = (char)va_arg(args, int);

			sp.zero = false;
			emit_field(&s, &sp, "", &c, 1);
			break;
		}
		case 's': {
			const char *str = va_arg(args, const char *);
			int len = 0;

			if (!str)
				str = "(null)";
			while (str[len])
				len++;
			sp.zero = false;
			emit_field(&s, &sp, "", str, len);
			break;
		}
		case '%':
			emit(&s, '%');
			break;
		case '\0':
			/* a lone '%' at the end: print it, do not read past the string */
			emit(&s, '%');
			va_end(args);
			return s.count;
		default:
			/* unknown conversion: print it verbatim so the mistake is visible */
			emit(&s, '%');
			emit(&s, *fmt);
			break;
		}
		fmt++;
	}
	va_end(args);
	return s.count;
}

struct buf_ctx {
	char *buf;
	size_t size;
	size_t len;
};

static void buf_out(char c, void *ctx)
{
	struct buf_ctx *b = ctx;

	if (b->len + 1 < b->size)
		b->buf[b->len] = c;
	b->len++;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct buf_ctx b = { .buf = buf, .size = size };
	int n = vformat(buf_out, &b, fmt, ap);

	if (size)
		buf[b.len < size ? b.len : size - 1] = '\0';
	return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
