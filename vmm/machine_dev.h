/* SPDX-License-Identifier: MIT */
#ifndef HDVM_MACHINE_DEV_H
#define HDVM_MACHINE_DEV_H

struct device;

/* The VM's vCPU and VM state (vmm/machine_state.c) as device "machine"; add it first. */
struct device *machine_dev_create(void);

#endif
