// SPDX-License-Identifier: MIT
/*
 * hdguest's ring-3 start: finish the CPU setup that needs no privilege, read
 * the boot information, print the banner, pick the app from the command line,
 * check its options, bring the network up if it needs it, mark the workload
 * start and run it.  The return value is the exit status.
 */
#include "devices/platform.h"
#include "guest/app.h"
#include "guest/bootinfo.h"
#include "guest/cmdline.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/io.h"
#include "guest/lib.h"
#include "guest/net/net.h"

#define DEFAULT_APP	"hello"

extern const struct app *const __apps_start[], *const __apps_end[];

static struct boot_info boot_info;

const struct app *app_find(const char *name)
{
	const struct app *const *a;

	for (a = __apps_start; a < __apps_end; a++)
		if (!strcmp((*a)->name, name))
			return *a;
	return NULL;
}

void app_print_names(void)
{
	const struct app *const *a;

	for (a = __apps_start; a < __apps_end; a++)
		printf("%s%s", a == __apps_start ? "" : " ", (*a)->name);
}

int hdguest_main(void)
{
	const struct app *app;
	const char *name;
	int status;

	idt_init();
	pic_mask_all();
	console_init();
	if (bootinfo_parse(&boot_info))
		return 2;
	printf("hdguest: booted via %s, cmdline: %s\n", boot_info.proto_name, boot_info.cmdline);

	cmdline_parse(boot_info.cmdline);
	name = cmdline_app() ? cmdline_app() : DEFAULT_APP;
	app = app_find(name);
	if (!app) {
		printf("hdguest: unknown app '%s'\n", name);
		printf("hdguest: apps: ");
		app_print_names();
		printf("\n");
		return 2;
	}
	if (app->check && (status = app->check(&boot_info)))
		return status;
	if (app->net && (status = net_up(&boot_info)))
		return status;
	outb(PLAT_MARKER_WORKLOAD, PLAT_MARKER_PORT);
	return app->main(&boot_info);
}
