// SPDX-License-Identifier: MIT
/* hello: print a greeting and power off; exit=N picks the exit status. */
#include "guest/app.h"
#include "guest/cmdline.h"
#include "guest/console.h"

static int hello_main(const struct boot_info *bi)
{
	uint64_t status;

	(void)bi;
	if (cmdline_get_u64("hello", "exit", 0, 0, 255, &status))
		return 2;
	printf("Hello from hdguest\n");
	return (int)status;
}

static const struct app hello_app = { .name = "hello", .main = hello_main };
APP_REGISTER(hello_app);
