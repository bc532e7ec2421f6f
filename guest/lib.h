/* SPDX-License-Identifier: MIT */
/* The freestanding C library subset hdguest uses. */
#ifndef HDGUEST_LIB_H
#define HDGUEST_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

/* Sum of n bytes (the MP and ACPI tables are valid when it is 0). */
uint8_t checksum8(const void *p, size_t n);

/*
 * Parse a whole string as an unsigned number: decimal, or hex with 0x.
 * Returns false on an empty string, a stray character or overflow.
 */
bool parse_u64(const char *s, uint64_t *out);

#endif
