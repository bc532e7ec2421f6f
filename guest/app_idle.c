// SPDX-License-Identifier: MIT
/* idle: halt the vCPU forever (sti; hlt in ring 0), costing the host nothing. */
#include "guest/app.h"
#include "guest/console.h"
#include "guest/cpu.h"

static int idle_main(const struct boot_info *bi)
{
	(void)bi;
	printf("idle: halting\n");
	syscall1(SYS_IDLE, 0);
	return 1;	/* SYS_IDLE does not return */
}

static const struct app idle_app = { .name = "idle", .main = idle_main };
APP_REGISTER(idle_app);
