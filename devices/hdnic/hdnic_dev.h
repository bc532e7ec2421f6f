/* SPDX-License-Identifier: MIT */
/*
 * The shape of every device model inside hdnic, the same as hdvm's
 * devices/device.h: an ops table driven at realize, reset, pause/resume
 * (quiesce: no DMA, no interrupts), save/load (device state for migration
 * and checkpoints, through migration/state.h) and teardown.
 */
#ifndef HDNIC_DEV_H
#define HDNIC_DEV_H

#include <stdbool.h>

#include "migration/state.h"
#include "vmm/compiler.h"

struct nic;
struct hdnic_dev;

struct hdnic_dev_ops {
	const char *type;
	int (*realize)(struct hdnic_dev *dev, struct nic *nic);
	void (*reset)(struct hdnic_dev *dev);
	void (*pause)(struct hdnic_dev *dev);
	void (*resume)(struct hdnic_dev *dev);
	int (*save)(struct hdnic_dev *dev, struct state_buf *sb);
	int (*load)(struct hdnic_dev *dev, struct state_buf *sb);
	void (*unrealize)(struct hdnic_dev *dev);
};

struct hdnic_dev {
	const struct hdnic_dev_ops *ops;
	char id[32];
	bool realized;
	bool paused;
};

#endif
