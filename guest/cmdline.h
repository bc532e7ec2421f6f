/* SPDX-License-Identifier: MIT */
/*
 * Command line: space-separated tokens.  `app=NAME` selects the app; its
 * options follow comma-separated (`app=dirty,mib=64`) or as separate tokens
 * (`app=dirty mib=64`).  Options after the app name win over separate tokens;
 * among separate tokens the last one wins.  Unknown tokens are ignored.
 */
#ifndef HDGUEST_CMDLINE_H
#define HDGUEST_CMDLINE_H

#include <stdint.h>

void cmdline_parse(const char *cmdline);
/* The selected app, or NULL if there was no app= token. */
const char *cmdline_app(void);
/* An option's value ("" for a bare `key`), or NULL if absent. */
const char *cmdline_get(const char *key);
/*
 * A numeric option in [min, max]; def if absent.  On a bad value prints
 * "<who>: bad value '<v>' for <key> (expected <min>..<max>)" and returns -1.
 */
int cmdline_get_u64(const char *who, const char *key, uint64_t def, uint64_t min,
		    uint64_t max, uint64_t *out);

#endif
