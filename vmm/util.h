/* SPDX-License-Identifier: MIT */
#ifndef HDVM_UTIL_H
#define HDVM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)	(((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))
#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define GiB		(1ULL << 30)

/* Messages go to stderr prefixed with the program name ("hdvm: ..."). */
extern const char *prog_name;
void pr_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pr_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pr_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool debug_enabled;
extern uint64_t process_start_ns;	/* set first thing in main() */

/* "512M", "2G", "1048576", "64k": 0 and the byte count, -EINVAL if malformed, -ERANGE if > 64 bits. */
int parse_size(const char *s, uint64_t *out);
/* Strict unsigned decimal/hex parse of the whole string: -EINVAL malformed, -ERANGE outside [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

uint64_t now_ns(void);		/* CLOCK_MONOTONIC */
void *xzalloc(size_t size);	/* calloc that aborts on failure */
char *xstrdup(const char *s);

/* Read a whole file (at most max bytes); -errno with a message naming the path. */
int read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

/*
 * Read fd (non-blocking) until EAGAIN, handing each chunk to sink: an event
 * loop whose wake-ups merge must take everything there is.  0 drained, 1 at
 * EOF, -errno on a read error.
 */
int fd_drain(int fd, void (*sink)(void *opaque, const uint8_t *buf, size_t len),
	     void *opaque);

/*
 * One reply line on its way to a non-blocking socket (hdvm's control socket,
 * hdnic's pf.sock): a server never waits for a client to read.
 */
struct line_out {
	char *buf;		/* NULL: nothing waiting */
	size_t len, off;
};
/* Take ownership of line (malloc'd, no newline) and queue it with its '\n'. */
void line_out_set(struct line_out *o, char *line);
/* Send what fd takes: 0 all sent (buffer freed), 1 the rest waits (EAGAIN), -errno. */
int line_out_send(struct line_out *o, int fd, bool *progress);
void line_out_clear(struct line_out *o);

#endif
