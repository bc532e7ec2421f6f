/* SPDX-License-Identifier: MIT */
/*
 * What the loader told us: protocol, command line, RAM map and an ACPI RSDP
 * hint, normalised from Linux boot_params or PVH hvm_start_info.
 */
#ifndef HDGUEST_BOOTINFO_H
#define HDGUEST_BOOTINFO_H

#include <stdbool.h>
#include <stdint.h>

#define BOOT_CMDLINE_MAX	4096	/* bytes including the NUL */
#define BOOT_RAM_RANGES_MAX	128

struct ram_range {
	uint64_t start, end;	/* [start, end) */
};

struct boot_info {
	const char *proto_name;		/* "linux64", "pvh", "linux32" */
	char cmdline[BOOT_CMDLINE_MAX];
	struct ram_range ram[BOOT_RAM_RANGES_MAX];
	int nr_ram;
	uint64_t rsdp;			/* 0: not given */
};

/* Fill bi from the loader's structures; prints the problem and returns -1 if unusable. */
int bootinfo_parse(struct boot_info *bi);
/* True if [start, start+len) lies inside one usable RAM range. */
bool bootinfo_ram_covers(const struct boot_info *bi, uint64_t start, uint64_t len);

#endif
