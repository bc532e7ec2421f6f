/* SPDX-License-Identifier: MIT */
/*
 * `--net tap=IFNAME[,mac=MAC]`: one paravirtual NIC on a TAP interface.
 * Parsing is separate from the device so option errors are testable and
 * reported before anything is created.
 */
#ifndef HDVM_NET_CLI_H
#define HDVM_NET_CLI_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#define NET_MAX_DEVICES	16

struct net_opts {
	char tap[IFNAMSIZ];
	uint8_t mac[6];
	bool mac_given;
};

/* One --net value; 0, or -EINVAL with a message naming the bad part. */
int net_opts_parse(const char *arg, struct net_opts *o);
/*
 * Every --net value of a VM: parse, fill in default MACs (locally
 * administered, derived from the VM name and the index) and refuse a TAP or
 * MAC used twice.
 */
int net_opts_parse_all(const char *const *args, int n, const char *vm_name,
		       struct net_opts *out);
void net_default_mac(const char *vm_name, unsigned index, uint8_t mac[6]);
/* "02:00:00:00:00:01" (buf of at least 18 bytes) */
const char *net_mac_str(const uint8_t mac[6], char *buf);

#endif
