/* SPDX-License-Identifier: MIT */
/*
 * DIR/pf.sock: the management interface a host PF driver would offer.
 * Newline-delimited JSON: one request object per line, one reply per line.
 * A device ("dev") is named "3" or "vf3" (a VF), "adi-NAME" or "NAME" (an
 * ADI); commands that predate ADIs also take "vf": N.
 *
 *   {"cmd":"list"}
 *   {"cmd":"stats"}
 *   {"cmd":"set-mac","dev":D,"mac":"02:00:00:00:00:01"}
 *   {"cmd":"egress","dev":D,"action":"hold"|"commit"|"discard"|"pass","epoch":E}
 *   {"cmd":"adi-add","name":"web1","queues":K,"mac":"02:..."}   (queues, mac optional)
 *   {"cmd":"adi-del","name":"web1"}
 *   {"cmd":"trust","dev":D,"on":true|false}
 *   {"cmd":"qos","dev":D,"tx_rate":R,"rx_rate":R,"weight":W}       (each optional)
 *
 * Rates are bits per second, as a number or a string like "10M" (qos.h).
 * Replies carry "ok": true, or "ok": false with "error": a message.
 */
#ifndef HDNIC_MGMT_H
#define HDNIC_MGMT_H

#include <stddef.h>

struct nic;
struct mgmt;
struct json_object;

#define MGMT_SOCK_NAME		"pf.sock"
#define MGMT_MAX_REQUEST	4096

#define MGMT_DEFAULT_CONN_TIMEOUT_MS	5000

int mgmt_create(struct nic *nic, struct mgmt **out);
void mgmt_destroy(struct mgmt *m);
/* A connection deadline is pending (NULL m: none, as in the fuzzers): tick until none is. */
void mgmt_arm_timer(struct mgmt *m);

/* One command: the reply object, or NULL with err filled (mgmt_cmds.c). */
typedef struct json_object *(*mgmt_cmd_fn)(struct nic *nic, struct json_object *req,
					   char *err, size_t errlen);
struct mgmt_cmd {
	const char *name;
	mgmt_cmd_fn fn;
};
extern const struct mgmt_cmd mgmt_cmds[];
extern const unsigned mgmt_nr_cmds;

/* The client side, for `hdnic ctl` (ctl.c). */
int ctl_main(int argc, char **argv);

#endif
