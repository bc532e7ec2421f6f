/* SPDX-License-Identifier: MIT */
/*
 * The one shape every hdvm device has.  A device embeds `struct device`, fills
 * in an ops table and is added to the VM with device_add(); the VM then drives
 * all devices through the same calls at realize, reset, pause/resume (vCPUs
 * stopped), save/load (migration, checkpoints) and teardown.
 */
#ifndef HDVM_DEVICE_H
#define HDVM_DEVICE_H

#include <pthread.h>
#include <stddef.h>

#include "migration/state.h"
#include "vmm/compiler.h"

struct vm;
struct device;

struct device_ops {
	const char *type;
	int (*realize)(struct device *dev, struct vm *vm);
	void (*reset)(struct device *dev);
	void (*pause)(struct device *dev);
	void (*resume)(struct device *dev);
	int (*save)(struct device *dev, struct state_buf *sb);
	int (*load)(struct device *dev, struct state_buf *sb);
	void (*unrealize)(struct device *dev);	/* release everything realize took */
};

/* Embed as the FIRST member of the device struct: teardown frees the container. */
struct device {
	const struct device_ops *ops;
	char id[32];
	pthread_mutex_t lock;	/* serialises vCPU accesses and the main loop */
	struct device *next;
};

void device_init(struct device *dev, const struct device_ops *ops, const char *id);
/* Append to the VM's list; realize happens in vm_realize_devices(). */
void device_add(struct vm *vm, struct device *dev);
struct device *device_find(struct vm *vm, const char *id);

int devices_realize(struct vm *vm);
void devices_reset(struct vm *vm);
void devices_pause(struct vm *vm);
void devices_resume(struct vm *vm);
/* All devices' state as tagged sections, in list order. */
int devices_save(struct vm *vm, struct state_buf *sb);
int devices_load(struct vm *vm, struct state_buf *sb);
void devices_unrealize(struct vm *vm);

#endif
