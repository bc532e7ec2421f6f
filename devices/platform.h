/* SPDX-License-Identifier: MIT */
/*
 * The hdvm machine: fixed addresses and ports shared by the VMM's devices and by
 * hdguest.  Plain C with no dependencies so freestanding code can include it.
 */
#ifndef HDVM_PLATFORM_H
#define HDVM_PLATFORM_H

/* 8250 UART, COM1 */
#define PLAT_COM1_PORT		0x3f8
#define PLAT_COM1_IRQ		4

/* i8042 keyboard controller: only the reset line (0xfe to port 0x64) */
#define PLAT_I8042_DATA_PORT	0x60
#define PLAT_I8042_CMD_PORT	0x64
#define PLAT_I8042_CMD_RESET	0xfe

/*
 * Exit device: a 32-bit write of the status powers the VM off and makes
 * `hdvm run` exit with (status & 0xff).  Same port as QEMU's isa-debug-exit,
 * so one guest image can stop under both (QEMU reports (status << 1) | 1).
 */
#define PLAT_EXIT_PORT		0xf4

/* Boot marker: the guest writes a code when it reaches a milestone. */
#define PLAT_MARKER_PORT	0x3f0
#define PLAT_MARKER_WORKLOAD	1	/* the selected app starts */

/* Guest physical layout */
#define PLAT_MMIO_HOLE_START	0xc0000000ULL	/* RAM stops here below 4 GiB */
#define PLAT_MMIO_HOLE_END	0x100000000ULL	/* and resumes here */
#define PLAT_PCI_MMIO_START	0xc0000000ULL	/* 32-bit PCI BARs */
#define PLAT_PCI_MMIO_SIZE	0x20000000ULL
#define PLAT_PCI_ECAM_START	0xe0000000ULL	/* 1 bus x 32 dev x 8 fn x 4 KiB */
#define PLAT_PCI_ECAM_SIZE	0x00100000ULL
#define PLAT_IOAPIC_ADDR	0xfec00000ULL
#define PLAT_LAPIC_ADDR		0xfee00000ULL

/* Boot-time structures placed by the loaders (all below 1 MiB) */
#define PLAT_GDT_ADDR		0x00000500ULL
#define PLAT_ZERO_PAGE_ADDR	0x00007000ULL	/* Linux boot_params */
#define PLAT_PVH_INFO_ADDR	0x00006000ULL	/* hvm_start_info + memmap */
#define PLAT_PML4_ADDR		0x00009000ULL	/* boot page tables, 6 pages */
#define PLAT_CMDLINE_ADDR	0x00020000ULL
#define PLAT_CMDLINE_MAX	0x00010000ULL
#define PLAT_MPTABLE_ADDR	0x0009fc00ULL	/* last KiB of base memory */
#define PLAT_EBDA_START		0x0009fc00ULL
#define PLAT_BIOS_END		0x00100000ULL
#define PLAT_KERNEL_ADDR	0x00100000ULL	/* default load address */
#define PLAT_BOOT_STACK		0x0008ff00ULL	/* rsp handed to the kernel */

#endif
