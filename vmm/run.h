/* SPDX-License-Identifier: MIT */
#ifndef HDVM_RUN_H
#define HDVM_RUN_H

struct vm_config;

/* Create, boot and run one VM to completion; returns the process exit status. */
int vmm_run(const struct vm_config *cfg);

#endif
