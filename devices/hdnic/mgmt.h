/* SPDX-License-Identifier: MIT */
/*
 * DIR/pf.sock: the management interface a host PF driver would offer.
 * Newline-delimited JSON: one request object per line, one reply per line.
 *
 *   {"cmd":"list"}
 *   {"cmd":"stats"}
 *   {"cmd":"set-mac","vf":N,"mac":"02:00:00:00:00:01"}
 *   {"cmd":"egress","vf":N,"action":"hold"|"commit"|"discard"|"pass","epoch":E}
 *
 * Replies carry "ok": true, or "ok": false with "error": a message.
 */
#ifndef HDNIC_MGMT_H
#define HDNIC_MGMT_H

struct nic;
struct mgmt;

#define MGMT_SOCK_NAME		"pf.sock"
#define MGMT_MAX_REQUEST	4096

int mgmt_create(struct nic *nic, struct mgmt **out);
void mgmt_destroy(struct mgmt *m);

/* The client side, for `hdnic ctl` (ctl.c). */
int ctl_main(int argc, char **argv);

#endif
