/* SPDX-License-Identifier: MIT */
#ifndef HDVM_LEGACY_H
#define HDVM_LEGACY_H

#include <stddef.h>
#include <stdint.h>

struct device;

struct device *serial_create(void);
/* Feed console input (main loop); drops what does not fit the FIFO. */
void serial_input(struct device *serial, const uint8_t *buf, size_t len);
struct device *i8042_create(void);
struct device *exit_dev_create(void);
struct device *boot_marker_create(void);

#endif
