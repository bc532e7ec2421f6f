/* SPDX-License-Identifier: MIT */
/*
 * Apps register themselves (kvmtool style): APP_REGISTER puts a pointer in
 * the .apps section and main.c looks the selected name up there, so a new
 * workload is one new file.
 */
#ifndef HDGUEST_APP_H
#define HDGUEST_APP_H

#include <stdbool.h>
#include "guest/bootinfo.h"

struct app {
	const char *name;
	/*
	 * Optional: validate the app's own options before anything else runs;
	 * a non-zero return is the exit status (the problem is printed).
	 */
	int (*check)(const struct boot_info *bi);
	/* Bring the network up (net_up()) before the boot marker and main. */
	bool net;
	/* Runs in ring 3; the return value is the exit status (0..255). */
	int (*main)(const struct boot_info *bi);
};

#define APP_REGISTER(a)							\
	static const struct app *const __app_ptr_##a			\
	__attribute__((used, section(".apps"), aligned(8))) = &(a)

const struct app *app_find(const char *name);
/* Print the registered app names, space-separated. */
void app_print_names(void);

#endif
